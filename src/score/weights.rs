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

/// The text of a weights file; `note` becomes comment lines at the top. Written with `toml`
/// (numbers to three decimals, rules in the order given), so any rule id is quoted as TOML
/// reads it back.
pub fn weights_file(note: &str, thresholds: &Thresholds, weights: &[(String, f64)]) -> String {
    #[derive(serde::Serialize)]
    struct File<'a> {
        thresholds: Levels,
        weights: InOrder<'a>,
    }
    #[derive(serde::Serialize)]
    struct Levels {
        urgent: f64,
        high: f64,
        normal: f64,
    }
    struct InOrder<'a>(&'a [(String, f64)]);
    impl serde::Serialize for InOrder<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(id, w)| (id, round3(*w))))
        }
    }
    let file = File {
        thresholds: Levels {
            urgent: round3(thresholds.urgent),
            high: round3(thresholds.high),
            normal: round3(thresholds.normal),
        },
        weights: InOrder(weights),
    };
    let mut out = String::new();
    for line in note.lines() {
        let _ = writeln!(out, "# {line}");
    }
    out.push('\n');
    out.push_str(&toml::to_string(&file).expect("numbers and strings always serialize"));
    out
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
