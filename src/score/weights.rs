//! Weights files written by `triaged tune` and included with `[scoring] weights = "FILE"`: the
//! same rules with fitted weights, and the thresholds fitted with them. Every weight is still a
//! number on a named rule, so explanations stay readable.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{RuleSet, Thresholds};
use crate::diag::Diagnostic;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeights {
    thresholds: Option<RawThresholds>,
    #[serde(default)]
    weights: BTreeMap<Spanned<String>, Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    urgent: f64,
    high: f64,
    normal: f64,
}

/// Apply a weights file to `rules`: every id must name a rule, every weight be finite.
/// Returns the reweighted rules and the file's thresholds, if it has them.
pub fn load_weights(
    path: &Path,
    rules: &RuleSet,
) -> Result<(RuleSet, Option<Thresholds>), Vec<Diagnostic>> {
    // Bounded like a rule file, and checked with a set and a line index: a file of many
    // unknown ids cannot make the check quadratic.
    let source = crate::diag::read_limited(path, "weights file", super::load::MAX_RULE_FILE_BYTES)
        .map_err(|d| vec![d])?;
    let raw: RawWeights =
        toml::from_str(&source).map_err(|e| vec![Diagnostic::from_toml(path, &source, &e)])?;
    let ids: HashSet<&str> = rules.rules().iter().map(|r| r.id.as_str()).collect();
    let lines = crate::diag::Lines::new(&source);
    let at = |span: std::ops::Range<usize>, message: String| {
        let (line, col) = lines.line_col(&source, span.start);
        Diagnostic {
            file: path.to_path_buf(),
            line,
            col,
            message,
        }
    };
    let mut errors = Vec::new();
    let mut map = BTreeMap::new();
    for (id, w) in &raw.weights {
        if !ids.contains(id.get_ref().as_str()) {
            errors.push(at(
                id.span(),
                format!(
                    "no rule {:?} in the rule files (renamed or removed? run triaged tune again)",
                    id.get_ref()
                ),
            ));
        } else if !w.get_ref().is_finite() {
            errors.push(at(w.span(), "weight must be a finite number".into()));
        } else {
            map.insert(id.get_ref().clone(), *w.get_ref());
        }
    }
    // The priority without evidence stays what [scoring] says (see config).
    let thresholds = raw.thresholds.map(|t| Thresholds {
        urgent: t.urgent,
        high: t.high,
        normal: t.normal,
        no_evidence: super::Priority::Normal,
    });
    if let Some(t) = &thresholds
        && !(t.urgent >= t.high && t.high >= t.normal)
    {
        errors.push(Diagnostic::file(
            path,
            "[thresholds] must satisfy urgent >= high >= normal",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let tuned = rules
        .with_weights(&map)
        .map_err(|ids| vec![Diagnostic::file(path, format!("unknown rules: {ids:?}"))])?;
    Ok((tuned, thresholds))
}

/// The text of a weights file; `note` becomes comment lines at the top.
pub fn weights_file(note: &str, thresholds: &Thresholds, weights: &[(String, f64)]) -> String {
    let mut out = String::new();
    for line in note.lines() {
        let _ = writeln!(out, "# {line}");
    }
    let _ = writeln!(
        out,
        "\n[thresholds]\nurgent = {:.3}\nhigh = {:.3}\nnormal = {:.3}\n\n[weights]",
        thresholds.urgent, thresholds.high, thresholds.normal
    );
    for (id, w) in weights {
        let _ = writeln!(out, "{id:?} = {w:.3}");
    }
    out
}
