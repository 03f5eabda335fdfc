//! Explanations of a verdict: a readable table (every hit with its weight and the running score,
//! the caps applied, the thresholds) and the same as JSON for machines. Pure formatting.
//!
//! A learned pack brings hundreds of phrases that only weigh evidence for a label; many fire on
//! any email and most speak for labels the email does not get. The table keeps every hit that
//! moved the score or speaks for a label that was given; where more than [`FOLD_OVER`] hits only
//! weighed evidence for a label left off the verdict, they are summed up on that label's
//! evidence line instead (how many, and the strongest for and against it). `--json` keeps
//! every hit.

use std::fmt::Write;

use super::{Hit, RuleSet, Thresholds, Verdict};

/// A label not given keeps its evidence hits in the table up to this many.
pub const FOLD_OVER: usize = 3;

fn signed2(v: f64) -> String {
    if v >= 0.0 {
        format!("+{v:.2}")
    } else {
        format!("{v:.2}")
    }
}

fn signed(v: f64) -> String {
    if v >= 0.0 {
        format!("+{v:.1}")
    } else {
        format!("{v:.1}")
    }
}

/// The verdict and a table of every hit in the order they were added.
pub fn explain_text(v: &Verdict, rules: &RuleSet, th: &Thresholds) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "priority {} (score {:.1}; urgent >= {}, high >= {}, normal >= {}, else low; no weighted rule: {})",
        v.priority.as_str(),
        v.score,
        th.urgent,
        th.high,
        th.normal,
        th.no_evidence.as_str()
    );
    let list = |xs: &[String]| {
        if xs.is_empty() {
            "-".to_string()
        } else {
            xs.join(", ")
        }
    };
    let _ = writeln!(out, "tone     {}", list(&v.tones));
    let _ = writeln!(out, "intents  {}", list(&v.intents));
    if v.hits.is_empty() {
        let _ = writeln!(out, "\nNo rule matched.");
        return out;
    }
    out.push('\n');
    let folded = folded(v, rules);
    let rows: Vec<[String; 6]> = hit_rows(v, rules)
        .into_iter()
        .zip(&folded)
        .filter(|(_, f)| !**f)
        .map(|(r, _)| r)
        .collect();
    write_table(&mut out, &rows);
    write_evidence(&mut out, v, rules, &folded);
    write_caps(&mut out, v);
    out
}

/// Per hit: rule, target, matched text, weight, running score, labels.
fn hit_rows(v: &Verdict, rules: &RuleSet) -> Vec<[String; 6]> {
    let mut running = 0.0;
    v.hits
        .iter()
        .map(|h| {
            running += h.weight;
            let rule = rules.rules().iter().find(|r| r.id == h.rule);
            let labels: Vec<String> = rule
                .map(|r| {
                    let evidence = r
                        .evidence
                        .map(|e| format!("({})", signed2(e * f64::from(h.count))))
                        .unwrap_or_default();
                    r.tone
                        .iter()
                        .map(|t| format!("tone:{t}{evidence}"))
                        .chain(r.intent.iter().map(|i| format!("intent:{i}{evidence}")))
                        .chain(r.group.map(|g| format!("group:{}", rules.groups()[g].id)))
                        .collect()
                })
                .unwrap_or_default();
            [
                h.rule.to_string(),
                h.target.to_string(),
                format!("{:?}", h.matched),
                if h.count > 1 {
                    format!("{}x{}", signed(h.weight / f64::from(h.count)), h.count)
                } else {
                    signed(h.weight)
                },
                format!("{running:.1}"),
                labels.join(" "),
            ]
        })
        .collect()
}

/// The rows under a header, in columns (numbers right-aligned).
fn write_table(out: &mut String, rows: &[[String; 6]]) {
    let header = ["rule", "target", "matched", "weight", "score", "labels"];
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i == 3 || i == 4 {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if i < 5 {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if i < 5 {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(header));
    for r in rows {
        let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
}

/// Which hits are left out of the table: those that add nothing to the score, are in no group
/// and carry evidence only for labels the verdict does not have, where each of those labels
/// has more than [`FOLD_OVER`] such hits.
fn folded(v: &Verdict, rules: &RuleSet) -> Vec<bool> {
    // Per hit, the labels it only weighs evidence for (none: it stays).
    let labels: Vec<Vec<(&str, &str)>> = v
        .hits
        .iter()
        .map(|h| {
            let Some(r) = rules.rules().iter().find(|r| r.id == h.rule) else {
                return Vec::new();
            };
            let labels: Vec<(&str, &str)> = r
                .tone
                .iter()
                .map(|t| ("tone", t.as_str()))
                .chain(r.intent.iter().map(|i| ("intent", i.as_str())))
                .collect();
            let off = |(kind, l): &(&str, &str)| match *kind {
                "tone" => !v.tones.iter().any(|x| x == l),
                _ => !v.intents.iter().any(|x| x == l),
            };
            if h.weight == 0.0
                && r.evidence.is_some()
                && r.group.is_none()
                && labels.iter().all(off)
            {
                labels
            } else {
                Vec::new()
            }
        })
        .collect();
    let mut count: std::collections::HashMap<(&str, &str), usize> = Default::default();
    for l in labels.iter().flatten() {
        *count.entry(*l).or_default() += 1;
    }
    labels
        .iter()
        .map(|ls| !ls.is_empty() && ls.iter().all(|l| count[l] > FOLD_OVER))
        .collect()
}

/// Each label that rules with evidence spoke for, and whether it reached the bar; for a label
/// not given, the hits left out of the table: how many, the strongest for and against.
fn write_evidence(out: &mut String, v: &Verdict, rules: &RuleSet, folded: &[bool]) {
    if v.evidence.is_empty() {
        return;
    }
    out.push('\n');
    for e in &v.evidence {
        let mut line = format!(
            "{} {}: evidence {:.2} {} {} ({}",
            e.kind,
            e.label,
            e.sum,
            if e.given { ">=" } else { "<" },
            super::EVIDENCE_BAR,
            if e.given { "given" } else { "not given" }
        );
        // The folded hits for this label, with the evidence each added.
        let shares: Vec<(&Hit, f64)> = v
            .hits
            .iter()
            .zip(folded)
            .filter(|(_, f)| **f)
            .filter_map(|(h, _)| {
                let r = rules.rules().iter().find(|r| r.id == h.rule)?;
                let speaks = match e.kind {
                    "tone" => r.tone.as_deref() == Some(e.label.as_str()),
                    _ => r.intent.as_deref() == Some(e.label.as_str()),
                };
                speaks.then(|| (h, r.evidence.unwrap_or(0.0) * f64::from(h.count)))
            })
            .collect();
        if !shares.is_empty() {
            let n = shares.len();
            let _ = write!(
                line,
                "; {n} hit{} not in the table",
                if n == 1 { "" } else { "s" }
            );
            let strongest = |sign: f64| {
                shares
                    .iter()
                    .filter(|(_, s)| *s * sign > 0.0)
                    .max_by(|a, b| (a.1 * sign).total_cmp(&(b.1 * sign)))
            };
            for (word, sign) in [("for", 1.0), ("against", -1.0)] {
                if let Some((h, s)) = strongest(sign) {
                    let _ = write!(
                        line,
                        ", strongest {word} {} {:?} {}",
                        h.rule,
                        h.matched.as_str(),
                        signed2(*s)
                    );
                }
            }
        }
        line.push(')');
        let _ = writeln!(out, "{line}");
    }
}

/// Each group cap that changed the score, and the score after it.
fn write_caps(out: &mut String, v: &Verdict) {
    if v.caps.is_empty() {
        return;
    }
    out.push('\n');
    let mut score: f64 = v.hits.iter().map(|h| h.weight).sum();
    for c in &v.caps {
        score += c.capped - c.raw;
        let _ = writeln!(
            out,
            "cap: group {} added {:.1}, capped to {:.1} ({}) -> score {score:.1}",
            c.group,
            c.raw,
            c.capped,
            signed(c.capped - c.raw)
        );
    }
}

/// The verdict with every hit and the rule behind it, for machines.
pub fn explain_json(v: &Verdict, rules: &RuleSet, th: &Thresholds) -> serde_json::Value {
    let hits: Vec<serde_json::Value> = v
        .hits
        .iter()
        .map(|h| {
            let rule = rules.rules().iter().find(|r| r.id == h.rule);
            serde_json::json!({
                "rule": h.rule,
                "target": h.target,
                "matched": h.matched,
                "count": h.count,
                "weight": h.weight,
                "tone": rule.and_then(|r| r.tone.clone()),
                "intent": rule.and_then(|r| r.intent.clone()),
                "evidence": rule.and_then(|r| r.evidence).map(|e| e * f64::from(h.count)),
                "group": rule.and_then(|r| r.group).map(|g| rules.groups()[g].id.clone()),
                "defined_at": rule.map(|r| r.origin.clone()),
            })
        })
        .collect();
    serde_json::json!({
        "priority": v.priority.as_str(),
        "score": v.score,
        "thresholds": {"urgent": th.urgent, "high": th.high, "normal": th.normal},
        "tones": v.tones,
        "intents": v.intents,
        "hits": hits,
        "caps": v.caps,
        "evidence": v.evidence,
        "no_evidence": th.no_evidence.as_str(),
    })
}
