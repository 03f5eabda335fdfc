//! The real daemon over real-world robot and malformed mail: every bounce, auto-reply, feedback
//! report and list post in ../shared/eval/mime/auto gets zero acknowledgements, each with a
//! recorded reason; every malformed email is recorded without a crash and without stalling the
//! mail after it.

use std::path::PathBuf;
use std::time::Duration;

use crate::common;
use crate::common::MailStack;
use crate::daemon::{Daemon, DaemonConfig, count, customer_email, db, recorded, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_get_no_ack_and_malformed_mail_does_not_stall() {
    let (Some(auto), Some(malformed)) = (common::eval_mime("auto"), common::eval_mime("malformed"))
    else {
        return;
    };
    let stack = MailStack::start();
    // No limit may hide a guard failure: breaker and per-sender limit out of the way.
    let cfg = DaemonConfig::of(&stack)
        .circuit_breaker(100_000)
        .per_sender_limit(100_000)
        .write();

    // A non-null envelope sender for everything: the guard must recognise robots from the
    // message itself, not from a Return-Path: <> that the MTA added.
    let deliver_all = |files: &[PathBuf]| -> i64 {
        let mut n = 0;
        for f in files {
            let raw = std::fs::read(f).expect("read");
            match stack.try_deliver_from("corpus-sender@example.net", "support@example.test", &raw)
            {
                Ok(()) => n += 1,
                Err(e) => eprintln!("Dovecot's LMTP refused {}: {e}", f.display()),
            }
        }
        n
    };
    let d = Daemon::start(&cfg);

    // Phase 1: every robot. Nothing may go out.
    let robots = deliver_all(&auto);
    assert_eq!(
        robots,
        auto.len() as i64,
        "the whole auto/ corpus is deliverable"
    );
    assert!(
        wait_until(Duration::from_secs(60), || recorded(&cfg) == robots),
        "{}\n^ the daemon's log; recorded {} of {robots}",
        d.log_text(),
        recorded(&cfg)
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        0,
        "{}\n^ the daemon's log; a robot was acknowledged",
        d.log_text()
    );
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM messages WHERE ack = 'queued' OR ack = ''"
        ),
        0,
        "every robot has a reason"
    );
    let reasons: Vec<(String, i64)> = {
        let c = db(&cfg);
        let mut stmt = c
            .prepare("SELECT ack, count(*) FROM messages GROUP BY ack ORDER BY 2 DESC")
            .expect("prep");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("q")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    eprintln!("{robots} robots, decisions: {reasons:?}");

    // Phase 2: malformed mail, then an ordinary customer email, which must not be stalled.
    let broken = deliver_all(&malformed);
    assert!(
        broken >= malformed.len() as i64 - 2,
        "most malformed files are deliverable"
    );
    stack.deliver(
        "support@example.test",
        &customer_email(
            "customer@example.test",
            "after-corpus@c",
            "Login broken",
            "I cannot log in.",
        ),
    );
    let total = robots + broken + 1;
    assert!(
        wait_until(Duration::from_secs(60), || recorded(&cfg) == total),
        "{}\n^ the daemon's log; recorded {} of {total}",
        d.log_text(),
        recorded(&cfg)
    );
    let customer_acked = || {
        count(
            &cfg,
            "SELECT count(*) FROM outbox o JOIN messages m ON m.id = o.message_row WHERE m.message_id = 'after-corpus@c' AND o.state = 'sent'",
        )
    };
    assert!(
        wait_until(Duration::from_secs(20), || customer_acked() == 1),
        "{}\n^ the daemon's log; the customer after the corpus was not acknowledged",
        d.log_text()
    );
    let skipped = count(
        &cfg,
        "SELECT count(*) FROM messages WHERE status = 'skipped'",
    );
    let malformed_acked = count(&cfg, "SELECT count(*) FROM outbox WHERE kind = 'ack'") - 1;
    eprintln!(
        "{broken} malformed: {skipped} recorded as skipped, {malformed_acked} acknowledged (they name a human sender)"
    );
    assert!(
        !d.log_text().contains("panicked"),
        "no panic escaped:\n{}",
        d.log_text()
    );
}
