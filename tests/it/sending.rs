//! Sending discipline against the real stack: rate limits hold the outbox (urgent first) and
//! survive a restart; stale mail is never acknowledged; provider pushback pauses all sending
//! and it resumes without loss or duplicates.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::MailStack;
use crate::daemon;
use crate::daemon::{
    Daemon, DaemonConfig, count, customer_email, free_port, http_get, sent, wait_until,
};

const WAIT: Duration = Duration::from_secs(30);

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
    let cfg = DaemonConfig::of(&stack).smtp_rate_limit(3, "3s").write();
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
    let cfg = DaemonConfig::of(&stack).smtp_rate_limit(2, "1h").write();
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
    let cfg = DaemonConfig::of(&stack).max_age("2d").write();
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
    let cfg = DaemonConfig::of(&stack).pushback_pause("2s").write();
    stack.set_smtp_mode("ratelimit");
    stack.deliver_many(
        "support@example.test",
        &(0..5).map(normal).collect::<Vec<_>>(),
    );
    let d = Daemon::start(&cfg);

    // The provider says "slow down" to the sends in flight (at most [outbox] concurrency, 3);
    // nothing new starts until the pause is over.
    assert!(
        wait_until(WAIT, || stack.smtp_refused_count() >= 5),
        "{}",
        d.log_text()
    );
    let refused = common_refused_ts(&stack);
    let first = refused
        .iter()
        .take_while(|t| **t - refused[0] < 0.5)
        .count();
    assert!((1..=3).contains(&first), "{refused:?}");
    assert!(
        refused[first] - refused[0] >= 1.9,
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

/// The subjects of what the SMTP server accepted for `rcpt`.
fn subjects_to(stack: &MailStack, rcpt: &str) -> Vec<String> {
    stack.subjects_to(|a| a == rcpt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sender_holds_all_sending_alerts_staff_once_and_loses_nothing() {
    let stack = MailStack::start();
    let port = free_port();
    let cfg = DaemonConfig::of(&stack)
        .account_retry("2s")
        .max_attempts(2)
        .health_alerts("1s")
        .http(port)
        .write();
    // The account may not send as support@: every MAIL FROM is refused, as Postfix does.
    stack.set_smtp_mode("sender_refused");
    stack.deliver_many(
        "support@example.test",
        &(0..3).map(normal).collect::<Vec<_>>(),
    );
    let d = Daemon::start(&cfg);

    // Acknowledgements are tried more often than max_attempts, and none fails.
    assert!(
        wait_until(WAIT, || stack.smtp_refused_count() >= 3),
        "{}",
        d.log_text()
    );
    // An alert-worthy email: staff mail waits the same way.
    stack.deliver(
        "support@example.test",
        &customer_email(
            "customer+b@example.test",
            "breach@c",
            "Data breach? Our lawyer is involved",
            "Your app showed our customer list to another company. This is a data breach and our lawyer will contact you.",
        ),
    );
    let incident = || {
        count(
            &cfg,
            "SELECT count(*) FROM incidents WHERE condition = 'smtp' AND resolved_at = 0",
        ) == 1
    };
    let alert_tried = || {
        count(
            &cfg,
            "SELECT count(*) FROM notices WHERE kind = 'alert' AND last_error LIKE '%sender address%'",
        ) == 1
    };
    assert!(
        wait_until(Duration::from_secs(60), || incident() && alert_tried()),
        "{}",
        d.log_text()
    );
    let (status, body) = http_get(port, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("SMTP sending failing")
            && body.contains("refuses our sender address support@example.test"),
        "{body}"
    );
    let log = d.log_text();
    assert!(
        log.contains(
            "SMTP server refuses our sender address support@example.test: all sending waits"
        ) && log.contains("check [smtp] from"),
        "{log}"
    );
    // One line says what to fix, however many tries follow; sending is held once.
    assert_eq!(log.matches("all sending waits").count(), 1, "{log}");
    assert_eq!(log.matches("Sending held back").count(), 1, "{log}");
    assert!(
        log.contains("reason=\"SMTP server refuses our sender address\""),
        "{log}"
    );
    assert!(!log.contains("Sending resumed"), "{log}");
    assert!(
        stack
            .smtp_refusals()
            .iter()
            .all(|r| r["mode"] == "sender_refused" && r["mail_from"] == "support@example.test"),
        "{:?}",
        stack.smtp_refusals()
    );
    assert!(stack.smtp_received().is_empty());
    // Held, not failed: no row is failed or cancelled, none used up an attempt.
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE state NOT IN ('pending', 'sending')"
        ),
        0
    );
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM notices WHERE state NOT IN ('pending', 'sending')"
        ),
        0
    );
    assert!(count(&cfg, "SELECT max(attempts) FROM outbox") <= 1);
    assert!(count(&cfg, "SELECT max(attempts) FROM notices") <= 1);
    assert!(
        stack.smtp_refused_count() > 2,
        "more tries than max_attempts"
    );

    // The account may send as support@ again: everything goes out, each once.
    stack.set_smtp_mode("accept");
    let recovered = || {
        subjects_to(&stack, "staff@example.test")
            .iter()
            .any(|s| s.contains("RECOVERED: SMTP sending failing"))
    };
    assert!(
        wait_until(Duration::from_secs(60), || sent(&cfg) == 4 && recovered()),
        "{}",
        d.log_text()
    );
    let ids = received_ids(&stack);
    let acks: BTreeSet<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|i| !i.is_empty())
        .collect();
    assert_eq!(
        acks,
        BTreeSet::from(["<breach@c>", "<normal-0@c>", "<normal-1@c>", "<normal-2@c>"]),
        "{ids:?}"
    );
    assert_eq!(
        ids.iter().filter(|i| !i.is_empty()).count(),
        4,
        "each once: {ids:?}"
    );
    let staff = subjects_to(&stack, "staff@example.test");
    assert_eq!(
        staff
            .iter()
            .filter(|s| s.contains("PROBLEM: SMTP sending failing"))
            .count(),
        1,
        "{staff:?}"
    );
    assert_eq!(
        staff.iter().filter(|s| s.contains("ALERT")).count(),
        1,
        "{staff:?}"
    );
    assert_eq!(count(&cfg, "SELECT max(attempts) FROM outbox"), 1);
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM notices WHERE state = 'failed'"),
        0
    );
    assert!(d.log_text().contains("Sending resumed"), "{}", d.log_text());
    assert!(
        wait_until(WAIT, || http_get(port, "/healthz").0 == 200),
        "{}",
        http_get(port, "/healthz").1
    );
}

/// `s` as adjacent RFC 2047 Q encoded-words (how a mailer writes a long non-ASCII subject),
/// one per folded line.
fn q_words(s: &str) -> String {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        let mut buf = [0u8; 4];
        let enc: String = if c.is_ascii_alphanumeric() {
            c.to_string()
        } else {
            c.encode_utf8(&mut buf)
                .bytes()
                .map(|b| format!("={b:02X}"))
                .collect()
        };
        if word.len() + enc.len() > 60 {
            words.push(format!("=?utf-8?q?{word}?="));
            word.clear();
        }
        word.push_str(&enc);
    }
    words.push(format!("=?utf-8?q?{word}?="));
    words.join("\r\n ")
}

/// The ids in a Message-ID list header.
fn ids_of(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match v {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2000_character_subject_and_a_300_character_message_id_get_an_ack_a_strict_server_takes()
{
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).write();
    // Refuses any line over 998 octets, as strict servers do.
    stack.set_smtp_mode("strict");
    // One unbroken run of 2,000 characters, a 300-octet Message-ID, and a long References chain.
    let run = "A".repeat(2000);
    let long_id = format!("{}@customers.example.test", "m".repeat(275));
    assert_eq!(long_id.len() + 2, 300);
    let chain: Vec<String> = (0..25)
        .map(|i| format!("earlier-{i}@customers.example.test"))
        .collect();
    let bracketed: Vec<String> = chain.iter().map(|c| format!("<{c}>")).collect();
    let first = format!(
        "From: Customer <customer+a@example.test>\r\nTo: support@example.test\r\nSubject: {run}\r\n\
         Message-ID: <{long_id}>\r\nIn-Reply-To: {}\r\nReferences: {}\r\n\
         Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         How do I change my invoice address?\r\n",
        bracketed[24],
        bracketed.join("\r\n ")
    );
    // Adjacent encoded-words decoding to 1,300 characters without a space, from a sender whose
    // display name is a 1,200-character run.
    let decoded = format!(
        "R\u{fc}ckerstattung {}{}",
        "\u{fc}".repeat(600),
        "z".repeat(700)
    );
    let name = "N".repeat(1200);
    let second = format!(
        "From: {name} <customer+b@example.test>\r\nTo: support@example.test\r\nSubject: {}\r\n\
         Message-ID: <plain@customers.example.test>\r\n\
         Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Where is my refund?\r\n",
        q_words(&decoded)
    );
    stack.deliver_many(
        "support@example.test",
        &[first.into_bytes(), second.into_bytes()],
    );
    let d = Daemon::start(&cfg);
    assert!(wait_until(WAIT, || sent(&cfg) == 2), "{}", d.log_text());
    assert_eq!(stack.smtp_refused_count(), 0, "{:?}", stack.smtp_refusals());
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE state = 'failed'"),
        0
    );
    let log = d.log_text();
    assert_eq!(
        log.matches("Replies to this email leave out").count(),
        1,
        "once, for the email with the long id:\n{log}"
    );
    assert!(
        log.contains("its Message-ID (300 octets, over 250)")
            && log.contains("14 References from the middle"),
        "{log}"
    );

    let inbox = stack
        .wait_for("customer@example.test", "INBOX", |m| m.len() == 2, WAIT)
        .await;
    assert_eq!(inbox.len(), 2);
    let tag = |id: &str| -> String {
        daemon::db(&cfg)
            .query_row(
                "SELECT t.tag FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.message_id = ?1",
                [id],
                |r| r.get(0),
            )
            .expect("ticket")
    };
    let mut seen = 0;
    for m in &inbox {
        let raw = String::from_utf8_lossy(&m.raw).to_string();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header");
        for line in head.split("\r\n") {
            assert!(line.len() <= 78, "{} octets: {line:.100}", line.len());
        }
        assert!(body.split("\r\n").all(|l| l.len() <= 998));
        let msg = mail_parser::MessageParser::default()
            .parse(&m.raw)
            .expect("parseable");
        let refs = ids_of(msg.references());
        let subject = msg.subject().unwrap_or_default();
        if subject.starts_with("Re: AAAA") {
            // Threads under the conversation it can name: no In-Reply-To to the absurd id,
            // References the first and the last ten of the chain.
            assert_eq!(subject, format!("Re: {run} [#{}]", tag(&long_id)));
            assert!(ids_of(msg.in_reply_to()).is_empty());
            let mut want = vec![chain[0].clone()];
            want.extend(chain[15..].iter().cloned());
            assert_eq!(refs, want);
        } else {
            assert_eq!(
                subject,
                format!("Re: {decoded} [#{}]", tag("plain@customers.example.test"))
            );
            assert_eq!(ids_of(msg.in_reply_to()), ["plain@customers.example.test"]);
            assert_eq!(refs, ["plain@customers.example.test"]);
            let to = msg.to().and_then(|a| a.first()).expect("To");
            assert_eq!(to.name(), Some(name.as_str()));
            assert_eq!(to.address(), Some("customer+b@example.test"));
        }
        seen += 1;
    }
    assert_eq!(seen, 2);
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
    let cfg = DaemonConfig::of(&stack).per_sender_limit(100).write();
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

/// The hangs of the test server in `mode`.
fn hangs(stack: &MailStack, mode: &str) -> usize {
    stack
        .smtp_refusals()
        .iter()
        .filter(|r| r["mode"] == mode)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_mid_transaction_is_timed_out_retried_and_answered_once() {
    let stack = MailStack::start();
    let port = free_port();
    // Retries without end, SMTP steps timed out quickly, health alerts after 1 s.
    let cfg = DaemonConfig::of(&stack)
        .max_attempts(100)
        .health_alerts("1s")
        .http(port)
        .set("smtp", "timeout", "1s")
        .set("smtp", "transaction_timeout", "2s")
        .write();
    // The server greets, takes EHLO and MAIL FROM, then says nothing more.
    stack.set_smtp_mode("hang_rcpt");
    stack.deliver_many(
        "support@example.test",
        &(0..2).map(normal).collect::<Vec<_>>(),
    );
    let d = Daemon::start(&cfg);

    // Each try gives up after the step's deadline, says so, and is tried again.
    assert!(
        wait_until(WAIT, || hangs(&stack, "hang_rcpt") >= 3),
        "{}",
        d.log_text()
    );
    let log = d.log_text();
    assert!(
        log.contains("Send failed; will retry")
            && log.contains("SMTP server did not answer within 1 s at RCPT TO"),
        "{log}"
    );
    assert!(
        wait_until(WAIT, || http_get(port, "/healthz").0 == 503),
        "{}",
        d.log_text()
    );
    let (_, body) = http_get(port, "/healthz");
    assert!(
        body.contains("SMTP sending failing") && body.contains("did not answer"),
        "{body}"
    );
    // Retried, not given up on: nothing uncertain, failed or sent.
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE state NOT IN ('pending', 'sending')"
        ),
        0
    );
    assert!(stack.smtp_received().is_empty());

    // Now it takes the whole message and never answers its final ".": the transaction's own
    // deadline ends it.
    stack.set_smtp_mode("hang_data");
    assert!(
        wait_until(WAIT, || {
            d.log_text().contains(
            "SMTP transaction did not finish within 2 s at the end of data; the server may have taken the message"
        )
        }),
        "{}",
        d.log_text()
    );

    // It answers again: each customer is acknowledged once, and staff hear of it once.
    stack.set_smtp_mode("accept");
    assert!(wait_until(WAIT, || sent(&cfg) == 2), "{}", d.log_text());
    let ids: Vec<String> = received_ids(&stack)
        .into_iter()
        .filter(|i| !i.is_empty())
        .collect();
    assert_eq!(
        ids.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["<normal-0@c>", "<normal-1@c>"]),
        "{ids:?}"
    );
    assert_eq!(ids.len(), 2, "each once: {ids:?}");
    assert!(count(&cfg, "SELECT max(attempts) FROM outbox") >= 2);
    // The alert itself went through the hung server: it may still wait for its retry.
    let problems = || {
        subjects_to(&stack, "staff@example.test")
            .iter()
            .filter(|s| s.contains("PROBLEM: SMTP sending failing"))
            .count()
    };
    assert!(wait_until(WAIT, || problems() >= 1), "{}", d.log_text());
    let staff = subjects_to(&stack, "staff@example.test");
    assert_eq!(
        staff
            .iter()
            .filter(|s| s.contains("PROBLEM: SMTP sending failing"))
            .count(),
        1,
        "{staff:?}"
    );
    assert!(
        wait_until(WAIT, || http_get(port, "/healthz").0 == 200),
        "{}",
        http_get(port, "/healthz").1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_to_one_customer_at_corporate_example_delays_only_that_customer() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).write();
    // Gmail's words for a full mailbox, to a domain that spells "rate", with "quota" in the
    // reply: about this recipient only, so no pause (pushback_pause stays at 5 minutes).
    let ana = "ana@corporate.example";
    let reply = "452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp";
    stack.set_rcpt_replies(&[(ana, reply)]);
    let mut mails = vec![customer_email(
        ana,
        "ana-1@corporate.example",
        "Invoice address",
        "How do I change my invoice address?",
    )];
    mails.extend((0..5).map(normal));
    stack.deliver_many("support@example.test", &mails);
    let d = Daemon::start(&cfg);

    // Everyone else is acknowledged while Ana's acknowledgement is refused and retried.
    let ana_refused = || {
        stack
            .smtp_refusals()
            .iter()
            .filter(|r| r["mode"] == "rcpt_reply" && r["rcpt"] == ana)
            .count()
    };
    assert!(
        wait_until(WAIT, || sent(&cfg) == 5 && ana_refused() >= 2),
        "{}",
        d.log_text()
    );
    let row = |sql: &str| {
        daemon::db(&cfg)
            .query_row(sql, [ana], |r| r.get::<_, String>(0))
            .expect("Ana's row")
    };
    assert_eq!(
        row("SELECT state FROM outbox WHERE recipient = ?1 AND kind = 'ack'"),
        "pending"
    );
    let last_error = row("SELECT last_error FROM outbox WHERE recipient = ?1 AND kind = 'ack'");
    assert!(
        last_error.contains("4.2.2 The email account"),
        "{last_error}"
    );
    let log = d.log_text();
    assert!(!log.contains("Provider pushback"), "{log}");
    assert!(!log.contains("Sending held back"), "{log}");
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM kv WHERE key = 'outbox.paused_until_ms'"
        ),
        0
    );

    // Her mailbox has room again: she is acknowledged, once.
    stack.set_rcpt_replies(&[]);
    assert!(wait_until(WAIT, || sent(&cfg) == 6), "{}", d.log_text());
    assert_eq!(subjects_to(&stack, ana).len(), 1);
    assert_eq!(received_ids(&stack).len(), 6);
}
