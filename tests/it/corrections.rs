//! Staff corrections on the real stack: the daemon flags an email `triage/normal`; a second
//! IMAP client (staff in their own mail client) sets `triage/urgent` and takes
//! `triage/normal` away. The correction is in the store within one poll interval, the daemon
//! never puts its keyword back, and `triaged eval --store` counts it — on a Dovecot with
//! CONDSTORE (read by what changed; the slow re-read is set to an hour, so it cannot be what
//! found it) and on one configured without it (`imap_capability` leaves CONDSTORE and QRESYNC
//! out; the test asks the server to be sure), where the latest emails' keywords are read
//! again every `corrections_interval`. A correction made while the daemon is stopped is read
//! at the next start, and reading the same keywords again records nothing twice.

use std::time::{Duration, Instant};

use crate::common::{MailStack, StackOptions};
use crate::daemon::{Daemon, DaemonConfig, cli_ok, count, customer_email, wait_until};

const WAIT: Duration = Duration::from_secs(30);
const SUPPORT: &str = "support@example.test";

/// The server's CAPABILITY answer, as a client sees it after login.
fn capabilities(stack: &MailStack) -> Vec<String> {
    let replies = stack.imap_raw(SUPPORT, &["CAPABILITY"]);
    replies[0]
        .iter()
        .filter_map(|l| l.strip_prefix("* CAPABILITY "))
        .flat_map(|l| l.split(' ').map(str::to_string))
        .collect()
}

fn stack(condstore: bool) -> MailStack {
    let stack = MailStack::start_with(StackOptions {
        condstore,
        ..Default::default()
    });
    let caps = capabilities(&stack);
    assert!(caps.iter().any(|c| c == "IDLE"), "{caps:?}");
    assert_eq!(
        caps.iter().any(|c| c == "CONDSTORE"),
        condstore,
        "the server advertises CONDSTORE only when asked to: {caps:?}"
    );
    assert_eq!(caps.iter().any(|c| c == "QRESYNC"), condstore, "{caps:?}");
    stack
}

/// A customer's question the rules call `normal`, with no tone.
fn question(id: &str, subject: &str) -> Vec<u8> {
    customer_email(
        "customer@example.test",
        id,
        subject,
        "Hello, where in the account settings can I download my invoices? Thanks, Ana",
    )
}

/// Deliver `raw` and wait until the daemon has recorded and flagged it: its UID.
async fn delivered_and_flagged(
    stack: &MailStack,
    cfg: &DaemonConfig,
    d: &Daemon,
    raw: &[u8],
) -> u32 {
    let before = stack.fetch_all(SUPPORT, "INBOX").await.len();
    stack.deliver(SUPPORT, raw);
    let inbox = stack
        .wait_for(
            SUPPORT,
            "INBOX",
            |m| {
                m.len() > before
                    && m.iter()
                        .all(|f| f.flags.iter().any(|k| k.starts_with("triage/")))
            },
            WAIT,
        )
        .await;
    let last = inbox.last().expect("the email");
    assert!(
        last.flags.iter().any(|k| k.starts_with("triage/")),
        "not flagged: {:?}\n{}",
        last.flags,
        d.log_text()
    );
    assert!(
        wait_until(WAIT, || count(
            cfg,
            "SELECT count(*) FROM messages WHERE flags_state = 'done' AND status = 'triaged'"
        ) as usize
            > before),
        "{}",
        d.log_text()
    );
    last.uid
}

/// Staff, in their own client: `triage/normal` off, `triage/urgent` on.
fn reflag_urgent(stack: &MailStack, uid: u32) {
    let replies = stack.imap_raw(
        SUPPORT,
        &[
            "SELECT INBOX",
            &format!("UID STORE {uid} -FLAGS (triage/normal)"),
            &format!("UID STORE {uid} +FLAGS (triage/urgent)"),
        ],
    );
    for r in &replies {
        assert!(r.last().is_some_and(|l| l.contains(" OK ")), "{replies:?}");
    }
}

const CORRECTED: &str = "SELECT count(*) FROM corrections WHERE field = 'priority'
     AND old_value = 'normal' AND new_value = 'urgent' AND source = 'imap-keyword' AND who = ''
     AND undone_at = 0";

/// `triaged eval --store --json`.
fn eval_store(cfg: &DaemonConfig) -> serde_json::Value {
    serde_json::from_str(&cli_ok(cfg, &["eval", "--store", "--json"])).expect("JSON")
}

/// The count of "Keywords read back" lines: each is one read of the folder's keywords.
fn reads(d: &Daemon) -> usize {
    d.log_lines("Keywords read back").len()
}

async fn staff_reflag_an_email(condstore: bool) {
    let stack = stack(condstore);
    // With CONDSTORE the slow re-read is an hour away: only reading what changed can find
    // the correction in time. Without it, every 2 s.
    let interval = if condstore { "1h" } else { "2s" };
    let cfg = DaemonConfig::of(&stack)
        .set("flags", "corrections_interval", interval)
        .write();
    let mut d = Daemon::start(&cfg);
    d.await_log(&["IMAP connected", &format!("condstore={condstore}")], WAIT);
    let uid = delivered_and_flagged(
        &stack,
        &cfg,
        &d,
        &question("q1@customer.example.test", "Invoices"),
    )
    .await;
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM messages WHERE priority = 'normal' AND tones = ''"
        ),
        1,
        "the verdict is normal"
    );
    // Its own keywords, read back, are no correction.
    d.await_log(&["Keywords read back", "read=1", "changed=0"], WAIT);
    assert_eq!(count(&cfg, "SELECT count(*) FROM corrections"), 0);

    reflag_urgent(&stack, uid);
    let reflagged = Instant::now();
    assert!(
        wait_until(WAIT, || count(&cfg, CORRECTED) == 1),
        "no correction recorded:\n{}",
        d.log_text()
    );
    eprintln!(
        "correction recorded {:?} after staff re-flagged (condstore: {condstore})",
        reflagged.elapsed()
    );
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM tickets WHERE tag = 'T-1001' AND priority = 'urgent'"
        ),
        1,
        "the ticket's priority is what staff said"
    );

    // The daemon goes on (a second email triaged and flagged, the keywords read back again
    // after it) and never puts its own keyword back, nor records the same correction twice.
    let reads_before = reads(&d);
    delivered_and_flagged(
        &stack,
        &cfg,
        &d,
        &question("q2@customer.example.test", "Invoices, again"),
    )
    .await;
    assert!(
        wait_until(WAIT, || reads(&d) > reads_before),
        "the keywords were not read again:\n{}",
        d.log_text()
    );
    let inbox = stack.fetch_all(SUPPORT, "INBOX").await;
    let first = inbox.iter().find(|m| m.uid == uid).expect("still there");
    assert!(
        first.flags.iter().any(|k| k == "triage/urgent")
            && !first.flags.iter().any(|k| k == "triage/normal"),
        "{:?}",
        first.flags
    );
    assert_eq!(count(&cfg, "SELECT count(*) FROM corrections"), 1);

    // `triaged eval --store` counts it: two emails, one staff corrected (gold urgent,
    // predicted normal); the one they left counts as agreed.
    let report = eval_store(&cfg);
    assert_eq!(report["rows"], 2, "{report}");
    assert_eq!(report["corrected"], 1, "{report}");
    assert_eq!(report["total"], 2, "{report}");
    assert_eq!(report["correct"], 1, "{report}");
    let classes = report["classes"].as_array().expect("classes").clone();
    let at = |c: &str| classes.iter().position(|x| x == c).expect("a class");
    assert_eq!(
        report["confusion"]["counts"][at("urgent")][at("normal")],
        1,
        "{report}"
    );
    let text = cli_ok(&cfg, &["eval", "--store", "--since", "1d"]);
    assert!(
        text.contains("2 emails from customers")
            && text.contains("staff corrected the priority of 1")
            && text.contains("a verdict staff left as it was counts as agreed"),
        "{text}"
    );

    // Undone on the command line: the verdict counts again, and reading the unchanged
    // keywords again does not bring the correction back.
    let undone = cli_ok(&cfg, &["ticket", "relabel", "T-1001", "--undo"]);
    assert!(undone.contains("urgent -> normal"), "{undone}");
    let reads_before = reads(&d);
    delivered_and_flagged(
        &stack,
        &cfg,
        &d,
        &question("q3@customer.example.test", "Invoices, once more"),
    )
    .await;
    assert!(
        wait_until(WAIT, || reads(&d) > reads_before),
        "{}",
        d.log_text()
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM corrections WHERE undone_at = 0"),
        0
    );
    assert_eq!(eval_store(&cfg)["corrected"], 0);
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_reflag_is_a_correction_with_condstore() {
    staff_reflag_an_email(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_reflag_is_a_correction_without_condstore() {
    staff_reflag_an_email(false).await;
}

async fn a_correction_made_while_stopped(condstore: bool) {
    let stack = stack(condstore);
    // The slow re-read is an hour away: only the start can find it.
    let cfg = DaemonConfig::of(&stack)
        .set("flags", "corrections_interval", "1h")
        .write();
    let mut d = Daemon::start(&cfg);
    let uid = delivered_and_flagged(
        &stack,
        &cfg,
        &d,
        &question("s1@customer.example.test", "Invoices"),
    )
    .await;
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log_text());

    reflag_urgent(&stack, uid);
    let mut d = Daemon::start(&cfg);
    assert!(
        wait_until(WAIT, || count(&cfg, CORRECTED) == 1),
        "not read at the start:\n{}",
        d.log_text()
    );
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log_text());

    // Started again: the keywords read again (all of the latest without CONDSTORE, what
    // changed with it: another email flagged), nothing twice, and the keyword stays staff's.
    let d = Daemon::start(&cfg);
    delivered_and_flagged(
        &stack,
        &cfg,
        &d,
        &question("s2@customer.example.test", "Invoices, again"),
    )
    .await;
    assert!(wait_until(WAIT, || reads(&d) > 0), "{}", d.log_text());
    assert_eq!(count(&cfg, "SELECT count(*) FROM corrections"), 1);
    let inbox = stack.fetch_all(SUPPORT, "INBOX").await;
    let first = inbox.iter().find(|m| m.uid == uid).expect("still there");
    assert!(
        !first.flags.iter().any(|k| k == "triage/normal"),
        "{:?}",
        first.flags
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_made_while_the_daemon_is_stopped_is_read_at_the_next_start_with_condstore() {
    a_correction_made_while_stopped(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_made_while_the_daemon_is_stopped_is_read_at_the_next_start_without_condstore()
{
    a_correction_made_while_stopped(false).await;
}

/// Staff correct by email command; the mailbox still shows the daemon's keyword, and reading
/// it again (every 2 s here, without CONDSTORE) leaves staff's word in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_command_corrects_and_the_unchanged_keyword_does_not_undo_it() {
    let stack = stack(false);
    let cfg = DaemonConfig::of(&stack)
        .set("flags", "corrections_interval", "2s")
        .write();
    let d = Daemon::start(&cfg);
    let uid = delivered_and_flagged(
        &stack,
        &cfg,
        &d,
        &question("e1@customer.example.test", "Invoices"),
    )
    .await;
    let command = customer_email(
        "staff@example.test",
        "e2@support.example.test",
        "Re: Invoices [#T-1001]",
        "#priority urgent\r\nTheir payroll depends on it; I am on it.",
    );
    stack.deliver(SUPPORT, &command);
    assert!(
        wait_until(WAIT, || count(
            &cfg,
            "SELECT count(*) FROM corrections WHERE field = 'priority' AND old_value = 'normal'
             AND new_value = 'urgent' AND source = 'email-command' AND who = 'staff@example.test'
             AND undone_at = 0"
        ) == 1),
        "{}",
        d.log_text()
    );
    let reads_before = reads(&d);
    assert!(
        wait_until(WAIT, || reads(&d) > reads_before + 1),
        "{}",
        d.log_text()
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM corrections WHERE undone_at = 0"),
        1
    );
    let shown = cli_ok(&cfg, &["ticket", "show", "T-1001"]);
    assert!(
        shown.contains("priority  urgent")
            && shown.contains("priority normal -> urgent (email-command by staff@example.test)"),
        "{shown}"
    );
    let inbox = stack.fetch_all(SUPPORT, "INBOX").await;
    let first = inbox.iter().find(|m| m.uid == uid).expect("still there");
    assert!(
        first.flags.iter().any(|k| k == "triage/normal"),
        "the daemon leaves a flagged email's keywords alone: {:?}",
        first.flags
    );
}
