//! Intent evaluation: each row has one gold class (an intent, or `none`) and a predicted *set*
//! of intents (an email may be about a refund and a bill at once; `none` when the set is empty).
//!
//! Per class c: a row is predicted as c when c is in its set, a true positive when its gold class
//! is also c. So an email with two intents counts for both, and one of them is a false positive
//! unless the data says otherwise. Macro averages follow the same convention as the single-label
//! report (module `metrics`): over the classes with gold rows, 0 for an undefined ratio.

use std::fmt;

use anyhow::{Result, bail};
use serde_json::json;

use super::metrics::ClassStats;

/// The class a row gets when no intent of interest is predicted.
pub const NONE: &str = "none";

/// Figures for a multi-label intent evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiReport {
    /// Table order: the given classes, then any other gold class, sorted.
    pub classes: Vec<String>,
    /// `table[gold][class]`: rows of that gold class whose predicted set holds the class.
    pub table: Vec<Vec<usize>>,
    pub per_class: Vec<ClassStats>,
    pub total: usize,
    /// Rows whose predicted set is exactly their gold class.
    pub exact: usize,
    /// Rows whose predicted set contains their gold class.
    pub hit: usize,
    pub macro_classes: Vec<String>,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// Compare each row's gold class with its predicted set, restricted to `classes` (other
/// predicted intents are not this evaluation's business); an empty set is [`NONE`].
pub fn evaluate_sets<G: AsRef<str>>(
    gold: &[G],
    predicted: &[Vec<String>],
    classes: &[String],
) -> Result<MultiReport> {
    if gold.len() != predicted.len() {
        bail!(
            "Cannot compare {} gold labels with {} predictions",
            gold.len(),
            predicted.len()
        );
    }
    let mut order: Vec<String> = Vec::new();
    for c in classes.iter().map(String::as_str).chain([NONE]) {
        if !order.iter().any(|o| o == c) {
            order.push(c.to_string());
        }
    }
    let mut extra: Vec<String> = gold
        .iter()
        .map(|g| g.as_ref().to_string())
        .filter(|g| !order.contains(g))
        .collect();
    extra.sort();
    extra.dedup();
    order.extend(extra);
    let index = |c: &str| order.iter().position(|o| o == c);
    let n = order.len();
    let mut table = vec![vec![0usize; n]; n];
    let mut predicted_count = vec![0usize; n];
    let (mut exact, mut hit) = (0, 0);
    for (g, set) in gold.iter().zip(predicted) {
        let mut cols: Vec<usize> = set
            .iter()
            .filter(|c| classes.contains(c) && c.as_str() != NONE)
            .filter_map(|c| index(c))
            .collect();
        cols.sort_unstable();
        cols.dedup();
        if cols.is_empty() {
            cols.push(index(NONE).unwrap_or(0));
        }
        let gi = index(g.as_ref()).unwrap_or(0);
        for &c in &cols {
            table[gi][c] += 1;
            predicted_count[c] += 1;
        }
        hit += usize::from(cols.contains(&gi));
        exact += usize::from(cols == [gi]);
    }
    let per_class: Vec<ClassStats> = order
        .iter()
        .enumerate()
        .map(|(i, class)| {
            let tp = table[i][i];
            let support = gold.iter().filter(|g| g.as_ref() == class).count();
            let precision = ratio(tp, predicted_count[i]);
            let recall = ratio(tp, support);
            ClassStats {
                class: class.clone(),
                support,
                predicted: predicted_count[i],
                true_positives: tp,
                precision,
                recall,
                f1: f1(precision, recall),
            }
        })
        .collect();
    let averaged: Vec<&ClassStats> = per_class.iter().filter(|s| s.support > 0).collect();
    let mean = |f: fn(&ClassStats) -> f64| {
        if averaged.is_empty() {
            0.0
        } else {
            averaged.iter().map(|s| f(s)).sum::<f64>() / averaged.len() as f64
        }
    };
    Ok(MultiReport {
        classes: order.clone(),
        table,
        total: gold.len(),
        exact,
        hit,
        macro_classes: averaged.iter().map(|s| s.class.clone()).collect(),
        macro_precision: mean(|s| s.precision),
        macro_recall: mean(|s| s.recall),
        macro_f1: mean(|s| s.f1),
        per_class,
    })
}

impl MultiReport {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "classes": self.classes,
            "table": self.table,
            "per_class": self.per_class.iter().map(|s| json!({
                "class": s.class, "support": s.support, "predicted": s.predicted,
                "true_positives": s.true_positives, "precision": s.precision,
                "recall": s.recall, "f1": s.f1,
            })).collect::<Vec<_>>(),
            "total": self.total,
            "exact": self.exact,
            "hit": self.hit,
            "exact_rate": ratio(self.exact, self.total),
            "hit_rate": ratio(self.hit, self.total),
            "macro_classes": self.macro_classes,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
        })
    }
}

impl fmt::Display for MultiReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .classes
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(4)
            .max(9);
        writeln!(
            f,
            "rows of each gold class (down) with each intent predicted (across; a row with two intents counts twice):"
        )?;
        write!(f, "{:<w$}", "gold")?;
        for c in &self.classes {
            write!(f, " {:>cw$}", c, cw = c.chars().count().max(5))?;
        }
        writeln!(f, " {:>7}", "rows")?;
        for (i, row) in self.table.iter().enumerate() {
            write!(f, "{:<w$}", self.classes[i])?;
            for (j, v) in row.iter().enumerate() {
                write!(
                    f,
                    " {:>cw$}",
                    v,
                    cw = self.classes[j].chars().count().max(5)
                )?;
            }
            writeln!(f, " {:>7}", self.per_class[i].support)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<w$} {:>9} {:>7} {:>7} {:>8} {:>9}",
            "intent", "precision", "recall", "F1", "support", "predicted"
        )?;
        for s in &self.per_class {
            writeln!(
                f,
                "{:<w$} {:>9.3} {:>7.3} {:>7.3} {:>8} {:>9}",
                s.class, s.precision, s.recall, s.f1, s.support, s.predicted
            )?;
        }
        writeln!(
            f,
            "{:<w$} {:>9.3} {:>7.3} {:>7.3} {:>8}",
            "macro avg", self.macro_precision, self.macro_recall, self.macro_f1, self.total
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "exact {:.3} ({} of {} rows: the predicted intents are the gold class alone); hit {:.3} ({} rows: the gold class is among them)",
            ratio(self.exact, self.total),
            self.exact,
            self.total,
            ratio(self.hit, self.total),
            self.hit
        )?;
        writeln!(
            f,
            "macro-F1 {:.3} over the {} classes with gold rows (none included)",
            self.macro_f1,
            self.macro_classes.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn figures_by_hand() {
        let classes = set(&["refund", "billing"]);
        let gold = ["refund", "refund", "billing", "none", "none"];
        let predicted = vec![
            set(&["refund", "billing"]), // refund hit, billing false positive
            set(&[]),                    // refund missed, none predicted
            set(&["billing", "outage"]), // billing hit (outage is not evaluated)
            set(&["refund"]),            // refund false positive
            set(&["outage"]),            // none, correct
        ];
        let r = evaluate_sets(&gold, &predicted, &classes).expect("evaluates");
        assert_eq!(r.classes, ["refund", "billing", "none"]);
        let refund = &r.per_class[0];
        assert_eq!(
            (refund.true_positives, refund.predicted, refund.support),
            (1, 2, 2)
        );
        assert_eq!((refund.precision, refund.recall), (0.5, 0.5));
        let billing = &r.per_class[1];
        assert_eq!(
            (billing.true_positives, billing.predicted, billing.support),
            (1, 2, 1)
        );
        assert_eq!((billing.precision, billing.recall), (0.5, 1.0));
        let none = &r.per_class[2];
        assert_eq!(
            (none.true_positives, none.predicted, none.support),
            (1, 2, 2)
        );
        assert_eq!(r.table[0], [1, 1, 1]);
        assert_eq!(r.hit, 3);
        assert_eq!(r.exact, 2);
        let f1s = [0.5, 2.0 * 0.5 / 1.5, 0.5];
        assert!((r.macro_f1 - f1s.iter().sum::<f64>() / 3.0).abs() < 1e-12);
        let text = r.to_string();
        assert!(text.contains("macro-F1 0.556 over the 3 classes"), "{text}");
        assert!(evaluate_sets(&gold, &predicted[..2], &classes).is_err());
    }
}
