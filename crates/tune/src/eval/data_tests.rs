//! The loader and metrics on the real third-party files in `../shared/eval/data`, beside the
//! repository (read in place,
//! never copied into the repository). The expected counts are those in that folder's README.
//! A missing file fails the test unless `TRIAGED_ALLOW_MISSING_EVAL=1`, so a moved data folder
//! cannot turn these tests into silent passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

fn data_file(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/eval/data")
        .join(name);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("TRIAGED_ALLOW_MISSING_EVAL").as_deref() == Ok("1") {
        eprintln!(
            "note: skipping, {} is missing (TRIAGED_ALLOW_MISSING_EVAL=1)",
            path.display()
        );
        return None;
    }
    panic!(
        "{} is missing; set TRIAGED_ALLOW_MISSING_EVAL=1 to skip the tests on real data",
        path.display()
    );
}

fn columns(text: &[&str], label: &str, filter: &[(&str, &str)]) -> Columns {
    Columns::of(text, label, filter)
}

fn label_counts(rows: &[Row]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(row.label.as_str()).or_default() += 1;
    }
    counts
}

const TICKETS: &str = "tobi_bueck_tickets_multi-lang-4-20k.head.csv";

#[test]
fn tickets_english_priorities() {
    let Some(path) = data_file(TICKETS) else {
        return;
    };
    let source = Source::from_path(path).expect("csv extension");
    let cols = columns(&["subject", "body"], "priority", &[("language", "en")]);
    let data = load(&source, &cols).expect("loads");
    assert_eq!(
        data.header.as_ref().map(|h| h[..3].to_vec()),
        Some(vec!["subject".to_string(), "body".into(), "answer".into()])
    );
    assert_eq!(data.rows.len(), 1_395);
    assert_eq!(data.filtered_out, 786, "German rows");
    assert_eq!(data.unlabelled, 0);
    assert_eq!(
        label_counts(&data.rows),
        BTreeMap::from([("high", 500), ("medium", 587), ("low", 308)])
    );
    // The file has no real newlines in English bodies, only literal `\n` in 27 of them.
    let literal = data
        .rows
        .iter()
        .filter(|r| r.texts[1].contains("\\n"))
        .count();
    let multiline = data
        .rows
        .iter()
        .filter(|r| r.texts[1].contains('\n'))
        .count();
    assert_eq!((literal, multiline), (0, 27));
    let empty_subjects = data.rows.iter().filter(|r| r.texts[0].is_empty()).count();
    assert_eq!(empty_subjects, 80);

    let map = LabelMap::parse("high=high,medium=normal,low=low").expect("map");
    let mut rows = data.rows;
    assert_eq!(map.apply(&mut rows).expect("all labels mapped"), 0);
    assert_eq!(
        label_counts(&rows),
        BTreeMap::from([("high", 500), ("normal", 587), ("low", 308)])
    );
}

#[test]
fn tickets_german_priorities() {
    let Some(path) = data_file(TICKETS) else {
        return;
    };
    let source = Source::from_path(path).expect("csv extension");
    let cols = columns(&["subject", "body"], "priority", &[("language", "de")]);
    let data = load(&source, &cols).expect("loads");
    assert_eq!(
        label_counts(&data.rows),
        BTreeMap::from([("high", 315), ("medium", 316), ("low", 155)])
    );
}

#[test]
fn tickets_misspelt_column_lists_the_real_ones() {
    let Some(path) = data_file(TICKETS) else {
        return;
    };
    let source = Source::from_path(path).expect("csv extension");
    let err = load(&source, &columns(&["subject"], "priorty", &[])).expect_err("no such column");
    let msg = format!("{err:#}");
    assert!(msg.contains("Column `priorty` not found in"), "{msg}");
    assert!(
        msg.contains("available: subject, body, answer, type, queue, priority, language, tag_1"),
        "{msg}"
    );
}

#[test]
fn airline_tweets_sentiment_and_tone_report() {
    let Some(path) = data_file("twitter_us_airline_sentiment.csv") else {
        return;
    };
    let source = Source::from_path(path).expect("csv extension");
    let data = load(&source, &columns(&["text"], "airline_sentiment", &[])).expect("loads");
    assert_eq!(data.rows.len(), 14_640);
    assert_eq!(
        label_counts(&data.rows),
        BTreeMap::from([("negative", 9_178), ("neutral", 3_099), ("positive", 2_363)])
    );
    // Quoted multi-line tweets in a CRLF file: 138 tweets keep their newlines, no `\r` leaks
    // into a cell, and line numbers run ahead of record numbers.
    let multiline = data
        .rows
        .iter()
        .filter(|r| r.texts[0].contains('\n'))
        .count();
    assert_eq!(multiline, 138);
    assert!(data.rows.iter().all(|r| !r.texts[0].contains('\r')));
    let last = data.rows.last().map(|r| r.line).unwrap_or(0);
    assert!(last > 14_641, "last row starts on line {last}");

    // Tone mode against the "always negative" baseline: its figures follow from the counts.
    let map = LabelMap::parse("negative=negative,neutral=other,positive=other").expect("map");
    let mut rows = data.rows;
    map.apply(&mut rows).expect("all labels mapped");
    let gold: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let predicted = vec!["negative"; gold.len()];
    let report = evaluate(&gold, &predicted, Some(&map.classes()))
        .expect("same length")
        .with_positive("negative")
        .expect("known class");
    let negative = report.positive_stats().expect("positive set");
    assert_eq!(negative.support, 9_178);
    assert!((negative.precision - 9_178.0 / 14_640.0).abs() < 1e-12);
    assert!((negative.recall - 1.0).abs() < 1e-12);
    let other = report.class("other").expect("other class");
    assert_eq!((other.support, other.predicted), (5_462, 0));
    assert_eq!(other.f1, 0.0, "never predicted: F1 defined as 0");
    let expected_macro = (2.0 * 9_178.0 / (14_640.0 + 9_178.0)) / 2.0;
    assert!((report.macro_f1 - expected_macro).abs() < 1e-12);
}

#[test]
fn complaints_without_header() {
    let Some(path) = data_file("complaints_social_media_preotiuc2019.csv") else {
        return;
    };
    let source = Source::from_path(path).expect("csv extension");
    let data = load(&source, &columns(&["1"], "2", &[])).expect("loads");
    assert_eq!(data.header, None, "the first tweet is not a header");
    assert_eq!(data.rows.len(), 3_449);
    assert_eq!(data.rows.first().map(|r| r.line), Some(1));
    assert_eq!(
        label_counts(&data.rows),
        BTreeMap::from([("0", 2_217), ("1", 1_232)])
    );
    assert!(
        data.rows[0].texts[0].starts_with("@FC_HELP can I return online purchases"),
        "{:?}",
        data.rows[0].texts
    );

    let map = LabelMap::parse("1=complaint,0=other").expect("map");
    let mut rows = data.rows;
    map.apply(&mut rows).expect("all labels mapped");
    assert_eq!(
        label_counts(&rows),
        BTreeMap::from([("complaint", 1_232), ("other", 2_217)])
    );

    // Folds on real labels: each fold holds a fifth of the complaints, give or take one.
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let folds = stratified_folds(&labels, 5, 2019).expect("valid k");
    for fold in 0..5 {
        let complaints = labels
            .iter()
            .zip(&folds)
            .filter(|&(l, &f)| *l == "complaint" && f == fold)
            .count();
        assert!(
            (246..=247).contains(&complaints),
            "fold {fold}: {complaints}"
        );
    }
}

#[test]
fn complaints_by_name_say_to_use_indices() {
    let Some(path) = data_file("complaints_social_media_preotiuc2019.csv") else {
        return;
    };
    let mut source = Source::from_path(path).expect("csv extension");
    source.header = HeaderMode::Absent;
    let err = load(&source, &columns(&["text"], "label", &[])).expect_err("no header");
    let msg = format!("{err:#}");
    assert!(msg.contains("has no header row"), "{msg}");
    assert!(msg.contains("0..=3"), "{msg}");
}
