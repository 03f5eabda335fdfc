//! Gold labels -> the classes the rules predict (`--map "high=high,medium=normal,low=low"`).
//!
//! Data sets name their classes in their own words (`medium`, `1`, `negative`), and several of
//! them may mean one class of ours (`urgent=high,high=high`). The map runs in both directions:
//! forward it renames gold labels (and may be applied to predictions too, since class names map
//! to themselves); backward, [`LabelMap::sources`] tells which gold labels make up a class, so a
//! report can say what it compared.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{Result, bail};

use super::load::Row;

/// Parsed `--map`. A label not in the map is an error when applied to gold rows (see
/// [`LabelMap::apply`]), because dropping rows silently would change the figures; write
/// `label=` (empty class) to leave a label's rows out on purpose, and `*=class` (or `*=`) for
/// every label the map does not name (`get_refund=refund,*=none` for intent data with many
/// labels that are not ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    /// Gold label -> class (`None`: leave such rows out), in the order written, which is also the
    /// order [`LabelMap::classes`] reports classes in.
    entries: Vec<(String, Option<String>)>,
}

/// What the map says about one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapped<'a> {
    Class(&'a str),
    /// Mapped to an empty class: leave the row out.
    Skip,
    Unmapped,
}

impl FromStr for LabelMap {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<LabelMap> {
        LabelMap::parse(s)
    }
}

impl LabelMap {
    /// Parses `gold=class,gold=class,...`; whitespace around names is ignored. Errors on a
    /// malformed entry, a gold label mapped twice to different classes, and chains (`a=b,b=c`),
    /// because the map is applied once and a chain would mean different things on each side.
    pub fn parse(s: &str) -> Result<LabelMap> {
        if s.trim().is_empty() {
            bail!("Label map is empty; expected gold=class pairs, e.g. high=high,medium=normal");
        }
        let mut entries: Vec<(String, Option<String>)> = Vec::new();
        for (n, entry) in s.split(',').enumerate() {
            let Some((gold, class)) = entry.split_once('=') else {
                bail!(
                    "Label map entry {} `{}`: expected gold=class (or gold= to leave it out)",
                    n + 1,
                    entry.trim()
                );
            };
            let (gold, class) = (gold.trim(), class.trim());
            if gold.is_empty() {
                bail!(
                    "Label map entry {} `{}`: the gold label is empty",
                    n + 1,
                    entry.trim()
                );
            }
            let class = (!class.is_empty()).then(|| class.to_string());
            match entries.iter().find(|(g, _)| g == gold) {
                Some((_, earlier)) if *earlier != class => bail!(
                    "Label map maps `{gold}` twice: to {} and to {}",
                    show(earlier.as_deref()),
                    show(class.as_deref())
                ),
                Some(_) => {}
                None => entries.push((gold.to_string(), class)),
            }
        }
        for (gold, class) in &entries {
            let Some(class) = class else { continue };
            if let Some((_, other)) = entries.iter().find(|(g, _)| g == class)
                && other.as_deref() != Some(class.as_str())
            {
                bail!(
                    "Label map: `{class}` is a class (from {gold}={class}) and also a gold label mapped to {}; \
                     maps are applied once, so write {gold}={} directly",
                    show(other.as_deref()),
                    other.as_deref().unwrap_or("")
                );
            }
        }
        Ok(LabelMap { entries })
    }

    /// Where `label` goes: a gold label to its class; a class name to itself (so predictions,
    /// already in class space, pass through); anything else is unmapped.
    pub fn get<'a>(&'a self, label: &'a str) -> Mapped<'a> {
        match self.named(label) {
            Mapped::Unmapped => match self.entries.iter().find(|(g, _)| g == "*") {
                Some((_, class)) => class.as_deref().map_or(Mapped::Skip, Mapped::Class),
                None => Mapped::Unmapped,
            },
            m => m,
        }
    }

    /// [`LabelMap::get`] without the `*` entry.
    fn named<'a>(&'a self, label: &'a str) -> Mapped<'a> {
        if let Some((_, class)) = self.entries.iter().find(|(g, _)| g == label && g != "*") {
            return class.as_deref().map_or(Mapped::Skip, Mapped::Class);
        }
        if self
            .entries
            .iter()
            .any(|(_, c)| c.as_deref() == Some(label))
        {
            return Mapped::Class(label);
        }
        Mapped::Unmapped
    }

    /// The target classes in the order first written (a natural order for report tables).
    pub fn classes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for class in self.entries.iter().filter_map(|(_, c)| c.as_ref()) {
            if !out.contains(class) {
                out.push(class.clone());
            }
        }
        out
    }

    /// The backward direction: gold labels that map to `class`, in the order written.
    pub fn sources(&self, class: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(_, c)| c.as_deref() == Some(class))
            .map(|(g, _)| g.as_str())
            .collect()
    }

    /// Gold labels left out on purpose (`label=`).
    pub fn skipped(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(_, c)| c.is_none())
            .map(|(g, _)| g.as_str())
            .collect()
    }

    /// A predicted label in class space: mapped if the map knows it, else unchanged, so a class
    /// the data set lacks (say `urgent`) still shows up as its own column in the report.
    pub fn predicted<'a>(&'a self, label: &'a str) -> &'a str {
        match self.named(label) {
            Mapped::Class(c) => c,
            Mapped::Skip | Mapped::Unmapped => label,
        }
    }

    /// Renames the gold label of every row to its class and drops rows mapped to nothing.
    /// Returns how many rows were dropped. Fails, leaving `rows` untouched, if any label is not
    /// in the map; the error lists each such label with its row count.
    pub fn apply(&self, rows: &mut Vec<Row>) -> Result<usize> {
        let mut unmapped: BTreeMap<&str, usize> = BTreeMap::new();
        for row in rows.iter() {
            if self.get(&row.label) == Mapped::Unmapped {
                *unmapped.entry(&row.label).or_default() += 1;
            }
        }
        if let Some((example, _)) = unmapped.first_key_value() {
            let list: Vec<String> = unmapped
                .iter()
                .map(|(label, &n)| {
                    format!("`{label}` ({n} {})", if n == 1 { "row" } else { "rows" })
                })
                .collect();
            bail!(
                "Labels not in the label map: {}; map them (e.g. {example}={}) or leave them out ({example}=)",
                list.join(", "),
                self.classes().first().map_or("class", String::as_str)
            );
        }
        let before = rows.len();
        rows.retain_mut(|row| match self.get(&row.label) {
            Mapped::Class(class) => {
                if class != row.label {
                    row.label = class.to_string();
                }
                true
            }
            Mapped::Skip | Mapped::Unmapped => false,
        });
        Ok(before - rows.len())
    }
}

fn show(class: Option<&str>) -> String {
    class.map_or_else(|| "nothing (left out)".to_string(), |c| format!("`{c}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_maps_every_other_label() {
        let map: LabelMap = "get_refund=refund,track_refund=refund,spam=,*=none"
            .parse()
            .expect("parses");
        assert_eq!(map.classes(), vec!["refund", "none"]);
        assert_eq!(map.get("get_refund"), Mapped::Class("refund"));
        assert_eq!(map.get("delivery_period"), Mapped::Class("none"));
        assert_eq!(map.get("spam"), Mapped::Skip);
        // Predictions are not swept into the wildcard: an intent the data lacks stays itself.
        assert_eq!(map.predicted("outage"), "outage");
        let mut rows = vec![
            Row {
                line: 1,
                texts: vec![],
                label: "get_refund".into(),
            },
            Row {
                line: 1,
                texts: vec![],
                label: "place_order".into(),
            },
            Row {
                line: 1,
                texts: vec![],
                label: "spam".into(),
            },
        ];
        assert_eq!(map.apply(&mut rows).expect("applies"), 1);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["refund", "none"]);
        let skip_rest: LabelMap = "a=x,*=".parse().expect("parses");
        let mut rows = vec![Row {
            line: 1,
            texts: vec![],
            label: "b".into(),
        }];
        assert_eq!(skip_rest.apply(&mut rows).expect("applies"), 1);
    }

    #[test]
    fn parses_many_to_one_and_skip() {
        let map: LabelMap = "urgent=high, high=high ,medium=normal,low=low,spam="
            .parse()
            .expect("parses");
        assert_eq!(map.classes(), vec!["high", "normal", "low"]);
        assert_eq!(map.sources("high"), vec!["urgent", "high"]);
        assert_eq!(map.sources("normal"), vec!["medium"]);
        assert_eq!(map.skipped(), vec!["spam"]);
        let cases = [
            ("urgent", Mapped::Class("high")),
            ("medium", Mapped::Class("normal")),
            // A class name maps to itself, so the map can be applied to predictions too.
            ("normal", Mapped::Class("normal")),
            ("spam", Mapped::Skip),
            ("Medium", Mapped::Unmapped),
            ("critical", Mapped::Unmapped),
        ];
        for (label, expected) in cases {
            assert_eq!(map.get(label), expected, "{label}");
        }
        assert_eq!(map.predicted("medium"), "normal");
        assert_eq!(map.predicted("urgent"), "high");
        assert_eq!(map.predicted("unheard"), "unheard");
    }

    #[test]
    fn binary_map() {
        let map = LabelMap::parse("1=complaint,0=other").expect("parses");
        assert_eq!(map.get("1"), Mapped::Class("complaint"));
        assert_eq!(map.get("0"), Mapped::Class("other"));
        assert_eq!(map.classes(), vec!["complaint", "other"]);
    }

    #[test]
    fn rejects_malformed_maps() {
        let cases = [
            ("", "empty"),
            ("  ", "empty"),
            ("high", "entry 1 `high`: expected gold=class"),
            ("high=high,,low=low", "entry 2 ``: expected gold=class"),
            ("=high", "the gold label is empty"),
            (
                "high=high,high=low",
                "maps `high` twice: to `high` and to `low`",
            ),
            (
                "a=b,b=c",
                "`b` is a class (from a=b) and also a gold label mapped to `c`",
            ),
            ("a=b,b=", "`b` is a class (from a=b)"),
        ];
        for (input, expected) in cases {
            let err = format!("{:#}", LabelMap::parse(input).expect_err(input));
            assert!(err.contains(expected), "{input:?}: got `{err}`");
        }
        // Repeating an identical entry is harmless.
        assert!(LabelMap::parse("high=high,high=high").is_ok());
    }

    fn rows(labels: &[&str]) -> Vec<Row> {
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| Row {
                line: i + 2,
                texts: vec![format!("text {i}")],
                label: l.to_string(),
            })
            .collect()
    }

    #[test]
    fn apply_renames_and_drops() {
        let map = LabelMap::parse("high=high,medium=normal,low=low,spam=").expect("parses");
        let mut data = rows(&["medium", "spam", "high", "low", "spam"]);
        let dropped = map.apply(&mut data).expect("all mapped");
        assert_eq!(dropped, 2);
        let got: Vec<(usize, &str)> = data.iter().map(|r| (r.line, r.label.as_str())).collect();
        assert_eq!(got, vec![(2, "normal"), (4, "high"), (5, "low")]);
    }

    #[test]
    fn apply_lists_unmapped_labels_and_changes_nothing() {
        let map = LabelMap::parse("high=high,low=low").expect("parses");
        let mut data = rows(&["high", "critical", "medium", "critical"]);
        let before = data.clone();
        let err = format!("{:#}", map.apply(&mut data).expect_err("unmapped"));
        assert!(
            err.contains("`critical` (2 rows), `medium` (1 row)"),
            "{err}"
        );
        assert!(err.contains("critical=high"), "{err}");
        assert_eq!(data, before);
    }
}
