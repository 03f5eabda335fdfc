//! Process-wide counters and gauges, and their Prometheus text exposition (format 0.0.4).
//!
//! [`Metrics`] is a cheap clonable handle: the pipeline, the outbox and the IMAP watchers each
//! hold one and bump it as things happen. Figures that live in the store (outbox depth, open
//! tickets) are not counted here: the scrape reads them fresh ([`LiveFacts`]) and
//! [`Metrics::render`] prints both.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Upper bounds (seconds) of the acknowledgement-latency histogram buckets.
pub const ACK_LATENCY_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// How an IMAP watcher waits for new mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitMode {
    /// The server pushes new mail (IMAP IDLE).
    Idle,
    /// The server has no IDLE: we poll.
    Poll,
}

/// Figures read from the store at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveFacts {
    /// Outbox rows waiting to be sent (pending, due or not), by kind (`ack`, `holding`, ...).
    pub outbox_depth: BTreeMap<String, u64>,
    /// How long the oldest pending row that is due has waited, in seconds (0: none is due).
    pub oldest_due_seconds: i64,
    /// Tickets not closed, by priority.
    pub open_tickets: BTreeMap<String, u64>,
    /// When the daemon started, seconds since the Unix epoch.
    pub start_time: i64,
}

/// The metrics registry. Clones share the same figures.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: Mutex<BTreeMap<String, u64>>,
    triaged: Mutex<BTreeMap<String, u64>>,
    skipped: Mutex<BTreeMap<String, u64>>,
    send_failures: Mutex<BTreeMap<String, u64>>,
    rule_hits: Mutex<BTreeMap<String, u64>>,
    reloads: Mutex<BTreeMap<String, u64>>,
    ack_latency: Mutex<Histogram>,
    imap: Mutex<BTreeMap<String, Imap>>,
}

/// What an IMAP source last reported.
#[derive(Debug, Clone, Copy, Default)]
struct Imap {
    connected: bool,
    mode: Option<WaitMode>,
}

/// Per-bucket (not cumulative) counts; the last slot counts what exceeds every bound.
#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; ACK_LATENCY_BUCKETS.len() + 1],
    /// In microseconds: an integer sum prints without float noise (404.45, not 404.4500000001).
    sum_micros: u64,
    count: u64,
}

/// A counter lock. A panic while holding it cannot leave a half-updated number behind, so a
/// poisoned lock is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bump(family: &Mutex<BTreeMap<String, u64>>, label: &str) {
    let mut map = lock(family);
    match map.get_mut(label) {
        Some(n) => *n += 1,
        None => {
            map.insert(label.to_string(), 1);
        }
    }
}

/// The priorities, listed at 0 from the start (known label values), so a rate over them works
/// before the first event.
const PRIORITIES: [&str; 4] = ["urgent", "high", "normal", "low"];

impl Metrics {
    /// An email was fetched from `mailbox` (the IMAP folder).
    pub fn email_seen(&self, mailbox: &str) {
        bump(&self.inner.seen, mailbox);
    }

    /// An email was triaged at `priority` (`urgent`, `high`, `normal`, `low`).
    pub fn email_triaged(&self, priority: &str) {
        bump(&self.inner.triaged, priority);
    }

    /// An email was not triaged, for `reason` (the store's skip reason).
    pub fn email_skipped(&self, reason: &str) {
        bump(&self.inner.skipped, reason);
    }

    /// An acknowledgement went out `latency` after the customer's email arrived.
    pub fn ack_sent(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        let mut h = lock(&self.inner.ack_latency);
        let slot = ACK_LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(ACK_LATENCY_BUCKETS.len());
        h.counts[slot] += 1;
        h.sum_micros = h
            .sum_micros
            .saturating_add(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        h.count += 1;
    }

    /// A send failed; `kind` is `transient`, `pushback` or `permanent`.
    pub fn send_failed(&self, kind: &str) {
        bump(&self.inner.send_failures, kind);
    }

    /// Scoring rule `rule_id` matched an email.
    pub fn rule_hit(&self, rule_id: &str) {
        bump(&self.inner.rule_hits, rule_id);
    }

    /// IMAP source `source` (connected or lost) changed state.
    pub fn imap_state(&self, source: &str, connected: bool) {
        lock(&self.inner.imap)
            .entry(source.to_string())
            .or_default()
            .connected = connected;
    }

    /// IMAP source `source` waits for mail with IDLE or by polling.
    pub fn imap_wait_mode(&self, source: &str, mode: WaitMode) {
        lock(&self.inner.imap)
            .entry(source.to_string())
            .or_default()
            .mode = Some(mode);
    }

    /// A configuration reload was applied (`ok`) or refused.
    pub fn reload(&self, ok: bool) {
        bump(&self.inner.reloads, if ok { "ok" } else { "refused" });
    }

    /// IMAP sources that have reported and are not connected now, for a health check.
    pub fn disconnected_sources(&self) -> Vec<String> {
        lock(&self.inner.imap)
            .iter()
            .filter(|(_, s)| !s.connected)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every family in the Prometheus text exposition format 0.0.4, with `live` from the store.
    pub fn render(&self, live: &LiveFacts) -> String {
        let mut out = String::with_capacity(4096);
        self.render_traffic(&mut out);
        self.render_imap(&mut out);
        self.render_live(&mut out, live);
        out
    }

    /// Emails seen, triaged and skipped, acknowledgements and their latency, send failures,
    /// rule hits.
    fn render_traffic(&self, out: &mut String) {
        let i = &self.inner;
        counter(
            out,
            "triaged_emails_seen_total",
            "Emails fetched from IMAP, by folder.",
            "mailbox",
            &lock(&i.seen),
            &[],
        );
        counter(
            out,
            "triaged_emails_triaged_total",
            "Emails scored, by the priority they got.",
            "priority",
            &lock(&i.triaged),
            &PRIORITIES,
        );
        counter(
            out,
            "triaged_emails_skipped_total",
            "Emails not triaged, by reason.",
            "reason",
            &lock(&i.skipped),
            &[],
        );
        let acks = lock(&i.ack_latency);
        family(
            out,
            "triaged_acks_sent_total",
            "Acknowledgements sent.",
            "counter",
        );
        let _ = writeln!(out, "triaged_acks_sent_total {}", acks.count);
        histogram(
            out,
            "triaged_ack_latency_seconds",
            "Time from the customer's email arriving to its acknowledgement being sent.",
            &acks,
        );
        drop(acks);
        counter(
            out,
            "triaged_send_failures_total",
            "Failed SMTP sends, by kind (transient, pushback, permanent, account: our login refused).",
            "kind",
            &lock(&i.send_failures),
            &["transient", "pushback", "permanent", "account"],
        );
        counter(
            out,
            "triaged_rule_hits_total",
            "Scoring rule matches, by rule id.",
            "rule",
            &lock(&i.rule_hits),
            &[],
        );
    }

    /// Per IMAP source: connected, and waiting in IDLE or polling.
    fn render_imap(&self, out: &mut String) {
        let i = &self.inner;
        let imap = lock(&i.imap).clone();
        family(
            out,
            "triaged_imap_connected",
            "1 while the IMAP source is connected, 0 otherwise.",
            "gauge",
        );
        for (source, s) in &imap {
            sample(
                out,
                "triaged_imap_connected",
                "source",
                source,
                u8::from(s.connected),
            );
        }
        family(
            out,
            "triaged_imap_idle",
            "1 while the IMAP source waits with IDLE, 0 while it polls.",
            "gauge",
        );
        for (source, s) in &imap {
            if let Some(mode) = s.mode {
                sample(
                    out,
                    "triaged_imap_idle",
                    "source",
                    source,
                    u8::from(mode == WaitMode::Idle),
                );
            }
        }
    }

    /// What the store knows now (outbox, open tickets), reloads and the start time.
    fn render_live(&self, out: &mut String, live: &LiveFacts) {
        let i = &self.inner;
        gauge_family(
            out,
            "triaged_outbox_depth",
            "Outbox rows waiting to be sent, by kind.",
            "kind",
            &live.outbox_depth,
            &["ack"],
        );
        family(
            out,
            "triaged_outbox_oldest_due_seconds",
            "How long the oldest due outbox row has waited (0: none is due).",
            "gauge",
        );
        let _ = writeln!(
            out,
            "triaged_outbox_oldest_due_seconds {}",
            live.oldest_due_seconds.max(0)
        );
        gauge_family(
            out,
            "triaged_open_tickets",
            "Tickets not closed, by priority.",
            "priority",
            &live.open_tickets,
            &PRIORITIES,
        );
        counter(
            out,
            "triaged_config_reloads_total",
            "Configuration reloads, by result (ok, refused).",
            "result",
            &lock(&i.reloads),
            &["ok", "refused"],
        );
        family(
            out,
            "triaged_start_time_seconds",
            "When the daemon started, seconds since the Unix epoch.",
            "gauge",
        );
        let _ = writeln!(out, "triaged_start_time_seconds {}", live.start_time);
    }
}

/// `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One labelled sample.
fn sample(out: &mut String, name: &str, label: &str, value: &str, n: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape_label(value));
}

/// A counter family with one label; `known` values appear at 0 until counted.
fn counter(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &BTreeMap<String, u64>,
    known: &[&str],
) {
    family(out, name, help, "counter");
    labelled(out, name, label, values, known);
}

/// A gauge family with one label; `known` values appear at 0 when absent.
fn gauge_family(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &BTreeMap<String, u64>,
    known: &[&str],
) {
    family(out, name, help, "gauge");
    labelled(out, name, label, values, known);
}

fn labelled(
    out: &mut String,
    name: &str,
    label: &str,
    values: &BTreeMap<String, u64>,
    known: &[&str],
) {
    let mut all: BTreeMap<&str, u64> = known.iter().map(|k| (*k, 0)).collect();
    all.extend(values.iter().map(|(k, v)| (k.as_str(), *v)));
    for (value, n) in all {
        sample(out, name, label, value, n);
    }
}

/// A histogram: cumulative `_bucket` lines up to `+Inf`, then `_sum` and `_count`.
fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    family(out, name, help, "histogram");
    let mut cumulative = 0;
    for (le, n) in ACK_LATENCY_BUCKETS.iter().zip(&h.counts) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum_micros as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// A label value as the exposition format quotes it: backslash, double quote and newline
/// escaped.
fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn label_values_are_escaped() {
        for (raw, escaped) in [
            ("plain", "plain"),
            (r"back\slash", r"back\\slash"),
            ("say \"hi\"", r#"say \"hi\""#),
            ("two\nlines", r"two\nlines"),
            ("ünïcode ok", "ünïcode ok"),
        ] {
            assert_eq!(escape_label(raw), escaped, "{raw:?}");
        }
        let m = Metrics::default();
        m.email_seen("IN\"BOX\\\n");
        let text = m.render(&LiveFacts::default());
        assert!(
            text.contains(r#"triaged_emails_seen_total{mailbox="IN\"BOX\\\n"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_inf() {
        let m = Metrics::default();
        for ms in [50, 100, 300, 2_000, 2_000, 400_000] {
            m.ack_sent(Duration::from_millis(ms));
        }
        let text = m.render(&LiveFacts::default());
        let buckets = lines_of(&text, "triaged_ack_latency_seconds_bucket");
        assert_eq!(
            buckets,
            [
                r#"triaged_ack_latency_seconds_bucket{le="0.1"} 2"#,
                r#"triaged_ack_latency_seconds_bucket{le="0.25"} 2"#,
                r#"triaged_ack_latency_seconds_bucket{le="0.5"} 3"#,
                r#"triaged_ack_latency_seconds_bucket{le="1"} 3"#,
                r#"triaged_ack_latency_seconds_bucket{le="2.5"} 5"#,
                r#"triaged_ack_latency_seconds_bucket{le="5"} 5"#,
                r#"triaged_ack_latency_seconds_bucket{le="10"} 5"#,
                r#"triaged_ack_latency_seconds_bucket{le="30"} 5"#,
                r#"triaged_ack_latency_seconds_bucket{le="60"} 5"#,
                r#"triaged_ack_latency_seconds_bucket{le="300"} 5"#,
                r#"triaged_ack_latency_seconds_bucket{le="+Inf"} 6"#,
            ]
        );
        assert_eq!(
            lines_of(&text, "triaged_ack_latency_seconds_count"),
            ["triaged_ack_latency_seconds_count 6"]
        );
        assert_eq!(
            lines_of(&text, "triaged_ack_latency_seconds_sum"),
            ["triaged_ack_latency_seconds_sum 404.45"]
        );
        assert_eq!(
            lines_of(&text, "triaged_acks_sent_total"),
            ["triaged_acks_sent_total 6"]
        );
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let m = Metrics::default();
        m.email_seen("INBOX");
        m.email_triaged("urgent");
        m.email_skipped("too_large");
        m.ack_sent(Duration::from_secs(1));
        m.send_failed("transient");
        m.rule_hit("outage");
        m.imap_state("INBOX", true);
        m.imap_wait_mode("INBOX", WaitMode::Idle);
        m.reload(true);
        let live = LiveFacts {
            outbox_depth: [("ack".to_string(), 3)].into(),
            oldest_due_seconds: 12,
            open_tickets: [("high".to_string(), 2)].into(),
            start_time: 1_800_000_000,
        };
        let text = m.render(&live);
        let mut helped = Vec::new();
        let mut typed: BTreeMap<String, String> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(!typed.contains_key(name), "HELP after TYPE for {name}");
                helped.push(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap_or_default().to_string();
                assert_eq!(helped.last(), Some(&name), "TYPE without HELP: {line}");
                typed.insert(name, parts.next().unwrap_or_default().to_string());
            } else {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let family = typed
                    .iter()
                    .rev()
                    .find(|(f, kind)| {
                        name == f.as_str()
                            || (kind.as_str() == "histogram"
                                && ["_bucket", "_sum", "_count"]
                                    .iter()
                                    .any(|s| name == format!("{f}{s}")))
                    })
                    .map(|(f, _)| f.clone());
                assert!(family.is_some(), "sample without HELP/TYPE: {line}");
                let value = line.rsplit(' ').next().unwrap_or_default();
                assert!(value.parse::<f64>().is_ok(), "bad value: {line}");
            }
        }
        for name in [
            "triaged_emails_seen_total",
            "triaged_emails_triaged_total",
            "triaged_emails_skipped_total",
            "triaged_acks_sent_total",
            "triaged_ack_latency_seconds",
            "triaged_send_failures_total",
            "triaged_rule_hits_total",
            "triaged_imap_connected",
            "triaged_imap_idle",
            "triaged_outbox_depth",
            "triaged_outbox_oldest_due_seconds",
            "triaged_open_tickets",
            "triaged_config_reloads_total",
            "triaged_start_time_seconds",
        ] {
            assert!(typed.contains_key(name), "missing family {name}");
        }
        assert_eq!(typed.len(), 14, "{typed:?}");
        for want in [
            r#"triaged_emails_triaged_total{priority="urgent"} 1"#,
            r#"triaged_emails_triaged_total{priority="low"} 0"#,
            r#"triaged_send_failures_total{kind="permanent"} 0"#,
            r#"triaged_imap_connected{source="INBOX"} 1"#,
            r#"triaged_imap_idle{source="INBOX"} 1"#,
            r#"triaged_outbox_depth{kind="ack"} 3"#,
            "triaged_outbox_oldest_due_seconds 12",
            r#"triaged_open_tickets{priority="high"} 2"#,
            r#"triaged_open_tickets{priority="urgent"} 0"#,
            r#"triaged_config_reloads_total{result="ok"} 1"#,
            "triaged_start_time_seconds 1800000000",
        ] {
            assert!(
                text.lines().any(|l| l == want),
                "missing {want:?} in\n{text}"
            );
        }
    }

    #[test]
    fn imap_sources_report_connection_and_wait_mode() {
        let m = Metrics::default();
        m.imap_state("INBOX", true);
        m.imap_wait_mode("INBOX", WaitMode::Poll);
        m.imap_state("Sent", false);
        assert_eq!(m.disconnected_sources(), ["Sent"]);
        let text = m.render(&LiveFacts::default());
        assert!(text.contains("triaged_imap_idle{source=\"INBOX\"} 0\n"));
        // A source that never said how it waits has no idle sample.
        assert!(!text.contains("triaged_imap_idle{source=\"Sent\"}"));
        assert!(text.contains("triaged_imap_connected{source=\"Sent\"} 0\n"));
        m.imap_state("Sent", true);
        assert!(m.disconnected_sources().is_empty());
    }

    #[test]
    fn clones_share_counters() {
        let m = Metrics::default();
        let other = m.clone();
        other.email_seen("INBOX");
        m.email_seen("INBOX");
        assert!(
            m.render(&LiveFacts::default())
                .contains("triaged_emails_seen_total{mailbox=\"INBOX\"} 2\n")
        );
    }
}
