//! Priority mode of `triaged tune`: the rules' weights and the thresholds fitted to labelled
//! priorities (ordinal logistic regression over rule hits, L2 chosen by inner cross-validation),
//! with `--learn` phrases fitted beside them; the weights file and the learned phrases' file.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::{
    TuneArgs, candidate_phrases, held_out_rows, row_email, rule_features, tfidf_out_of_fold,
    with_learned, write_candidates,
};
use crate::config::Config;
use crate::score::{self, History, Priority, Rule, Thresholds};
use crate::tune::learn;
use crate::tune::learn::{LEARNED_PREFIX, LearnOptions};
use triaged_tune::cv;
use triaged_tune::eval::{Report, Row};
use triaged_tune::logreg::{self, OrdinalModel};
use triaged_tune::sparse::{Matrix, SparseVec};

/// Each row's distinct terms, and the learned phrases with the rows they occur in
/// (`learn::priority_phrases`).
type Phrases = (Vec<Vec<String>>, Vec<(String, usize)>);

/// Fit the weights and thresholds to `rows`, report them beside the shipped ones, and write
/// the weights file (`--out`) and the learned phrases (`--learn`).
pub(super) fn run(config: &Config, args: &TuneArgs, rows: &[Row]) -> Result<String> {
    let order = class_order(rows, &args.order)?;
    let k = order.len();
    let y: Vec<usize> = rows
        .iter()
        .map(|r| order.iter().position(|c| *c == r.label).unwrap_or(0))
        .collect();
    let (x, verdicts) = rule_features(config, rows)?;
    let texts: Vec<String> = rows.iter().map(|r| r.texts.join("\n")).collect();
    let shipped: Vec<String> = verdicts
        .iter()
        .map(|v| priority_class(v.priority, &order))
        .collect();
    let fitted = fit(
        config,
        Problem {
            x,
            y: &y,
            k,
            sample_weight: None,
            texts: &texts,
        },
        &FitArgs::of(args),
        |m| scaled_thresholds(&config.thresholds, m, k),
    )?;

    let gold: Vec<&str> = y.iter().map(|&c| order[c].as_str()).collect();
    let tuned_pred: Vec<&str> = fitted.oof.iter().map(|&c| order[c].as_str()).collect();
    let shipped_report = triaged_tune::eval::evaluate(&gold, &shipped, Some(&order))?;
    let tuned_report = triaged_tune::eval::evaluate(&gold, &tuned_pred, Some(&order))?;
    let mut summary = vec![
        ("rules, shipped weights".to_string(), shipped_report.clone()),
        (fitted.tuned_name(args.folds), tuned_report.clone()),
    ];
    if args.yardstick {
        summary.push(yardstick(
            &texts,
            &fitted.folds,
            &y,
            &order,
            &gold,
            args.folds,
        )?);
    }

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
    priority_table(&mut out, &order[k - 1], &summary);
    let _ = writeln!(
        out,
        "\nTuned (fitted on all rows, L2 {}; scaled to the configured threshold gap):",
        fitted.l2
    );
    write_tuned(&mut out, &config.thresholds, &fitted, config.rules.rules());

    // What the data says the rules miss, for the most and least urgent class.
    for class in [k - 1, 0] {
        let in_class: Vec<bool> = y.iter().map(|&c| c == class).collect();
        let cands = candidate_phrases(config, &texts, &in_class)?;
        write_candidates(&mut out, &order[class], &cands);
    }

    let from = args.source.path.display().to_string();
    if let Some(path) = &args.out {
        let fit = Figures {
            from: &from,
            rows: rows.len(),
            order: &order,
            tuned_macro_f1: tuned_report.macro_f1,
            shipped_macro_f1: shipped_report.macro_f1,
            shipped_name: "the rule files' own",
        };
        write_weights_file(path, &fit, &fitted.thresholds, &fitted.weights)?;
        let _ = writeln!(out, "\nWrote {}", path.display());
    }
    if let (Some(file), Some(phrases)) = (&args.learn, fitted.phrase_weights()) {
        write_learned_file(file, &from, rows.len(), args.out.as_deref(), &phrases)?;
        let _ = writeln!(out, "Wrote {} ({} phrases)", file.display(), phrases.len());
        let map: BTreeMap<String, f64> = fitted.weights.iter().cloned().collect();
        out.push_str(&priority_held_out(
            config,
            args,
            file,
            &map,
            &fitted.thresholds,
            &order,
        )?);
    }
    Ok(out)
}

/// What a priority fit is fitted to: the rule hits `x` (a column per configured rule), each
/// row's class `y` (`0..k`, least urgent first), optional sample weights, and the rows' texts
/// (phrases are learned from them with `--learn`).
pub(super) struct Problem<'a> {
    pub x: Matrix,
    pub y: &'a [usize],
    pub k: usize,
    pub sample_weight: Option<&'a [f64]>,
    pub texts: &'a [String],
}

/// How a priority fit runs: `triaged tune`'s options that shape it.
pub(super) struct FitArgs {
    pub folds: usize,
    pub seed: u64,
    /// Learn phrases beside the rules (`--learn`).
    pub learn: bool,
    pub max_rules: usize,
    pub min_df: usize,
}

impl FitArgs {
    fn of(args: &TuneArgs) -> FitArgs {
        FitArgs {
            folds: args.folds,
            seed: args.seed,
            learn: args.learn.is_some(),
            max_rules: args.max_rules,
            min_df: args.min_df,
        }
    }
}

/// A priority fit: out-of-fold predictions for the figures, and the model fitted on every row
/// with its weights and thresholds scaled to read like the configured ones.
pub(super) struct Fitted {
    /// The learned phrases (`--learn`): each row's distinct terms, and the phrases.
    pub learned: Option<Phrases>,
    pub folds: Vec<usize>,
    /// Each row's class predicted by a model that did not see it.
    pub oof: Vec<usize>,
    /// The L2 chosen for the final fit.
    pub l2: f64,
    pub model: OrdinalModel,
    /// Fitted scores times this read like the configured rules' scores.
    pub scale: f64,
    pub thresholds: Thresholds,
    /// The tuned weight of every configured rule some row hit (scaled; earlier learned rules
    /// left out when phrases are learned anew): what a weights file lists. A rule no row hit
    /// is left out, so it keeps its weight (the data says nothing about it).
    pub weights: Vec<(String, f64)>,
    /// Per configured rule, the rows it hit.
    pub hit_rows: Vec<usize>,
    /// Rules in the matrix (the phrases' columns come after).
    pub n_rules: usize,
}

impl Fitted {
    /// The summary row's name of the tuned model.
    pub fn tuned_name(&self, folds: usize) -> String {
        if self.learned.is_some() {
            // Each fold learns its phrases from its own training rows.
            format!("rules + phrases, tuned ({folds}-fold, out of fold)")
        } else {
            format!("rules, tuned weights ({folds}-fold, out of fold)")
        }
    }

    /// The learned phrases with their scaled weights (`--learn`).
    pub fn phrase_weights(&self) -> Option<Vec<(String, f64, usize)>> {
        let (_, phrases) = self.learned.as_ref()?;
        Some(learned_weights(
            phrases,
            &self.model.weights[self.n_rules..],
            self.scale,
        ))
    }
}

/// Fit the rules' weights and the thresholds (with `--learn`, phrases beside them): the
/// ordinal fit, L2 by inner cross-validation, out-of-fold predictions, then the fit on every
/// row, scaled to the configured threshold gap.
///
/// `place` turns the fitted model into the scale of its scores and the thresholds: by the
/// number of classes ([`scaled_thresholds`], for a data set's own classes), or by the
/// priorities they are (`tune --store`).
pub(super) fn fit(
    config: &Config,
    p: Problem<'_>,
    args: &FitArgs,
    place: impl Fn(&OrdinalModel) -> (f64, Thresholds),
) -> Result<Fitted> {
    let rules = config.rules.rules();
    let learned = args.learn.then(|| learn_phrases(args, p.texts, p.y, p.k));
    let folds = cv::stratified_folds(p.y, args.folds, args.seed)?;
    let fitter = Fitter {
        x: &p.x,
        fold_phrases: learned.as_ref().map(|(terms, _)| FoldPhrases {
            terms: learn::TermRows::new(terms),
            earlier: rules
                .iter()
                .map(|r| r.id.starts_with(LEARNED_PREFIX))
                .collect(),
            opts: learn_options(args),
        }),
        y: p.y,
        k: p.k,
        sample_weight: p.sample_weight,
        inner_k: args.folds.clamp(2, 3),
        seed: args.seed,
    };
    let oof = fitter.out_of_fold(&folds)?;
    let all: Vec<usize> = (0..p.y.len()).collect();
    let choice = fitter.select_l2(&all)?;
    // On every row the phrases chosen are `learned`'s: the same choice on the same rows.
    let Trained { model, x } = fitter.fit(choice.l2, &all)?;
    let (scale, thresholds) = place(&model);
    let hit_rows: Vec<usize> = (0..rules.len())
        .map(|i| x.rows().iter().filter(|r| r.get(i) != 0.0).count())
        .collect();
    let weights: Vec<(String, f64)> = rules
        .iter()
        .zip(&model.weights)
        .zip(&hit_rows)
        .filter(|(_, n)| **n > 0)
        .filter(|((r, _), _)| learned.is_none() || !r.id.starts_with(LEARNED_PREFIX))
        .map(|((r, w), _)| (r.id.clone(), w * scale))
        .collect();
    Ok(Fitted {
        learned,
        folds,
        oof,
        l2: choice.l2,
        model,
        scale,
        thresholds,
        weights,
        hit_rows,
        n_rules: rules.len(),
    })
}

/// With `--learn`: the phrases that speak for the most or least urgent class, to be fitted
/// beside the rules (columns after the rules').
fn learn_phrases(args: &FitArgs, texts: &[String], y: &[usize], k: usize) -> Phrases {
    learn::priority_phrases(texts, y, k, &learn_options(args))
}

fn learn_options(args: &FitArgs) -> LearnOptions {
    LearnOptions {
        max_rules: args.max_rules,
        min_df: args.min_df.max(1),
        ..Default::default()
    }
}

/// The learned phrases with their fitted weights (`weights`: the phrases' columns), scaled;
/// those too light to matter left out.
fn learned_weights(
    phrases: &[(String, usize)],
    weights: &[f64],
    scale: f64,
) -> Vec<(String, f64, usize)> {
    phrases
        .iter()
        .enumerate()
        .map(|(j, (p, df))| (p.clone(), weights[j] * scale, *df))
        .filter(|(_, w, _)| w.abs() >= 0.005)
        .collect()
}

/// With `--learn`: what each fit needs to learn its own phrases from its own rows.
struct FoldPhrases {
    terms: learn::TermRows,
    /// Per configured rule: of an earlier learned file (`learned.*`, about to be replaced), so
    /// no feature: the new phrases stand in its place.
    earlier: Vec<bool>,
    opts: LearnOptions,
}

impl FoldPhrases {
    /// The rule hits of every row with the phrases learned from the rows `of` as further
    /// columns (after the rules').
    fn design(&self, x: &Matrix, y: &[usize], of: &[usize], k: usize) -> Result<Matrix> {
        let phrases = self.terms.priority_phrases(y, of, k, &self.opts);
        let n_rules = self.earlier.len();
        let mut column = vec![usize::MAX; self.terms.vocab.len()];
        for (j, (t, _)) in phrases.iter().enumerate() {
            column[*t as usize] = n_rules + j;
        }
        let rows: Vec<SparseVec> = x
            .rows()
            .iter()
            .zip(&self.terms.rows)
            .map(|(r, terms)| {
                let mut pairs: Vec<(usize, f64)> = r
                    .entries()
                    .iter()
                    .copied()
                    .filter(|&(i, _)| !self.earlier[i])
                    .collect();
                pairs.extend(
                    terms
                        .iter()
                        .map(|&t| column[t as usize])
                        .filter(|&j| j != usize::MAX)
                        .map(|j| (j, 1.0)),
                );
                SparseVec::from_pairs(pairs)
            })
            .collect();
        Matrix::new(rows, n_rules + phrases.len())
    }
}

/// A model fitted by [`Fitter::fit`], with the features of every row it reads: the rule hits,
/// and with `--learn` the phrases learned from the rows it was fitted to.
struct Trained<'a> {
    model: OrdinalModel,
    x: Cow<'a, Matrix>,
}

impl Trained<'_> {
    fn predict(&self, i: usize) -> usize {
        self.model.predict(&self.x.rows()[i])
    }
}

/// The ordinal fit over the rule hits `x` of the rows' classes `y` (`0..k`, least urgent
/// first), its cuts moved to where macro-F1 is best. With `--learn`, each fit learns its
/// phrases from the rows it is fitted to: a fold's figure is then out of fold for the phrases
/// too, and the L2 chosen by the inner folds is not chosen by rows that picked the phrases.
struct Fitter<'a> {
    x: &'a Matrix,
    fold_phrases: Option<FoldPhrases>,
    y: &'a [usize],
    k: usize,
    /// Each row's weight in the fit (`None`: all 1).
    sample_weight: Option<&'a [f64]>,
    /// Folds of the inner cross-validation that chooses L2.
    inner_k: usize,
    seed: u64,
}

impl Fitter<'_> {
    fn fit(&self, l2: f64, idx: &[usize]) -> Result<Trained<'_>> {
        let x = match &self.fold_phrases {
            None => Cow::Borrowed(self.x),
            Some(fp) => Cow::Owned(fp.design(self.x, self.y, idx, self.k)?),
        };
        let sub = x.select(idx)?;
        let ys: Vec<usize> = idx.iter().map(|&i| self.y[i]).collect();
        let mut m = logreg::fit_ordinal(
            &sub,
            &ys,
            self.k,
            &logreg::FitOptions {
                l2,
                class_weight: logreg::ClassWeight::Balanced,
                sample_weight: self
                    .sample_weight
                    .map(|w| idx.iter().map(|&i| w[i]).collect()),
                ..Default::default()
            },
        )?;
        let scores: Vec<f64> = sub.rows().iter().map(|r| m.score(r)).collect();
        m.cuts = best_cuts(&scores, &ys, m.cuts.clone());
        Ok(Trained { model: m, x })
    }

    /// Regularisation is chosen by macro-F1, the figure reported, not by accuracy (which a
    /// model predicting only the largest class can score well on).
    fn macro_f1(&self, m: &Trained, idx: &[usize]) -> Result<f64> {
        let gold: Vec<usize> = idx.iter().map(|&i| self.y[i]).collect();
        let pred: Vec<usize> = idx.iter().map(|&i| m.predict(i)).collect();
        let names = |v: &[usize]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        Ok(triaged_tune::eval::evaluate(&names(&gold), &names(&pred), None)?.macro_f1)
    }

    /// L2 chosen by inner cross-validation over `rows` only.
    fn select_l2(&self, rows: &[usize]) -> Result<cv::L2Choice> {
        cv::select_l2(
            &cv::L2_GRID,
            self.y,
            rows,
            self.inner_k,
            self.seed,
            |l2, idx| self.fit(l2, idx),
            |m, idx| self.macro_f1(m, idx),
        )
    }

    /// Each row's class predicted by a model that did not see it (L2 chosen on the training
    /// folds alone).
    fn out_of_fold(&self, folds: &[usize]) -> Result<Vec<usize>> {
        cv::out_of_fold(
            folds,
            |train| {
                let choice = self.select_l2(train)?;
                self.fit(choice.l2, train)
            },
            |m, test| Ok(test.iter().map(|&i| m.predict(i)).collect()),
        )
    }
}

/// The TF-IDF + multinomial logistic regression yardstick's row of the summary (L2 1, the
/// usual baseline setting; classes balanced).
fn yardstick(
    texts: &[String],
    folds: &[usize],
    y: &[usize],
    order: &[String],
    gold: &[&str],
    k_folds: usize,
) -> Result<(String, Report)> {
    let k = order.len();
    let pred = tfidf_out_of_fold(
        texts,
        folds,
        |m, train| {
            let ys: Vec<usize> = train.iter().map(|&i| y[i]).collect();
            // Classes balanced, as the ordinal fit's: unbalanced, the model all but never
            // predicts the smallest class, and macro-F1 counts each class alike.
            let opts = logreg::FitOptions {
                class_weight: logreg::ClassWeight::Balanced,
                ..Default::default()
            };
            logreg::fit_multinomial(m, &ys, k, &opts)
        },
        |model, x| model.predict(x),
    )?;
    let p: Vec<&str> = pred.iter().map(|&c| order[c].as_str()).collect();
    Ok((
        format!("TF-IDF + LR, classes balanced ({k_folds}-fold, out of fold)"),
        triaged_tune::eval::evaluate(gold, &p, Some(order))?,
    ))
}

/// The fitted cuts as thresholds, and the factor that scales the fitted scores so the gap
/// between the two lowest cuts matches the configured normal..high gap: the numbers then read
/// like the shipped ones.
fn scaled_thresholds(th: &Thresholds, model: &OrdinalModel, k: usize) -> (f64, Thresholds) {
    let gap = (model.cuts.get(1).copied().unwrap_or(model.cuts[0] + 1.0) - model.cuts[0]).max(1e-9);
    let scale = (th.high - th.normal).max(1e-9) / gap;
    let cut = |j: usize| model.cuts.get(j).map(|c| c * scale);
    let tuned = match k {
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
    (scale, tuned)
}

/// The tuned thresholds beside the configured ones, and each rule's weight, shipped and tuned,
/// with the rows it hit (rules that neither hit nor weigh are left out).
fn write_tuned(out: &mut String, th: &Thresholds, fitted: &Fitted, rules: &[Rule]) {
    let tuned_th = &fitted.thresholds;
    let _ = writeln!(
        out,
        "  thresholds  urgent {:.2}  high {:.2}  normal {:.2}   (configured {} / {} / {})",
        tuned_th.urgent, tuned_th.high, tuned_th.normal, th.urgent, th.high, th.normal
    );
    let _ = writeln!(
        out,
        "  {:<22} {:>8} {:>8} {:>6}",
        "rule", "shipped", "tuned", "rows"
    );
    for (i, r) in rules.iter().enumerate() {
        let hits = fitted.hit_rows[i];
        if hits == 0 && r.weight == 0.0 {
            continue;
        }
        // A rule no row hit keeps its weight: the file does not list it.
        let tuned = if hits == 0 {
            r.weight
        } else {
            fitted.model.weights[i] * fitted.scale
        };
        let _ = writeln!(
            out,
            "  {:<22} {:>8.2} {:>8.2} {:>6}",
            r.id, r.weight, tuned, hits
        );
    }
}

/// What the weights file's note says about the fit.
pub(super) struct Figures<'a> {
    /// Where the labels came from: the data file, or the store and its period.
    pub from: &'a str,
    pub rows: usize,
    pub order: &'a [String],
    pub tuned_macro_f1: f64,
    pub shipped_macro_f1: f64,
    /// What the tuned figure is compared with: "the rule files' own", "the configured ones".
    pub shipped_name: &'a str,
}

/// `--out`: the tuned thresholds and weights as a weights file, with a note on where they
/// come from and how to include them.
pub(super) fn write_weights_file(
    path: &Path,
    fit: &Figures,
    thresholds: &Thresholds,
    weights: &[(String, f64)],
) -> Result<()> {
    let note = format!(
        "Written by `triaged tune` from {} ({} rows, classes {}).\n\
         Cross-validated macro-F1: {:.3} with these weights, {:.3} with {}.\n\
         Include it with `weights = \"{}\"` under [scoring] in triaged.toml; its thresholds\n\
         replace [scoring.thresholds]. Rules not listed keep their weight.",
        fit.from,
        fit.rows,
        fit.order.join(" < "),
        fit.tuned_macro_f1,
        fit.shipped_macro_f1,
        fit.shipped_name,
        path.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let text = score::weights_file(&note, thresholds, weights);
    std::fs::write(path, text).with_context(|| format!("Writing {}", path.display()))
}

/// `--learn`: the learned phrases with their scaled weights as keyword rules (`weights`: the
/// weights file written beside them).
pub(super) fn write_learned_file(
    file: &Path,
    from: &str,
    rows: usize,
    weights: Option<&Path>,
    weighted: &[(String, f64, usize)],
) -> Result<()> {
    let header = format!(
        "Learned priority phrases, written by `triaged tune --learn` from {} ({} rows),\n\
         fitted beside the rules' weights and thresholds in {}: use the two together.\n\
         Each phrase is a keyword rule whose weight adds to the score like any rule's.",
        from,
        rows,
        weights.map(|p| p.display().to_string()).unwrap_or_default()
    );
    let text = learn::write_priority_rules(&header, weighted, rows);
    std::fs::write(file, text).with_context(|| format!("Writing {}", file.display()))
}

/// The classes of `rows` from least to most urgent.
fn class_order(rows: &[Row], order: &[String]) -> Result<Vec<String>> {
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

/// With `--part train`: the configured rules and the tuned rules with the learned phrases, as
/// the daemon would load them, on the test part.
fn priority_held_out(
    config: &Config,
    args: &TuneArgs,
    learned: &Path,
    weights: &BTreeMap<String, f64>,
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
            triaged_tune::eval::evaluate(
                &gold,
                &predict(&config.rules, &config.thresholds),
                Some(order),
            )?,
        ),
        (
            "tuned rules + learned phrases".to_string(),
            triaged_tune::eval::evaluate(&gold, &predict(&tuned, thresholds), Some(order))?,
        ),
    ];
    priority_table(&mut out, &order[order.len() - 1], &summary);
    Ok(out)
}

/// Macro-F1 and the most urgent class's precision and recall, a row per model.
pub(super) fn priority_table(out: &mut String, top: &str, summary: &[(String, Report)]) {
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
/// while a priority is judged by how well each class is found. A cut taken from the scores
/// lies halfway between a score and the next lower one, never on a score: emails with the
/// same hits score the same, and a threshold on their score would put them on either side
/// by the last bit of a rounding (the weights file keeps three decimals).
fn best_cuts(scores: &[f64], y: &[usize], start: Vec<f64>) -> Vec<f64> {
    let k = start.len() + 1;
    let mut sorted: Vec<f64> = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let below = |v: f64| -> f64 {
        let i = sorted.partition_point(|s| *s < v);
        match i.checked_sub(1) {
            Some(j) => (sorted[j] + v) / 2.0,
            None => v - 1.0,
        }
    };
    let candidates: Vec<f64> = (1..50)
        .map(|q| below(sorted[(sorted.len() - 1) * q / 50]))
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

/// A priority as one of the data's classes: the nearest one at or below it in urgency order.
pub(super) fn priority_class(p: Priority, order: &[String]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_between_scores_never_on_one() {
        // Emails with the same hits score the same; the classes separate at 1 and 2.
        let scores = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0];
        let y = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2];
        // Started badly: the search has to find the separating cuts.
        let cuts = best_cuts(&scores, &y, vec![1.5, 1.8]);
        assert_eq!(cuts[0], 0.5, "halfway between 0 and 1: {cuts:?}");
        assert!(cuts[1] > 1.0 && cuts[1] < 2.0, "{cuts:?}");
        for c in &cuts {
            assert!(!scores.contains(c), "a cut on a score: {cuts:?}");
        }
        // Scaled as a weights file writes it, each email stays on its side.
        let scale = 3.0;
        let class = |s: f64| cuts.iter().filter(|c| s * scale >= **c * scale).count();
        assert!(scores.iter().zip(&y).all(|(s, c)| class(*s) == *c));
    }

    #[test]
    fn a_fit_learns_its_phrases_from_its_own_rows_only() {
        // Two halves that say "urgent" and "can wait" in different words.
        let said = [
            ("engine stalled again", 2),
            ("whenever convenient thanks", 0),
            ("engine stalled twice", 2),
            ("whenever convenient please", 0),
            ("report attached", 1),
            ("report enclosed", 1),
            ("printer jammed badly", 2),
            ("no rush really", 0),
            ("printer jammed today", 2),
            ("no rush honestly", 0),
            ("summary attached", 1),
            ("summary enclosed", 1),
        ];
        let texts: Vec<String> = said.iter().map(|(t, _)| t.to_string()).collect();
        let y: Vec<usize> = said.iter().map(|(_, c)| *c).collect();
        let opts = LearnOptions {
            max_rules: 20,
            min_df: 2,
            ..Default::default()
        };
        let first: Vec<usize> = (0..6).collect();
        let (terms, _) = learn::priority_phrases(&texts, &y, 3, &opts);
        let ids = learn::TermRows::new(&terms);
        let of_first: Vec<(String, usize)> = ids
            .priority_phrases(&y, &first, 3, &opts)
            .into_iter()
            .map(|(t, n)| (ids.vocab[t as usize].clone(), n))
            .collect();
        // The same phrases as learned from the first half's texts alone...
        let (_, alone) = learn::priority_phrases(&texts[..6], &y[..6], 3, &opts);
        assert_eq!(of_first, alone);
        assert!(
            of_first.iter().any(|(p, _)| p == "engine stalled"),
            "{of_first:?}"
        );
        // ...and none of the second half's words.
        assert!(
            !of_first
                .iter()
                .any(|(p, _)| p.contains("printer") || p.contains("rush")),
            "{of_first:?}"
        );

        // A fit on the first half reads no phrase in the second half's rows; every row's
        // rule hits stay, but those of an earlier learned file.
        let fold = FoldPhrases {
            terms: ids,
            earlier: vec![false, true],
            opts,
        };
        let x = Matrix::new(
            (0..texts.len())
                .map(|_| SparseVec::from_pairs(vec![(0, 1.0), (1, 1.0)]))
                .collect(),
            2,
        )
        .unwrap();
        let design = fold.design(&x, &y, &first, 3).unwrap();
        assert_eq!(design.n_features(), 2 + of_first.len());
        for (i, row) in design.rows().iter().enumerate() {
            let phrase_cols = row.entries().iter().filter(|(j, _)| *j >= 2).count();
            assert_eq!(row.get(0), 1.0, "row {i}: the rule hit stays");
            assert_eq!(
                row.get(1),
                0.0,
                "row {i}: an earlier learned rule is no feature"
            );
            if i >= 6 {
                assert_eq!(phrase_cols, 0, "row {i} of the other half: {row:?}");
            } else if y[i] != 1 {
                assert!(phrase_cols > 0, "row {i} has its half's phrases: {row:?}");
            }
        }
    }
}
