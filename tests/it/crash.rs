//! Nothing lost, nothing twice: the daemon is SIGKILLed at several points while it works through
//! a backlog, and restarted each time. At the end every email is recorded exactly once and
//! every customer got exactly one acknowledgement: a send the kill interrupted is settled by
//! its witness (the copy the SMTP server delivered to the support mailbox in the same
//! transaction), or sent again when there is none.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::MailStack;
use crate::daemon::{Daemon, DaemonConfig, count, customer_email, sent, wait_until};

const EMAILS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_backlog_loses_nothing_and_sends_nothing_twice() {
    let stack = MailStack::start();
    // Small batches so kills land between batches as well as inside them.
    let cfg = DaemonConfig::of(&stack)
        .batch_size(25)
        .circuit_breaker(100_000)
        .witness_bcc(Some("2s"))
        .write();
    let backlog: Vec<Vec<u8>> = (0..EMAILS)
        .map(|i| {
            customer_email(
                &format!("customer+{i}@example.test"),
                &format!("backlog-{i}@customers.example.test"),
                &format!("Order {i} has not arrived"),
                "My order has not arrived and I am still waiting. Please help.",
            )
        })
        .collect();
    stack.deliver_many("support@example.test", &backlog);

    // Customer emails (the witnesses, copies of our own, are recorded too).
    let n_recorded = || {
        count(
            &cfg,
            "SELECT count(*) FROM messages WHERE role = 'customer'",
        )
    };
    let n_sent = || sent(&cfg);
    // Kill points: during the first fetch batch, mid-backlog, while the outbox drains, and
    // twice more at whatever point the work has reached.
    type Point<'a> = (&'static str, Box<dyn Fn() -> bool + 'a>);
    let points: Vec<Point<'_>> = vec![
        ("first rows recorded", Box::new(move || n_recorded() >= 1)),
        (
            "a third recorded",
            Box::new(move || n_recorded() >= (EMAILS / 3) as i64),
        ),
        ("acks going out", Box::new(move || n_sent() >= 20)),
        (
            "two thirds recorded",
            Box::new(move || n_recorded() >= (2 * EMAILS / 3) as i64),
        ),
        ("more acks out", Box::new(move || n_sent() >= 120)),
    ];
    // And at random moments after those: CRASH_SEED picks them (scripts/crash-seeds.sh runs
    // ten seeds).
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kills = 0;
    for (name, point) in &points {
        let mut d = Daemon::start(&cfg);
        let reached = wait_until(Duration::from_secs(60), point);
        d.kill();
        assert!(
            reached,
            "never reached kill point {name:?}:\n{}",
            d.log_text()
        );
        kills += 1;
    }
    // Then at random moments, as the rest is triaged and sent.
    // Every email, the witness copies too (they are triaged like any other).
    let n_all = || count(&cfg, "SELECT count(*) FROM messages");
    let settled = || {
        n_recorded() == EMAILS as i64
            && count(
                &cfg,
                "SELECT count(*) FROM outbox WHERE kind = 'ack' AND witnessed_at > 0",
            ) == EMAILS as i64
    };
    for _ in 0..2 {
        let before = n_all();
        let mut d = Daemon::start(&cfg);
        // Past the batch a kill before may have cut off: a second kill inside one email's
        // triage makes it a poison message (skipped and flagged, by design), which is not
        // what this test is about. So 30 more emails of any kind (a witness copy too: once
        // every customer's email is in, the copies are what is triaged), or all done.
        assert!(
            wait_until(Duration::from_secs(60), || n_all() >= before + 30
                || settled()),
            "{}",
            d.log_text()
        );
        // The moment itself is the point: no event to wait for.
        std::thread::sleep(Duration::from_millis(rng.u64(0..400)));
        d.kill();
        kills += 1;
    }

    let mut d = Daemon::start(&cfg);
    let done = wait_until(Duration::from_secs(120), || {
        n_recorded() == EMAILS as i64
            && count(
                &cfg,
                "SELECT count(*) FROM outbox WHERE kind = 'ack' AND state IN ('pending', 'sending', 'unconfirmed')",
            ) == 0
            && count(
                &cfg,
                "SELECT count(*) FROM messages WHERE flags_state = 'pending'",
            ) == 0
            && count(
                &cfg,
                "SELECT count(*) FROM outbox WHERE kind = 'ack' AND witnessed_at > 0",
            ) == EMAILS as i64
    });
    assert!(
        done,
        "backlog not finished: {} recorded\n{}",
        n_recorded(),
        d.log_text()
    );
    assert!(d.terminate().success());

    // Every email recorded exactly once, and every witness copy.
    let customers = "FROM messages WHERE role = 'customer'";
    assert_eq!(
        count(&cfg, &format!("SELECT count(DISTINCT uid) {customers}")),
        EMAILS as i64
    );
    assert_eq!(
        count(
            &cfg,
            &format!("SELECT count(DISTINCT message_id) {customers}")
        ),
        EMAILS as i64
    );
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM messages WHERE status = 'triaged'"
        ),
        count(&cfg, "SELECT count(*) FROM messages")
    );
    // One acknowledgement queued per email, none twice.
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        EMAILS as i64
    );
    // And one holding note waiting per ticket, queued in the same transaction, none twice.
    assert_eq!(
        count(
            &cfg,
            "SELECT count(DISTINCT ticket_id) FROM outbox WHERE kind = 'holding' AND state = 'pending'"
        ),
        EMAILS as i64
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE kind = 'holding'"),
        EMAILS as i64
    );
    let mut per_email: BTreeMap<String, usize> = BTreeMap::new();
    for m in stack.smtp_received() {
        let irt = m["in_reply_to"].as_str().unwrap_or_default().to_string();
        *per_email.entry(irt).or_default() += 1;
    }
    let twice: Vec<_> = per_email.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "acknowledged twice: {twice:?}");
    let received = per_email.values().sum::<usize>() as i64;
    let sent_rows = n_sent();
    let uncertain = count(
        &cfg,
        "SELECT count(*) FROM outbox WHERE state IN ('uncertain', 'unconfirmed')",
    );
    // Every acknowledgement went out once: none left uncertain, none twice.
    assert_eq!(uncertain, 0);
    assert_eq!(received, EMAILS as i64, "every customer acknowledged");
    assert_eq!(sent_rows, EMAILS as i64);
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND witnessed_at > 0"
        ),
        EMAILS as i64,
        "every acknowledgement's copy seen"
    );

    // Every customer email carries its keywords.
    let support = stack.fetch_all("support@example.test", "INBOX").await;
    let theirs: Vec<_> = support
        .iter()
        .filter(|m| !String::from_utf8_lossy(&m.raw).contains("Message-ID: <triaged."))
        .collect();
    assert_eq!(theirs.len(), EMAILS);
    let unflagged = theirs
        .iter()
        .filter(|m| !m.flags.iter().any(|f| f.starts_with("triage/")))
        .count();
    assert_eq!(unflagged, 0);
    eprintln!(
        "crash test (CRASH_SEED={seed}): {kills} kills, {received} acks received, {sent_rows} sent, {} sent again after a kill",
        count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND attempts > 1"
        )
    );
}

/// A send cut off by a kill on a quiet mailbox (nothing else arrives to make the daemon read
/// its folder again) is settled after the grace period all the same: the watcher waiting in
/// IDLE has read everything, no copy is there, so the email goes again, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_off_on_a_quiet_mailbox_goes_again_once() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).witness_bcc(Some("2s")).write();
    let first = customer_email(
        "ada@example.test",
        "quiet-1@customers.example.test",
        "Order not arrived",
        "My order has not arrived.",
    );
    stack.deliver("support@example.test", &first);
    let mut d = Daemon::start(&cfg);
    // One acknowledgement goes out and its copy is seen: copies are known to arrive.
    let witnessed = || {
        count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND witnessed_at > 0",
        )
    };
    assert!(
        wait_until(Duration::from_secs(60), || witnessed() == 1),
        "{}\nthe SMTP server took: {:?}",
        d.log_text(),
        stack.smtp_received()
    );
    // The next one hangs at the end of its data, and the process is killed there.
    stack.set_smtp_mode("hang_data");
    stack.deliver(
        "support@example.test",
        &customer_email(
            "bob@example.test",
            "quiet-2@customers.example.test",
            "Refund",
            "Where is my refund?",
        ),
    );
    let hanging = || {
        stack
            .smtp_refusals()
            .iter()
            .any(|r| r["mode"] == "hang_data")
    };
    assert!(
        wait_until(Duration::from_secs(60), hanging),
        "{}",
        d.log_text()
    );
    d.kill();
    stack.set_smtp_mode("accept");

    let mut d = Daemon::start(&cfg);
    let to_bob = || stack.subjects_to(|a| a == "bob@example.test").len();
    assert!(
        wait_until(Duration::from_secs(60), || to_bob() == 1),
        "{}",
        d.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(30), || witnessed() == 2),
        "{}",
        d.log_text()
    );
    assert!(d.terminate().success());
    assert_eq!(to_bob(), 1);
    assert_eq!(
        count(
            &cfg,
            "SELECT attempts FROM outbox o JOIN messages m ON m.id = o.message_row
             WHERE o.kind = 'ack' AND m.sender = 'bob@example.test'"
        ),
        2,
        "sent again after the kill"
    );
}
