//! Explanations of a verdict: a readable table (every hit with its weight and the running score,
//! the caps applied, the thresholds) and the same as JSON for machines. Pure formatting.

use std::fmt::Write;

use super::{RuleSet, Thresholds, Verdict};

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
    write_table(&mut out, &hit_rows(v, rules));
    write_evidence(&mut out, v);
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

/// Each label that rules with evidence spoke for, and whether it reached the bar.
fn write_evidence(out: &mut String, v: &Verdict) {
    if v.evidence.is_empty() {
        return;
    }
    out.push('\n');
    for e in &v.evidence {
        let _ = writeln!(
            out,
            "{} {}: evidence {:.2} {} {} ({})",
            e.kind,
            e.label,
            e.sum,
            if e.given { ">=" } else { "<" },
            super::EVIDENCE_BAR,
            if e.given { "given" } else { "not given" }
        );
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
