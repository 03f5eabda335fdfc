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

/// What `triaged eval --store` compares.
#[derive(Debug, Clone)]
pub struct StoreArgs {
    /// The period: emails received this long before now.
    pub since: std::time::Duration,
    /// Tone mode: these tones make an email positive (staff's tones where they corrected
    /// them, else the verdict's).
    pub tones: Vec<String>,
    /// Tone mode: the name of the positive class.
    pub positive: Option<String>,
    pub json: bool,
}

/// How the rules agreed with staff over a period: the verdicts of the customer emails in the
/// store against staff's labels — their correction where they made one, the verdict itself
/// where they left it (counted as agreed). The same report as [`eval`]'s.
pub fn eval_store(config: &Config, args: &StoreArgs, now: i64) -> Result<String> {
    let path = &config.store.path;
    let since = now.saturating_sub(i64::try_from(args.since.as_secs()).unwrap_or(i64::MAX));
    let emails = super::open_store(config)?.labelled(since)?;
    if emails.is_empty() {
        anyhow::bail!(
            "{}: no triaged email from a customer received since {}: nothing to compare",
            path.display(),
            crate::wording::when(since)
        );
    }
    let tone_mode = !args.tones.is_empty();
    let positive = args.positive.clone().unwrap_or_else(|| "positive".into());
    let other = format!("not-{positive}");
    let has_tone = |tones: &str| tones.split(',').any(|t| args.tones.iter().any(|a| a == t));
    let mut gold = Vec::with_capacity(emails.len());
    let mut predicted = Vec::with_capacity(emails.len());
    let mut corrected = 0;
    for e in &emails {
        if tone_mode {
            let staff = e.staff_tones.as_deref().unwrap_or(&e.tones);
            corrected += usize::from(e.staff_tones.is_some());
            let class = |yes| if yes { &positive } else { &other };
            gold.push(class(has_tone(staff)).clone());
            predicted.push(class(has_tone(&e.tones)).clone());
        } else {
            corrected += usize::from(e.staff_priority.is_some());
            gold.push(e.staff_priority.unwrap_or(e.priority).as_str().to_string());
            predicted.push(e.priority.as_str().to_string());
        }
    }
    let classes: Vec<String> = if tone_mode {
        vec![positive.clone(), other]
    } else {
        score::Priority::ALL
            .iter()
            .map(|p| p.as_str().to_string())
            .collect()
    };
    let mut report = triaged_tune::eval::evaluate(&gold, &predicted, Some(&classes))?;
    if tone_mode {
        report = report.with_positive(&positive)?;
    }
    let what = if tone_mode {
        format!(
            "tone mode: {positive} = any of {}; staff corrected the tones of {corrected}",
            args.tones.join(", ")
        )
    } else {
        format!("priority mode; staff corrected the priority of {corrected}")
    };
    const LEFT: &str = "a verdict staff left as it was counts as agreed";
    if args.json {
        let mut v = report.to_json();
        v["store"] = path.display().to_string().into();
        v["since"] = since.into();
        v["mode"] = if tone_mode {
            "tone mode"
        } else {
            "priority mode"
        }
        .into();
        v["rows"] = emails.len().into();
        v["corrected"] = corrected.into();
        v["note"] = LEFT.into();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    Ok(format!(
        "{}: {} emails from customers received since {} ({what}; {LEFT})\n\n{report}",
        path.display(),
        emails.len(),
        crate::wording::when(since),
    ))
}
