//! Offline evaluation of the rules against labelled data (`triaged eval`): the pure core.
//!
//! Data flows one way, each step taking and returning plain values:
//!
//! ```text
//! CSV / JSONL file ─> load (Source + Columns) ─> Dataset { rows: Row { texts, label } }
//!   ─> LabelMap (gold labels -> classes) ─> [scoring, wired by the CLI] ─> evaluate(gold, predicted)
//!   ─> Report (confusion matrix, per-class P/R/F1, macro-F1, accuracy; Display + JSON)
//! stratified_folds(labels, k, seed) ─> fold per row, for cross-validation
//! ```
//!
//! Nothing here depends on the scoring module, so the metrics can be trusted (and tested) on
//! their own, and the loader can be pointed at any third-party data set without code changes.

mod folds;
mod labels;
mod load;
mod metrics;
mod multilabel;

#[cfg(test)]
mod data_tests;

pub use folds::stratified_folds;
pub use labels::{LabelMap, Mapped};
pub use load::{Columns, Dataset, Format, HeaderMode, Part, Row, Source, Split, load};
pub use metrics::{ClassStats, Report, evaluate};
pub use multilabel::{MultiReport, NONE, evaluate_sets};
