#![forbid(unsafe_code)]
//! # triaged-tune — the offline numerics of `triaged eval` and `triaged tune`
//!
//! Pure math and data handling: plain data in, plain data out, no clock, no randomness beyond
//! explicit seeds, so every figure the tools report can be reproduced. It knows nothing of the
//! daemon (it cannot: the `triaged` package depends on it, not the other way round); the rule
//! engine's side of tuning (scoring rows, learned keyword rules) stays in `triaged`'s `tools`
//! and `tune` modules, so the daemon's crate holds what runs in production and this one what
//! only the offline tools need.
//!
//! - [`eval`]: labelled data (CSV / JSONL, columns, filters, label maps, a seeded train/test
//!   split) and the metrics (confusion matrix, per-class P/R/F1, macro-F1; sets of intents).
//! - [`sparse`]: sparse rows ([`sparse::SparseVec`]) and the dataset ([`sparse::Matrix`]).
//! - [`logreg`]: L2-regularised logistic regression — binary, multinomial (softmax) and
//!   ordinal (cumulative logit). The ordinal model *is* the rule engine's shape: one weight per
//!   rule, summed, and increasing thresholds; fit it on rule-hit rows to tune the rules.
//! - [`tfidf`]: the tokenizer (aligned with how rule keywords match) and TF-IDF features for
//!   the text-classifier yardstick (TF-IDF + multinomial LR) reported beside the rules.
//! - [`cv`]: stratified folds, out-of-fold predictions (no metric is measured on data a model
//!   was fitted to), and λ selection by nested CV.
//! - [`phrases`]: keywords the rules miss, ranked by Monroe et al.'s "Fightin' Words" z-score.
//! - `lbfgs` (private): the box-constrained L-BFGS minimiser behind all three fitters.
//!
//! Typical flow: folds = `cv::stratified_folds`; for the rules, `cv::out_of_fold` with a
//! `train` that runs `cv::select_l2` on its rows and then `logreg::fit_ordinal`; for the
//! yardstick, `out_of_fold` with a `train` that fits `tfidf::Tfidf` and
//! `logreg::fit_multinomial` on its rows only; finally `phrases::fightin_words` per class on all
//! rows (it reports evidence, not a score, so it needs no held-out data).

pub mod cv;
pub mod eval;
pub mod logreg;
pub mod phrases;
pub mod sparse;
pub mod tfidf;

mod lbfgs;
mod rng;
