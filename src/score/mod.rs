//! Keyword/regex rules from TOML and the pure scoring function.
//!
//! A rule looks at some fields of the email (subject, body, sender) for a list of phrases
//! (matched on word boundaries) or a regex, and adds its weight once when it matches; an optional
//! tone label is attached. The sum of the weights maps to a priority through thresholds. Text is
//! normalised once per email (Unicode NFKC, lower case) and phrases are normalised the same way
//! when the rules load. See docs/rules.md.

mod load;

use std::sync::Arc;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use crate::parse::Email;

pub use load::load_rules;

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

impl Thresholds {
    pub fn priority(&self, score: f64) -> Priority {
        if score >= self.urgent {
            Priority::Urgent
        } else if score >= self.high {
            Priority::High
        } else if score >= self.normal {
            Priority::Normal
        } else {
            Priority::Low
        }
    }
}

/// Where a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Subject,
    Body,
    /// The sender's display name and address.
    From,
}

impl Field {
    pub const ALL: [Field; 3] = [Field::Subject, Field::Body, Field::From];
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Subject => "subject",
            Field::Body => "body",
            Field::From => "from",
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub fields: Vec<Field>,
    pub matcher: Regex,
    pub weight: f64,
    pub tone: Option<String>,
}

/// A compiled rule set. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Arc<Vec<Rule>>,
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub rule: String,
    pub field: Field,
    /// The matched text (normalised), at most 80 characters.
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
    /// Load and compile every rule file; all problems at once, each with file:line:col.
    pub fn load(files: &[&std::path::Path]) -> Result<RuleSet, Vec<crate::diag::Diagnostic>> {
        load_rules(files).map(|rules| RuleSet {
            rules: Arc::new(rules),
        })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// Unicode NFKC and lower case: the form rules and text are compared in.
pub fn normalise(text: &str) -> String {
    text.nfkc().flat_map(char::to_lowercase).collect()
}

/// Score an email. Pure.
pub fn score(email: &Email, rules: &RuleSet, thresholds: &Thresholds) -> Verdict {
    let from = email
        .from
        .as_ref()
        .map(|a| format!("{} <{}>", a.name.as_deref().unwrap_or(""), a.email))
        .unwrap_or_default();
    let texts = [
        normalise(&email.subject),
        normalise(&email.body_text),
        normalise(&from),
    ];
    let text_of = |f: Field| -> &str {
        match f {
            Field::Subject => &texts[0],
            Field::Body => &texts[1],
            Field::From => &texts[2],
        }
    };
    let mut hits = Vec::new();
    for rule in rules.rules.iter() {
        let found = rule
            .fields
            .iter()
            .find_map(|&f| rule.matcher.find(text_of(f)).map(|m| (f, m.as_str())));
        if let Some((field, matched)) = found {
            hits.push(Hit {
                rule: rule.id.clone(),
                field,
                matched: matched.chars().take(80).collect(),
                weight: rule.weight,
            });
        }
    }
    let score: f64 = hits.iter().map(|h| h.weight).sum();
    let mut tones: Vec<String> = hits
        .iter()
        .filter_map(|h| {
            rules
                .rules
                .iter()
                .find(|r| r.id == h.rule)
                .and_then(|r| r.tone.clone())
        })
        .collect();
    tones.sort();
    tones.dedup();
    Verdict {
        score,
        priority: thresholds.priority(score),
        tones,
        hits,
    }
}

#[cfg(test)]
mod tests;
