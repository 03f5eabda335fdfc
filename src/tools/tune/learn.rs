//! `triaged tune --learn` for a tone or intents: keyword rules learned from labelled text,
//! written as a rules file and measured through the rule engine.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::{TuneArgs, held_out_rows, row_email, rule_features, with_learned};
use crate::config::Config;
use crate::score::{self, History, RuleSet, Verdict};
use crate::tune::learn::{self, LearnedLabel};
use triaged_tune::eval::Row;

/// Each label learned (a tone, or an intent) and which rows have it.
type Labels = Vec<(String, Vec<bool>)>;

/// `tune --learn`: learned keyword rules for a tone (positive class against the rest) or for
/// each intent (against every other row), written to `out`. With `--part train` the figures are
/// measured on the test part, through the rule engine: the configured rules with the learned file
/// added, as the daemon would load them.
pub(super) fn run(config: &Config, args: &TuneArgs, rows: &[Row], out: &Path) -> Result<String> {
    let texts: Vec<String> = rows.iter().map(|r| r.texts.join("\n")).collect();
    let opts = learn::LearnOptions {
        max_rules: args.max_rules,
        min_df: args.min_df.max(1),
        ..Default::default()
    };
    let (kind, labels) = labels(args, rows)?;
    let fired = fired_rules(config, rows)?;
    let mut learned = Vec::new();
    for (label, y) in &labels {
        let l = learn::learn_label_with_rules(&texts, &fired, y, &opts)
            .map_err(|e| anyhow::anyhow!("{kind} {label}: {e}"))?;
        learned.push((label.clone(), l));
    }
    write_rules_file(out, args, kind, rows.len(), &learned)?;
    let with = with_learned(config, out)?;
    let mut report = String::new();
    let n: usize = learned.iter().map(|(_, l)| l.phrases.len()).sum();
    let _ = writeln!(
        report,
        "{}: {} {kind} rules for {} label(s) learned from {} rows",
        out.display(),
        n,
        learned.len(),
        rows.len()
    );
    let l2: Vec<String> = learned
        .iter()
        .map(|(label, l)| format!("{label} {}", l.l2))
        .collect();
    let _ = writeln!(report, "L2 strength: {}", l2.join(", "));
    // Figures: on the other part of a split when there is one (held out), else on the
    // training rows (said so: in-sample figures flatter).
    let (eval_rows, which) = match held_out_rows(args)? {
        Some(test) => (test, "held-out test part"),
        None => (
            rows.to_vec(),
            "training rows (in-sample; use --part train for a held-out figure)",
        ),
    };
    let _ = writeln!(report, "\nFigures on the {which}: {} rows", eval_rows.len());
    let _ = writeln!(
        report,
        "(learned rules: the learned file's label, its phrases weighing the configured rules too;\n either: the configured rules' label or the learned one)"
    );
    let _ = writeln!(
        report,
        "{:<16} {:>26} {:>26} {:>26}",
        "", "configured rules P/R/F1", "learned rules", "either"
    );
    write_figures(&mut report, config, args, kind, &labels, &with, &eval_rows)?;
    if !args.intents {
        let _ = writeln!(
            report,
            "(configured rules: any of the tones {})",
            args.tones.join(", ")
        );
    }
    Ok(report)
}

/// What is learned: every intent but `none` (`--intents`), or the one tone (`--learn-as`, else
/// the first `--tone`) standing for `--positive`; each with the rows that have it.
fn labels(args: &TuneArgs, rows: &[Row]) -> Result<(&'static str, Labels)> {
    if args.intents {
        let mut classes: Vec<String> = match &args.map {
            Some(m) => m.classes(),
            None => rows.iter().map(|r| r.label.clone()).collect(),
        };
        classes.sort();
        classes.dedup();
        classes.retain(|c| c != triaged_tune::eval::NONE);
        let labels = classes
            .into_iter()
            .map(|c| {
                let y = rows.iter().map(|r| r.label == c).collect();
                (c, y)
            })
            .collect();
        return Ok(("intent", labels));
    }
    let tone = args
        .learn_as
        .clone()
        .or_else(|| args.tones.first().cloned())
        .ok_or_else(|| anyhow::anyhow!("--learn needs --tone NAME (the tone the rules attach) and --positive CLASS, or --intents"))?;
    let positive = args.positive.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "--learn --tone {tone} needs --positive CLASS: the gold class the tone stands for"
        )
    })?;
    let y = rows.iter().map(|r| r.label == positive).collect();
    Ok(("tone", vec![(tone, y)]))
}

/// The configured rules that fired on each row (not those of an earlier learned file,
/// `learned.*`: a learned file weighs the pack, never a file it may replace).
fn fired_rules(config: &Config, rows: &[Row]) -> Result<Vec<Vec<String>>> {
    let rules = config.rules.rules();
    Ok(rule_features(config, rows)?
        .0
        .rows()
        .iter()
        .map(|hits| {
            hits.entries()
                .iter()
                .map(|&(i, _)| &rules[i].id)
                .filter(|id| !id.starts_with(learn::LEARNED_PREFIX))
                .cloned()
                .collect()
        })
        .collect())
}

/// The learned rules as a rules file, with a header that says where they come from.
fn write_rules_file(
    out: &Path,
    args: &TuneArgs,
    kind: &str,
    rows: usize,
    learned: &[(String, LearnedLabel)],
) -> Result<()> {
    let header = format!(
        "Learned keyword rules, written by `triaged tune --learn` ({} mode) from {} ({} rows).\n\
         Command: {}\n\
         Each phrase is a keyword rule whose evidence adds to its {kind}; the {kind} is given when the\n\
         firing phrases add up to 1 (docs/rules.md, \"Evidence\"). Edit or delete rules freely:\n\
         `triaged check` checks the file, `triaged explain` shows each phrase's share.",
        kind,
        args.source
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        rows,
        args.command
    );
    let file = learn::write_rules(&header, kind, learned);
    std::fs::write(out, &file).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))
}

/// A line per label: precision, recall and F1 of the configured rules, of the learned label
/// alone and of either, on `eval_rows` (and their mean over several labels).
fn write_figures(
    report: &mut String,
    config: &Config,
    args: &TuneArgs,
    kind: &str,
    labels: &Labels,
    with: &RuleSet,
    eval_rows: &[Row],
) -> Result<()> {
    // Each row scored once by the configured rules and once with the learned file added.
    let history = History::default();
    let verdicts: Vec<(Verdict, Verdict)> = eval_rows
        .iter()
        .map(|row| {
            let email = row_email(&row.texts);
            (
                score::score(&email, &config.rules, &config.thresholds, &history, 0),
                score::score(&email, with, &config.thresholds, &history, 0),
            )
        })
        .collect();
    let mut macro_f1 = [0.0f64; 3];
    for (label, _) in labels {
        let positive = if args.intents {
            label.clone()
        } else {
            args.positive.clone().unwrap_or_default()
        };
        let has = |v: &Verdict, learned_only: bool| -> bool {
            let learned_label = v
                .evidence
                .iter()
                .any(|e| e.given && e.kind == kind && e.label == *label);
            if learned_only {
                learned_label
            } else if args.intents {
                v.intents.contains(label)
            } else {
                v.tones.iter().any(|t| args.tones.contains(t) || t == label)
            }
        };
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let gold: Vec<&str> = eval_rows
            .iter()
            .map(|r| yes_no(r.label == positive))
            .collect();
        let mut cells = Vec::new();
        // Configured rules; the learned label alone; either (the learned file loaded).
        for (i, (learned_file, learned_only)) in [(false, false), (true, true), (true, false)]
            .into_iter()
            .enumerate()
        {
            let predicted: Vec<&str> = verdicts
                .iter()
                .map(|(pack, both)| {
                    yes_no(has(if learned_file { both } else { pack }, learned_only))
                })
                .collect();
            let r = triaged_tune::eval::evaluate(
                &gold,
                &predicted,
                Some(&["yes".into(), "no".into()]),
            )?;
            let c = r
                .class("yes")
                .map_or((0.0, 0.0, 0.0), |c| (c.precision, c.recall, c.f1));
            macro_f1[i] += c.2 / labels.len() as f64;
            cells.push(format!("{:.3} / {:.3} / {:.3}", c.0, c.1, c.2));
        }
        let _ = writeln!(
            report,
            "{:<16} {:>26} {:>26} {:>26}",
            format!("{kind} {label}"),
            cells[0],
            cells[1],
            cells[2]
        );
    }
    if labels.len() > 1 {
        let _ = writeln!(
            report,
            "{:<16} {:>26.3} {:>26.3} {:>26.3}   (mean F1 over the labels, one-vs-rest)",
            "mean F1", macro_f1[0], macro_f1[1], macro_f1[2]
        );
    }
    Ok(())
}
