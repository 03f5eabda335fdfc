//! Benchmarks against the real stack (Dovecot + SMTP on loopback), run with `cargo bench`:
//!
//! - latency: one email at a time delivered over LMTP while the daemon waits in IDLE; time from
//!   the end of delivery until the acknowledgement has been accepted by the SMTP server and
//!   delivered into the customer's mailbox (the test server delivers over LMTP before it answers
//!   250 and logs the message). p50/p90/p99/max over N emails. With teams and a clarifying
//!   question configured (`[[team]]`, `[[ask]]`): each email is routed and its acknowledgement
//!   asks one.
//! - backlog: M emails waiting before the daemon starts; emails/s from start until all are
//!   recorded and flagged, acknowledgements/s until all are sent, and the daemon's peak RSS
//!   (VmHWM), for two backlog sizes so growth with size is visible; each size twice: with the
//!   test SMTP server delivering every acknowledgement over LMTP before it answers, and as a
//!   sink that only records it (the daemon's own sending rate).
//! - triage over a full store (issue 15): the same backlog measure, M emails waiting, with a
//!   store that already holds 0, 20k or 100k emails of history (written with direct SQL
//!   inserts: `support/bigstore.rs` says what the rows are), so the cost of history shows.
//! - idle: the daemon's CPU time per minute while no mail arrives, over an empty store and a
//!   100k one: its timers (health check every 15 s, snooze check every minute, the outbox's
//!   look at what is due) plus a Prometheus scrape of `/metrics` and a load of the status page
//!   every 15 s. CPU time is utime + stime of the process from /proc (10 ms ticks), so the
//!   figure is read over a whole minute. Also: one digest built over the store, in process,
//!   and the time `triaged status`, `triaged tickets` and `triaged tickets --state open` take.
//!
//! Environment: BENCH_LATENCY_EMAILS (default 60), BENCH_BACKLOG (default "1000,3000"),
//! BENCH_STORE (history sizes, default "0,20000,100000"), BENCH_STORE_EMAILS (M, default 2000),
//! BENCH_IDLE (history sizes, default "0,100000"), BENCH_IDLE_SECS (default 60). An empty list
//! skips that part. BENCH_CORRECTIONS=0 has the daemon of the latency, backlog and store parts read no
//! keywords back (`[flags] corrections = false`), to see what reading staff's corrections
//! costs. BENCH_FOLDERS=1 has the latency part file each email into a folder per priority
//! (`[flags.folders]`), which corrections then look into (staff's moves).

#[path = "support/bigstore.rs"]
mod bigstore;
// The harness of the integration tests (tests/it), of which this uses a part.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/daemon/mod.rs"]
mod daemon;

use std::time::{Duration, Instant};

use common::MailStack;
use daemon::{Daemon, DaemonConfig, count, customer_email, wait_until};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// `[flags] corrections` for the latency and backlog parts (BENCH_CORRECTIONS).
fn corrections() -> bool {
    env_or("BENCH_CORRECTIONS", "1") != "0"
}

/// `[flags.folders]` for every priority in the latency part (BENCH_FOLDERS=1): each email is
/// filed, and with corrections on the priority folders are looked into after each sync.
fn folders() -> bool {
    env_or("BENCH_FOLDERS", "0") == "1"
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Teams and clarifying questions (issue 17) for the latency run: the email it sends
/// ("Cannot log in") goes to the technical team by its intent, and its acknowledgement asks
/// one question, rendered when the acknowledgement is written.
const ROUTING: &str = r#"
[[team]]
name = "technical"
description = "our technical team, who can look into the fault itself"
staff = ["staff@example.test"]
intents = ["access", "outage"]

[[team]]
name = "general"
description = "our support team"
staff = ["staff@example.test"]
default = true

[[ask]]
id = "sign-in-address"
question = "Which address do you sign in with, {{ customer_name }}?"
intents = ["access"]
unless = ['[\w.+-]+@[\w-]+\.[\w.]+']

[[ask]]
id = "since-when"
question = "What were you doing when it stopped working, and since when?"
intents = ["outage"]
unless = ['(?i)\bsince\b']
"#;

fn latency(n: usize) {
    let stack = MailStack::start();
    let mut cfg = DaemonConfig::of(&stack)
        .circuit_breaker(100_000)
        .raw(ROUTING)
        .set("flags", "corrections", corrections());
    if folders() {
        for p in ["urgent", "high", "normal", "low"] {
            cfg = cfg.set("flags.folders", p, format!("Triage/{p}"));
        }
    }
    let cfg = cfg.write();
    let d = Daemon::start(&cfg);
    assert!(
        wait_until(Duration::from_secs(30), || d
            .log_text()
            .contains("IMAP connected")),
        "{}",
        d.log_text()
    );
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let raw = customer_email(
            &format!("customer+lat{i}@example.test"),
            &format!("lat-{i}@customers.example.test"),
            "Cannot log in",
            "I cannot log in since this morning. Please help.",
        );
        let before = stack.smtp_received().len();
        let start = Instant::now();
        stack.deliver("support@example.test", &raw);
        let ok = wait_until(Duration::from_secs(10), || {
            stack.smtp_received().len() > before
        });
        assert!(ok, "no acknowledgement for email {i}:\n{}", d.log_text());
        samples.push(start.elapsed());
    }
    // The run measured what it means to: routed, with the question decided.
    let routed = count(
        &cfg,
        "SELECT count(*) FROM tickets t JOIN messages m ON m.ticket_id = t.id
         WHERE t.team = 'technical' AND m.asks = 'sign-in-address'",
    );
    assert_eq!(routed, n as i64, "not every email was routed and asked");
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "latency over IDLE, {n} emails: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO))
    );
}

fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `sink`: the SMTP server records each acknowledgement and delivers it nowhere, so the
/// acknowledgement rate is the daemon's, not the test server's LMTP delivery.
fn backlog(m: usize, sink: bool) {
    let stack = MailStack::start();
    if sink {
        stack.set_smtp_mode("sink");
    }
    let cfg = DaemonConfig::of(&stack)
        .circuit_breaker(100_000)
        .set("flags", "corrections", corrections())
        .write();
    let mails: Vec<Vec<u8>> = (0..m)
        .map(|i| {
            customer_email(
                &format!("customer+b{i}@example.test"),
                &format!("backlog-{i}@customers.example.test"),
                &format!("Refund for order {i}"),
                &"I was charged twice for my order and want a refund. The page says error 500. "
                    .repeat(20),
            )
        })
        .collect();
    stack.deliver_many("support@example.test", &mails);

    let start = Instant::now();
    let mut d = Daemon::start(&cfg);
    let pid = d.child.as_ref().map(|c| c.id()).unwrap_or(0);
    let recorded = wait_until(Duration::from_secs(600), || {
        count(
            &cfg,
            "SELECT count(*) FROM messages WHERE flags_state = 'done'",
        ) == m as i64
    });
    assert!(recorded, "backlog not recorded:\n{}", d.log_text());
    let triage_time = start.elapsed();
    let sent = wait_until(Duration::from_secs(600), || {
        count(&cfg, "SELECT count(*) FROM outbox WHERE state = 'sent'") == m as i64
    });
    assert!(sent, "acks not sent:\n{}", d.log_text());
    let send_time = start.elapsed();
    let hwm = vm_hwm_kb(pid);
    assert!(d.terminate().success());
    println!(
        "backlog of {m}{}: triaged+flagged in {:.2} s = {:.0} emails/s; all acks sent in {:.2} s = {:.0} acks/s; peak RSS {:.1} MiB",
        if sink { " (SMTP server a sink)" } else { "" },
        triage_time.as_secs_f64(),
        m as f64 / triage_time.as_secs_f64(),
        send_time.as_secs_f64(),
        m as f64 / send_time.as_secs_f64(),
        hwm as f64 / 1024.0
    );
}

/// The largest message row id in the store at `path` (0 when empty).
fn max_row(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
        r.get(0)
    })
    .expect("max id")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Triage rate with `history` emails already in the store: `m` emails waiting at start (every
/// fourth from a customer the history knows), from daemon start until all are recorded and
/// flagged.
fn store_triage(history: usize, m: usize) {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack)
        .circuit_breaker(100_000)
        .set("flags", "corrections", corrections())
        .write();
    let filled = Instant::now();
    bigstore::fill(&cfg.store, history, now_secs());
    let fill_time = filled.elapsed();
    let base = max_row(&cfg.store);
    let mails: Vec<Vec<u8>> = (0..m)
        .map(|i| {
            let from = if i % 4 == 0 && history >= 3 {
                format!("c{}@customers.example", (i * 7) % (history / 3))
            } else {
                format!("customer+h{i}@example.test")
            };
            customer_email(
                &from,
                &format!("history-{i}@customers.example.test"),
                &format!("Refund for order {i}"),
                &"I was charged twice for my order and want a refund. The page says error 500. "
                    .repeat(20),
            )
        })
        .collect();
    stack.deliver_many("support@example.test", &mails);

    let start = Instant::now();
    let mut d = Daemon::start(&cfg);
    let pid = d.child.as_ref().map(|c| c.id()).unwrap_or(0);
    let done = format!("SELECT count(*) FROM messages WHERE id > {base} AND flags_state = 'done'");
    let recorded = wait_until(Duration::from_secs(1800), || count(&cfg, &done) == m as i64);
    assert!(recorded, "not all recorded:\n{}", d.log_text());
    let t = start.elapsed();
    let hwm = vm_hwm_kb(pid);
    assert!(d.terminate().success());
    println!(
        "triage with {history} emails in the store (filled in {:.1} s): {m} emails in {:.2} s = {:.0} emails/s; peak RSS {:.1} MiB",
        fill_time.as_secs_f64(),
        t.as_secs_f64(),
        m as f64 / t.as_secs_f64(),
        hwm as f64 / 1024.0
    );
}

/// CPU time (user + system) the process `pid` has used, in ms (/proc counts in 10 ms ticks).
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which ends with the last ')': state is the first,
    // utime the 12th and stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) * 10
}

/// GET `path` from the daemon's status server; returns the status and the time it took.
fn http_get(port: u16, path: &str) -> (u16, Duration) {
    use std::io::{Read, Write};
    let start = Instant::now();
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, start.elapsed());
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, start.elapsed())
}

/// One digest built over the store at `path` (snapshot, build, render), best of three, in ms.
fn digest_ms(path: &std::path::Path) -> f64 {
    let mut config = triaged::config::Config::load(&daemon::repo().join("config/triaged.toml"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    config.store.path = path.to_path_buf();
    let store = triaged::store::Store::open(path).expect("store");
    let d = &config.digests[0];
    let now = now_secs();
    let from = triaged::digest::themes_period(d, now).0;
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let digest =
                triaged::notices::build_digest(&config, &store, d, now, from).expect("digest");
            triaged::notices::render_digest(&config.templates, &digest).expect("render");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .fold(f64::MAX, f64::min)
}

/// How long `triaged ARGS --config PATH` takes, process start included, best of three, in ms.
fn cli_ms(config: &std::path::Path, args: &str) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
                .args(args.split(' '))
                .arg("--config")
                .arg(config)
                .output()
                .expect("run triaged");
            assert!(out.status.success(), "{args}: {out:?}");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .fold(f64::MAX, f64::min)
}

/// The daemon's CPU time over `secs` seconds of no mail, over a store of `history` emails,
/// with `/metrics` and the status page fetched every 15 s.
fn idle(history: usize, secs: u64) {
    let stack = MailStack::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let cfg = DaemonConfig::of(&stack)
        .staff_alerts()
        .set("alerts.health", "enabled", true)
        .http(port)
        .write();
    bigstore::fill(&cfg.store, history, now_secs());
    let digest = digest_ms(&cfg.store);
    let mut d = Daemon::start(&cfg);
    let pid = d.child.as_ref().map(|c| c.id()).unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(60), || d
            .log_text()
            .contains("IMAP connected")),
        "{}",
        d.log_text()
    );
    // Past start-up (first health check, checkpoint, first IDLE).
    std::thread::sleep(Duration::from_secs(5));
    let before = cpu_ms(pid);
    let start = Instant::now();
    let (mut metrics, mut page) = (Duration::ZERO, Duration::ZERO);
    let mut scrapes = 0u32;
    while start.elapsed() < Duration::from_secs(secs) {
        let (s1, t1) = http_get(port, "/metrics");
        let (s2, t2) = http_get(port, "/");
        assert_eq!((s1, s2), (200, 200), "{}", d.log_text());
        metrics += t1;
        page += t2;
        scrapes += 1;
        let next = Duration::from_secs(15 * u64::from(scrapes));
        std::thread::sleep(next.saturating_sub(start.elapsed()));
    }
    let used = cpu_ms(pid) - before;
    let minutes = start.elapsed().as_secs_f64() / 60.0;
    let hwm = vm_hwm_kb(pid);
    assert!(d.terminate().success());
    let cli = ["status", "tickets", "tickets --state open"]
        .iter()
        .map(|args| format!("`{args}` {:.0} ms", cli_ms(&cfg.path, args)))
        .collect::<Vec<_>>()
        .join(", ");
    let ms = |t: Duration| t.as_secs_f64() * 1000.0 / f64::from(scrapes);
    // /proc counts in 10 ms ticks: none in the whole run is "under one tick".
    let cpu = if used == 0 {
        format!("under {:.0} ms", 10.0 / minutes)
    } else {
        format!("{:.0} ms", used as f64 / minutes)
    };
    println!(
        "idle over a store of {history} emails: {cpu} CPU per minute ({} s; /metrics {:.1} ms, status page {:.1} ms each, every 15 s); peak RSS {:.1} MiB; one digest {:.1} ms; {cli}",
        secs,
        ms(metrics),
        ms(page),
        hwm as f64 / 1024.0,
        digest
    );
}

fn sizes(name: &str, default: &str) -> Vec<usize> {
    env_or(name, default)
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run only when benched.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: usize = env_or("BENCH_LATENCY_EMAILS", "60").parse().unwrap_or(60);
    if n > 0 {
        latency(n);
    }
    for m in sizes("BENCH_BACKLOG", "1000,3000") {
        backlog(m, false);
        backlog(m, true);
    }
    let m: usize = env_or("BENCH_STORE_EMAILS", "2000").parse().unwrap_or(2000);
    for history in sizes("BENCH_STORE", "0,20000,100000") {
        store_triage(history, m);
    }
    let secs: u64 = env_or("BENCH_IDLE_SECS", "60").parse().unwrap_or(60);
    for history in sizes("BENCH_IDLE", "0,100000") {
        idle(history, secs);
    }
}
