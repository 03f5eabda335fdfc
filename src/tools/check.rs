//! `triaged check`: a configuration that loads, summed up in a line, then a line per mailbox
//! (when there are several), per digest (its next time) and for alerts. The problems of one
//! that does not load are printed by the loader's caller.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{Config, MailboxConfig};

/// What `triaged check` prints for the loaded configuration `c` read from `path`, as of `now`
/// (the digests' next times).
pub fn report(path: &Path, c: &Config, now: i64) -> String {
    let followups: Vec<&str> = c
        .followups
        .enabled()
        .into_iter()
        .map(|f| f.as_str())
        .collect();
    let clock = if c.sla.business_hours {
        format!(
            "business hours in {}",
            c.sla.calendar.time_zone().iana_name().unwrap_or("?")
        )
    } else {
        "round-the-clock SLA (no [sla])".to_string()
    };
    let mailboxes = match c.mailboxes.as_slice() {
        [one] => format!("mailbox {}", place(one)),
        all => format!("{} mailboxes", all.len()),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: OK ({} rules in {} files, template {:?}, follow-ups: {}, {clock}, {mailboxes})",
        path.display(),
        c.rules.len(),
        c.rule_files.len(),
        c.ack.template,
        or_none(&followups, ", ", "none"),
    );
    if c.mailboxes.len() > 1 {
        for m in &c.mailboxes {
            let from = m.from.as_ref().unwrap_or(&c.smtp.from);
            let _ = writeln!(
                out,
                "  mailbox {:?} {}{}: for {}, answered from {from}",
                m.name,
                place(m),
                m.sent_folder
                    .as_ref()
                    .map(|s| format!(" (sent: {s})"))
                    .unwrap_or_default(),
                m.address,
            );
        }
    }
    for d in &c.digests {
        let next = d.next_send(now);
        let _ = writeln!(
            out,
            "  digest {:?} to {}: next {}",
            d.name,
            d.to.join(", "),
            crate::sla::to_ts(next)
                .to_zoned(d.schedule.tz.clone())
                .strftime("%a %Y-%m-%d %H:%M %Z")
        );
    }
    for t in &c.routing.teams {
        let routes: Vec<String> = t
            .rules
            .iter()
            .map(|r| format!("rule {r}"))
            .chain(t.intents.iter().map(|i| format!("intent {i}")))
            .chain(t.default.then(|| "the rest (default)".to_string()))
            .collect();
        let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "  team {:?} ({}): {}",
            t.name,
            t.staff.join(", "),
            or_none(&routes, ", ", "re-routed only")
        );
    }
    if !c.routing.asks.is_empty() {
        let ids: Vec<&str> = c.routing.asks.iter().map(|a| a.id.as_str()).collect();
        let _ = writeln!(out, "  questions: {}", ids.join(", "));
    }
    if let Some(a) = &c.alerts {
        let rules: Vec<&str> = c
            .rules
            .rules()
            .iter()
            .filter(|r| r.alert)
            .map(|r| r.id.as_str())
            .collect();
        let intents: Vec<&str> = a.intents.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "  alerts to {}: rules {} and intents {}; at most {} an hour; health alerts {}",
            a.to.join(", "),
            or_none(&rules, ", ", "-"),
            or_none(&intents, ", ", "-"),
            a.max_per_hour,
            if a.health.enabled { "on" } else { "off" }
        );
    }
    out
}

/// Where a mailbox is read: `user@host:port/folder,folder`.
fn place(m: &MailboxConfig) -> String {
    format!(
        "{}@{}:{}/{}",
        m.username,
        m.host,
        m.port,
        m.folders.join(",")
    )
}

/// The items joined, or `none` when there are none.
fn or_none(items: &[&str], sep: &str, none: &str) -> String {
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(sep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> (std::path::PathBuf, Config) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/triaged.toml");
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
        (path, c)
    }

    #[test]
    fn the_example_config_is_summed_up_with_its_digest_and_alerts() {
        let (path, c) = example();
        // 2026-01-05 10:00 UTC, a Monday.
        let out = report(&path, &c, 1_767_607_200);
        let lines: Vec<&str> = out.lines().collect();
        let first = format!(
            "{}: OK ({} rules in {} files, template {:?}, follow-ups: ",
            path.display(),
            c.rules.len(),
            c.rule_files.len(),
            c.ack.template
        );
        assert!(lines[0].starts_with(&first), "{out}");
        assert!(
            lines[0].ends_with(&format!(", mailbox {})", place(c.mailbox()))),
            "{out}"
        );
        // One mailbox: no line per mailbox; then each digest, each team, the questions and
        // the alerts.
        assert_eq!(
            lines.len(),
            1 + c.digests.len() + c.routing.teams.len() + 1 + 1,
            "{out}"
        );
        assert!(
            out.contains("  team \"billing\" (alice@example.com): intent billing, intent refund\n"),
            "{out}"
        );
        assert!(out.contains("the rest (default)"), "{out}");
        for (line, d) in lines[1..].iter().zip(&c.digests) {
            assert!(
                line.starts_with(&format!("  digest {:?} to ", d.name)) && line.contains(": next "),
                "{out}"
            );
        }
        assert!(lines[lines.len() - 1].starts_with("  alerts to "), "{out}");
        assert!(out.ends_with('\n'), "{out:?}");
    }

    #[test]
    fn empty_lists_read_as_none_or_a_dash() {
        assert_eq!(or_none(&[], ", ", "none"), "none");
        assert_eq!(or_none(&["a", "b"], ", ", "-"), "a, b");
    }
}
