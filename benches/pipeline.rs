//! Benchmarks against the real stack (Dovecot + SMTP on loopback), run with `cargo bench`:
//!
//! - latency: one email at a time delivered over LMTP while the daemon waits in IDLE; time from
//!   the end of delivery until the acknowledgement has been accepted by the SMTP server and
//!   delivered into the customer's mailbox (the test server delivers over LMTP before it answers
//!   250 and logs the message). p50/p90/p99/max over N emails.
//! - backlog: M emails waiting before the daemon starts; emails/s from start until all are
//!   recorded and flagged, acknowledgements/s until all are sent, and the daemon's peak RSS
//!   (VmHWM), for two backlog sizes so growth with size is visible.
//!
//! Environment: BENCH_LATENCY_EMAILS (default 60), BENCH_BACKLOG (default "1000,3000").

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/daemon/mod.rs"]
mod daemon;

use std::time::{Duration, Instant};

use common::MailStack;
use daemon::{Daemon, Target, count, customer_email, wait_until, write_config};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn latency(n: usize) {
    let stack = MailStack::start();
    let cfg = write_config(
        &Target::of(&stack),
        "",
        "circuit_breaker_per_minute = 100000",
        "",
    );
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

fn backlog(m: usize) {
    let stack = MailStack::start();
    let cfg = write_config(
        &Target::of(&stack),
        "",
        "circuit_breaker_per_minute = 100000",
        "",
    );
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
        "backlog of {m}: triaged+flagged in {:.2} s = {:.0} emails/s; all acks sent in {:.2} s = {:.0} acks/s; peak RSS {:.1} MiB",
        triage_time.as_secs_f64(),
        m as f64 / triage_time.as_secs_f64(),
        send_time.as_secs_f64(),
        m as f64 / send_time.as_secs_f64(),
        hwm as f64 / 1024.0
    );
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
    for m in env_or("BENCH_BACKLOG", "1000,3000")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
    {
        backlog(m);
    }
}
