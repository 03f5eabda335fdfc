//! Sending discipline against the real stack: rate limits hold the outbox (urgent first) and
//! survive a restart; stale mail is never acknowledged; provider pushback pauses all sending
//! and it resumes without loss or duplicates.

mod common;
mod daemon;

use std::collections::BTreeSet;
use std::time::Duration;

use common::MailStack;
use daemon::{Daemon, DaemonConfig, Target, count, customer_email, sent, wait_until, write_config};

const WAIT: Duration = Duration::from_secs(30);

/// Add lines to the [smtp] section of a written config.
fn smtp_lines(cfg: &DaemonConfig, lines: &str) {
    let text = std::fs::read_to_string(&cfg.path).expect("read");
    let text = text.replacen(
        "timeout = \"10s\"\n",
        &format!("timeout = \"10s\"\n{lines}\n"),
        1,
    );
    std::fs::write(&cfg.path, text).expect("write");
}

fn urgent(i: usize) -> Vec<u8> {
    customer_email(
        &format!("customer+u{i}@example.test"),
        &format!("urgent-{i}@c"),
        "Site down",
        "The site is down and we are locked out. Fix it today!!!",
    )
}

fn normal(i: usize) -> Vec<u8> {
    customer_email(
        &format!("customer+n{i}@example.test"),
        &format!("normal-{i}@c"),
        "Invoice address",
        "How do I change my invoice address?",
    )
}

fn received_ids(stack: &MailStack) -> Vec<String> {
    stack
        .smtp_received()
        .iter()
        .map(|m| m["in_reply_to"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_the_outbox_and_sends_urgent_first() {
    let stack = MailStack::start();
    let cfg = write_config(&Target::of(&stack), "", "", "");
    smtp_lines(&cfg, "rate_limits = [{ max = 3, per = \"3s\" }]");
    // A backlog: normal mail first, urgent mail last.
    let mut mails: Vec<Vec<u8>> = (0..6).map(normal).collect();
    mails.extend((0..3).map(urgent));
    stack.deliver_many("support@example.test", &mails);

    let d = Daemon::start(&cfg);
    assert!(
        wait_until(WAIT, || stack.smtp_received().len() == 9),
        "{}",
        d.log_text()
    );
    let ids = received_ids(&stack);
    let first: BTreeSet<&str> = ids[..3].iter().map(String::as_str).collect();
    assert_eq!(
        first,
        BTreeSet::from(["<urgent-0@c>", "<urgent-1@c>", "<urgent-2@c>"]),
        "urgent first: {ids:?}"
    );
    // At most 3 in any 3-second window (server-side timestamps).
    let ts: Vec<f64> = stack
        .smtp_received()
        .iter()
        .map(|m| m["ts"].as_f64().unwrap_or_default())
        .collect();
    for w in ts.windows(4) {
        assert!(
            w[3] - w[0] >= 2.99,
            "4 sends within {:.3} s: {ts:?}",
            w[3] - w[0]
        );
    }
    assert!(
        d.log_text().contains("Sending held back") && d.log_text().contains("rate limit"),
        "{}",
        d.log_text()
    );
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        9,
        "no duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_counters_survive_a_restart() {
    let stack = MailStack::start();
    let cfg = write_config(&Target::of(&stack), "", "", "");
    smtp_lines(&cfg, "rate_limits = [{ max = 2, per = \"1h\" }]");
    let mut d = Daemon::start(&cfg);
    stack.deliver_many("support@example.test", &[normal(0), normal(1)]);
    assert!(
        wait_until(WAIT, || stack.smtp_received().len() == 2),
        "{}",
        d.log_text()
    );
    assert!(d.terminate().success());

    let d = Daemon::start(&cfg);
    stack.deliver("support@example.test", &normal(2));
    assert!(
        wait_until(WAIT, || d.log_text().contains("Sending held back")),
        "{}",
        d.log_text()
    );
    assert_eq!(
        stack.smtp_received().len(),
        2,
        "the third waits for the window"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["queue", "--config"])
        .arg(&cfg.path)
        .output()
        .expect("queue");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("rate limit: 2 of 2 sent in the last 1 hour"),
        "{text}"
    );
    assert!(
        text.contains("customer+n2@example.test") && text.contains("rate limit: next send in"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_backlog_gets_no_acknowledgements_and_is_all_flagged() {
    let stack = MailStack::start();
    let cfg = write_config(&Target::of(&stack), "", "max_age = \"2d\"", "");
    let old: Vec<Vec<u8>> = (0..300).map(normal).collect();
    // Arrived ten days before the test; the Date headers say today, which must not matter.
    let arrived = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(240);
    let internaldate = arrived.strftime("\"%d-%b-%Y %H:%M:%S +0000\"").to_string();
    stack
        .append_many("support@example.test", "INBOX", &old, Some(&internaldate))
        .await;
    stack.deliver("support@example.test", &urgent(0));

    let d = Daemon::start(&cfg);
    let settled = || {
        count(
            &cfg,
            "SELECT count(*) FROM messages WHERE flags_state = 'done'",
        ) == 301
    };
    assert!(
        wait_until(Duration::from_secs(60), settled),
        "{}",
        d.log_text()
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM messages WHERE ack = 'stale'"),
        300
    );
    assert!(
        wait_until(WAIT, || stack.smtp_received().len() == 1),
        "{}",
        d.log_text()
    );
    assert_eq!(
        received_ids(&stack),
        ["<urgent-0@c>"],
        "only the fresh email is acknowledged"
    );
    let support = stack.fetch_all("support@example.test", "INBOX").await;
    assert_eq!(
        support
            .iter()
            .filter(|m| m.flags.iter().any(|f| f.starts_with("triage/")))
            .count(),
        301
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_pushback_pauses_all_sending_then_resumes_without_loss_or_duplicates() {
    let stack = MailStack::start();
    let cfg = write_config(&Target::of(&stack), "", "", "");
    smtp_lines(&cfg, "pushback_pause = \"2s\"");
    stack.set_smtp_mode("ratelimit");
    stack.deliver_many(
        "support@example.test",
        &(0..5).map(normal).collect::<Vec<_>>(),
    );
    let d = Daemon::start(&cfg);

    // The provider says "slow down" twice; the second attempt comes only after the pause.
    assert!(
        wait_until(WAIT, || stack.smtp_refused_count() >= 2),
        "{}",
        d.log_text()
    );
    let refused = common_refused_ts(&stack);
    assert!(
        refused[1] - refused[0] >= 1.9,
        "paused between attempts: {refused:?}"
    );
    assert!(
        d.log_text()
            .contains("Provider pushback: pausing all sending"),
        "{}",
        d.log_text()
    );
    stack.set_smtp_mode("accept");

    assert!(
        wait_until(WAIT, || stack.smtp_received().len() == 5),
        "{}",
        d.log_text()
    );
    let ids = received_ids(&stack);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        5,
        "each once: {ids:?}"
    );
    assert_eq!(sent(&cfg), 5);
    // Pushback is not the message's fault: no row used up its attempts.
    assert_eq!(count(&cfg, "SELECT max(attempts) FROM outbox"), 1);
    assert!(
        wait_until(WAIT, || d.log_text().contains("Sending resumed")),
        "{}",
        d.log_text()
    );
}

fn common_refused_ts(stack: &MailStack) -> Vec<f64> {
    let text = std::fs::read_to_string(stack.dir.path().join("refused.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["ts"].as_f64())
        .collect()
}

/// What the daemon decided for the email with this Message-ID ('' while not recorded yet).
fn ack_decision(cfg: &DaemonConfig, message_id: &str) -> String {
    daemon::db(cfg)
        .query_row(
            "SELECT ack FROM messages WHERE message_id = ?1",
            [message_id],
            |r| r.get(0),
        )
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_robot_that_answers_every_ack_is_acknowledged_three_times_until_staff_reply() {
    let stack = MailStack::start();
    // A per-sender limit out of the way: only the loop rule may stop it.
    let cfg = write_config(&Target::of(&stack), "", "per_sender_limit = 100", "");
    let d = Daemon::start(&cfg);
    let robot = "other@example.test";
    let mut n = 0;
    // The partner's helpdesk: no auto-reply header, a new subject and no thread each time, so
    // every answer opens a new ticket; it answers each email that lands in its INBOX at once.
    let mut robot_writes = |answered: usize| {
        n += 1;
        let id = format!("partner-{n}@helpdesk.example.test");
        stack.deliver(
            "support@example.test",
            &customer_email(
                robot,
                &id,
                &format!("Your request has been received (case {n})"),
                &format!(
                    "Thank you for your message ({answered} so far). Our team will get back to you."
                ),
            ),
        );
        id
    };
    let cfg = &cfg;
    let decided = |id: &str| {
        let id = id.to_string();
        move || !ack_decision(cfg, &id).is_empty()
    };
    let mut decisions = Vec::new();
    let mut last = robot_writes(0);
    for _ in 0..5 {
        assert!(wait_until(WAIT, decided(&last)), "{}", d.log_text());
        let ack = ack_decision(cfg, &last);
        decisions.push(ack.clone());
        if ack != "queued" {
            break;
        }
        let k = decisions.len();
        let inbox = stack.wait_for(robot, "INBOX", |m| m.len() == k, WAIT).await;
        assert_eq!(inbox.len(), k, "ack {k} not delivered:\n{}", d.log_text());
        last = robot_writes(k);
    }
    assert_eq!(decisions, ["queued", "queued", "queued", "auto_loop"]);

    // Staff answer the robot's latest ticket; then it (or a person there) writes again:
    // acknowledged again, three more times at most.
    let ticket: String = daemon::db(cfg)
        .query_row(
            "SELECT t.tag FROM tickets t JOIN messages m ON m.ticket_id = t.id WHERE m.message_id = ?1",
            [&last],
            |r| r.get(0),
        )
        .expect("ticket");
    let staff_id = "staff-1@example.test";
    stack.deliver(
        "support@example.test",
        format!(
            "From: Staff <staff@example.test>\r\nTo: {robot}\r\nCc: support@example.test\r\n\
             Subject: Re: Your request [#{ticket}]\r\nMessage-ID: <{staff_id}>\r\nIn-Reply-To: <{last}>\r\n\
             Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\nHello, which request do you mean?\r\n"
        )
        .as_bytes(),
    );
    assert!(wait_until(WAIT, decided(staff_id)), "{}", d.log_text());
    // The store's times are in seconds, and an automatic email sent in the second of a staff
    // message counts as sent before it: the robot here is faster than any.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut after = Vec::new();
    let acked_before = daemon::sent(cfg) as usize;
    last = robot_writes(acked_before);
    for _ in 0..5 {
        assert!(wait_until(WAIT, decided(&last)), "{}", d.log_text());
        let ack = ack_decision(cfg, &last);
        after.push(ack.clone());
        if ack != "queued" {
            break;
        }
        let k = acked_before + after.len();
        let inbox = stack.wait_for(robot, "INBOX", |m| m.len() == k, WAIT).await;
        assert_eq!(inbox.len(), k, "ack {k} not delivered:\n{}", d.log_text());
        last = robot_writes(k);
    }
    assert_eq!(after, ["queued", "queued", "queued", "auto_loop"]);
    assert_eq!(
        count(cfg, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        6
    );
}
