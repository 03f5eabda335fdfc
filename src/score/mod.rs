//! Keyword/regex rules from TOML and the pure scoring function.

use std::path::Path;

use crate::diag::Diagnostic;
use crate::parse::Email;

/// Urgency class, most urgent first (so `Ord` sorts urgent first).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Urgent,
    High,
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Urgent,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// Minimum score for each class; below `normal` is `low`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub urgent: f64,
    pub high: f64,
    pub normal: f64,
}

/// A compiled rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {}

/// Where a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Subject,
    Body,
    From,
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub rule: String,
    pub field: Field,
    pub matched: String,
    pub weight: f64,
}

/// The outcome of scoring one email.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub score: f64,
    pub priority: Priority,
    /// Tone labels, sorted, deduplicated.
    pub tones: Vec<String>,
    pub hits: Vec<Hit>,
}

impl RuleSet {
    pub fn len(&self) -> usize {
        0
    }

    /// Load and compile every rule file; all problems at once, each with file:line:col.
    pub fn load(files: &[&Path]) -> Result<RuleSet, Vec<Diagnostic>> {
        let _ = files;
        todo!("load")
    }
}

/// Score an email. Pure.
pub fn score(email: &Email, rules: &RuleSet, thresholds: &Thresholds) -> Verdict {
    let _ = (email, rules, thresholds);
    todo!("score")
}
