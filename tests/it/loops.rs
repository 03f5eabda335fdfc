//! A surge is not a loop: on the real stack, 300 different people writing within seconds are
//! all acknowledged, while robots answering our acknowledgements from a new address each time
//! are held after what the loop breaker allows, with one staff alert, until staff decide.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::MailStack;
use crate::daemon;
use crate::daemon::{Daemon, DaemonConfig, count, customer_email, wait_until};

const WAIT: Duration = Duration::from_secs(60);

/// How people write on an outage morning: a few subjects, their own words, their own details.
fn person(i: usize) -> Vec<u8> {
    let subjects = [
        "Site down",
        "Cannot log in",
        "Is the service down?",
        "Urgent: app not loading",
        "Error 503",
    ];
    let says = [
        "Nothing loads since about nine.",
        "I get an error page when I try to sign in.",
        "Our whole team is stuck, please tell us when it is back.",
        "The app just spins.",
        "Is there an outage? My orders page is blank.",
        "Getting 503 on every page.",
    ];
    // A few big providers, as on a real morning.
    let domain = ["gmail.test", "outlook.test", "yahoo.test", "corp.test"][i % 4];
    // And a third of them one text, as a status-page link or a form sends it.
    if i.is_multiple_of(3) {
        return customer_email(
            &format!("person{i}@{domain}"),
            &format!("surge-{i}@{domain}"),
            "Service unavailable",
            "Your service is unavailable. Please fix it as soon as possible.",
        );
    }
    customer_email(
        &format!("person{i}@{domain}"),
        &format!("surge-{i}@{domain}"),
        subjects[i % subjects.len()],
        &format!(
            "Hello,\n\n{} {}\n\nAccount {}\n",
            says[i % says.len()],
            says[(i / says.len()) % says.len()],
            40_000 + i
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_of_300_different_customers_is_acknowledged_every_one() {
    let stack = MailStack::start();
    // The acknowledgement and outbox settings as shipped (the witness too).
    let cfg = DaemonConfig::of(&stack).witness_bcc(None).write();
    let d = Daemon::start(&cfg);
    stack.deliver_many(
        "support@example.test",
        &(0..300).map(person).collect::<Vec<_>>(),
    );
    let acked = || {
        stack
            .smtp_received()
            .iter()
            .filter(|m| {
                m["in_reply_to"]
                    .as_str()
                    .is_some_and(|r| r.contains("surge-"))
            })
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(120), || acked() >= 300),
        "{} of 300 acknowledged\n{}",
        acked(),
        d.log_text()
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE state = 'held'"),
        0
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM messages WHERE ack = 'queued'"),
        300
    );
    // Every one once.
    let ids: BTreeSet<String> = stack
        .smtp_received()
        .iter()
        .filter_map(|m| m["in_reply_to"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 300);
    assert_eq!(stack.smtp_received().len(), 300);
}

/// Acknowledgements the sink received for addresses at `domain`, with their subjects.
fn acks_to(stack: &MailStack, domain: &str) -> Vec<String> {
    stack.subjects_to(|a| a.ends_with(domain))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_answering_from_new_addresses_are_held_with_one_alert_until_staff_decide() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack)
        .witness_bcc(None)
        .health_alerts("1s")
        .write();
    let d = Daemon::start(&cfg);
    // Two auto-responders without any auto-reply header or thread, each writing from a new
    // address for every acknowledgement it gets: one answers "Re: <our subject>" (our ticket
    // tag in it), the other with its own fixed words under a reply's subject.
    let robots = [("quoting.test", true), ("fixed.test", false)];
    let write = |domain: &str, n: usize, quote: Option<&str>| {
        let subject = quote.map_or("Re: Your email".to_string(), |s| format!("Re: {s}"));
        stack.deliver(
            "support@example.test",
            &customer_email(
                &format!("desk-{n}@{domain}"),
                &format!("robot-{n}@{domain}"),
                &subject,
                "Thank you for your email. This mailbox is checked on weekdays; we will come back to you.",
            ),
        );
    };
    for (domain, _) in robots {
        write(domain, 0, None);
    }
    // Answer every acknowledgement as it arrives, until no new one comes while the daemon has
    // decided every robot email (acknowledged or held).
    let mut answered = [0usize; 2];
    let mut written = [1usize; 2];
    for _ in 0..40 {
        let decided = || {
            count(
                &cfg,
                "SELECT count(*) FROM messages WHERE sender LIKE 'desk-%'",
            ) == (written[0] + written[1]) as i64
                && count(
                    &cfg,
                    "SELECT count(*) FROM outbox WHERE kind = 'ack' AND state IN ('pending', 'sending')",
                ) == 0
        };
        assert!(wait_until(WAIT, decided), "{}", d.log_text());
        let mut more = false;
        for (k, (domain, quote)) in robots.iter().enumerate() {
            let acks = acks_to(&stack, domain);
            for subject in &acks[answered[k]..] {
                write(domain, written[k], quote.then_some(subject.as_str()));
                written[k] += 1;
                more = true;
            }
            answered[k] = acks.len();
        }
        if !more {
            break;
        }
    }
    // The quoting robot: its first email acknowledged, its answer held. The other: loop_burst
    // (4) acknowledged, the fifth held.
    assert_eq!(answered, [1, 4], "{}", d.log_text());
    assert_eq!(written, [2, 5]);
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE state = 'held'"),
        2
    );
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM messages WHERE ack IN ('answers_our_mail', 'loop_burst')"
        ),
        2
    );
    // One alert for staff, with the evidence and what to do.
    let alerts = || {
        stack
            .subjects_to(|a| a == "staff@example.test")
            .iter()
            .filter(|s| s.contains("held"))
            .count()
    };
    assert!(wait_until(WAIT, || alerts() >= 1), "{}", d.log_text());
    let staff = stack
        .wait_for("staff@example.test", "INBOX", |m| !m.is_empty(), WAIT)
        .await;
    let text = daemon::text_of(&staff[0]);
    assert!(
        text.contains("look like a mail loop") && text.contains("triaged queue release --all"),
        "{text}"
    );

    // Staff release the held ones: each goes out once; still one alert.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["queue", "release", "--all", "--config"])
        .arg(&cfg.path)
        .output()
        .expect("run triaged queue release");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2 released: they go out as the rate limits allow\n"
    );
    assert!(
        wait_until(WAIT, || acks_to(&stack, "quoting.test").len() == 2
            && acks_to(&stack, "fixed.test").len() == 5),
        "{}",
        d.log_text()
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM outbox WHERE state = 'held'"),
        0
    );
    assert_eq!(alerts(), 1);
}
