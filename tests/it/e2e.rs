//! End to end against a real Dovecot and a real SMTP server on loopback: the daemon binary
//! watches the support INBOX, acknowledges customers, flags mail, and survives server trouble.

use std::time::Duration;

use crate::common::{MailStack, StackOptions};
use crate::daemon;
use crate::daemon::{Daemon, DaemonConfig, count, customer_email, recorded, sent, wait_until};

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

const WAIT: Duration = Duration::from_secs(20);

async fn acknowledged_threaded_and_flagged(opts: StackOptions) {
    let stack = MailStack::start_with(opts);
    let cfg = DaemonConfig::of(&stack).write();
    let d = Daemon::start(&cfg);
    // Wait for the first sync so the email below arrives while the daemon is waiting.
    assert!(
        wait_until(WAIT, || d.log_text().contains("IMAP connected")),
        "{}",
        d.log_text()
    );

    let raw = customer_email(
        "customer@example.test",
        "order-1@customer.example.test",
        "Site is down and I was charged twice",
        "Your site has been down all day and I was charged twice. This is unacceptable, fix it today!",
    );
    stack.deliver("support@example.test", &raw);

    let inbox = stack
        .wait_for("customer@example.test", "INBOX", |m| !m.is_empty(), WAIT)
        .await;
    assert_eq!(
        inbox.len(),
        1,
        "exactly one acknowledgement; log:\n{}",
        d.log_text()
    );
    let ack = String::from_utf8_lossy(&inbox[0].raw).into_owned();
    assert_eq!(
        header(&ack, "In-Reply-To"),
        Some("<order-1@customer.example.test>"),
        "{ack}"
    );
    assert_eq!(
        header(&ack, "References"),
        Some("<order-1@customer.example.test>"),
        "{ack}"
    );
    assert_eq!(header(&ack, "Auto-Submitted"), Some("auto-replied"));
    assert_eq!(header(&ack, "X-Auto-Response-Suppress"), Some("All"));
    assert!(header(&ack, "X-Triaged-Loop").is_some());
    let subject = header(&ack, "Subject").unwrap_or_default();
    assert!(
        subject.starts_with("Re: Site is down") && subject.contains("[#T-1001]"),
        "{subject}"
    );
    let mid = header(&ack, "Message-ID").unwrap_or_default();
    assert!(mid.ends_with("@support.example.test>"), "{mid}");
    assert!(ack.contains("multipart/alternative"), "{ack}");

    // The support copy carries the triage keywords and is still unread.
    let support = stack
        .wait_for(
            "support@example.test",
            "INBOX",
            |m| {
                m.iter()
                    .any(|f| f.flags.iter().any(|x| x.starts_with("triage/")))
            },
            WAIT,
        )
        .await;
    let flags = &support[0].flags;
    assert!(flags.iter().any(|f| f.starts_with("triage/")), "{flags:?}");
    assert!(
        !flags.iter().any(|f| f == "\\Seen"),
        "never marks mail read: {flags:?}"
    );

    // The customer's reply joins the ticket and gets no second acknowledgement.
    let mut reply = customer_email(
        "customer@example.test",
        "order-2@customer.example.test",
        "Re: Site is down [#T-1001]",
        "Any news?",
    );
    let text = String::from_utf8_lossy(&reply).replace(
        "Message-ID:",
        "In-Reply-To: <order-1@customer.example.test>\r\nMessage-ID:",
    );
    reply = text.into_bytes();
    stack.deliver("support@example.test", &reply);
    assert!(
        wait_until(WAIT, || count(
            &cfg,
            "SELECT count(*) FROM messages WHERE ack = 'reply_in_ticket'"
        ) == 1),
        "{}",
        d.log_text()
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        1
    );
    assert_eq!(stack.smtp_received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_gets_one_threaded_ack_over_idle() {
    acknowledged_threaded_and_flagged(StackOptions {
        idle: true,
        ..Default::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_gets_one_threaded_ack_when_polling() {
    acknowledged_threaded_and_flagged(StackOptions {
        idle: false,
        ..Default::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_tempfail_retries_until_recovery_and_permfail_is_final() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).write();
    stack.set_smtp_mode("tempfail");
    let d = Daemon::start(&cfg);
    stack.deliver(
        "support@example.test",
        &customer_email(
            "customer@example.test",
            "t1@c",
            "Question",
            "How do I export my data?",
        ),
    );
    assert!(
        wait_until(WAIT, || stack.smtp_refused_count() >= 2),
        "retried while refused:\n{}",
        d.log_text()
    );
    assert_eq!(sent(&cfg), 0);
    stack.set_smtp_mode("accept");
    assert!(wait_until(WAIT, || sent(&cfg) == 1), "{}", d.log_text());
    assert_eq!(stack.smtp_received().len(), 1);

    stack.set_smtp_mode("permfail");
    stack.deliver(
        "support@example.test",
        &customer_email("other@example.test", "t2@c", "Another", "Hello?"),
    );
    assert!(
        wait_until(WAIT, || count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE state = 'failed'"
        ) == 1),
        "{}",
        d.log_text()
    );
    let attempts = count(&cfg, "SELECT attempts FROM outbox WHERE state = 'failed'");
    assert_eq!(attempts, 1, "a 5xx is not retried");
    // An address that refuses mail gets no follow-ups either: its holding note is cancelled.
    assert!(
        wait_until(WAIT, || {
            count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE kind = 'holding' AND recipient = 'other@example.test'
               AND state = 'cancelled' AND last_error = 'undeliverable'"
        ) == 1
        }),
        "{}",
        d.log_text()
    );
    let refused = stack.smtp_refused_count();
    // Nothing else is tried afterwards.
    stack.set_smtp_mode("accept");
    stack.deliver(
        "support@example.test",
        &customer_email("customer+2@example.test", "t3@c", "Third", "Hi"),
    );
    assert!(wait_until(WAIT, || sent(&cfg) == 2), "{}", d.log_text());
    assert_eq!(stack.smtp_refused_count(), refused);
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE state = 'failed'"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_restart_mid_idle_reconnects_and_picks_up_mail() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).write();
    let d = Daemon::start(&cfg);
    stack.deliver(
        "support@example.test",
        &customer_email("customer@example.test", "r1@c", "Before", "first"),
    );
    assert!(wait_until(WAIT, || recorded(&cfg) == 1), "{}", d.log_text());

    // Take the server away under the daemon's IDLE; it notices, logs, and backs off.
    stack.stop_dovecot();
    assert!(
        wait_until(WAIT, || d.log_text().contains("IMAP: ")),
        "the lost connection is logged:\n{}",
        d.log_text()
    );
    // Mail delivered while the daemon is away is picked up after it reconnects.
    stack.start_dovecot();
    stack.deliver(
        "support@example.test",
        &customer_email("other@example.test", "r2@c", "While away", "second"),
    );
    assert!(
        wait_until(Duration::from_secs(40), || recorded(&cfg) == 2),
        "{}",
        d.log_text()
    );
    assert!(wait_until(WAIT, || sent(&cfg) == 2), "{}", d.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).write();
    let mut d = Daemon::start(&cfg);
    assert!(
        wait_until(WAIT, || d.log_text().contains("IMAP connected")),
        "{}",
        d.log_text()
    );
    let status = d.terminate();
    assert!(status.success(), "{status:?}\n{}", d.log_text());
    assert!(d.log_text().contains("Stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_one_clear_line_and_keeps_retrying() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack)
        .password_env("TRIAGED_TEST_WRONG_PW")
        .write();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["run", "--config"])
        .arg(&cfg.path)
        .env("TRIAGED_TEST_WRONG_PW", "not-the-password")
        .env("NO_COLOR", "1")
        .stderr(std::fs::File::create(cfg.dir.path().join("err.log")).expect("log"))
        .spawn()
        .expect("spawn");
    let log = || std::fs::read_to_string(cfg.dir.path().join("err.log")).unwrap_or_default();
    assert!(
        wait_until(WAIT, || log().matches("failed").count() >= 2),
        "{}",
        log()
    );
    let line = log()
        .lines()
        .find(|l| l.contains("Logging in"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        line.contains("support@example.test") && line.contains("failed"),
        "{line}"
    );
    assert!(
        child.try_wait().expect("wait").is_none(),
        "daemon keeps running"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uidvalidity_change_resyncs_without_a_second_ack() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).write();
    let d = Daemon::start(&cfg);
    stack.deliver(
        "support@example.test",
        &customer_email("customer@example.test", "uv1@c", "First", "hello"),
    );
    assert!(wait_until(WAIT, || sent(&cfg) == 1), "{}", d.log_text());
    let before: i64 = count(&cfg, "SELECT uidvalidity FROM folder_state");

    // Dovecot forgets its UID list: the folder gets a new UIDVALIDITY and every UID changes.
    stack.stop_dovecot();
    let maildir = stack.dir.path().join("home/support@example.test/Maildir");
    for entry in std::fs::read_dir(&maildir).expect("maildir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("dovecot-uidlist") || name.starts_with("dovecot.index") {
            std::fs::remove_file(entry.path()).expect("remove");
        }
    }
    stack.start_dovecot();
    stack.deliver(
        "support@example.test",
        &customer_email("other@example.test", "uv2@c", "Second", "hello again"),
    );
    assert!(
        wait_until(Duration::from_secs(40), || sent(&cfg) == 2),
        "{}",
        d.log_text()
    );
    assert_ne!(
        count(&cfg, "SELECT uidvalidity FROM folder_state"),
        before,
        "UIDVALIDITY changed"
    );
    assert!(
        d.log_text().contains("UIDVALIDITY changed"),
        "{}",
        d.log_text()
    );
    // The first email was found again by its Message-ID: still one row, one ack.
    assert_eq!(recorded(&cfg), 2);
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        2
    );
    assert_eq!(stack.smtp_received().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_mail_is_flagged_and_moved_to_its_folder() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack)
        .urgent_folder("Triage/Urgent")
        .write();
    let d = Daemon::start(&cfg);
    stack.deliver(
        "support@example.test",
        &customer_email(
            "customer@example.test",
            "mv1@c",
            "Site down",
            "The site is down and we are locked out, fix it today!!!",
        ),
    );
    stack.deliver(
        "support@example.test",
        &customer_email(
            "other@example.test",
            "mv2@c",
            "A question",
            "How do I change my invoice address?",
        ),
    );
    let urgent = stack
        .wait_for(
            "support@example.test",
            "Triage/Urgent",
            |m| !m.is_empty(),
            WAIT,
        )
        .await;
    assert_eq!(urgent.len(), 1, "{}", d.log_text());
    assert!(
        urgent[0].flags.iter().any(|f| f == "\\Flagged")
            && urgent[0].flags.iter().any(|f| f == "triage/urgent"),
        "{:?}",
        urgent[0].flags
    );
    assert!(String::from_utf8_lossy(&urgent[0].raw).contains("mv1@c"));
    let inbox = stack
        .wait_for(
            "support@example.test",
            "INBOX",
            |m| m.len() == 1 && !m[0].flags.is_empty(),
            WAIT,
        )
        .await;
    assert_eq!(inbox.len(), 1, "only the urgent email moved");
    assert!(
        !inbox[0]
            .flags
            .iter()
            .any(|f| f == "\\Flagged" || f == "\\Seen"),
        "{:?}",
        inbox[0].flags
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_with_a_private_ca() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).imap_implicit_tls().write();
    let d = Daemon::start(&cfg);
    stack.deliver(
        "support@example.test",
        &customer_email("customer@example.test", "tls1@c", "Over TLS", "hello"),
    );
    assert!(wait_until(WAIT, || sent(&cfg) == 1), "{}", d.log_text());
}

fn reply(from: &str, message_id: &str, in_reply_to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: customer@example.test\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// A customer writes, staff answer from the shared account (the Sent folder) and from their own
/// address (with an email command), the customer writes back: the ticket follows, and the CLI
/// shows its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_replies_answer_tickets_and_customers_reopen_them() {
    let stack = MailStack::start();
    // The Sent folder exists (with an old, unrelated message) before the daemon starts.
    stack
        .append(
            "support@example.test",
            "Sent",
            &customer_email("support@example.test", "old@s", "Old", "An old reply"),
        )
        .await;
    let cfg = DaemonConfig::of(&stack).sent_folder("Sent").write();
    let d = Daemon::start(&cfg);
    let state = || {
        daemon::db(&cfg)
            .query_row("SELECT state FROM tickets WHERE tag = 'T-1001'", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap_or_default()
    };
    let wait_state = |want: &str| {
        assert!(
            wait_until(WAIT, || state() == want),
            "{}\n^ the daemon's log; ticket is {:?}, want {want:?}",
            d.log_text(),
            state()
        );
    };

    stack.deliver(
        "support@example.test",
        &customer_email(
            "customer@example.test",
            "c1@customer",
            "Export fails",
            "The export does not work.",
        ),
    );
    wait_state("acknowledged");

    // Staff answer from the shared account: the reply lands in Sent.
    stack
        .append(
            "support@example.test",
            "Sent",
            &reply(
                "support@example.test",
                "s1@support",
                "c1@customer",
                "Re: Export fails [#T-1001]",
                "Try again now.",
            ),
        )
        .await;
    wait_state("answered");
    let first_response = count(
        &cfg,
        "SELECT first_response_at FROM tickets WHERE tag = 'T-1001'",
    );
    assert!(first_response > 0);

    // The customer writes back: reopened, and no second acknowledgement.
    stack.deliver(
        "support@example.test",
        &reply(
            "customer@example.test",
            "c2@customer",
            "s1@support",
            "Re: Export fails [#T-1001]",
            "Still fails!",
        ),
    );
    wait_state("reopened");

    // A staff member closes it by email from their own address, under the tag only.
    let close = "From: <staff@example.test>\r\nTo: support@example.test\r\nSubject: Re: Export fails [#T-1001]\r\n\
         Message-ID: <s2@support>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n#close\r\nFixed in 2.4.1.\r\n";
    stack.deliver("support@example.test", close.as_bytes());
    wait_state("closed");
    assert_eq!(
        sent(&cfg),
        1,
        "one acknowledgement for the whole conversation"
    );
    assert_eq!(
        count(
            &cfg,
            "SELECT first_response_at FROM tickets WHERE tag = 'T-1001'"
        ),
        first_response,
        "the first response is the first"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["ticket", "show", "T-1001", "--config"])
        .arg(&cfg.path)
        .output()
        .expect("run triaged");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "state     closed",
        "opened ",
        "ack_sent",
        "staff_replied     acknowledged -> answered",
        "customer_wrote    answered -> reopened",
        "close             answered -> closed",
        "email command from staff@example.test",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }

    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
            .args(args)
            .arg("--config")
            .arg(&cfg.path)
            .output()
            .expect("run triaged");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run(&["tickets", "--state", "open"]), "No tickets.\n");
    assert!(run(&["tickets"]).contains("T-1001   closed"));
    assert_eq!(run(&["ticket", "reopen", "1001"]), "T-1001: reopened\n");
    assert!(run(&["tickets", "--state", "open", "--json"]).contains("\"state\": \"reopened\""));
}
