//! Servers differ: a folder that keeps no custom keywords (as on Microsoft 365), a server without
//! MOVE, a Sent folder with a Gmail-style name found through SPECIAL-USE. Each against the real
//! Dovecot of the test stack, with the real binary.

use std::time::Duration;

use crate::common::{MailStack, StackOptions};
use crate::daemon;
use crate::daemon::{Daemon, DaemonConfig, count, customer_email, wait_until};

const WAIT: Duration = Duration::from_secs(30);

fn flagged(cfg: &DaemonConfig, n: i64) -> bool {
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

/// One urgent and one calm customer email, Message-IDs `{id}0@c` and `{id}1@c`.
fn deliver_urgent_and_calm(stack: &MailStack, id: &str) {
    for (i, (subject, body)) in [URGENT, CALM].into_iter().enumerate() {
        stack.deliver(
            "support@example.test",
            &customer_email(
                &format!("customer+{i}@example.test"),
                &format!("{id}{i}@c"),
                subject,
                body,
            ),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_custom_keywords_priorities_go_into_folders_and_it_is_said_once() {
    let stack = MailStack::start_with(StackOptions {
        keywords: false,
        ..Default::default()
    });
    let cfg = DaemonConfig::of(&stack).keyword_fallback("folders").write();
    let mut d = Daemon::start(&cfg);
    deliver_urgent_and_calm(&stack, "k");
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
    let cfg = DaemonConfig::of(&stack).urgent_folder("Escalated").write();
    let d = Daemon::start(&cfg);
    deliver_urgent_and_calm(&stack, "m");
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
    let cfg = DaemonConfig::of(&stack).sent_folder("auto").write();
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

/// Configured `Triage/Urgent`; delivers an urgent and a calm email to a server with
/// `separator` and `prefix`, and checks the urgent one (keyword set) is in `expected`, the calm
/// one still in INBOX, with one connection and no error. Returns the daemon's log.
async fn moves_land_in(separator: &'static str, prefix: &'static str, expected: &str) -> String {
    let stack = MailStack::start_with(StackOptions {
        separator,
        prefix,
        ..Default::default()
    });
    let cfg = DaemonConfig::of(&stack)
        .urgent_folder("Triage/Urgent")
        .write();
    let mut d = Daemon::start(&cfg);
    deliver_urgent_and_calm(&stack, "s");
    assert!(
        wait_until(WAIT, || flagged(&cfg, 2)),
        "not flagged:\n{}",
        d.log_text()
    );
    let moved = stack.fetch_all("support@example.test", expected).await;
    assert_eq!(moved.len(), 1, "in {expected}: {moved:?}\n{}", d.log_text());
    assert!(String::from_utf8_lossy(&moved[0].raw).contains("Production is down"));
    assert!(
        moved[0].flags.iter().any(|f| f == "triage/urgent"),
        "{:?}",
        moved[0].flags
    );
    let inbox = stack.fetch_all("support@example.test", "INBOX").await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(String::from_utf8_lossy(&inbox[0].raw).contains("A small question"));
    d.terminate();
    let log = d.log_text();
    assert_eq!(
        log.lines().filter(|l| l.contains("IMAP connected")).count(),
        1,
        "one connection, no reconnect:\n{log}"
    );
    assert!(!log.contains("Cannot file email"), "{log}");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_land_in_the_configured_folder_on_a_slash_server() {
    let log = moves_land_in("/", "", "Triage/Urgent").await;
    // Nothing to rename, so nothing said.
    assert!(
        !log.contains("Folders are named as the server names them"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_land_in_the_folder_as_a_dot_separator_server_names_it() {
    let log = moves_land_in(".", "", "Triage.Urgent").await;
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Folders are named as the server names them"))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(
        said[0].contains("Triage/Urgent -> Triage.Urgent"),
        "{}",
        said[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_land_under_the_personal_namespace_prefix() {
    // Cyrus and Courier style: NAMESPACE (("INBOX." ".")); CREATE outside INBOX. is refused.
    let log = moves_land_in(".", "INBOX.", "INBOX.Triage.Urgent").await;
    assert!(
        log.contains("Triage/Urgent -> INBOX.Triage.Urgent"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_that_cannot_be_created_is_reported_once_and_triage_goes_on() {
    // The account may not create folders (an ACL without the create right): every CREATE is
    // refused, and a MOVE into the missing folder too.
    let stack = MailStack::start_with(StackOptions {
        separator: ".",
        create_folders: false,
        ..Default::default()
    });
    let cfg = DaemonConfig::of(&stack)
        .urgent_folder("Triage/Urgent")
        .write();
    let mut d = Daemon::start(&cfg);
    // One at a time, so each is its own batch and its own try at the folder.
    for i in 0..3 {
        stack.deliver(
            "support@example.test",
            &customer_email(
                &format!("customer+{i}@example.test"),
                &format!("u{i}@c"),
                URGENT.0,
                URGENT.1,
            ),
        );
        let n = i + 1;
        assert!(
            wait_until(WAIT, || flagged(&cfg, n) && daemon::sent(&cfg) == n),
            "email {n} not flagged and acknowledged:\n{}",
            d.log_text()
        );
    }
    // The emails stay where they are, with their flags.
    let inbox = stack.fetch_all("support@example.test", "INBOX").await;
    assert_eq!(inbox.len(), 3, "{}", d.log_text());
    for m in &inbox {
        assert!(
            m.flags.iter().any(|f| f == "triage/urgent")
                && m.flags.iter().any(|f| f == "\\Flagged"),
            "{:?}",
            m.flags
        );
    }
    d.terminate();
    let log = d.log_text();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Cannot file email into folder"))
        .collect();
    assert_eq!(warned.len(), 1, "said once, not per email:\n{log}");
    assert!(
        warned[0].contains("\"Triage.Urgent\"")
            && warned[0].contains("Triage/Urgent")
            && warned[0].contains("Permission denied")
            && warned[0].contains("WARN"),
        "names the folder and the server's answer: {}",
        warned[0]
    );
    // Never a reconnect: one connection, no IMAP error.
    assert_eq!(
        log.lines().filter(|l| l.contains("IMAP connected")).count(),
        1,
        "{log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
}
