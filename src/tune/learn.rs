//! Learned keyword rules (`triaged tune --learn`): a sparse logistic regression over word 1–3-grams
//! for one label (a tone, or one intent against the rest), written as ordinary keyword rules with
//! `evidence`, so the model reads rule by rule and `triaged explain` shows each phrase's share.
//! The configured rules that fired are features beside the phrases, written as meta rules over
//! their ids. For priorities, [`priority_phrases`] picks the phrases and the ordinal fit of
//! `tools::tune` weighs them beside the rules; [`write_priority_rules`] writes them.
//!
//! Sparse by selection: n-grams seen in at least `min_df` rows that are not only function words,
//! numbers or handles are ranked by a smoothed log-odds ratio weighted by how often they occur;
//! the best `3 × max_rules` are fitted with an L2 logistic regression; the `max_rules` with the
//! largest weights (by |w| × √df, so a phrase that decides many rows outranks a rare one) are
//! fitted again on their own.
//!
//! Chosen by cross-validation of that whole procedure (5 folds, the selection redone on each
//! fold's training rows, so no fold is scored by phrases chosen on it): the L2 strength, from
//! [`L2_GRID`], by the out-of-fold F1; and the decision threshold, as the mean of the folds'
//! own best thresholds (one cut chosen on all out-of-fold scores follows a few rows; the mean
//! of five moves less). The weights are scaled so the label is given at evidence 1 (see
//! `score::EVIDENCE_BAR`), and capped at [`MAX_EVIDENCE`] either way.

use std::collections::HashMap;

use anyhow::{Result, ensure};

use triaged_tune::cv;
use triaged_tune::logreg::{self, ClassWeight, FitOptions};
use triaged_tune::sparse::{Matrix, SparseVec};
use triaged_tune::tfidf;

/// The largest evidence one learned phrase carries, either way: four times the bar. It only
/// keeps a phrase that decides alone readable (4, not 63) where the threshold is small; a
/// tighter cap (2) changed verdicts: 0.003 F1 less on airline tweets, measured on a held-out
/// part of the training rows.
pub const MAX_EVIDENCE: f64 = 4.0;

/// Rows of the smaller side per fold before the L2 strength and the decision threshold are
/// chosen by cross-validation; with fewer, the threshold is chosen on the training rows.
const OOF_MIN_PER_FOLD: usize = 10;

/// Folds of the cross-validation that chooses the L2 strength and the threshold.
const FOLDS: usize = 5;

/// The L2 strengths cross-validation chooses from: little text wants more (a phrase seen in a
/// few rows should not decide), much text less.
pub const L2_GRID: [f64; 6] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0];

/// The L2 strength where there are too few rows to choose one.
const DEFAULT_L2: f64 = 1.0;

/// How a label is learned.
#[derive(Debug, Clone)]
pub struct LearnOptions {
    /// Phrases kept for the label.
    pub max_rules: usize,
    /// A phrase must occur in this many rows.
    pub min_df: usize,
    /// Longest n-gram.
    pub max_n: usize,
    /// The L2 strength; `None`: chosen from [`L2_GRID`] by cross-validation.
    pub l2: Option<f64>,
}

impl Default for LearnOptions {
    fn default() -> Self {
        LearnOptions {
            max_rules: 150,
            min_df: 3,
            max_n: 3,
            l2: None,
        }
    }
}

/// One learned phrase.
#[derive(Debug, Clone, PartialEq)]
pub struct Phrase {
    pub phrase: String,
    /// Evidence per firing: the label is given when the firing phrases add up to 1.
    pub evidence: f64,
    /// Rows of the label / other rows that contain it.
    pub in_class: usize,
    pub in_other: usize,
}

/// A learned label: its phrases, and the training rows it was fitted on.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedLabel {
    pub phrases: Vec<Phrase>,
    pub rows_in_class: usize,
    pub rows_other: usize,
    /// The L2 strength the phrases were fitted with.
    pub l2: f64,
}

/// Whether an n-gram can be a readable, general rule: every word has a letter and no digit,
/// handle, hashtag, URL or template mark, and not every word is a function word.
fn learnable(term: &str) -> bool {
    let words: Vec<&str> = term.split(' ').collect();
    let clean = words.iter().all(|w| {
        w.chars().any(char::is_alphabetic)
            && !w.chars().any(|c| c.is_ascii_digit() || c == '_')
            && !w.starts_with("http")
            && w.chars().count() <= 30
    });
    clean
        && !words
            .iter()
            .all(|w| crate::score::forms::is_function_word(w))
}

/// The distinct learnable terms of each text.
pub fn row_terms(texts: &[String], max_n: usize) -> Vec<Vec<String>> {
    // Words that name accounts somewhere in the data (`@jetblue`, `#unitedfail`) are names
    // wherever they stand: a phrase with one would learn the data's customers, not language.
    let names: std::collections::HashSet<String> = texts
        .iter()
        .flat_map(|t| t.split_whitespace())
        .filter(|w| w.starts_with('@') || w.starts_with('#'))
        .flat_map(tfidf::tokenize)
        .collect();
    texts
        .iter()
        .map(|t| {
            // Handles, hashtags and addresses are names, not language: their words go.
            let cleaned: String = t
                .split_whitespace()
                .filter(|w| !w.starts_with('@') && !w.starts_with('#') && !w.contains("://"))
                .collect::<Vec<_>>()
                .join(" ");
            let mut terms = tfidf::terms(&cleaned, max_n);
            terms.retain(|x| learnable(x) && !x.split(' ').any(|w| names.contains(w)));
            terms.sort();
            terms.dedup();
            terms
        })
        .collect()
}

/// Learn phrases for `y` (true: the row has the label) from `texts`.
pub fn learn_label(texts: &[String], y: &[bool], opts: &LearnOptions) -> Result<LearnedLabel> {
    learn_label_with_rules(texts, &vec![Vec::new(); texts.len()], y, opts)
}

/// The name of the feature "configured rule `id` fired" among the phrases (a phrase never has a
/// colon: words are letters, digits and inner apostrophes).
pub fn rule_feature(id: &str) -> String {
    format!("{RULE_FEATURE}{id}")
}

const RULE_FEATURE: &str = "rule:";

/// The start of every learned rule's id.
pub const LEARNED_PREFIX: &str = "learned.";

/// Learn phrases for `y` from `texts`, weighing the configured rules as well: `fired[i]` are
/// the ids of the rules that fired on row `i`. A rule kept is written as a meta rule over that
/// id, so the learned label can trust a rule of the pack more or less than the pack does
/// ("question" speaking against a complaint, "let-down" for one).
pub fn learn_label_with_rules(
    texts: &[String],
    fired: &[Vec<String>],
    y: &[bool],
    opts: &LearnOptions,
) -> Result<LearnedLabel> {
    ensure!(
        texts.len() == y.len() && fired.len() == y.len(),
        "{} texts and {} rule lists for {} labels",
        texts.len(),
        fired.len(),
        y.len()
    );
    let pos = y.iter().filter(|b| **b).count();
    let neg = y.len() - pos;
    ensure!(
        pos > 0 && neg > 0,
        "learning needs rows with the label and rows without it"
    );
    let mut terms = row_terms(texts, opts.max_n);
    for (t, f) in terms.iter_mut().zip(fired) {
        t.extend(f.iter().map(|id| rule_feature(id)));
        t.sort();
        t.dedup();
    }
    let df = row_counts(&terms, y);
    let (l2, cv) = choose_l2(&terms, y, opts, pos.min(neg))?;
    let all: Vec<usize> = (0..y.len()).collect();
    let (kept, model) = fit_label(&terms, &all, y, opts, l2)?;
    let bar = match cv {
        Some(cv) => cv.bar(model.bias, y, pos)?,
        None => {
            let x = term_matrix(&terms, &kept)?;
            let sums: Vec<f64> = x.rows().iter().map(|r| r.dot(&model.weights)).collect();
            best_bar(&sums, y, pos)?
        }
    };
    let mut phrases: Vec<Phrase> = kept
        .iter()
        .enumerate()
        .filter(|(i, _)| model.weights[*i].abs() > 1e-6 * bar)
        .map(|(i, t)| {
            let (a, b) = df[t.as_str()];
            Phrase {
                phrase: t.clone(),
                // A phrase that decides alone reads as at most 4 (not 63): the same
                // verdicts but for rows where strong phrases for and against meet.
                evidence: (model.weights[i] / bar).clamp(-MAX_EVIDENCE, MAX_EVIDENCE),
                in_class: a,
                in_other: b,
            }
        })
        .collect();
    phrases.sort_by(|a, b| {
        b.evidence
            .total_cmp(&a.evidence)
            .then(a.phrase.cmp(&b.phrase))
    });
    Ok(LearnedLabel {
        phrases,
        rows_in_class: pos,
        rows_other: neg,
        l2,
    })
}

/// For each term, the rows with the label and the other rows it occurs in.
fn row_counts<'a>(terms: &'a [Vec<String>], y: &[bool]) -> HashMap<&'a str, (usize, usize)> {
    let mut df: HashMap<&str, (usize, usize)> = HashMap::new();
    for (t, &yy) in terms.iter().zip(y) {
        for term in t {
            let e = df.entry(term.as_str()).or_default();
            if yy { e.0 += 1 } else { e.1 += 1 }
        }
    }
    df
}

/// Whether a term is the feature of a configured rule, not a phrase.
fn is_rule(t: &str) -> bool {
    t.starts_with(RULE_FEATURE)
}

/// The terms worth a first fit: every configured rule seen in `min_df` rows, then the phrases
/// seen as often by smoothed log-odds of the label given the phrase, times √df (at most
/// `3 × max_rules` of them); and how many of them are rules (they come first).
fn candidates(
    df: &HashMap<&str, (usize, usize)>,
    pos: usize,
    neg: usize,
    opts: &LearnOptions,
) -> (Vec<String>, usize) {
    let prior = (pos as f64 + 1.0) / (neg as f64 + 1.0);
    let mut cands: Vec<(&str, f64)> = df
        .iter()
        .filter(|(_, (a, b))| a + b >= opts.min_df)
        .map(|(t, &(a, b))| {
            let odds = ((a as f64 + 0.5) / (b as f64 + 0.5) / prior).ln();
            (*t, odds.abs() * ((a + b) as f64).sqrt())
        })
        .collect();
    // The configured rules are few and always weighed; phrases compete for the rest.
    cands.sort_by(|a, b| {
        is_rule(b.0)
            .cmp(&is_rule(a.0))
            .then(b.1.total_cmp(&a.1))
            .then(a.0.cmp(b.0))
    });
    let rules = cands.iter().filter(|c| is_rule(c.0)).count();
    cands.truncate(rules + opts.max_rules.saturating_mul(3).max(1));
    (cands.iter().map(|(t, _)| t.to_string()).collect(), rules)
}

/// Each row's terms as a 0/1 row over `vocab`.
fn term_matrix(terms: &[Vec<String>], vocab: &[String]) -> Result<Matrix> {
    let index: HashMap<&str, usize> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let rows: Vec<SparseVec> = terms
        .iter()
        .map(|t| {
            SparseVec::from_pairs(
                t.iter()
                    .filter_map(|x| index.get(x.as_str()).map(|&i| (i, 1.0)))
                    .collect(),
            )
        })
        .collect();
    Matrix::new(rows, vocab.len())
}

/// An L2 logistic regression with the classes weighed evenly.
fn fit_balanced(x: &Matrix, y: &[bool], l2: f64) -> Result<logreg::BinaryModel> {
    logreg::fit_binary(
        x,
        y,
        &FitOptions {
            l2,
            class_weight: ClassWeight::Balanced,
            ..FitOptions::default()
        },
    )
}

/// The terms kept after the first fit: every rule, then the phrases with the largest
/// |w| × √df until `rules + max_rules`. Mostly phrases for the label: a phrase against it only
/// counts where one for it fired, and words of the other class ("boarding") say little about
/// mail from another domain, so at most a quarter speak against it.
fn keep(
    vocab: &[String],
    weights: &[f64],
    df: &HashMap<&str, (usize, usize)>,
    rules: usize,
    max_rules: usize,
) -> Vec<String> {
    let mut ranked: Vec<(usize, f64)> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (a, b) = df[t.as_str()];
            (i, weights[i].abs() * ((a + b) as f64).sqrt())
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let max_against = max_rules / 4;
    let mut kept: Vec<String> = vocab.iter().filter(|t| is_rule(t)).cloned().collect();
    let mut against = 0;
    for &(i, _) in &ranked {
        if kept.len() == rules + max_rules {
            break;
        }
        if is_rule(&vocab[i]) {
            continue;
        }
        if weights[i] < 0.0 {
            if against == max_against {
                continue;
            }
            against += 1;
        }
        kept.push(vocab[i].clone());
    }
    kept
}

/// The learner on the rows `idx` of `terms` (`y`: every row's label): candidates by log-odds,
/// a first fit, the phrases kept, fitted again. Returns the kept terms and their model.
fn fit_label(
    terms: &[Vec<String>],
    idx: &[usize],
    y: &[bool],
    opts: &LearnOptions,
    l2: f64,
) -> Result<(Vec<String>, logreg::BinaryModel)> {
    let terms: Vec<Vec<String>> = idx.iter().map(|&i| terms[i].clone()).collect();
    let y: Vec<bool> = idx.iter().map(|&i| y[i]).collect();
    let pos = y.iter().filter(|b| **b).count();
    let df = row_counts(&terms, &y);
    let (vocab, rules) = candidates(&df, pos, y.len() - pos, opts);
    let first = fit_balanced(&term_matrix(&terms, &vocab)?, &y, l2)?;
    let kept = keep(&vocab, &first.weights, &df, rules, opts.max_rules);
    let model = fit_balanced(&term_matrix(&terms, &kept)?, &y, l2)?;
    Ok((kept, model))
}

/// The learner cross-validated at one L2 strength: every row's decision value Σw + bias from
/// the fold that did not see it, and each fold's best threshold on its own rows, as
/// `(threshold on Σw, bias)` of that fold's model.
struct CrossValidated {
    decisions: Vec<f64>,
    fold_bars: Vec<(f64, f64)>,
}

impl CrossValidated {
    fn run(terms: &[Vec<String>], y: &[bool], opts: &LearnOptions, l2: f64) -> Result<Self> {
        let labels: Vec<usize> = y.iter().map(|&b| usize::from(b)).collect();
        let folds = cv::stratified_folds(&labels, FOLDS, 1)?;
        let mut decisions = vec![0.0; y.len()];
        let mut fold_bars = Vec::with_capacity(FOLDS);
        for fold in 0..FOLDS {
            let (train, test): (Vec<usize>, Vec<usize>) =
                (0..y.len()).partition(|&i| folds[i] != fold);
            let (kept, model) = fit_label(terms, &train, y, opts, l2)?;
            let test_terms: Vec<Vec<String>> = test.iter().map(|&i| terms[i].clone()).collect();
            let x = term_matrix(&test_terms, &kept)?;
            let sums: Vec<f64> = x.rows().iter().map(|r| r.dot(&model.weights)).collect();
            for (&i, s) in test.iter().zip(&sums) {
                decisions[i] = s + model.bias;
            }
            let test_y: Vec<bool> = test.iter().map(|&i| y[i]).collect();
            let test_pos = test_y.iter().filter(|b| **b).count();
            // A fold where no phrase speaks for the label has no threshold; the others do.
            if let Ok(bar) = best_bar(&sums, &test_y, test_pos) {
                fold_bars.push((bar, model.bias));
            }
        }
        Ok(CrossValidated {
            decisions,
            fold_bars,
        })
    }

    /// The threshold on Σw of a model with bias `bias`: the mean of the folds' thresholds, each
    /// as its distance from its model's own boundary (Σw = −bias) moved to this model's; where
    /// that mean is not above 0 (an empty text would get the label), the best threshold on the
    /// out-of-fold decision values.
    fn bar(&self, bias: f64, y: &[bool], pos: usize) -> Result<f64> {
        if !self.fold_bars.is_empty() {
            let n = self.fold_bars.len() as f64;
            let mean = self.fold_bars.iter().map(|(bar, b)| bar + b).sum::<f64>() / n - bias;
            if mean > 1e-9 {
                return Ok(mean);
            }
        }
        let sums: Vec<f64> = self.decisions.iter().map(|d| d - bias).collect();
        best_bar(&sums, y, pos)
    }
}

/// The L2 strength (`opts.l2`, else the one of [`L2_GRID`] whose cross-validated learner has
/// the best out-of-fold F1, the smaller on a tie) and its cross-validation; none where the
/// smaller side (`smaller` rows) is too small for folds.
fn choose_l2(
    terms: &[Vec<String>],
    y: &[bool],
    opts: &LearnOptions,
    smaller: usize,
) -> Result<(f64, Option<CrossValidated>)> {
    if smaller < FOLDS * OOF_MIN_PER_FOLD {
        return Ok((opts.l2.unwrap_or(DEFAULT_L2), None));
    }
    let grid = opts.l2.map_or_else(|| L2_GRID.to_vec(), |l2| vec![l2]);
    let pos = y.iter().filter(|b| **b).count();
    let mut best: Option<(f64, f64, CrossValidated)> = None;
    for l2 in grid {
        let cv = CrossValidated::run(terms, y, opts, l2)?;
        let f1 = best_f1(&cv.decisions, y, pos);
        if best.as_ref().is_none_or(|(top, _, _)| f1 > *top) {
            best = Some((f1, l2, cv));
        }
    }
    let (_, l2, cv) = best.ok_or_else(|| anyhow::anyhow!("no L2 strength to choose from"))?;
    Ok((l2, Some(cv)))
}

/// The best F1 of any threshold on `scores` (`pos`: rows with the label).
fn best_f1(scores: &[f64], y: &[bool], pos: usize) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut best) = (0usize, 0usize, 0.0f64);
    for (k, &i) in order.iter().enumerate() {
        if y[i] {
            tp += 1
        } else {
            fp += 1
        }
        // Only between distinct values: a tie cannot be split by a threshold.
        if order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]) {
            best = best.max(2.0 * tp as f64 / (2 * tp + fp + (pos - tp)) as f64);
        }
    }
    best
}

/// The threshold on Σw with the best F1 (`pos`: rows with the label), among thresholds above
/// 0: an empty text (Σw = 0) never gets the label.
fn best_bar(sums: &[f64], y: &[bool], pos: usize) -> Result<f64> {
    let mut order: Vec<usize> = (0..sums.len()).collect();
    order.sort_by(|&a, &b| sums[b].total_cmp(&sums[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best = (0.0f64, f64::INFINITY);
    for (k, &i) in order.iter().enumerate() {
        if y[i] {
            tp += 1
        } else {
            fp += 1
        }
        let here = sums[i];
        let next = order.get(k + 1).map_or(f64::NEG_INFINITY, |&j| sums[j]);
        if here <= 1e-9 || here == next {
            continue;
        }
        let f1 = 2.0 * tp as f64 / (2 * tp + fp + (pos - tp)) as f64;
        // The bar sits halfway to the next value, so small rounding does not move rows.
        let bar = if next > 0.0 {
            (here + next) / 2.0
        } else {
            here / 2.0
        };
        if f1 > best.0 {
            best = (f1, bar);
        }
    }
    ensure!(
        best.1.is_finite() && best.1 > 0.0,
        "no phrase speaks for the label: nothing to learn"
    );
    Ok(best.1)
}

/// Candidate phrases for a priority (classes `0..k`, least urgent first): those that speak
/// most for the most or the least urgent class against the rest (the larger smoothed log-odds
/// of the two, times √rows), at most `opts.max_rules`. Returns each row's distinct terms and
/// the phrases with the rows they occur in.
pub fn priority_phrases(
    texts: &[String],
    y: &[usize],
    k: usize,
    opts: &LearnOptions,
) -> (Vec<Vec<String>>, Vec<(String, usize)>) {
    let terms = row_terms(texts, opts.max_n);
    let ids = TermRows::new(&terms);
    let all: Vec<usize> = (0..y.len()).collect();
    let phrases = ids
        .priority_phrases(y, &all, k, opts)
        .into_iter()
        .map(|(t, rows)| (ids.vocab[t as usize].clone(), rows))
        .collect();
    (terms, phrases)
}

/// Each row's distinct terms as numbers into one vocabulary: the priority phrases chosen
/// again and again on parts of the rows (each fold of a cross-validation learns its own, so
/// the rows a fold scores never chose a phrase) without hashing a string per row and term.
#[derive(Debug, Clone, Default)]
pub struct TermRows {
    /// The terms, in the order first seen.
    pub vocab: Vec<String>,
    /// Each row's terms, as indices into `vocab`.
    pub rows: Vec<Vec<u32>>,
}

impl TermRows {
    pub fn new(terms: &[Vec<String>]) -> TermRows {
        let mut index: HashMap<&str, u32> = HashMap::new();
        let mut vocab = Vec::new();
        let rows = terms
            .iter()
            .map(|t| {
                t.iter()
                    .map(|w| {
                        *index.entry(w.as_str()).or_insert_with(|| {
                            vocab.push(w.clone());
                            u32::try_from(vocab.len() - 1).unwrap_or(u32::MAX)
                        })
                    })
                    .collect()
            })
            .collect();
        TermRows { vocab, rows }
    }

    /// [`priority_phrases`] learned from the rows `of` only: each phrase's term and the rows
    /// of `of` it occurs in.
    pub fn priority_phrases(
        &self,
        y: &[usize],
        of: &[usize],
        k: usize,
        opts: &LearnOptions,
    ) -> Vec<(u32, usize)> {
        let top = k.saturating_sub(1);
        let (n_top, n_bottom) = (
            of.iter().filter(|&&i| y[i] == top).count(),
            of.iter().filter(|&&i| y[i] == 0).count(),
        );
        // Per term: rows, rows of the top class, rows of the bottom class.
        let mut df = vec![(0usize, 0usize, 0usize); self.vocab.len()];
        for &i in of {
            let c = y[i];
            for &t in &self.rows[i] {
                let e = &mut df[t as usize];
                e.0 += 1;
                e.1 += usize::from(c == top);
                e.2 += usize::from(c == 0);
            }
        }
        let n = of.len() as f64;
        let log_odds = |a: usize, rows: usize, class: usize| -> f64 {
            let prior = (class as f64 + 1.0) / (n - class as f64 + 1.0);
            ((a as f64 + 0.5) / ((rows - a) as f64 + 0.5) / prior)
                .ln()
                .abs()
        };
        let mut cands: Vec<(u32, usize, f64)> = df
            .iter()
            .enumerate()
            .filter(|(_, (rows, _, _))| *rows >= opts.min_df)
            .map(|(t, &(rows, a, b))| {
                let s = log_odds(a, rows, n_top).max(log_odds(b, rows, n_bottom));
                (t as u32, rows, s * (rows as f64).sqrt())
            })
            .collect();
        cands.sort_by(|a, b| {
            b.2.total_cmp(&a.2)
                .then_with(|| self.vocab[a.0 as usize].cmp(&self.vocab[b.0 as usize]))
        });
        cands.truncate(opts.max_rules);
        cands.into_iter().map(|(t, rows, _)| (t, rows)).collect()
    }
}

/// A rules file of learned priority phrases: `header` (comment lines, without `#`), then one
/// keyword rule per (phrase, weight, rows it occurred in) with that weight and no label.
pub fn write_priority_rules(header: &str, phrases: &[(String, f64, usize)], rows: usize) -> String {
    let mut out = comment_header(header);
    let mut ids = Ids::default();
    for (phrase, weight, df) in phrases {
        let id = ids.unique(format!("{LEARNED_PREFIX}priority.{}", slug(phrase)));
        out.push_str(&format!(
            "\n[[rule]]\nid = {}\ndescription = {}\nkeywords = [{}]\nnegation = false\nmax_hits = 1\nweight = {:.4}\n",
            quoted(&id),
            quoted(&format!("learned: in {df} of {rows} rows")),
            quoted(&crate::score::normalise(phrase)),
            weight
        ));
    }
    out
}

/// An id part from a phrase: a-z 0-9 and `-`.
fn slug(phrase: &str) -> String {
    let mut s: String = phrase
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "x".into() } else { s }
}

/// A TOML string, quoted and escaped by the `toml` crate.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The start of a learned file: `header` as comment lines.
fn comment_header(header: &str) -> String {
    header
        .lines()
        .map(|line| format!("# {line}").trim_end().to_string() + "\n")
        .collect()
}

/// Rule ids made unique within one file: `base`, else `base-2`, `base-3`, ... whichever is free
/// (two phrases can slug alike: "don't" and "don t").
#[derive(Default)]
struct Ids(std::collections::HashSet<String>);

impl Ids {
    fn unique(&mut self, base: String) -> String {
        let mut id = base.clone();
        let mut n = 1;
        while self.0.contains(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        self.0.insert(id.clone());
        id
    }
}

/// The rules file: `header` (comment lines, without `#`), then per label (`kind` is `tone` or
/// `intent`) one keyword rule per phrase.
pub fn write_rules(header: &str, kind: &str, labels: &[(String, LearnedLabel)]) -> String {
    let mut out = comment_header(header);
    let mut ids = Ids::default();
    for (label, learned) in labels {
        out.push_str(&format!(
            "\n# --- {kind} {label}: {} phrases (L2 {}); given when their evidence adds up to 1 ---\n",
            learned.phrases.len(),
            learned.l2
        ));
        for p in &learned.phrases {
            let rule = p.phrase.strip_prefix(RULE_FEATURE);
            let id = ids.unique(match rule {
                Some(id) => format!("{LEARNED_PREFIX}{}.rule.{}", slug(label), slug(id)),
                None => format!("{LEARNED_PREFIX}{}.{}", slug(label), slug(&p.phrase)),
            });
            let description = match rule {
                Some(id) => format!(
                    "learned: rule {id} fired in {} of {} {label} rows, {} of {} others",
                    p.in_class, learned.rows_in_class, p.in_other, learned.rows_other
                ),
                None => format!(
                    "learned: in {} of {} {label} rows, {} of {} others",
                    p.in_class, learned.rows_in_class, p.in_other, learned.rows_other
                ),
            };
            // Rule ids are letters, digits, '_', '.' and '-': a meta expression as they are.
            let matcher = match rule {
                Some(id) => format!("meta = {}", quoted(id)),
                None => format!(
                    "keywords = [{}]\nnegation = false\nmax_hits = 1",
                    quoted(&crate::score::normalise(&p.phrase))
                ),
            };
            out.push_str(&format!(
                "\n[[rule]]\nid = {}\ndescription = {}\n{matcher}\n{kind} = {}\nevidence = {:.4}\n",
                quoted(&id),
                quoted(&description),
                quoted(label),
                p.evidence
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_phrases_that_decide_and_writes_rules_that_load() {
        // Complaints say "delayed" or "lost my bag"; the rest is chatter. "thanks" leans the
        // other way.
        let mut texts = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let (t, label) = match i % 5 {
                0 => (format!("flight {i} delayed again"), true),
                1 => (format!("they lost my bag on trip {i}"), true),
                2 => ("thanks for the lovely flight".to_string(), false),
                3 => ("what time is boarding".to_string(), false),
                _ => ("thanks, the flight was delayed but fine".to_string(), false),
            };
            texts.push(t);
            y.push(label);
        }
        let learned = learn_label(
            &texts,
            &y,
            &LearnOptions {
                max_rules: 20,
                ..Default::default()
            },
        )
        .expect("learns");
        let ev = |p: &str| {
            learned
                .phrases
                .iter()
                .find(|x| x.phrase == p)
                .map(|x| x.evidence)
        };
        let shown: Vec<(&str, f64)> = learned
            .phrases
            .iter()
            .map(|p| (p.phrase.as_str(), p.evidence))
            .collect();
        assert!(ev("lost").is_some_and(|e| e > 0.0), "{shown:?}");
        assert!(ev("thanks").is_some_and(|e| e < 0.0), "{shown:?}");
        assert!(
            learned
                .phrases
                .iter()
                .all(|p| !p.phrase.chars().any(|c| c.is_ascii_digit()))
        );
        let file = write_rules("learned in a test", "tone", &[("negative".into(), learned)]);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("learned.toml");
        std::fs::write(&path, &file).expect("write");
        let rules =
            crate::score::RuleSet::load(&[&path]).unwrap_or_else(|e| panic!("{e:?}\n{file}"));
        let th = crate::score::Thresholds::DEFAULT;
        let h = crate::score::History::default();
        let mut agree = 0;
        for (t, &yy) in texts.iter().zip(&y) {
            let v = crate::score::score(&crate::score::text_email("", t), &rules, &th, &h, 0);
            agree += usize::from(v.tones.contains(&"negative".to_string()) == yy);
        }
        assert_eq!(
            agree,
            texts.len(),
            "the engine gives the label where the data has it"
        );
        assert_eq!(slug("don't \"x\""), "don-t-x");
        for text in ["a\"b\\c", "it's", "tab\there", "both ' and \""] {
            let doc: toml::Table = toml::from_str(&format!("x = {}", quoted(text))).expect("toml");
            assert_eq!(doc["x"].as_str(), Some(text));
        }
        let mut ids = Ids::default();
        let made: Vec<String> = ["a-2", "a", "a", "a"]
            .into_iter()
            .map(|b| ids.unique(b.to_string()))
            .collect();
        assert_eq!(made, ["a-2", "a", "a-3", "a-4"]);
    }

    #[test]
    fn a_configured_rule_is_weighed_and_written_as_a_meta_rule() {
        // The configured rule "awful" fires on half the label's rows and on no other row; the
        // words alone say nothing (every row reads the same).
        let texts = vec!["the same words here".to_string(); 120];
        let y: Vec<bool> = (0..120).map(|i| i % 2 == 0).collect();
        let fired: Vec<Vec<String>> = (0..120)
            .map(|i| {
                if i % 4 == 0 {
                    vec!["awful".to_string()]
                } else {
                    vec![]
                }
            })
            .collect();
        let learned =
            learn_label_with_rules(&texts, &fired, &y, &LearnOptions::default()).expect("learns");
        let rule = learned
            .phrases
            .iter()
            .find(|p| p.phrase == rule_feature("awful"))
            .unwrap_or_else(|| panic!("{learned:?}"));
        assert!(rule.evidence >= 1.0, "{learned:?}");
        let file = write_rules("test", "tone", &[("negative".into(), learned)]);
        assert!(file.contains("meta = \"awful\""), "{file}");
        let dir = tempfile::tempdir().expect("tempdir");
        let pack = dir.path().join("pack.toml");
        std::fs::write(
            &pack,
            "[[rule]]\nid = \"awful\"\nkeywords = [\"awful\"]\ntone = \"angry\"\n",
        )
        .expect("write");
        let path = dir.path().join("learned.toml");
        std::fs::write(&path, &file).expect("write");
        let rules = crate::score::RuleSet::load(&[&pack, &path])
            .unwrap_or_else(|e| panic!("{e:?}\n{file}"));
        let v = crate::score::score(
            &crate::score::text_email("", "an awful day"),
            &rules,
            &crate::score::Thresholds::DEFAULT,
            &crate::score::History::default(),
            0,
        );
        assert!(v.tones.contains(&"negative".to_string()), "{v:?}");
    }

    #[test]
    fn the_threshold_is_the_folds_mean_on_the_final_models_scale() {
        // Two folds: thresholds 1.0 and 2.0 on Σw, with biases -0.5 and -1.5: both sit 0.5
        // above their model's boundary (Σw = -bias), so for a model with bias -1.0 the bar is
        // 1.5.
        let cv = CrossValidated {
            decisions: vec![2.0, -1.0],
            fold_bars: vec![(1.0, -0.5), (2.0, -1.5)],
        };
        let bar = cv.bar(-1.0, &[true, false], 1).expect("a bar");
        assert!((bar - 1.5).abs() < 1e-12, "{bar}");
        // Where that mean is not above 0 (bias 0.8: 0.5 - 0.8), the best cut of the
        // out-of-fold decisions on this model's scale (1.2 and -1.8): halfway to 0 below the
        // row with the label.
        let bar = cv.bar(0.8, &[true, false], 1).expect("a bar");
        assert!((bar - 0.6).abs() < 1e-12, "{bar}");
        let none = CrossValidated {
            decisions: vec![1.0, 1.0],
            fold_bars: vec![],
        };
        assert!(none.bar(0.0, &[true, false], 1).is_ok());
    }

    #[test]
    fn the_best_f1_cuts_only_between_distinct_scores() {
        // Splitting the tie at 0.5 would take both rows with the label and no other (F1 1);
        // a threshold takes both rows at 0.5 or neither: F1 0.8 at best.
        assert_eq!(best_f1(&[0.9, 0.5, 0.5], &[true, true, false], 2), 0.8);
        assert_eq!(best_f1(&[0.9, 0.5, 0.1], &[true, true, false], 2), 1.0);
    }

    #[test]
    fn the_l2_strength_is_chosen_from_the_grid_or_given() {
        let texts: Vec<String> = (0..300)
            .map(|i| match i % 3 {
                0 => format!("my order is late again {}", i % 7),
                1 => "thanks a lot for the help".to_string(),
                _ => "where is the shop".to_string(),
            })
            .collect();
        let y: Vec<bool> = (0..300).map(|i| i % 3 == 0).collect();
        let learned = learn_label(&texts, &y, &LearnOptions::default()).expect("learns");
        assert!(L2_GRID.contains(&learned.l2), "{}", learned.l2);
        let given = LearnOptions {
            l2: Some(3.0),
            ..Default::default()
        };
        assert_eq!(learn_label(&texts, &y, &given).expect("learns").l2, 3.0);
        // Too few rows for folds: the default strength, the threshold on the training rows.
        let few = learn_label(&texts[..30], &y[..30], &LearnOptions::default()).expect("learns");
        assert_eq!(few.l2, DEFAULT_L2);
        assert!(
            few.phrases
                .iter()
                .any(|p| p.phrase == "late" && p.evidence > 0.0)
        );
    }

    #[test]
    fn nothing_to_learn_is_an_error() {
        let texts = vec!["a b c".to_string(); 10];
        assert!(learn_label(&texts, &[false; 10], &LearnOptions::default()).is_err());
    }
}
