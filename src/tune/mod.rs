//! # tune — the rule engine's side of tuning
//!
//! The numerics of `triaged tune` and `triaged eval` (labelled data and metrics, logistic
//! regression, TF-IDF, cross-validation, phrase evidence) live in the `triaged-tune` crate
//! (`crates/tune`), which knows nothing of the rules. What needs the rule engine stays here:
//! [`learn`], keyword rules learned from labelled text (`tune --learn`): a sparse logistic
//! regression over 1–3-grams, written as keyword rules with `evidence`, its phrases normalised
//! as the rules match.

pub mod learn;
