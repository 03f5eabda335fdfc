//! # tune — fitting rule weights and thresholds to labelled mail
//!
//! Pure math for `triaged tune`: plain data in, plain data out, no I/O, no clock, no randomness
//! beyond explicit seeds, so every figure it reports can be reproduced.
//!
//! - [`sparse`]: sparse rows ([`sparse::SparseVec`]) and the dataset ([`sparse::Matrix`]).
//! - [`logreg`]: L2-regularised logistic regression — binary, multinomial (softmax) and
//!   ordinal (cumulative logit). The ordinal model *is* the rule engine's shape: one weight per
//!   rule, summed, and increasing thresholds; fit it on rule-hit rows to tune the rules.
//! - [`tfidf`]: the tokenizer (aligned with how rule keywords match) and TF-IDF features for
//!   the text-classifier yardstick (TF-IDF + multinomial LR) reported beside the rules.
//! - [`phrases`]: keywords the rules miss, ranked by Monroe et al.'s "Fightin' Words" z-score.
//! - `lbfgs` (private): the box-constrained L-BFGS minimiser behind all three fitters.

pub mod logreg;
pub mod phrases;
pub mod sparse;
pub mod tfidf;

mod lbfgs;
#[cfg(test)]
mod rng;
