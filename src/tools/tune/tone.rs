//! Tone mode of `triaged tune`: how well the tone rules find a class, what a model over the same
//! rule hits could do, which rules carry the signal and which phrases they miss. The fit
//! ([`fit`]: a logistic regression over rule hits, classes balanced, out of fold and on every
//! row) and its figures' table ([`summary_table`]) are shared with `tune --store --tone`.

use std::fmt::Write as _;

use anyhow::Result;

use super::{TuneArgs, candidate_phrases, rule_features, tfidf_out_of_fold, write_candidates};
use crate::config::Config;
use triaged_tune::eval::{Report, Row};
use triaged_tune::logreg::{self, BinaryModel};
use triaged_tune::{cv, sparse::Matrix};

/// Tone mode of `tune`: how well the tone rules find the positive class, how well a logistic
/// regression over the same rule hits could (out of fold), a TF-IDF yardstick, the rules that
/// carry the signal, and the phrases the rules miss.
pub(super) fn run(config: &Config, args: &TuneArgs, rows: &[Row]) -> Result<String> {
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
    let fitted = fit(&x, &y, None, args.folds, args.seed)?;
    let (folds, hits_pred) = (&fitted.folds, &fitted.oof);
    let opts = balanced(None);
    let report = |pred: &[bool]| {
        let named: Vec<&str> = pred.iter().map(|&b| name(b)).collect();
        triaged_tune::eval::evaluate(&gold, &named, Some(&classes))
    };
    let mut summary = vec![
        (
            format!("tone rules ({})", args.tones.join(",")),
            triaged_tune::eval::evaluate(&gold, &shipped, Some(&classes))?,
        ),
        (
            format!(
                "rule hits + logistic regression ({}-fold, out of fold)",
                args.folds
            ),
            report(hits_pred)?,
        ),
    ];
    let texts: Vec<String> = rows.iter().map(|r| r.texts.join("\n")).collect();
    if args.yardstick {
        let pred = tfidf_out_of_fold(
            &texts,
            folds,
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
    write_summary(&mut out, args, &y, &positive, &summary);
    write_rules_by_evidence(&mut out, config, &x, &fitted.model, &positive);
    let cands = candidate_phrases(config, &texts, &y)?;
    write_candidates(&mut out, &positive, &cands);
    Ok(out)
}

/// The header line, then [`summary_table`].
fn write_summary(
    out: &mut String,
    args: &TuneArgs,
    y: &[bool],
    positive: &str,
    summary: &[(String, Report)],
) {
    let _ = writeln!(
        out,
        "{}: {} rows, {positive} vs the rest ({} {positive}), {}-fold cross-validation, seed {}\n",
        args.source.path.display(),
        y.len(),
        y.iter().filter(|b| **b).count(),
        args.folds,
        args.seed
    );
    summary_table(out, positive, summary);
}

/// A row per model: macro-F1 and the positive class's P, R and F1.
pub(super) fn summary_table(out: &mut String, positive: &str, summary: &[(String, Report)]) {
    let _ = writeln!(
        out,
        "{:<56} {:>8} {:>6} {:>6} {:>6}",
        "", "macro-F1", "P", "R", "F1"
    );
    for (label, r) in summary {
        let s = r.class(positive);
        let _ = writeln!(
            out,
            "{label:<56} {:>8.3} {:>6.3} {:>6.3} {:>6.3}",
            r.macro_f1,
            s.map_or(0.0, |s| s.precision),
            s.map_or(0.0, |s| s.recall),
            s.map_or(0.0, |s| s.f1)
        );
    }
}

/// The configured rules that hit, strongest evidence for `positive` first: the weights of
/// `model` (fitted on all rows) and the rows each rule hit.
fn write_rules_by_evidence(
    out: &mut String,
    config: &Config,
    x: &Matrix,
    model: &BinaryModel,
    positive: &str,
) {
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
}

/// A tone fit over the rule hits `x` (with `--learn` in the store, phrases beside them): each
/// row predicted out of fold, and the model fitted on every row.
pub(super) struct ToneFit {
    pub folds: Vec<usize>,
    /// Each row's tone predicted by a model that did not see it.
    pub oof: Vec<bool>,
    pub model: BinaryModel,
}

/// The options of every tone fit: classes balanced (a tone is rare), each row counted
/// `sample_weight` times where given (`tune --store`: a correction 1, a verdict left `--weak`).
fn balanced(sample_weight: Option<Vec<f64>>) -> logreg::FitOptions {
    logreg::FitOptions {
        class_weight: logreg::ClassWeight::Balanced,
        sample_weight,
        ..Default::default()
    }
}

/// Fit a logistic regression of `y` (the row has the tone) over `x`: out of fold
/// (`folds`-fold, stratified, `seed`), then on every row.
pub(super) fn fit(
    x: &Matrix,
    y: &[bool],
    sample_weight: Option<&[f64]>,
    folds: usize,
    seed: u64,
) -> Result<ToneFit> {
    let labels: Vec<usize> = y.iter().map(|&b| usize::from(b)).collect();
    let folds = cv::stratified_folds(&labels, folds, seed)?;
    let fit_on = |idx: &[usize]| -> Result<BinaryModel> {
        let ys: Vec<bool> = idx.iter().map(|&i| y[i]).collect();
        let w = sample_weight.map(|w| idx.iter().map(|&i| w[i]).collect());
        logreg::fit_binary(&x.select(idx)?, &ys, &balanced(w))
    };
    let oof = cv::out_of_fold(&folds, fit_on, |m, test| {
        Ok(test.iter().map(|&i| m.predict(&x.rows()[i])).collect())
    })?;
    let all: Vec<usize> = (0..y.len()).collect();
    let model = fit_on(&all)?;
    Ok(ToneFit { folds, oof, model })
}
