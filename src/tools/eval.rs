//! `triaged eval`: the configured rules over labelled data, in priority, tone or intent mode.

use anyhow::Result;

use super::row_email;
use crate::config::Config;
use crate::score::{self, History};

/// What `triaged eval` compares the rules against.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    pub source: triaged_tune::eval::Source,
    pub columns: triaged_tune::eval::Columns,
    /// Gold label -> class; without it the gold labels are the classes.
    pub map: Option<triaged_tune::eval::LabelMap>,
    /// Predicted priority -> class (e.g. `urgent=high` for a three-level data set).
    pub predicted_map: Option<triaged_tune::eval::LabelMap>,
    /// Tone mode: these tone labels (or intents) make a prediction positive.
    pub tones: Vec<String>,
    /// Tone mode: the gold class that counts as positive; every other class is "other".
    pub positive: Option<String>,
    /// Intent mode: gold classes are intents (or `none`); the prediction is the set of intents.
    pub intents: bool,
    pub json: bool,
}

/// Score every row of a labelled file and compare with its label: a confusion matrix,
/// per-class precision/recall/F1 and macro-F1. Priority mode predicts the priority; tone mode
/// predicts `positive` when any of the given tones or intents is present.
pub fn eval(config: &Config, args: &EvalArgs) -> Result<String> {
    let mut data = triaged_tune::eval::load(&args.source, &args.columns)?;
    let mut rows = std::mem::take(&mut data.rows);
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
    if args.intents {
        return eval_intents(config, args, &rows, &data, dropped);
    }
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
    let mut report = triaged_tune::eval::evaluate(&gold, &predicted, classes.as_deref())?;
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
        "{}: {} rows ({what}; {} filtered out, {} unlabelled, {} left out by the map{})\n\n{report}",
        args.source.path.display(),
        rows.len(),
        data.filtered_out,
        data.unlabelled,
        dropped,
        part_note(args, &data)
    ))
}

fn part_note(args: &EvalArgs, data: &triaged_tune::eval::Dataset) -> String {
    match &args.columns.split {
        Some(s) => format!(
            "; {} part of a {:.0}/{:.0} split, seed {}: {} rows in the other part",
            if s.part == triaged_tune::eval::Part::Test {
                "test"
            } else {
                "train"
            },
            (1.0 - s.test_share) * 100.0,
            s.test_share * 100.0,
            s.seed,
            data.other_part
        ),
        None => String::new(),
    }
}

/// Intent mode of `eval`: each row's intents (a set) against its gold class.
fn eval_intents(
    config: &Config,
    args: &EvalArgs,
    rows: &[triaged_tune::eval::Row],
    data: &triaged_tune::eval::Dataset,
    dropped: usize,
) -> Result<String> {
    let classes: Vec<String> = match &args.map {
        Some(m) => m.classes(),
        None => {
            let mut c: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
            c.sort();
            c.dedup();
            c
        }
    };
    let history = History::default();
    let gold: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let predicted: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            score::score(
                &row_email(&row.texts),
                &config.rules,
                &config.thresholds,
                &history,
                0,
            )
            .intents
        })
        .collect();
    let report = triaged_tune::eval::evaluate_sets(&gold, &predicted, &classes)?;
    if args.json {
        let mut v = report.to_json();
        v["file"] = args.source.path.display().to_string().into();
        v["mode"] = "intent mode".into();
        v["rows"] = rows.len().into();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    Ok(format!(
        "{}: {} rows (intent mode; {} filtered out, {} unlabelled, {} left out by the map{})\n\n{report}",
        args.source.path.display(),
        rows.len(),
        data.filtered_out,
        data.unlabelled,
        dropped,
        part_note(args, data)
    ))
}
