//! Staff corrections by folder on the real stack: the daemon files an email into
//! Triage/Normal (`[flags.folders]`); a second IMAP client (staff in their own mail client)
//! MOVEs it into Triage/Urgent. The correction is in the store (source `imap-folder`), the
//! ticket's priority follows, `triaged eval --store` counts it, and the daemon never moves the
//! email back nor takes its own filing for a correction; a move out of the watched folder (of
//! an email no priority folder takes) counts too. A move made while the daemon is stopped is read at the next start, and a further restart
//! records nothing twice. The same on a server that keeps no custom keywords and has no
//! CONDSTORE (as Microsoft 365), with `keyword_fallback = "folders"`: there folders are the
//! only way staff can correct.

use std::time::Duration;

use crate::common::{MailStack, StackOptions};
use crate::daemon::{Daemon, DaemonConfig, cli_ok, count, customer_email, wait_until};

const WAIT: Duration = Duration::from_secs(30);
const SUPPORT: &str = "support@example.test";

/// A customer's question the rules call `normal`.
fn question(id: &str, subject: &str) -> Vec<u8> {
    customer_email(
        "customer@example.test",
        id,
        subject,
        "Hello, where in the account settings can I download my invoices? Thanks, Ana",
    )
}

/// A customer's note the rules call `low`.
fn idea(id: &str) -> Vec<u8> {
    customer_email(
        "customer@example.test",
        id,
        "An idea for later",
        "No rush at all: a small feature idea, a dark mode would be nice some day. Love the product, thanks!",
    )
}

/// An outage the rules call `urgent`.
fn outage(id: &str) -> Vec<u8> {
    customer_email(
        "customer@example.test",
        id,
        "Production is down",
        "Our production system is down and nobody can work. This is urgent, we are losing money.",
    )
}

/// Deliver `raw` and wait until the daemon has recorded, flagged and filed it (`n` emails
/// flagged in all).
fn deliver(stack: &MailStack, cfg: &DaemonConfig, d: &Daemon, raw: &[u8], n: i64) {
    stack.deliver(SUPPORT, raw);
    assert!(
        wait_until(WAIT, || count(
            cfg,
            "SELECT count(*) FROM messages WHERE flags_state = 'done' AND status = 'triaged'"
        ) == n),
        "not flagged:\n{}",
        d.log_text()
    );
}

/// The UID in `folder` of the email whose Message-ID is `id`, once it is there.
async fn uid_in(stack: &MailStack, folder: &str, id: &str) -> u32 {
    let has = |m: &crate::common::Fetched| String::from_utf8_lossy(&m.raw).contains(id);
    let found = stack
        .wait_for(SUPPORT, folder, |ms| ms.iter().any(has), WAIT)
        .await;
    found
        .iter()
        .find(|m| has(m))
        .unwrap_or_else(|| panic!("{id} not in {folder}: {} emails", found.len()))
        .uid
}

/// Staff, in their own client: move UID `uid` of `from` into `to` (created first, as a
/// client does when staff make a folder).
fn staff_move(stack: &MailStack, from: &str, uid: u32, to: &str) {
    let replies = stack.imap_raw(
        SUPPORT,
        &[
            &format!("CREATE \"{to}\""),
            &format!("SELECT \"{from}\""),
            &format!("UID MOVE {uid} \"{to}\""),
        ],
    );
    // CREATE of a folder that exists answers NO; the MOVE must work.
    for r in &replies[1..] {
        assert!(r.last().is_some_and(|l| l.contains(" OK ")), "{replies:?}");
    }
}

/// Corrections by folder with `old` -> `new` in force.
fn corrected(cfg: &DaemonConfig, old: &str, new: &str) -> i64 {
    count(
        cfg,
        &format!(
            "SELECT count(*) FROM corrections WHERE field = 'priority' AND old_value = '{old}'
             AND new_value = '{new}' AND source = 'imap-folder' AND who = '' AND undone_at = 0"
        ),
    )
}

/// The count of looks into the priority folders so far.
fn looks(d: &Daemon) -> usize {
    d.log_lines("Priority folders looked into").len()
}

/// Wait for `n` more looks than `before`.
fn await_looks(d: &Daemon, before: usize, n: usize) {
    assert!(
        wait_until(WAIT, || looks(d) >= before + n),
        "the priority folders were not looked into:\n{}",
        d.log_text()
    );
}

fn eval_store(cfg: &DaemonConfig) -> serde_json::Value {
    serde_json::from_str(&cli_ok(cfg, &["eval", "--store", "--json"])).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_move_into_another_priority_folder_is_a_correction() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack)
        .set("flags.folders", "normal", "Triage/Normal")
        .set("flags.folders", "urgent", "Triage/Urgent")
        .set("flags", "corrections_interval", "2s")
        .write();
    let mut d = Daemon::start(&cfg);
    d.await_log(&["IMAP connected", "condstore=true"], WAIT);
    // The first look (the folders do not exist yet) comes before any email.
    await_looks(&d, 0, 1);

    // The daemon files the question into Triage/Normal; its own filing is no correction.
    deliver(
        &stack,
        &cfg,
        &d,
        &question("f1@customer.example.test", "Invoices"),
        1,
    );
    let uid = uid_in(&stack, "Triage/Normal", "f1@customer.example.test").await;
    d.await_log(
        &[
            "Arrivals read in a priority folder",
            "arrived=1",
            "changed=0",
        ],
        WAIT,
    );
    assert_eq!(count(&cfg, "SELECT count(*) FROM corrections"), 0);
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM daemon_filed"),
        0,
        "seen arrive"
    );

    // Staff move it into Triage/Urgent: found on the interval (nothing changed in INBOX).
    staff_move(&stack, "Triage/Normal", uid, "Triage/Urgent");
    assert!(
        wait_until(WAIT, || corrected(&cfg, "normal", "urgent") == 1),
        "no correction recorded:\n{}",
        d.log_text()
    );
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM tickets WHERE tag = 'T-1001' AND priority = 'urgent'"
        ),
        1,
        "the ticket's priority is what staff said"
    );
    d.await_log(
        &["Staff moved the email into Triage/Urgent: priority normal -> urgent"],
        WAIT,
    );

    // An email no priority folder takes (low) stays in INBOX; staff move it from there into
    // Triage/Urgent.
    deliver(&stack, &cfg, &d, &idea("f2@customer.example.test"), 2);
    let low = uid_in(&stack, "INBOX", "f2@customer.example.test").await;
    staff_move(&stack, "INBOX", low, "Triage/Urgent");
    assert!(
        wait_until(WAIT, || corrected(&cfg, "low", "urgent") == 1),
        "no correction recorded:\n{}",
        d.log_text()
    );

    // The daemon goes on (more looks, another email filed) and never moves either back, nor
    // records either twice.
    let before = looks(&d);
    deliver(
        &stack,
        &cfg,
        &d,
        &question("f3@customer.example.test", "Invoices, again"),
        3,
    );
    await_looks(&d, before, 3);
    let urgent = stack.fetch_all(SUPPORT, "Triage/Urgent").await;
    assert_eq!(urgent.len(), 2, "both stay where staff put them");
    let normal = stack.fetch_all(SUPPORT, "Triage/Normal").await;
    assert_eq!(normal.len(), 1, "only the third, the daemon's own");
    assert!(String::from_utf8_lossy(&normal[0].raw).contains("f3@customer.example.test"));
    assert_eq!(count(&cfg, "SELECT count(*) FROM corrections"), 2);

    // `triaged eval --store` counts them: three emails, two corrected (gold urgent).
    let report = eval_store(&cfg);
    assert_eq!(report["rows"], 3, "{report}");
    assert_eq!(report["corrected"], 2, "{report}");
    assert_eq!(report["correct"], 1, "{report}");
    let classes = report["classes"].as_array().expect("classes").clone();
    let at = |c: &str| classes.iter().position(|x| x == c).expect("a class");
    assert_eq!(
        report["confusion"]["counts"][at("urgent")][at("normal")],
        1,
        "{report}"
    );
    assert_eq!(
        report["confusion"]["counts"][at("urgent")][at("low")],
        1,
        "{report}"
    );
    let shown = cli_ok(&cfg, &["ticket", "show", "T-1001"]);
    assert!(
        shown.contains("priority normal -> urgent (imap-folder)"),
        "{shown}"
    );

    // Undone on the command line: the email stays in Triage/Urgent, and looking again does
    // not bring the correction back.
    let undone = cli_ok(&cfg, &["ticket", "relabel", "T-1001", "--undo"]);
    assert!(undone.contains("urgent -> normal"), "{undone}");
    let before = looks(&d);
    await_looks(&d, before, 2);
    assert_eq!(corrected(&cfg, "normal", "urgent"), 0);
    assert_eq!(eval_store(&cfg)["corrected"], 1);
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log_text());
    // The folders did not exist at the first looks: no fault, nothing said.
    assert!(
        d.log_lines("Cannot look into").is_empty() && d.log_lines("WARN").is_empty(),
        "{}",
        d.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_made_while_the_daemon_is_stopped_is_read_at_the_next_start_once() {
    let stack = MailStack::start();
    // The interval is an hour: only the look at a start (and after syncs) can find it.
    let cfg = DaemonConfig::of(&stack)
        .set("flags.folders", "normal", "Triage/Normal")
        .set("flags.folders", "urgent", "Triage/Urgent")
        .set("flags", "corrections_interval", "1h")
        .write();
    let mut d = Daemon::start(&cfg);
    deliver(
        &stack,
        &cfg,
        &d,
        &question("s1@customer.example.test", "Invoices"),
        1,
    );
    let uid = uid_in(&stack, "Triage/Normal", "s1@customer.example.test").await;
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log_text());

    staff_move(&stack, "Triage/Normal", uid, "Triage/Urgent");
    let mut d = Daemon::start(&cfg);
    assert!(
        wait_until(WAIT, || corrected(&cfg, "normal", "urgent") == 1),
        "not read at the start:\n{}",
        d.log_text()
    );
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log_text());

    // Started again: the folders looked into at the start and after the daemon files
    // another email (its own filing, seen arrive, is none); nothing twice.
    let d = Daemon::start(&cfg);
    await_looks(&d, 0, 1);
    deliver(
        &stack,
        &cfg,
        &d,
        &question("s2@customer.example.test", "Invoices, again"),
        2,
    );
    uid_in(&stack, "Triage/Normal", "s2@customer.example.test").await;
    assert!(
        wait_until(WAIT, || d.log_text().lines().any(|l| l
            .contains("Arrivals read in a priority folder")
            && l.contains("arrived=1"))),
        "{}",
        d.log_text()
    );
    assert_eq!(count(&cfg, "SELECT count(*) FROM corrections"), 1);
    assert_eq!(corrected(&cfg, "normal", "urgent"), 1);
}

/// A server that keeps no custom keywords and has no CONDSTORE (Microsoft 365): the daemon
/// files by `keyword_fallback = "folders"`, and moving an email into another priority's folder
/// is the one way staff correct it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keywords_a_move_between_fallback_folders_is_a_correction() {
    let stack = MailStack::start_with(StackOptions {
        keywords: false,
        condstore: false,
        ..Default::default()
    });
    let cfg = DaemonConfig::of(&stack)
        .keyword_fallback("folders")
        .set("flags", "corrections_interval", "2s")
        .write();
    let mut d = Daemon::start(&cfg);
    d.await_log(&["IMAP connected", "condstore=false"], WAIT);
    await_looks(&d, 0, 1);
    deliver(&stack, &cfg, &d, &outage("k1@customer.example.test"), 1);
    deliver(
        &stack,
        &cfg,
        &d,
        &question("k2@customer.example.test", "Invoices"),
        2,
    );
    uid_in(&stack, "Triage/Urgent", "k1@customer.example.test").await;
    let uid = uid_in(&stack, "Triage/Normal", "k2@customer.example.test").await;
    // Both of the daemon's filings seen arrive; neither is a correction.
    assert!(
        wait_until(WAIT, || count(&cfg, "SELECT count(*) FROM daemon_filed")
            == 0),
        "{}",
        d.log_text()
    );
    assert_eq!(count(&cfg, "SELECT count(*) FROM corrections"), 0);

    staff_move(&stack, "Triage/Normal", uid, "Triage/High");
    assert!(
        wait_until(WAIT, || corrected(&cfg, "normal", "high") == 1),
        "no correction recorded:\n{}",
        d.log_text()
    );
    assert_eq!(eval_store(&cfg)["corrected"], 1);
    let before = looks(&d);
    await_looks(&d, before, 2);
    assert_eq!(count(&cfg, "SELECT count(*) FROM corrections"), 1);
    let high = stack.fetch_all(SUPPORT, "Triage/High").await;
    assert_eq!(high.len(), 1, "it stays where staff put it");
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log_text());
}

/// The daemon files an email and stops before it looks into the folder again (no CONDSTORE,
/// an hour's interval); staff correct it on the command line meanwhile. At the next start
/// the email is found in the folder the daemon filed it into, the verdict's: that is the
/// daemon's own move, which must not undo staff's correction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_own_filing_seen_late_never_undoes_a_correction() {
    let stack = MailStack::start_with(StackOptions {
        condstore: false,
        ..Default::default()
    });
    let cfg = DaemonConfig::of(&stack)
        .set("flags.folders", "normal", "Triage/Normal")
        .set("flags.folders", "urgent", "Triage/Urgent")
        .set("flags", "corrections_interval", "1h")
        .write();
    let mut d = Daemon::start(&cfg);
    await_looks(&d, 0, 1);
    deliver(
        &stack,
        &cfg,
        &d,
        &question("o1@customer.example.test", "Invoices"),
        1,
    );
    uid_in(&stack, "Triage/Normal", "o1@customer.example.test").await;
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log_text());
    assert_eq!(looks(&d), 1, "not looked into since the email was filed");
    assert_eq!(count(&cfg, "SELECT count(*) FROM daemon_filed"), 1);

    cli_ok(
        &cfg,
        &["ticket", "relabel", "T-1001", "--priority", "urgent"],
    );
    let d = Daemon::start(&cfg);
    assert!(
        wait_until(WAIT, || count(&cfg, "SELECT count(*) FROM daemon_filed")
            == 0),
        "the filing was not seen arrive:\n{}",
        d.log_text()
    );
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM corrections WHERE source = 'cli' AND new_value = 'urgent'
             AND undone_at = 0"
        ),
        1,
        "{}",
        d.log_text()
    );
    assert_eq!(count(&cfg, "SELECT count(*) FROM corrections"), 1);
}
