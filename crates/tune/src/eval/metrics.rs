//! Confusion matrix and per-class / macro precision, recall and F1.
//!
//! Conventions, fixed here so every report means the same thing:
//! - A ratio with a zero denominator is 0: precision of a class never predicted, recall of a
//!   class without gold rows, F1 when precision and recall are both 0. (The alternative, NaN,
//!   would poison the averages and is not valid JSON.)
//! - Macro averages are taken over the classes that have gold rows. A class that only appears in
//!   predictions (the rules say `urgent`, the data set has no such label) has no recall to
//!   speak of; its wrong predictions already count as missed recall of the true classes. This
//!   keeps the denominator fixed by the data set, so macro-F1 stays comparable across rule
//!   versions that predict different sets of classes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::{Result, bail};
use serde_json::json;

/// Figures for one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassStats {
    pub class: String,
    /// Gold rows of this class.
    pub support: usize,
    /// Rows predicted as this class.
    pub predicted: usize,
    pub true_positives: usize,
    /// `true_positives / predicted`, 0 if nothing was predicted as this class.
    pub precision: f64,
    /// `true_positives / support`, 0 if the class has no gold rows.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 if both are 0.
    pub f1: f64,
}

impl ClassStats {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "class": self.class,
            "support": self.support,
            "predicted": self.predicted,
            "true_positives": self.true_positives,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        })
    }
}

/// The outcome of comparing predictions with gold labels. See the module docs for the
/// zero-division and macro-average conventions.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Row and column order of [`Report::confusion`] and order of [`Report::per_class`].
    pub classes: Vec<String>,
    /// `confusion[gold][predicted]`: rows are gold classes, columns predicted classes.
    pub confusion: Vec<Vec<usize>>,
    pub per_class: Vec<ClassStats>,
    pub total: usize,
    pub correct: usize,
    /// `correct / total`, 0 for no rows. Equals micro-averaged F1 for single-label data.
    pub accuracy: f64,
    /// Classes the macro averages are taken over: those with gold rows, in report order.
    pub macro_classes: Vec<String>,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    /// The class of interest in a binary (tone) evaluation; see [`Report::with_positive`].
    pub positive: Option<String>,
}

/// Compares `predicted[i]` with `gold[i]` for every row.
///
/// `classes` fixes the order of the table and adds classes that may not occur (so a class never
/// predicted still gets its column); labels outside it are appended in sorted order rather than
/// rejected, so an unexpected prediction shows up in the table instead of vanishing. Without
/// `classes`, all labels seen are used in sorted order.
pub fn evaluate<G: AsRef<str>, P: AsRef<str>>(
    gold: &[G],
    predicted: &[P],
    classes: Option<&[String]>,
) -> Result<Report> {
    if gold.len() != predicted.len() {
        bail!(
            "Cannot compare {} gold labels with {} predictions",
            gold.len(),
            predicted.len()
        );
    }
    let mut order: Vec<String> = Vec::new();
    for class in classes.unwrap_or_default() {
        if !order.contains(class) {
            order.push(class.clone());
        }
    }
    let extra: BTreeSet<&str> = gold
        .iter()
        .map(AsRef::as_ref)
        .chain(predicted.iter().map(AsRef::as_ref))
        .filter(|label| !order.iter().any(|c| c == label))
        .collect();
    order.extend(extra.into_iter().map(str::to_string));
    let index: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();

    let n = order.len();
    let mut confusion = vec![vec![0usize; n]; n];
    for (g, p) in gold.iter().zip(predicted) {
        // Every label was added to `order` above, so both lookups succeed.
        if let (Some(&gi), Some(&pi)) = (index.get(g.as_ref()), index.get(p.as_ref())) {
            confusion[gi][pi] += 1;
        }
    }

    let per_class: Vec<ClassStats> = order
        .iter()
        .enumerate()
        .map(|(i, class)| {
            let true_positives = confusion[i][i];
            let support: usize = confusion[i].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[i]).sum();
            let precision = ratio(true_positives, predicted);
            let recall = ratio(true_positives, support);
            ClassStats {
                class: class.clone(),
                support,
                predicted,
                true_positives,
                precision,
                recall,
                f1: f1(precision, recall),
            }
        })
        .collect();

    let averaged: Vec<&ClassStats> = per_class.iter().filter(|s| s.support > 0).collect();
    let mean = |field: fn(&ClassStats) -> f64| {
        if averaged.is_empty() {
            0.0
        } else {
            averaged.iter().map(|s| field(s)).sum::<f64>() / averaged.len() as f64
        }
    };
    let correct = per_class.iter().map(|s| s.true_positives).sum();
    Ok(Report {
        macro_classes: averaged.iter().map(|s| s.class.clone()).collect(),
        macro_precision: mean(|s| s.precision),
        macro_recall: mean(|s| s.recall),
        macro_f1: mean(|s| s.f1),
        total: gold.len(),
        correct,
        accuracy: ratio(correct, gold.len()),
        classes: order,
        confusion,
        per_class,
        positive: None,
    })
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

impl Report {
    /// Names the positive class of a binary (tone) evaluation, so the text and JSON output lead
    /// with its precision, recall and F1; macro-F1 is still reported. Fails if `class` is not
    /// one of the report's classes (pass it in `classes` to [`evaluate`] to be sure it is).
    pub fn with_positive(mut self, class: &str) -> Result<Report> {
        if !self.classes.iter().any(|c| c == class) {
            bail!(
                "Positive class `{class}` is not among the classes: {}",
                self.classes.join(", ")
            );
        }
        self.positive = Some(class.to_string());
        Ok(self)
    }

    /// Figures for one class, e.g. the positive class of a binary evaluation.
    pub fn class(&self, name: &str) -> Option<&ClassStats> {
        self.per_class.iter().find(|s| s.class == name)
    }

    /// Figures for the class named by [`Report::with_positive`].
    pub fn positive_stats(&self) -> Option<&ClassStats> {
        self.positive.as_deref().and_then(|p| self.class(p))
    }

    /// The same figures as the text table, for scripts. Lists keep the report's class order.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "total": self.total,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "macro": {
                "classes": self.macro_classes,
                "precision": self.macro_precision,
                "recall": self.macro_recall,
                "f1": self.macro_f1,
            },
            "classes": self.classes,
            "confusion": {
                "rows": "gold",
                "columns": "predicted",
                "counts": self.confusion,
            },
            "per_class": self.per_class.iter().map(ClassStats::to_json).collect::<Vec<_>>(),
            "positive": self.positive_stats().map(ClassStats::to_json),
        })
    }
}

const CORNER: &str = "gold \\ predicted";

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chars = |s: &str| s.chars().count();
        let name_w = self
            .classes
            .iter()
            .map(|c| chars(c))
            .chain([chars(CORNER), chars("macro avg")])
            .max()
            .unwrap_or(0);
        let count_w = self.total.to_string().len().max(5);
        let col_w: Vec<usize> = self.classes.iter().map(|c| chars(c).max(count_w)).collect();

        writeln!(f, "Confusion matrix (rows: gold, columns: predicted)")?;
        write!(f, "{CORNER:<name_w$}")?;
        for (class, w) in self.classes.iter().zip(&col_w) {
            write!(f, "  {class:>w$}")?;
        }
        writeln!(f, "  {:>count_w$}", "total")?;
        for (class, (row, stats)) in self
            .classes
            .iter()
            .zip(self.confusion.iter().zip(&self.per_class))
        {
            write!(f, "{class:<name_w$}")?;
            for (n, w) in row.iter().zip(&col_w) {
                write!(f, "  {n:>w$}")?;
            }
            writeln!(f, "  {:>count_w$}", stats.support)?;
        }
        write!(f, "{:<name_w$}", "total")?;
        for (stats, w) in self.per_class.iter().zip(&col_w) {
            write!(f, "  {:>w$}", stats.predicted)?;
        }
        writeln!(f, "  {:>count_w$}", self.total)?;

        writeln!(f)?;
        writeln!(
            f,
            "{:<name_w$}  precision  recall      F1  support  predicted",
            "class"
        )?;
        for s in &self.per_class {
            writeln!(
                f,
                "{:<name_w$}  {:>9.3}  {:>6.3}  {:>6.3}  {:>7}  {:>9}",
                s.class, s.precision, s.recall, s.f1, s.support, s.predicted
            )?;
        }
        writeln!(
            f,
            "{:<name_w$}  {:>9.3}  {:>6.3}  {:>6.3}  {:>7}",
            "macro avg", self.macro_precision, self.macro_recall, self.macro_f1, self.total
        )?;

        writeln!(f)?;
        writeln!(
            f,
            "accuracy {:.3} ({} of {} rows)",
            self.accuracy, self.correct, self.total
        )?;
        write!(
            f,
            "macro-F1 {:.3} over the {} classes with gold rows",
            self.macro_f1,
            self.macro_classes.len()
        )?;
        let left_out: Vec<&str> = self
            .classes
            .iter()
            .filter(|c| !self.macro_classes.contains(c))
            .map(String::as_str)
            .collect();
        if left_out.is_empty() {
            writeln!(f)?;
        } else {
            writeln!(f, " (left out: {})", left_out.join(", "))?;
        }
        if let Some(s) = self.positive_stats() {
            writeln!(
                f,
                "positive class `{}`: precision {:.3}  recall {:.3}  F1 {:.3}",
                s.class, s.precision, s.recall, s.f1
            )?;
        }
        writeln!(
            f,
            "(precision, recall and F1 are 0 where undefined: a class never predicted, or without gold rows)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Expected figures for one class: (class, support, predicted, tp, P, R, F1).
    type Expected = (&'static str, usize, usize, usize, f64, f64, f64);

    struct Case {
        name: &'static str,
        gold: &'static [&'static str],
        predicted: &'static [&'static str],
        classes: Option<&'static [&'static str]>,
        order: &'static [&'static str],
        confusion: &'static [&'static [usize]],
        per_class: &'static [Expected],
        accuracy: f64,
        macro_classes: &'static [&'static str],
        macro_prf: (f64, f64, f64),
    }

    #[test]
    fn hand_computed_examples() {
        let cases = [
            Case {
                // c is never predicted: its precision is 0/0 -> 0, and it still counts in the
                // macro average because it has gold rows.
                name: "class never predicted",
                gold: &["a", "a", "a", "b", "b", "c", "c", "c"],
                predicted: &["a", "a", "b", "b", "a", "a", "b", "b"],
                classes: None,
                order: &["a", "b", "c"],
                confusion: &[&[2, 1, 0], &[1, 1, 0], &[1, 2, 0]],
                per_class: &[
                    ("a", 3, 4, 2, 0.5, 2.0 / 3.0, 4.0 / 7.0),
                    ("b", 2, 4, 1, 0.25, 0.5, 1.0 / 3.0),
                    ("c", 3, 0, 0, 0.0, 0.0, 0.0),
                ],
                accuracy: 3.0 / 8.0,
                macro_classes: &["a", "b", "c"],
                macro_prf: (0.25, 7.0 / 18.0, 19.0 / 63.0),
            },
            Case {
                // `urgent` is predicted but has no gold rows; `normal` is named but never seen.
                // Both get 0 and stay out of the macro average.
                name: "predicted class without gold rows, declared class unseen",
                gold: &["high", "high", "low", "low"],
                predicted: &["urgent", "high", "low", "high"],
                classes: Some(&["high", "normal", "low"]),
                order: &["high", "normal", "low", "urgent"],
                confusion: &[&[1, 0, 0, 1], &[0, 0, 0, 0], &[1, 0, 1, 0], &[0, 0, 0, 0]],
                per_class: &[
                    ("high", 2, 2, 1, 0.5, 0.5, 0.5),
                    ("normal", 0, 0, 0, 0.0, 0.0, 0.0),
                    ("low", 2, 1, 1, 1.0, 0.5, 2.0 / 3.0),
                    ("urgent", 0, 1, 0, 0.0, 0.0, 0.0),
                ],
                accuracy: 0.5,
                macro_classes: &["high", "low"],
                macro_prf: (0.75, 0.5, 7.0 / 12.0),
            },
            Case {
                name: "binary",
                gold: &["complaint", "complaint", "complaint", "other", "other"],
                predicted: &["complaint", "other", "complaint", "complaint", "other"],
                classes: Some(&["complaint", "other"]),
                order: &["complaint", "other"],
                confusion: &[&[2, 1], &[1, 1]],
                per_class: &[
                    ("complaint", 3, 3, 2, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0),
                    ("other", 2, 2, 1, 0.5, 0.5, 0.5),
                ],
                accuracy: 0.6,
                macro_classes: &["complaint", "other"],
                macro_prf: (7.0 / 12.0, 7.0 / 12.0, 7.0 / 12.0),
            },
            Case {
                name: "perfect",
                gold: &["y", "x", "y"],
                predicted: &["y", "x", "y"],
                classes: None,
                order: &["x", "y"],
                confusion: &[&[1, 0], &[0, 2]],
                per_class: &[("x", 1, 1, 1, 1.0, 1.0, 1.0), ("y", 2, 2, 2, 1.0, 1.0, 1.0)],
                accuracy: 1.0,
                macro_classes: &["x", "y"],
                macro_prf: (1.0, 1.0, 1.0),
            },
            Case {
                name: "no rows",
                gold: &[],
                predicted: &[],
                classes: Some(&["a"]),
                order: &["a"],
                confusion: &[&[0]],
                per_class: &[("a", 0, 0, 0, 0.0, 0.0, 0.0)],
                accuracy: 0.0,
                macro_classes: &[],
                macro_prf: (0.0, 0.0, 0.0),
            },
        ];
        for case in cases {
            let name = case.name;
            let classes = case.classes.map(strings);
            let r = evaluate(case.gold, case.predicted, classes.as_deref()).expect(name);
            assert_eq!(r.classes, strings(case.order), "{name}: order");
            let confusion: Vec<Vec<usize>> = case.confusion.iter().map(|r| r.to_vec()).collect();
            assert_eq!(r.confusion, confusion, "{name}: confusion");
            assert_eq!(r.per_class.len(), case.per_class.len(), "{name}");
            for (got, &(class, support, predicted, tp, p, rc, f)) in
                r.per_class.iter().zip(case.per_class)
            {
                assert_eq!(got.class, class, "{name}");
                assert_eq!(
                    (got.support, got.predicted, got.true_positives),
                    (support, predicted, tp),
                    "{name}: {class} counts"
                );
                assert!(
                    close(got.precision, p) && close(got.recall, rc) && close(got.f1, f),
                    "{name}: {class}: got P {} R {} F1 {}, want {p} {rc} {f}",
                    got.precision,
                    got.recall,
                    got.f1
                );
            }
            assert_eq!(r.total, case.gold.len(), "{name}");
            assert!(close(r.accuracy, case.accuracy), "{name}: accuracy");
            assert_eq!(r.macro_classes, strings(case.macro_classes), "{name}");
            let (mp, mr, mf) = case.macro_prf;
            assert!(
                close(r.macro_precision, mp) && close(r.macro_recall, mr) && close(r.macro_f1, mf),
                "{name}: macro got {} {} {}, want {mp} {mr} {mf}",
                r.macro_precision,
                r.macro_recall,
                r.macro_f1
            );
        }
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let err = evaluate(&["a", "b"], &["a"], None).expect_err("lengths differ");
        assert_eq!(
            err.to_string(),
            "Cannot compare 2 gold labels with 1 predictions"
        );
    }

    #[test]
    fn positive_class_is_reported() {
        let gold = ["1", "1", "0", "0", "0"];
        let predicted = ["1", "0", "0", "0", "1"];
        let r = evaluate(&gold, &predicted, None).expect("evaluates");
        assert!(r.clone().with_positive("2").is_err());
        let r = r.with_positive("1").expect("known class");
        let s = r.positive_stats().expect("positive set");
        assert_eq!((s.class.as_str(), s.true_positives), ("1", 1));
        assert!(close(s.precision, 0.5) && close(s.recall, 0.5));
        assert!(
            r.to_string()
                .contains("positive class `1`: precision 0.500  recall 0.500  F1 0.500"),
            "{r}"
        );
        assert_eq!(r.to_json()["positive"]["class"], "1");
        assert_eq!(r.to_json()["positive"]["f1"], 0.5);
    }

    #[test]
    fn text_table() {
        let classes = strings(&["high", "normal", "low"]);
        let r = evaluate(
            &["high", "high", "low", "low"],
            &["urgent", "high", "low", "high"],
            Some(&classes),
        )
        .expect("evaluates");
        let expected = "\
Confusion matrix (rows: gold, columns: predicted)
gold \\ predicted   high  normal    low  urgent  total
high                  1       0      0       1      2
normal                0       0      0       0      0
low                   1       0      1       0      2
urgent                0       0      0       0      0
total                 2       0      1       1      4

class             precision  recall      F1  support  predicted
high                  0.500   0.500   0.500        2          2
normal                0.000   0.000   0.000        0          0
low                   1.000   0.500   0.667        2          1
urgent                0.000   0.000   0.000        0          1
macro avg             0.750   0.500   0.583        4

accuracy 0.500 (2 of 4 rows)
macro-F1 0.583 over the 2 classes with gold rows (left out: normal, urgent)
(precision, recall and F1 are 0 where undefined: a class never predicted, or without gold rows)
";
        assert_eq!(r.to_string(), expected);
    }

    #[test]
    fn json_keeps_class_order_and_counts() {
        let classes = strings(&["high", "normal", "low"]);
        let r = evaluate(&["low", "high"], &["low", "low"], Some(&classes)).expect("evaluates");
        let j = r.to_json();
        assert_eq!(j["classes"], json!(["high", "normal", "low"]));
        assert_eq!(
            j["confusion"]["counts"],
            json!([[0, 0, 1], [0, 0, 0], [0, 0, 1]])
        );
        assert_eq!(j["per_class"][2]["class"], "low");
        assert_eq!(j["per_class"][2]["precision"], 0.5);
        assert_eq!(j["macro"]["classes"], json!(["high", "low"]));
        assert_eq!(j["accuracy"], 0.5);
        assert_eq!(j["positive"], serde_json::Value::Null);
    }
}
