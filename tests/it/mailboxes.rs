//! Two mailboxes in one daemon, against a real Dovecot and a real SMTP server: support@ (the
//! mailbox "main") and other@ (the mailbox "billing", address other@example.test) share one
//! store and one outbox. Each customer email is triaged into the one store and acknowledged
//! From the mailbox it arrived in; billing's checkpoint is stored as `billing:INBOX`; a restart
//! triages and acknowledges nothing twice.

use std::time::Duration;

use crate::common::MailStack;
use crate::daemon;
use crate::daemon::{Daemon, DaemonConfig, count, customer_email, recorded, sent, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// The From of an email: (display name, address).
fn from(raw: &[u8]) -> (String, String) {
    let m = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("parseable");
    let a = m.from().and_then(|f| f.first()).expect("a From");
    (
        a.name().unwrap_or_default().to_string(),
        a.address().unwrap_or_default().to_string(),
    )
}

fn text(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default()
}

/// A customer email to `to`.
fn to(to: &str, from: &str, id: &str, subject: &str) -> Vec<u8> {
    String::from_utf8_lossy(&customer_email(
        from,
        id,
        subject,
        "Hello, my invoice shows the wrong amount. Could you look at it?",
    ))
    .replace("To: support@example.test", &format!("To: {to}"))
    .into_bytes()
}

/// (folder, uid) of every recorded email, by folder key and UID.
fn locations(cfg: &DaemonConfig) -> Vec<(String, i64)> {
    let db = daemon::db(cfg);
    let mut st = db
        .prepare("SELECT folder, uid FROM messages ORDER BY folder, uid")
        .expect("query");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn checkpoints(cfg: &DaemonConfig) -> Vec<(String, i64)> {
    let db = daemon::db(cfg);
    let mut st = db
        .prepare("SELECT folder, last_uid FROM folder_state ORDER BY folder")
        .expect("query");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mailboxes_in_one_daemon() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack)
        .mailbox_name("main")
        .another_mailbox("billing", "other@example.test")
        .write();

    // One customer email into each mailbox, waiting before the daemon starts.
    stack.deliver(
        "support@example.test",
        &to(
            "support@example.test",
            "ana@example.test",
            "ana-1@c",
            "Login question",
        ),
    );
    stack.deliver(
        "other@example.test",
        &to(
            "other@example.test",
            "ben@example.test",
            "ben-1@c",
            "Wrong invoice",
        ),
    );

    let mut d = Daemon::start(&cfg);
    assert!(
        wait_until(WAIT, || sent(&cfg) == 2),
        "both acknowledged; log:\n{}",
        d.log_text()
    );

    // Both in the one store, each under its own folder key, two tickets.
    assert_eq!(
        locations(&cfg),
        [("INBOX".to_string(), 1), ("billing:INBOX".to_string(), 1)],
        "{}",
        d.log_text()
    );
    assert_eq!(count(&cfg, "SELECT count(*) FROM tickets"), 2);
    assert_eq!(
        checkpoints(&cfg),
        [("INBOX".to_string(), 1), ("billing:INBOX".to_string(), 1)]
    );

    // Each customer heard back from the mailbox they wrote to.
    for (customer, address) in [
        ("ana@example.test", "support@example.test"),
        ("ben@example.test", "other@example.test"),
    ] {
        let inbox = stack
            .wait_for(customer, "INBOX", |m| !m.is_empty(), WAIT)
            .await;
        assert_eq!(inbox.len(), 1, "{customer}: one acknowledgement");
        assert_eq!(
            from(&inbox[0].raw),
            ("Example Support".to_string(), address.to_string()),
            "{customer}: the display name of [smtp] from, the address of the mailbox"
        );
        assert!(
            text(&inbox[0].raw).contains(&format!("({address})")),
            "{customer}: the template's support_address is the mailbox's: {}",
            text(&inbox[0].raw)
        );
    }
    let mut envelopes: Vec<String> = stack
        .smtp_received()
        .iter()
        .map(|r| r["mail_from"].as_str().unwrap_or_default().to_string())
        .collect();
    envelopes.sort();
    assert_eq!(envelopes, ["other@example.test", "support@example.test"]);

    // Each mailbox's copy is flagged in its own account (flag tasks found by folder key).
    for account in ["support@example.test", "other@example.test"] {
        let msgs = stack
            .wait_for(
                account,
                "INBOX",
                |m| {
                    m.iter()
                        .all(|f| f.flags.iter().any(|x| x.starts_with("triage/")))
                },
                WAIT,
            )
            .await;
        assert!(
            msgs.iter()
                .all(|f| f.flags.iter().any(|x| x.starts_with("triage/"))),
            "{account}: {:?}",
            msgs.iter().map(|m| &m.flags).collect::<Vec<_>>()
        );
    }
    assert!(
        wait_until(WAIT, || count(
            &cfg,
            "SELECT count(*) FROM messages WHERE flags_state = 'done'"
        ) == 2),
        "{}",
        d.log_text()
    );

    // Loop protection: the billing address is a support address, so its mail to the other
    // mailbox is never acknowledged.
    stack.deliver(
        "support@example.test",
        &to(
            "support@example.test",
            "other@example.test",
            "loop-1@c",
            "Forwarded invoice question",
        ),
    );
    assert!(wait_until(WAIT, || recorded(&cfg) == 3), "{}", d.log_text());
    let ack: String = daemon::db(&cfg)
        .query_row(
            "SELECT ack FROM messages WHERE message_id = 'loop-1@c'",
            [],
            |r| r.get(0),
        )
        .expect("recorded");
    assert_ne!(ack, "queued", "mail from a mailbox address is not answered");
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        2
    );

    // Stop and start again: nothing is triaged or acknowledged twice; new mail in either
    // mailbox is picked up where each checkpoint left off.
    assert!(d.terminate().success(), "{}", d.log_text());
    let mut d = Daemon::start(&cfg);
    stack.deliver(
        "other@example.test",
        &to(
            "other@example.test",
            "ben@example.test",
            "ben-2@c",
            "Another invoice",
        ),
    );
    stack.deliver(
        "support@example.test",
        &to(
            "support@example.test",
            "ana@example.test",
            "ana-2@c",
            "Another question",
        ),
    );
    assert!(
        wait_until(WAIT, || sent(&cfg) == 4),
        "the two new emails acknowledged; log:\n{}",
        d.log_text()
    );
    // Give the watchers another round to do anything twice, should they.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = locations(&cfg);
    let want: Vec<(String, i64)> = [
        ("INBOX", 1),
        ("INBOX", 2),
        ("INBOX", 3),
        ("billing:INBOX", 1),
        ("billing:INBOX", 2),
    ]
    .into_iter()
    .map(|(f, u)| (f.to_string(), u))
    .collect();
    assert_eq!(after, want, "{}", d.log_text());
    assert_eq!(recorded(&cfg), 5, "{}", d.log_text());
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        4
    );
    assert_eq!(stack.smtp_received().len(), 4, "no second acknowledgement");
    for customer in ["ana@example.test", "ben@example.test"] {
        let inbox = stack.fetch_all(customer, "INBOX").await;
        assert_eq!(inbox.len(), 2, "{customer}: one per email, none twice");
    }
    let ben = stack.fetch_all("ben@example.test", "INBOX").await;
    assert!(
        ben.iter().all(|m| from(&m.raw).1 == "other@example.test"),
        "after the restart billing still answers as other@"
    );
    assert_eq!(
        checkpoints(&cfg),
        [("INBOX".to_string(), 3), ("billing:INBOX".to_string(), 2)]
    );
    assert!(d.terminate().success(), "{}", d.log_text());
}

/// A configured folder the server does not have: its watcher says so in one line (a typed
/// "no such folder", not a bare connection error), `/healthz` names the folder, it retries with
/// backoff, and the mailbox's other folders are watched, triaged and acknowledged as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_the_server_does_not_have_is_named_and_the_others_are_watched() {
    let stack = MailStack::start();
    let port = daemon::free_port();
    let cfg = DaemonConfig::of(&stack)
        .set(
            "mailbox",
            "folders",
            toml::Value::Array(vec!["INBOX".into(), "Nowhere".into()]),
        )
        .http(port)
        .write();
    let mut d = Daemon::start(&cfg);
    let line = d.await_log(&["no such folder"], WAIT);
    assert!(line.contains("Nowhere"), "{line}");
    stack.deliver(
        "support@example.test",
        &to(
            "support@example.test",
            "ada@example.test",
            "nowhere-1@example.test",
            "Wrong amount",
        ),
    );
    assert!(wait_until(WAIT, || recorded(&cfg) == 1 && sent(&cfg) == 1));
    let (status, body) = daemon::http_get(port, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("IMAP Nowhere"), "{body}");
    d.terminate();
}
