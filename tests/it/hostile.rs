//! One hostile or odd email never stalls, kills or silences the daemon. The generated hostile
//! set (tests/it/common/hostile.rs: deep HTML, wide tables, unterminated MIME, negation floods,
//! long headers, mangled addresses, ...) goes through the real daemon on the real stack under
//! a 3 GB address-space limit: the daemon stays up, every hostile email is recorded (triaged,
//! or skipped with its reason), and a normal email delivered right after is acknowledged within
//! 5 s. Then the two backstops: an email over the time budget (`too_costly`), and a poison
//! message that two earlier runs died on (`crashed_during_triage`), each flagged for staff.

use std::time::{Duration, Instant};

use crate::common::MailStack;
use crate::common::hostile;
use crate::daemon::{Daemon, DaemonConfig, count, customer_email, db, wait_until};

/// The address space the daemon gets: a small VPS, or a systemd `MemoryMax`.
const MEMORY_LIMIT_KIB: u64 = 3_000_000;

/// Start the daemon under `ulimit -v`.
fn start_limited(cfg: &DaemonConfig) -> Daemon {
    let log = cfg.dir.path().join("daemon-limited.log");
    let err = std::fs::File::create(&log).expect("log file");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_LIMIT_KIB} && exec \"$0\" run --config \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_triaged"))
        .arg(&cfg.path)
        .env("TRIAGED_TEST_IMAP_PASSWORD", "pw")
        .env("RUST_LOG", "info,triaged=debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn triaged");
    Daemon {
        child: Some(child),
        log,
    }
}

fn alive(d: &mut Daemon) -> bool {
    d.child
        .as_mut()
        .is_some_and(|c| c.try_wait().expect("wait").is_none())
}

/// The acknowledgement of the email with Message-ID `id` has reached the SMTP server.
fn acknowledged(stack: &MailStack, id: &str) -> bool {
    let want = format!("<{id}>");
    stack
        .smtp_received()
        .iter()
        .any(|m| m["in_reply_to"].as_str() == Some(want.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mail_is_recorded_and_the_next_customer_is_answered() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).circuit_breaker(100_000).write();
    let cases = hostile::cases(1);
    // An explicit envelope sender: some From lines are not addresses an MTA would take.
    for case in &cases {
        stack.deliver_from("hostile@example.test", "support@example.test", &case.raw);
    }
    let mut d = start_limited(&cfg);
    let all = cases.len() as i64;
    let recorded = wait_until(Duration::from_secs(120), || {
        count(&cfg, "SELECT count(*) FROM messages") == all
    });
    assert!(
        recorded,
        "{} of {all} hostile emails recorded\n{}",
        count(&cfg, "SELECT count(*) FROM messages"),
        d.log_text()
    );
    assert!(alive(&mut d), "the daemon died:\n{}", d.log_text());

    // The next customer is answered within 5 s of delivery.
    let next = customer_email(
        "next-customer@example.test",
        "next-1@customers.example.test",
        "Cannot log in",
        "I cannot log in since this morning. Please help.",
    );
    let delivered = Instant::now();
    stack.deliver("support@example.test", &next);
    let answered = wait_until(Duration::from_secs(5), || {
        acknowledged(&stack, "next-1@customers.example.test")
    });
    let took = delivered.elapsed();
    assert!(
        answered,
        "the next customer was not acknowledged within 5 s\n{}",
        d.log_text()
    );
    eprintln!("hostile set: {all} emails recorded; the next customer acknowledged in {took:?}");

    // Every hostile email is recorded in its own row, triaged or skipped with a reason.
    let conn = db(&cfg);
    let mut rows = conn
        .prepare("SELECT uid, status, skip_reason, ack FROM messages ORDER BY uid")
        .expect("prepare");
    let rows: Vec<(u32, String, String, String)> = rows
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len() as i64, all + 1);
    for (case, (uid, status, reason, ack)) in cases.iter().zip(&rows) {
        eprintln!("  {:<24} uid {uid}: {status} {reason} ack={ack}", case.name);
        assert!(
            status == "triaged" || (status == "skipped" && !reason.is_empty()),
            "{}: {status} {reason}",
            case.name
        );
    }
    // Mangled addresses get no acknowledgement that could never be sent.
    for (case, (_, _, _, ack)) in cases.iter().zip(&rows) {
        if [
            "quoted-local-part",
            "nul-in-address",
            "two-addresses-in-one",
            "no-domain",
        ]
        .contains(&case.name)
        {
            assert!(
                ack == "invalid_address" || ack == "no_sender",
                "{}: ack {ack}",
                case.name
            );
        }
    }
    // Every acknowledgement that was queued went out: none failed, none waits.
    let settled = wait_until(Duration::from_secs(30), || {
        count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND state IN ('pending', 'sending')",
        ) == 0
    });
    assert!(settled, "acks still waiting\n{}", d.log_text());
    let failed: Vec<String> = conn
        .prepare("SELECT last_error FROM outbox WHERE state = 'failed'")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(failed.is_empty(), "acks failed: {failed:?}");
    assert!(alive(&mut d), "the daemon died:\n{}", d.log_text());
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_over_the_time_budget_is_skipped_and_flagged_and_triage_goes_on() {
    let stack = MailStack::start();
    // A budget no 4 MB email can meet, so the backstop itself is what is tested.
    let cfg = DaemonConfig::of(&stack).triage_timeout("1ms").write();
    let big = hostile::cases(1)
        .into_iter()
        .find(|c| c.name == "one-huge-line")
        .expect("case");
    stack.deliver_from("hostile@example.test", "support@example.test", &big.raw);
    let after = customer_email(
        "after@example.test",
        "after-1@customers.example.test",
        "Hello",
        "Hello",
    );
    stack.deliver("support@example.test", &after);
    let mut d = Daemon::start(&cfg);
    let done = wait_until(Duration::from_secs(60), || {
        count(&cfg, "SELECT count(*) FROM messages") == 2
            && count(
                &cfg,
                "SELECT count(*) FROM messages WHERE flags_state = 'pending'",
            ) == 0
    });
    assert!(done, "not recorded and flagged\n{}", d.log_text());
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM messages WHERE uid = 1 AND status = 'skipped' AND skip_reason = 'too_costly'"
        ),
        1,
        "{}",
        d.log_text()
    );
    let inbox = stack.fetch_all("support@example.test", "INBOX").await;
    assert!(
        inbox[0].flags.iter().any(|f| f == "\\Flagged"),
        "too costly email not flagged for staff: {:?}",
        inbox[0].flags
    );
    assert!(alive(&mut d));
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_skipped_not_refetched_forever() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).write();
    // A first run creates the store and the folder's checkpoint, with nothing to do.
    let mut d = Daemon::start(&cfg);
    let ready = wait_until(Duration::from_secs(30), || {
        count(&cfg, "SELECT count(*) FROM folder_state") == 1
    });
    assert!(ready, "no checkpoint\n{}", d.log_text());
    assert!(d.terminate().success());
    // The marks two runs that died while triaging UID 1 would have left behind: the first
    // noted its start, the second counted the first as dead and noted its own.
    let uidvalidity: i64 = db(&cfg)
        .query_row("SELECT uidvalidity FROM folder_state", [], |r| r.get(0))
        .expect("uidvalidity");
    db(&cfg)
        .execute(
            "INSERT INTO triage_starts (folder, uidvalidity, uid, run, crashes, started_at)
             VALUES ('INBOX', ?1, 1, 'a-run-that-died', 1, 0)",
            [uidvalidity],
        )
        .expect("seed");
    let poison = customer_email(
        "poison@example.test",
        "poison-1@customers.example.test",
        "Anything",
        "Whatever killed the daemon twice.",
    );
    let next = customer_email(
        "next@example.test",
        "next-2@customers.example.test",
        "My order",
        "Where is my order?",
    );
    stack.deliver_many("support@example.test", &[poison, next]);
    let mut d = Daemon::start(&cfg);
    let answered = wait_until(Duration::from_secs(30), || {
        acknowledged(&stack, "next-2@customers.example.test")
            && count(
                &cfg,
                "SELECT count(*) FROM messages WHERE flags_state = 'pending'",
            ) == 0
    });
    assert!(
        answered,
        "the email after the poison one was not answered\n{}",
        d.log_text()
    );
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM messages WHERE uid = 1 AND status = 'skipped' AND skip_reason = 'crashed_during_triage'"
        ),
        1,
        "{}",
        d.log_text()
    );
    assert!(!acknowledged(&stack, "poison-1@customers.example.test"));
    assert_eq!(count(&cfg, "SELECT count(*) FROM triage_starts"), 0);
    let inbox = stack.fetch_all("support@example.test", "INBOX").await;
    assert!(
        inbox[0].flags.iter().any(|f| f == "\\Flagged"),
        "{:?}",
        inbox[0].flags
    );
    assert!(alive(&mut d));
    assert!(d.terminate().success());
}
