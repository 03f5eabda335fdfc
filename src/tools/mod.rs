//! Operator tools that work without a server: `explain` (why an email scored as it did),
//! `eval` and `tune` (the rules against labelled data), and in [`tickets`] the ticket list and
//! commands. Orchestration only: reading files and the store, calling the pure core, formatting.

pub mod digest;
pub mod init;
pub mod tickets;

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::guard;
use crate::parse::{self, ParseLimits};
use crate::score::{self, History, Thresholds};
use crate::store::Store;
use crate::wording;

/// Parse `path` (an RFC 5322 message), score it with the configured rules and say why: the
/// verdict, every hit, and whether the guard would let an acknowledgement go out. History
/// signals (earlier contacts) come from the store when it exists; it is only read.
pub fn explain(config: &Config, path: &Path, json: bool, now: i64) -> Result<String> {
    let raw = std::fs::read(path).with_context(|| format!("Reading {}", path.display()))?;
    let limits = ParseLimits {
        max_size: config.mailbox().max_message_size,
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
        v["budget"] = email.budget.clone().into();
        return Ok(format!(
            "{}\n",
            crate::wording::json(serde_json::to_string_pretty(&v)?)
        ));
    }
    // The sender, the subject and the matched words are the customer's: shown escaped. The
    // report is a table of lines, so only its line breaks and tabs stay.
    let budget: String = email
        .budget
        .iter()
        .map(|note| format!("budget   {}\n", wording::one_line(note)))
        .collect();
    Ok(format!(
        "{}\nfrom     {}\nsubject  {}\nguard    {ack}\nhistory  {history_note}\n{budget}{}",
        wording::one_line(&path.display().to_string()),
        wording::one_line(&from),
        wording::one_line(&email.subject),
        wording::lines(&score::explain_text(
            &verdict,
            &config.rules,
            &config.thresholds
        ))
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
    /// Intent mode: gold classes are intents (or `none`); the prediction is the set of intents.
    pub intents: bool,
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
    let mut data = crate::eval::load(&args.source, &args.columns)?;
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
        "{}: {} rows ({what}; {} filtered out, {} unlabelled, {} left out by the map{})\n\n{report}",
        args.source.path.display(),
        rows.len(),
        data.filtered_out,
        data.unlabelled,
        dropped,
        part_note(args, &data)
    ))
}

fn part_note(args: &EvalArgs, data: &crate::eval::Dataset) -> String {
    match &args.columns.split {
        Some(s) => format!(
            "; {} part of a {:.0}/{:.0} split, seed {}: {} rows in the other part",
            if s.part == crate::eval::Part::Test {
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
    rows: &[crate::eval::Row],
    data: &crate::eval::Dataset,
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
    let report = crate::eval::evaluate_sets(&gold, &predicted, &classes)?;
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

/// What `triaged tune` fits the rule weights to.
#[derive(Debug, Clone)]
pub struct TuneArgs {
    pub source: crate::eval::Source,
    pub columns: crate::eval::Columns,
    pub map: Option<crate::eval::LabelMap>,
    /// Classes from least to most urgent; defaults to the priority names present.
    pub order: Vec<String>,
    pub folds: usize,
    /// Where to write the weights file (none: only report).
    pub out: Option<std::path::PathBuf>,
    /// Also fit a TF-IDF + logistic-regression model as a yardstick.
    pub yardstick: bool,
    pub seed: u64,
    /// Tone mode: these tones or intents make a prediction positive (as for eval). No weights
    /// file: tones are labels, not scores; the report says which rules carry the signal and
    /// which phrases are missing.
    pub tones: Vec<String>,
    pub positive: Option<String>,
    /// Learn keyword rules and write them here (`--learn`): tone mode (`learn_as`, else the
    /// first of `tones`, is the tone the rules attach), intent mode (`intents`), or priority
    /// mode (neither; the weights and thresholds go to `out`).
    pub learn: Option<std::path::PathBuf>,
    /// Intent mode of `--learn`: gold classes are intents or `none`.
    pub intents: bool,
    /// Phrases kept per label.
    pub max_rules: usize,
    /// A phrase must occur in at least this many rows.
    pub min_df: usize,
    /// Tone mode of `--learn`: the tone the rules attach (default: the first of `tones`).
    pub learn_as: Option<String>,
    /// The command line, for the learned file's header.
    pub command: String,
}

/// Every row scored by the configured rules: the verdicts, and the rule hits as a matrix
/// (one column per rule, the occurrence count as the value).
fn rule_features(
    config: &Config,
    rows: &[crate::eval::Row],
) -> Result<(crate::tune::sparse::Matrix, Vec<score::Verdict>)> {
    let rules = config.rules.rules();
    let history = History::default();
    let mut features = Vec::with_capacity(rows.len());
    let mut verdicts = Vec::with_capacity(rows.len());
    for row in rows {
        let v = score::score(
            &row_email(&row.texts),
            &config.rules,
            &config.thresholds,
            &history,
            0,
        );
        let pairs: Vec<(usize, f64)> = v
            .hits
            .iter()
            .filter_map(|h| {
                rules
                    .iter()
                    .position(|r| r.id == h.rule)
                    .map(|i| (i, f64::from(h.count)))
            })
            .collect();
        features.push(crate::tune::sparse::SparseVec::from_pairs(pairs));
        verdicts.push(v);
    }
    Ok((
        crate::tune::sparse::Matrix::new(features, rules.len())?,
        verdicts,
    ))
}

/// The phrases the data says the rules miss for a class: not covered by any keyword.
fn candidate_phrases(
    config: &Config,
    texts: &[String],
    in_class: &[bool],
) -> Result<Vec<crate::tune::phrases::Candidate>> {
    use crate::score::Matcher;
    use crate::tune::phrases;
    let keywords: Vec<&str> = config
        .rules
        .rules()
        .iter()
        .filter_map(|r| match &r.matcher {
            Matcher::Keywords(k) => Some(k.iter().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect();
    let covered = |p: &str| keywords.iter().any(|k| p.contains(k) || k.contains(p));
    phrases::fightin_words(
        texts,
        in_class,
        &covered,
        &phrases::PhraseOptions {
            limit: Some(15),
            ..Default::default()
        },
    )
}

fn write_candidates(out: &mut String, class: &str, cands: &[crate::tune::phrases::Candidate]) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "\nCandidate phrases for {class:?} not in any rule (z-score, emails in class / others):"
    );
    if cands.is_empty() {
        let _ = writeln!(out, "  (none with enough evidence)");
    }
    for c in cands {
        let _ = writeln!(
            out,
            "  {:<28} z {:>5.1}  {:>5} / {}",
            c.phrase, c.z, c.count_in_class, c.count_other
        );
    }
}

/// `tune --learn`: learned keyword rules for a tone (positive class against the rest) or for
/// each intent (against every other row), written to `out`. With `--part train` the figures are
/// measured on the test part, through the rule engine: the configured rules with the learned file
/// added, as the daemon would load them.
fn tune_learn(
    config: &Config,
    args: &TuneArgs,
    rows: &[crate::eval::Row],
    out: &std::path::Path,
) -> Result<String> {
    use std::fmt::Write as _;

    use crate::tune::learn;

    let texts: Vec<String> = rows.iter().map(|r| r.texts.join("\n")).collect();
    let opts = learn::LearnOptions {
        max_rules: args.max_rules,
        min_df: args.min_df.max(1),
        ..Default::default()
    };
    let (kind, labels): (&str, Vec<(String, Vec<bool>)>) = if args.intents {
        let mut classes: Vec<String> = match &args.map {
            Some(m) => m.classes(),
            None => rows.iter().map(|r| r.label.clone()).collect(),
        };
        classes.sort();
        classes.dedup();
        classes.retain(|c| c != crate::eval::NONE);
        let labels = classes
            .into_iter()
            .map(|c| {
                let y = rows.iter().map(|r| r.label == c).collect();
                (c, y)
            })
            .collect();
        ("intent", labels)
    } else {
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
        ("tone", vec![(tone, y)])
    };
    // The configured rules that fired on each row (not those of an earlier learned file,
    // `learned.*`: a learned file weighs the pack, never a file it may replace).
    let rules = config.rules.rules();
    let fired: Vec<Vec<String>> = rule_features(config, rows)?
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
        .collect();
    let mut learned = Vec::new();
    for (label, y) in &labels {
        let l = learn::learn_label_with_rules(&texts, &fired, y, &opts)
            .map_err(|e| anyhow::anyhow!("{kind} {label}: {e}"))?;
        learned.push((label.clone(), l));
    }
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
        rows.len(),
        args.command
    );
    let file = learn::write_rules(&header, kind, &learned);
    std::fs::write(out, &file)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
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
    // Each row scored once by the configured rules and once with the learned file added.
    let history = History::default();
    let verdicts: Vec<(score::Verdict, score::Verdict)> = eval_rows
        .iter()
        .map(|row| {
            let email = row_email(&row.texts);
            (
                score::score(&email, &config.rules, &config.thresholds, &history, 0),
                score::score(&email, &with, &config.thresholds, &history, 0),
            )
        })
        .collect();
    let mut macro_f1 = [0.0f64; 3];
    for (label, _) in &labels {
        let positive = if args.intents {
            label.clone()
        } else {
            args.positive.clone().unwrap_or_default()
        };
        let has = |v: &score::Verdict, learned_only: bool| -> bool {
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
            let r = crate::eval::evaluate(&gold, &predicted, Some(&["yes".into(), "no".into()]))?;
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
    if !args.intents {
        let _ = writeln!(
            report,
            "(configured rules: any of the tones {})",
            args.tones.join(", ")
        );
    }
    Ok(report)
}

/// Tone mode of `tune`: how well the tone rules find the positive class, how well a logistic
/// regression over the same rule hits could (out of fold), a TF-IDF yardstick, the rules that
/// carry the signal, and the phrases the rules miss.
fn tune_tone(config: &Config, args: &TuneArgs, rows: &[crate::eval::Row]) -> Result<String> {
    use std::fmt::Write as _;

    use crate::tune::{cv, logreg};

    let positive = args.positive.clone().unwrap_or_else(|| "positive".into());
    let other = format!("not-{positive}");
    let y: Vec<bool> = rows.iter().map(|r| r.label == positive).collect();
    anyhow::ensure!(
        y.iter().any(|b| *b) && y.iter().any(|b| !*b),
        "Tone mode needs rows of {positive:?} and of other classes (check --positive and --map)"
    );
    let name = |b: bool| if b { positive.as_str() } else { other.as_str() };
    let gold: Vec<&str> = y.iter().map(|&b| name(b)).collect();
    let classes = vec![positive.clone(), other.clone()];
    let (x, verdicts) = rule_features(config, rows)?;
    let shipped: Vec<&str> = verdicts
        .iter()
        .map(|v| {
            name(
                v.tones
                    .iter()
                    .chain(v.intents.iter())
                    .any(|t| args.tones.contains(t)),
            )
        })
        .collect();
    let labels: Vec<usize> = y.iter().map(|&b| usize::from(b)).collect();
    let folds = cv::stratified_folds(&labels, args.folds, args.seed)?;
    let opts = logreg::FitOptions {
        class_weight: logreg::ClassWeight::Balanced,
        ..Default::default()
    };
    let fit = |idx: &[usize]| -> Result<logreg::BinaryModel> {
        let ys: Vec<bool> = idx.iter().map(|&i| y[i]).collect();
        logreg::fit_binary(&x.select(idx)?, &ys, &opts)
    };
    let hits_pred: Vec<bool> = cv::out_of_fold(&folds, fit, |m, test| {
        Ok(test.iter().map(|&i| m.predict(&x.rows()[i])).collect())
    })?;
    let report = |pred: &[bool]| {
        let named: Vec<&str> = pred.iter().map(|&b| name(b)).collect();
        crate::eval::evaluate(&gold, &named, Some(&classes))
    };
    let mut summary = vec![
        (
            format!("tone rules ({})", args.tones.join(",")),
            crate::eval::evaluate(&gold, &shipped, Some(&classes))?,
        ),
        (
            format!(
                "rule hits + logistic regression ({}-fold, out of fold)",
                args.folds
            ),
            report(&hits_pred)?,
        ),
    ];
    let texts: Vec<String> = rows.iter().map(|r| r.texts.join("\n")).collect();
    if args.yardstick {
        let pred = tfidf_out_of_fold(
            &texts,
            &folds,
            |m, train| {
                let ys: Vec<bool> = train.iter().map(|&i| y[i]).collect();
                logreg::fit_binary(m, &ys, &opts)
            },
            |model, x| model.predict(x),
        )?;
        summary.push((
            format!(
                "TF-IDF + logistic regression ({}-fold, out of fold)",
                args.folds
            ),
            report(&pred)?,
        ));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} rows, {positive} vs the rest ({} {positive}), {}-fold cross-validation, seed {}\n",
        args.source.path.display(),
        rows.len(),
        y.iter().filter(|b| **b).count(),
        args.folds,
        args.seed
    );
    let _ = writeln!(
        out,
        "{:<56} {:>8} {:>6} {:>6} {:>6}",
        "", "macro-F1", "P", "R", "F1"
    );
    for (label, r) in &summary {
        let s = r.class(&positive);
        let _ = writeln!(
            out,
            "{label:<56} {:>8.3} {:>6.3} {:>6.3} {:>6.3}",
            r.macro_f1,
            s.map_or(0.0, |s| s.precision),
            s.map_or(0.0, |s| s.recall),
            s.map_or(0.0, |s| s.f1)
        );
    }
    let all: Vec<usize> = (0..rows.len()).collect();
    let model = fit(&all)?;
    let rules = config.rules.rules();
    let mut ranked: Vec<(f64, &str, usize)> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let n = x.rows().iter().filter(|row| row.get(i) != 0.0).count();
            (model.weights[i], r.id.as_str(), n)
        })
        .filter(|(_, _, n)| *n > 0)
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let _ = writeln!(
        out,
        "\nRules by evidence for {positive:?} (log-odds per hit, fitted on all rows; rows hit):"
    );
    for (w, id, n) in &ranked {
        let _ = writeln!(out, "  {id:<22} {w:>7.2} {n:>7}");
    }
    let cands = candidate_phrases(config, &texts, &y)?;
    write_candidates(&mut out, &positive, &cands);
    Ok(out)
}

/// The classes of `rows` from least to most urgent.
fn class_order(rows: &[crate::eval::Row], order: &[String]) -> Result<Vec<String>> {
    let present: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let order: Vec<String> = if order.is_empty() {
        let by_priority = ["low", "normal", "high", "urgent"];
        if let Some(odd) = present.iter().find(|c| !by_priority.contains(c)) {
            anyhow::bail!(
                "Class {odd:?} is not a priority name: say how the classes rank with --order, least urgent first (e.g. --order low,medium,high), or map them with --map"
            );
        }
        by_priority
            .iter()
            .filter(|c| present.contains(*c))
            .map(|c| c.to_string())
            .collect()
    } else {
        order.to_vec()
    };
    if let Some(missing) = present.iter().find(|c| !order.iter().any(|o| o == *c)) {
        anyhow::bail!("Class {missing:?} is not in --order {}", order.join(","));
    }
    anyhow::ensure!(
        order.len() >= 2,
        "Need at least two classes to fit, found {}",
        order.len()
    );
    Ok(order)
}

/// Keep the rules, fit their weights and the thresholds to labelled data (ordinal logistic
/// regression over rule hits, L2 chosen by inner cross-validation), report out-of-fold figures
/// next to the shipped weights (and optionally a TF-IDF yardstick), list candidate phrases the
/// data says the rules miss, and write a weights file the config can include.
pub fn tune(config: &Config, args: &TuneArgs) -> Result<String> {
    use std::fmt::Write as _;

    use crate::tune::{cv, logreg};

    let data = crate::eval::load(&args.source, &args.columns)?;
    let mut rows = data.rows;
    if let Some(map) = &args.map {
        map.apply(&mut rows)?;
    }
    if let Some(out) = &args.learn
        && (args.intents || !args.tones.is_empty())
    {
        return tune_learn(config, args, &rows, out);
    }
    if !args.tones.is_empty() {
        return tune_tone(config, args, &rows);
    }
    if args.learn.is_some() && args.out.is_none() {
        anyhow::bail!(
            "--learn for priorities needs --out FILE too: the learned phrases' weights go with the \
             thresholds and the rules' weights fitted beside them"
        );
    }
    let order = class_order(&rows, &args.order)?;
    let k = order.len();
    let y: Vec<usize> = rows
        .iter()
        .map(|r| order.iter().position(|c| *c == r.label).unwrap_or(0))
        .collect();
    let rules = config.rules.rules();

    let (x, verdicts) = rule_features(config, &rows)?;
    let texts: Vec<String> = rows.iter().map(|r| r.texts.join("\n")).collect();
    // With --learn: the phrases that speak for the most or least urgent class, fitted beside
    // the rules (columns after the rules').
    let learned = args.learn.as_ref().map(|_| {
        crate::tune::learn::priority_phrases(
            &texts,
            &y,
            k,
            &crate::tune::learn::LearnOptions {
                max_rules: args.max_rules,
                min_df: args.min_df.max(1),
                ..Default::default()
            },
        )
    });
    let x = match &learned {
        None => x,
        Some((terms, phrases)) => {
            // Rules of an earlier learned file (`learned.*`, about to be replaced) are no
            // features: the new phrases stand in their place.
            let earlier: Vec<bool> = rules
                .iter()
                .map(|r| r.id.starts_with(crate::tune::learn::LEARNED_PREFIX))
                .collect();
            let index: std::collections::HashMap<&str, usize> = phrases
                .iter()
                .enumerate()
                .map(|(j, (p, _))| (p.as_str(), rules.len() + j))
                .collect();
            let rows: Vec<crate::tune::sparse::SparseVec> = x
                .rows()
                .iter()
                .zip(terms)
                .map(|(r, t)| {
                    let mut pairs: Vec<(usize, f64)> = r
                        .entries()
                        .iter()
                        .copied()
                        .filter(|&(i, _)| !earlier[i])
                        .collect();
                    pairs.extend(
                        t.iter()
                            .filter_map(|w| index.get(w.as_str()).map(|&j| (j, 1.0))),
                    );
                    crate::tune::sparse::SparseVec::from_pairs(pairs)
                })
                .collect();
            crate::tune::sparse::Matrix::new(rows, rules.len() + phrases.len())?
        }
    };
    let shipped: Vec<String> = verdicts
        .iter()
        .map(|v| priority_class(v.priority, &order))
        .collect();
    let folds = cv::stratified_folds(&y, args.folds, args.seed)?;
    let fit = |l2: f64, idx: &[usize]| -> Result<logreg::OrdinalModel> {
        let sub = x.select(idx)?;
        let ys: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
        let mut m = logreg::fit_ordinal(
            &sub,
            &ys,
            k,
            &logreg::FitOptions {
                l2,
                class_weight: logreg::ClassWeight::Balanced,
                ..Default::default()
            },
        )?;
        let scores: Vec<f64> = sub.rows().iter().map(|r| m.score(r)).collect();
        m.cuts = best_cuts(&scores, &ys, m.cuts.clone());
        Ok(m)
    };
    // Regularisation is chosen by macro-F1, the figure reported, not by accuracy (which a
    // model predicting only the largest class can score well on).
    let macro_f1 = |m: &logreg::OrdinalModel, idx: &[usize]| -> Result<f64> {
        let gold: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
        let pred: Vec<usize> = idx.iter().map(|&i| m.predict(&x.rows()[i])).collect();
        let names = |v: &[usize]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        Ok(crate::eval::evaluate(&names(&gold), &names(&pred), None)?.macro_f1)
    };
    let inner_k = args.folds.clamp(2, 3);
    let oof: Vec<usize> = cv::out_of_fold(
        &folds,
        |train| {
            let choice = cv::select_l2(&cv::L2_GRID, &y, train, inner_k, args.seed, fit, macro_f1)?;
            fit(choice.l2, train)
        },
        |m, test| Ok(test.iter().map(|&i| m.predict(&x.rows()[i])).collect()),
    )?;
    let all: Vec<usize> = (0..rows.len()).collect();
    let choice = cv::select_l2(&cv::L2_GRID, &y, &all, inner_k, args.seed, fit, macro_f1)?;
    let model = fit(choice.l2, &all)?;

    let gold: Vec<&str> = y.iter().map(|&c| order[c].as_str()).collect();
    let tuned_pred: Vec<&str> = oof.iter().map(|&c| order[c].as_str()).collect();
    let shipped_report = crate::eval::evaluate(&gold, &shipped, Some(&order))?;
    let tuned_report = crate::eval::evaluate(&gold, &tuned_pred, Some(&order))?;
    let top = &order[k - 1];
    let mut summary = vec![
        ("rules, shipped weights".to_string(), shipped_report.clone()),
        (
            if learned.is_some() {
                // The phrases were chosen on every row: the folds then only refit weights.
                format!(
                    "rules + phrases, tuned ({}-fold; phrases chosen on all rows: optimistic)",
                    args.folds
                )
            } else {
                format!("rules, tuned weights ({}-fold, out of fold)", args.folds)
            },
            tuned_report.clone(),
        ),
    ];

    if args.yardstick {
        let pred = tfidf_out_of_fold(
            &texts,
            &folds,
            |m, train| {
                let ys: Vec<usize> = train.iter().map(|&i| y[i]).collect();
                logreg::fit_multinomial(m, &ys, k, &logreg::FitOptions::default())
            },
            |model, x| model.predict(x),
        )?;
        let p: Vec<&str> = pred.iter().map(|&c| order[c].as_str()).collect();
        summary.push((
            format!(
                "TF-IDF + logistic regression ({}-fold, out of fold)",
                args.folds
            ),
            crate::eval::evaluate(&gold, &p, Some(&order))?,
        ));
    }

    // Scale the fitted scores so the gap between the two lowest cuts matches the configured
    // normal..high gap: the numbers then read like the shipped ones.
    let th = &config.thresholds;
    let gap = (model.cuts.get(1).copied().unwrap_or(model.cuts[0] + 1.0) - model.cuts[0]).max(1e-9);
    let scale = (th.high - th.normal).max(1e-9) / gap;
    let cut = |j: usize| model.cuts.get(j).map(|c| c * scale);
    let tuned_th = match k {
        2 => Thresholds {
            urgent: th.urgent.max(model.cuts[0] * scale),
            high: th.high.max(model.cuts[0] * scale),
            normal: model.cuts[0] * scale,
            no_evidence: th.no_evidence,
        },
        3 => {
            let (n, h) = (cut(0).unwrap_or(0.0), cut(1).unwrap_or(0.0));
            Thresholds {
                urgent: h + (th.urgent - th.high),
                high: h,
                normal: n,
                no_evidence: th.no_evidence,
            }
        }
        _ => Thresholds {
            normal: cut(k - 3).unwrap_or(0.0),
            high: cut(k - 2).unwrap_or(0.0),
            urgent: cut(k - 1).unwrap_or(0.0),
            no_evidence: th.no_evidence,
        },
    };
    let tuned_weights: Vec<(String, f64)> = rules
        .iter()
        .zip(&model.weights)
        .filter(|(r, w)| **w != 0.0 || r.weight != 0.0)
        .filter(|(r, _)| learned.is_none() || !r.id.starts_with(crate::tune::learn::LEARNED_PREFIX))
        .map(|(r, w)| (r.id.clone(), w * scale))
        .collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} rows, classes {} (least urgent first), {}-fold cross-validation, seed {}\n",
        args.source.path.display(),
        rows.len(),
        order.join(" < "),
        args.folds,
        args.seed
    );
    priority_table(&mut out, top, &summary);
    let _ = writeln!(
        out,
        "\nTuned (fitted on all rows, L2 {}; scaled to the configured threshold gap):",
        choice.l2
    );
    let _ = writeln!(
        out,
        "  thresholds  urgent {:.2}  high {:.2}  normal {:.2}   (configured {} / {} / {})",
        tuned_th.urgent, tuned_th.high, tuned_th.normal, th.urgent, th.high, th.normal
    );
    let hit_counts: Vec<usize> = (0..rules.len())
        .map(|i| x.rows().iter().filter(|r| r.get(i) != 0.0).count())
        .collect();
    let _ = writeln!(
        out,
        "  {:<22} {:>8} {:>8} {:>6}",
        "rule", "shipped", "tuned", "rows"
    );
    for (i, r) in rules.iter().enumerate() {
        if hit_counts[i] == 0 && r.weight == 0.0 {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<22} {:>8.2} {:>8.2} {:>6}",
            r.id,
            r.weight,
            model.weights[i] * scale,
            hit_counts[i]
        );
    }

    // What the data says the rules miss, for the most and least urgent class.
    for class in [k - 1, 0] {
        let in_class: Vec<bool> = y.iter().map(|&c| c == class).collect();
        let cands = candidate_phrases(config, &texts, &in_class)?;
        write_candidates(&mut out, &order[class], &cands);
    }

    if let Some(path) = &args.out {
        let note = format!(
            "Written by `triaged tune` from {} ({} rows, classes {}).\n\
             Cross-validated macro-F1: {:.3} with these weights, {:.3} with the rule files' own.\n\
             Include it with `weights = \"{}\"` under [scoring] in triaged.toml; its thresholds\n\
             replace [scoring.thresholds]. Rules not listed keep their weight.",
            args.source.path.display(),
            rows.len(),
            order.join(" < "),
            tuned_report.macro_f1,
            shipped_report.macro_f1,
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let text = crate::score::weights_file(&note, &tuned_th, &tuned_weights);
        std::fs::write(path, text).with_context(|| format!("Writing {}", path.display()))?;
        let _ = writeln!(out, "\nWrote {}", path.display());
    }
    if let (Some(file), Some((_, phrases))) = (&args.learn, &learned) {
        let weighted: Vec<(String, f64, usize)> = phrases
            .iter()
            .enumerate()
            .map(|(j, (p, df))| (p.clone(), model.weights[rules.len() + j] * scale, *df))
            .filter(|(_, w, _)| w.abs() >= 0.005)
            .collect();
        let header = format!(
            "Learned priority phrases, written by `triaged tune --learn` from {} ({} rows),\n\
             fitted beside the rules' weights and thresholds in {}: use the two together.\n\
             Each phrase is a keyword rule whose weight adds to the score like any rule's.",
            args.source.path.display(),
            rows.len(),
            args.out
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        let text = crate::tune::learn::write_priority_rules(&header, &weighted, rows.len());
        std::fs::write(file, text).with_context(|| format!("Writing {}", file.display()))?;
        let _ = writeln!(out, "Wrote {} ({} phrases)", file.display(), weighted.len());
        let map: std::collections::BTreeMap<String, f64> = tuned_weights.iter().cloned().collect();
        out.push_str(&priority_held_out(
            config, args, file, &map, &tuned_th, &order,
        )?);
    }
    Ok(out)
}

/// With `--part train`: the configured rules and the tuned rules with the learned phrases, as
/// the daemon would load them, on the test part.
fn priority_held_out(
    config: &Config,
    args: &TuneArgs,
    learned: &Path,
    weights: &std::collections::BTreeMap<String, f64>,
    thresholds: &Thresholds,
    order: &[String],
) -> Result<String> {
    let Some(test) = held_out_rows(args)? else {
        return Ok(String::new());
    };
    let tuned = with_learned(config, learned)?
        .with_weights(weights)
        .map_err(|unknown| anyhow::anyhow!("weights for unknown rules: {}", unknown.join(", ")))?;
    let history = History::default();
    let gold: Vec<&str> = test.iter().map(|r| r.label.as_str()).collect();
    let predict = |rules: &score::RuleSet, th: &Thresholds| -> Vec<String> {
        test.iter()
            .map(|r| {
                priority_class(
                    score::score(&row_email(&r.texts), rules, th, &history, 0).priority,
                    order,
                )
            })
            .collect()
    };
    let mut out = format!(
        "\nOn the held-out test part ({} rows), through the rule engine:\n",
        test.len()
    );
    let summary = [
        (
            "configured rules".to_string(),
            crate::eval::evaluate(
                &gold,
                &predict(&config.rules, &config.thresholds),
                Some(order),
            )?,
        ),
        (
            "tuned rules + learned phrases".to_string(),
            crate::eval::evaluate(&gold, &predict(&tuned, thresholds), Some(order))?,
        ),
    ];
    priority_table(&mut out, &order[order.len() - 1], &summary);
    Ok(out)
}

/// The configured rule files and a learned one, loaded as the daemon would load them. A
/// configured file at the learned file's path (learning again into the rules directory) is the
/// learned file: read once.
fn with_learned(config: &Config, learned: &Path) -> Result<score::RuleSet> {
    let same = |p: &Path| match (p.canonicalize(), learned.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => p == learned,
    };
    let mut files: Vec<&Path> = config
        .rule_files
        .iter()
        .map(|p| p.as_path())
        .filter(|p| !same(p))
        .collect();
    files.push(learned);
    score::RuleSet::load(&files).map_err(|errs| {
        anyhow::anyhow!(
            "the learned file does not load with the configured rules: {}",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// With `--part train`: the rows of the test part, mapped like the training rows.
fn held_out_rows(args: &TuneArgs) -> Result<Option<Vec<crate::eval::Row>>> {
    let Some(split) = args
        .columns
        .split
        .filter(|s| s.part == crate::eval::Part::Train)
    else {
        return Ok(None);
    };
    let mut cols = args.columns.clone();
    cols.split = Some(crate::eval::Split {
        part: crate::eval::Part::Test,
        ..split
    });
    let mut test = crate::eval::load(&args.source, &cols)?.rows;
    if let Some(map) = &args.map {
        map.apply(&mut test)?;
    }
    Ok(Some(test))
}

/// Macro-F1 and the most urgent class's precision and recall, a row per model.
fn priority_table(out: &mut String, top: &str, summary: &[(String, crate::eval::Report)]) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "{:<52} {:>8} {:>9} {:>9}",
        "",
        "macro-F1",
        &format!("{top} P"),
        &format!("{top} R")
    );
    for (name, r) in summary {
        let s = r.class(top);
        let _ = writeln!(
            out,
            "{name:<52} {:>8.3} {:>9.3} {:>9.3}",
            r.macro_f1,
            s.map_or(0.0, |s| s.precision),
            s.map_or(0.0, |s| s.recall)
        );
    }
}

/// Cut points that maximise macro-F1 on the given scores (coordinate ascent from the fitted
/// cuts over score quantiles): the likelihood fit places cuts for calibrated probabilities,
/// while a priority is judged by how well each class is found.
fn best_cuts(scores: &[f64], y: &[usize], start: Vec<f64>) -> Vec<f64> {
    let k = start.len() + 1;
    let mut sorted: Vec<f64> = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let candidates: Vec<f64> = (1..50)
        .map(|q| sorted[(sorted.len() - 1) * q / 50])
        .chain(start.iter().copied())
        .collect();
    let macro_f1 = |cuts: &[f64]| -> f64 {
        let mut tp = vec![0usize; k];
        let mut pred = vec![0usize; k];
        let mut gold = vec![0usize; k];
        for (s, &g) in scores.iter().zip(y) {
            let p = cuts.iter().filter(|c| *s >= **c).count();
            pred[p] += 1;
            gold[g] += 1;
            tp[p] += usize::from(p == g);
        }
        let f1: f64 = (0..k)
            .map(|c| {
                let (p, r) = (
                    tp[c] as f64 / pred[c].max(1) as f64,
                    tp[c] as f64 / gold[c].max(1) as f64,
                );
                if p + r > 0.0 {
                    2.0 * p * r / (p + r)
                } else {
                    0.0
                }
            })
            .sum();
        f1 / k as f64
    };
    let mut cuts = start;
    let mut best = macro_f1(&cuts);
    for _ in 0..3 {
        for j in 0..cuts.len() {
            for &c in &candidates {
                let lo = if j == 0 {
                    f64::NEG_INFINITY
                } else {
                    cuts[j - 1]
                };
                let hi = cuts.get(j + 1).copied().unwrap_or(f64::INFINITY);
                if c <= lo || c >= hi {
                    continue;
                }
                let mut trial = cuts.clone();
                trial[j] = c;
                let f = macro_f1(&trial);
                if f > best {
                    best = f;
                    cuts = trial;
                }
            }
        }
    }
    cuts
}

/// Out-of-fold predictions of a TF-IDF text model (the yardstick): on each fold the vocabulary
/// and the model are fitted to the training rows only, then predict the held-out rows.
fn tfidf_out_of_fold<M, T>(
    texts: &[String],
    folds: &[usize],
    fit: impl Fn(&crate::tune::sparse::Matrix, &[usize]) -> Result<M>,
    predict: impl Fn(&M, &crate::tune::sparse::SparseVec) -> T,
) -> Result<Vec<T>> {
    use crate::tune::{cv, tfidf};
    cv::out_of_fold(
        folds,
        |train| {
            let train_texts: Vec<&str> = train.iter().map(|&i| texts[i].as_str()).collect();
            let vec = tfidf::Tfidf::fit(&train_texts, &tfidf::TfidfOptions::default())?;
            let model = fit(&vec.transform_all(&train_texts)?, train)?;
            Ok((vec, model))
        },
        |(vec, model), test| {
            Ok(test
                .iter()
                .map(|&i| predict(model, &vec.transform(&texts[i])))
                .collect())
        },
    )
}

/// A priority as one of the data's classes: the nearest one at or below it in urgency order.
fn priority_class(p: crate::score::Priority, order: &[String]) -> String {
    use crate::score::Priority;
    let rank = |name: &str| match name {
        "low" => Some(0),
        "normal" | "medium" => Some(1),
        "high" => Some(2),
        "urgent" | "critical" => Some(3),
        _ => None,
    };
    let want = match p {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    };
    order
        .iter()
        .rev()
        .find(|c| rank(c).is_some_and(|r| r <= want))
        .or(order.first())
        .cloned()
        .unwrap_or_default()
}
