//! Servers differ: a folder that keeps no custom keywords (as on Microsoft 365), a server without
//! MOVE, a Sent folder with a Gmail-style name found through SPECIAL-USE. Each against the real
//! Dovecot of the test stack, with the real binary.

mod common;
mod daemon;

use std::time::Duration;

use common::{MailStack, StackOptions};
use daemon::{Daemon, Target, count, customer_email, wait_until, write_config};

const WAIT: Duration = Duration::from_secs(30);

fn flagged(cfg: &daemon::DaemonConfig, n: i64) -> bool {
    count(
        cfg,
        "SELECT count(*) FROM messages WHERE flags_state = 'done'",
    ) == n
}

const URGENT: (&str, &str) = (
    "Production is down",
    "Our production system is down and nobody can work. This is urgent, we are losing money.",
);
const CALM: (&str, &str) = (
    "A small question",
    "Hello, where do I change my avatar? Thanks.",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_custom_keywords_priorities_go_into_folders_and_it_is_said_once() {
    let stack = MailStack::start_with(StackOptions {
        keywords: false,
        ..Default::default()
    });
    let cfg = write_config(
        &Target::of(&stack),
        "",
        "",
        "[flags]\nkeyword_fallback = \"folders\"\n",
    );
    let mut d = Daemon::start(&cfg);
    for (i, (subject, body)) in [URGENT, CALM].into_iter().enumerate() {
        stack.deliver(
            "support@example.test",
            &customer_email(
                &format!("customer+{i}@example.test"),
                &format!("k{i}@c"),
                subject,
                body,
            ),
        );
    }
    assert!(
        wait_until(WAIT, || flagged(&cfg, 2)),
        "not flagged:\n{}",
        d.log_text()
    );
    let urgent = stack
        .fetch_all("support@example.test", "Triage/Urgent")
        .await;
    assert_eq!(urgent.len(), 1, "{}", d.log_text());
    assert!(String::from_utf8_lossy(&urgent[0].raw).contains("Production is down"));
    // No keyword was set anywhere (the server would have dropped it anyway).
    assert!(
        urgent[0].flags.iter().all(|f| !f.starts_with("triage/")),
        "{:?}",
        urgent[0].flags
    );
    let inbox = stack.fetch_all("support@example.test", "INBOX").await;
    assert!(
        inbox.is_empty(),
        "both emails were filed: {} left in INBOX",
        inbox.len()
    );
    // Said once, with what it does instead.
    stack.deliver(
        "support@example.test",
        &customer_email("customer+9@example.test", "k9@c", CALM.0, CALM.1),
    );
    assert!(wait_until(WAIT, || flagged(&cfg, 3)), "{}", d.log_text());
    d.terminate();
    let log = d.log_text();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("does not keep custom keywords"))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(said[0].contains("urgent -> Triage/Urgent"), "{}", said[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_move_a_move_is_copy_delete_and_expunge() {
    let stack = MailStack::start_with(StackOptions {
        moves: false,
        ..Default::default()
    });
    let cfg = write_config(
        &Target::of(&stack),
        "",
        "",
        "[flags.folders]\nurgent = \"Escalated\"\n",
    );
    let d = Daemon::start(&cfg);
    for (i, (subject, body)) in [URGENT, CALM].into_iter().enumerate() {
        stack.deliver(
            "support@example.test",
            &customer_email(
                &format!("customer+{i}@example.test"),
                &format!("m{i}@c"),
                subject,
                body,
            ),
        );
    }
    assert!(
        wait_until(WAIT, || flagged(&cfg, 2)),
        "not flagged:\n{}",
        d.log_text()
    );
    let escalated = stack.fetch_all("support@example.test", "Escalated").await;
    assert_eq!(escalated.len(), 1, "{}", d.log_text());
    assert!(
        escalated[0].flags.iter().any(|f| f == "triage/urgent"),
        "{:?}",
        escalated[0].flags
    );
    assert!(
        !escalated[0].flags.iter().any(|f| f == "\\Deleted"),
        "{:?}",
        escalated[0].flags
    );
    // The original is gone from INBOX (not left behind as a copy); the calm one stays.
    let inbox = stack.fetch_all("support@example.test", "INBOX").await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(String::from_utf8_lossy(&inbox[0].raw).contains("A small question"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_folder_auto_finds_the_gmail_style_sent_folder() {
    let stack = MailStack::start();
    let cfg = write_config(&Target::of(&stack), "sent_folder = \"auto\"", "", "");
    let d = Daemon::start(&cfg);
    stack.deliver(
        "support@example.test",
        &customer_email(
            "customer@example.test",
            "c1@customer",
            "Export fails",
            "The export does not work.",
        ),
    );
    let state = || {
        daemon::db(&cfg)
            .query_row("SELECT state FROM tickets WHERE tag = 'T-1001'", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap_or_default()
    };
    assert!(
        wait_until(WAIT, || state() == "acknowledged"),
        "{}",
        d.log_text()
    );
    // Staff answer from the shared account in Gmail: the reply lands in [Gmail]/Sent Mail.
    let reply = "From: <support@example.test>\r\nTo: customer@example.test\r\nSubject: Re: Export fails [#T-1001]\r\n\
                 Message-ID: <s1@support>\r\nIn-Reply-To: <c1@customer>\r\nReferences: <c1@customer>\r\n\
                 Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nTry again now.\r\n";
    stack
        .append(
            "support@example.test",
            "[Gmail]/Sent Mail",
            reply.as_bytes(),
        )
        .await;
    assert!(
        wait_until(WAIT, || state() == "answered"),
        "{}",
        d.log_text()
    );
    let log = d.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("Sent folder found through SPECIAL-USE")
                && l.contains("[Gmail]/Sent Mail")),
        "{log}"
    );
    // Its checkpoint is kept under the real name.
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM folder_state WHERE folder = '[Gmail]/Sent Mail'"
        ),
        1
    );
}
