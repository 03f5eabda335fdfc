//! Operator tools that work without a server: `explain` (why an email scored as it did) and,
//! later in this module, the evaluation of the rules over labelled data. Orchestration only:
//! reading files, calling the pure core, formatting.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::guard;
use crate::parse::{self, ParseLimits};
use crate::score::{self, History};
use crate::store::Store;

/// Parse `path` (an RFC 5322 message), score it with the configured rules and say why: the
/// verdict, every hit, and whether the guard would let an acknowledgement go out. History
/// signals (earlier contacts) come from the store when it exists; it is only read.
pub fn explain(config: &Config, path: &Path, json: bool, now: i64) -> Result<String> {
    let raw = std::fs::read(path).with_context(|| format!("Reading {}", path.display()))?;
    let limits = ParseLimits {
        max_size: config.mailbox.max_message_size,
    };
    let email = match parse::parse(&raw, &limits) {
        Ok(e) => e,
        Err(skip) => anyhow::bail!(
            "{}: the daemon would record this email as skipped ({}): {skip}",
            path.display(),
            skip.code()
        ),
    };
    let (history, history_note) = if config.store.path.exists() {
        let store = Store::open(&config.store.path)?;
        let h = store.history(&email, now, config.rules.history_window_secs())?;
        let note = format!(
            "{} earlier email(s) from this sender in the store",
            h.earlier_contacts.len()
        );
        (h, note)
    } else {
        (
            History::default(),
            "no store yet: no earlier contacts".to_string(),
        )
    };
    let verdict = score::score(&email, &config.rules, &config.thresholds, &history, now);
    let guard = guard::check(&email, &config.guard_config());
    let ack = match guard {
        Ok(()) => "may be acknowledged (subject to the per-sender limit and max_age)".to_string(),
        Err(r) => format!("no acknowledgement: {}", r.code()),
    };
    let from = email
        .from
        .as_ref()
        .map(|a| a.email.clone())
        .unwrap_or_default();
    if json {
        let mut v = score::explain_json(&verdict, &config.rules, &config.thresholds);
        v["file"] = path.display().to_string().into();
        v["from"] = from.into();
        v["subject"] = email.subject.clone().into();
        v["guard"] = match guard {
            Ok(()) => "ok".into(),
            Err(r) => r.code().into(),
        };
        v["history"] = history_note.into();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    Ok(format!(
        "{}\nfrom     {from}\nsubject  {}\nguard    {ack}\nhistory  {history_note}\n{}",
        path.display(),
        email.subject,
        score::explain_text(&verdict, &config.rules, &config.thresholds)
    ))
}

/// What `triaged eval` compares the rules against.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    pub source: crate::eval::Source,
    pub columns: crate::eval::Columns,
    /// Gold label -> class; without it the gold labels are the classes.
    pub map: Option<crate::eval::LabelMap>,
    /// Predicted priority -> class (e.g. `urgent=high` for a three-level data set).
    pub predicted_map: Option<crate::eval::LabelMap>,
    /// Tone mode: these tone labels (or intents) make a prediction positive.
    pub tones: Vec<String>,
    /// Tone mode: the gold class that counts as positive; every other class is "other".
    pub positive: Option<String>,
    pub json: bool,
}

/// The text of a row as an email: the first text column is the subject, the rest the body
/// (one column: the body alone).
pub fn row_email(texts: &[String]) -> crate::parse::Email {
    match texts {
        [] => score::text_email("", ""),
        [body] => score::text_email("", body),
        [subject, rest @ ..] => score::text_email(subject, &rest.join("\n\n")),
    }
}

/// Score every row of a labelled file and compare with its label: a confusion matrix,
/// per-class precision/recall/F1 and macro-F1. Priority mode predicts the priority; tone mode
/// predicts `positive` when any of the given tones or intents is present.
pub fn eval(config: &Config, args: &EvalArgs) -> Result<String> {
    let data = crate::eval::load(&args.source, &args.columns)?;
    let mut rows = data.rows;
    let dropped = match &args.map {
        Some(map) => map.apply(&mut rows)?,
        None => 0,
    };
    if rows.is_empty() {
        anyhow::bail!(
            "{}: no labelled rows to evaluate",
            args.source.path.display()
        );
    }
    let history = History::default();
    let mut gold = Vec::with_capacity(rows.len());
    let mut predicted = Vec::with_capacity(rows.len());
    let tone_mode = !args.tones.is_empty();
    let positive = args.positive.clone().unwrap_or_else(|| "positive".into());
    let other = format!("not-{positive}");
    for row in &rows {
        let v = score::score(
            &row_email(&row.texts),
            &config.rules,
            &config.thresholds,
            &history,
            0,
        );
        if tone_mode {
            let hit = v
                .tones
                .iter()
                .chain(v.intents.iter())
                .any(|t| args.tones.contains(t));
            predicted.push(if hit { positive.clone() } else { other.clone() });
            gold.push(if row.label == positive {
                positive.clone()
            } else {
                other.clone()
            });
        } else {
            let p = v.priority.as_str();
            predicted.push(
                args.predicted_map
                    .as_ref()
                    .map_or(p, |m| m.predicted(p))
                    .to_string(),
            );
            gold.push(row.label.clone());
        }
    }
    let classes: Option<Vec<String>> = if tone_mode {
        Some(vec![positive.clone(), other])
    } else {
        args.map.as_ref().map(|m| m.classes())
    };
    let mut report = crate::eval::evaluate(&gold, &predicted, classes.as_deref())?;
    if tone_mode {
        report = report.with_positive(&positive)?;
    }
    let what = if tone_mode {
        format!("tone mode: {positive} = any of {}", args.tones.join(", "))
    } else {
        "priority mode".to_string()
    };
    if args.json {
        let mut v = report.to_json();
        v["file"] = args.source.path.display().to_string().into();
        v["mode"] = what.into();
        v["rows"] = rows.len().into();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    Ok(format!(
        "{}: {} rows ({what}; {} filtered out, {} unlabelled, {} left out by the map)\n\n{report}",
        args.source.path.display(),
        rows.len(),
        data.filtered_out,
        data.unlabelled,
        dropped
    ))
}
