//! `triaged tune`: the configured rules against labelled data. Priority mode (`priority`) fits
//! the rules' weights and thresholds; tone mode (`tone`) says which rules carry a tone and what
//! they miss; `--learn` for a tone or intents (`learn`) writes new keyword rules and measures them;
//! `--store` ([`store`]) fits the priority mode (with `--tone`, the tone fit) to staff's
//! corrections in the store and says what would change before anything is written.

mod learn;
mod priority;
pub mod store;
mod tone;

use std::path::Path;

use anyhow::Result;

use super::row_email;
use crate::config::Config;
use crate::score::{self, History};
use triaged_tune::eval::Row;
use triaged_tune::phrases::Candidate;
use triaged_tune::sparse::{Matrix, SparseVec};

/// What `triaged tune` fits the rule weights to.
#[derive(Debug, Clone)]
pub struct TuneArgs {
    pub source: triaged_tune::eval::Source,
    pub columns: triaged_tune::eval::Columns,
    pub map: Option<triaged_tune::eval::LabelMap>,
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

/// Keep the rules, fit their weights and the thresholds to labelled data (ordinal logistic
/// regression over rule hits, L2 chosen by inner cross-validation), report out-of-fold figures
/// next to the shipped weights (and optionally a TF-IDF yardstick), list candidate phrases the
/// data says the rules miss, and write a weights file the config can include. With tones: tone
/// mode; with `--learn` and tones or intents: learned keyword rules.
pub fn tune(config: &Config, args: &TuneArgs) -> Result<String> {
    let data = triaged_tune::eval::load(&args.source, &args.columns)?;
    let mut rows = data.rows;
    if let Some(map) = &args.map {
        map.apply(&mut rows)?;
    }
    if let Some(out) = &args.learn
        && (args.intents || !args.tones.is_empty())
    {
        return learn::run(config, args, &rows, out);
    }
    if !args.tones.is_empty() {
        return tone::run(config, args, &rows);
    }
    if args.learn.is_some() && args.out.is_none() {
        anyhow::bail!(
            "--learn for priorities needs --out FILE too: the learned phrases' weights go with the \
             thresholds and the rules' weights fitted beside them"
        );
    }
    priority::run(config, args, &rows)
}

/// Every row scored by the configured rules: the verdicts, and the rule hits as a matrix
/// (one column per rule, the occurrence count as the value).
fn rule_features(config: &Config, rows: &[Row]) -> Result<(Matrix, Vec<score::Verdict>)> {
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
        features.push(SparseVec::from_pairs(pairs));
        verdicts.push(v);
    }
    Ok((Matrix::new(features, rules.len())?, verdicts))
}

/// The phrases the data says the rules miss for a class: not covered by any keyword.
fn candidate_phrases(
    config: &Config,
    texts: &[String],
    in_class: &[bool],
) -> Result<Vec<Candidate>> {
    use crate::score::Matcher;
    use triaged_tune::phrases;
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

fn write_candidates(out: &mut String, class: &str, cands: &[Candidate]) {
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
fn held_out_rows(args: &TuneArgs) -> Result<Option<Vec<Row>>> {
    let Some(split) = args
        .columns
        .split
        .filter(|s| s.part == triaged_tune::eval::Part::Train)
    else {
        return Ok(None);
    };
    let mut cols = args.columns.clone();
    cols.split = Some(triaged_tune::eval::Split {
        part: triaged_tune::eval::Part::Test,
        ..split
    });
    let mut test = triaged_tune::eval::load(&args.source, &cols)?.rows;
    if let Some(map) = &args.map {
        map.apply(&mut test)?;
    }
    Ok(Some(test))
}

/// Out-of-fold predictions of a TF-IDF text model (the yardstick): on each fold the vocabulary
/// and the model are fitted to the training rows only, then predict the held-out rows.
fn tfidf_out_of_fold<M, T>(
    texts: &[String],
    folds: &[usize],
    fit: impl Fn(&Matrix, &[usize]) -> Result<M>,
    predict: impl Fn(&M, &SparseVec) -> T,
) -> Result<Vec<T>> {
    use triaged_tune::{cv, tfidf};
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
