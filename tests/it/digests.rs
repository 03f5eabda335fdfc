//! Staff mail end to end against a real Dovecot and a real SMTP server: an alert-worthy email
//! produces exactly one alert in the staff mailbox within seconds; when the daemon's clock
//! reaches the digest time, the digest lands there with the urgent tickets first and the right
//! counts, once per slot across a restart; a refused IMAP login raises one health alert and, once
//! fixed, one recovery note.

use std::time::{Duration, Instant};

use triaged::clock::Clock;

use crate::common::MailStack;
use crate::daemon;
use crate::daemon::{DaemonConfig, InProcess, WAIT, count, email, header, logging, text_of, until};

const STAFF: &str = "staff@example.test";

/// A team digest every day at `at` (UTC). With `staff_alerts`, alerts for rules marked
/// `alert = true` (the default pack marks security, legal threats and data loss).
fn digest(at: &str) -> String {
    format!(
        r#"
[[digest]]
name = "team"
to = ["staff@example.test"]
times = ["{at}"]
timezone = "UTC"
repeat_count = 2
"#
    )
}

/// The digest comes three hours after the emails (a fixed distance, so what is late or due
/// soon does not depend on the hour the test runs): the time of day, and when that is.
fn digest_slot() -> (String, i64) {
    let at = jiff::Timestamp::now()
        .checked_add(jiff::Span::new().hours(3))
        .expect("in range")
        .to_zoned(jiff::tz::TimeZone::UTC);
    let slot = at
        .date()
        .at(at.hour(), at.minute(), 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("a UTC time exists")
        .timestamp()
        .as_second();
    (format!("{:02}:{:02}", at.hour(), at.minute()), slot)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_within_seconds_and_the_digest_at_its_time_urgent_first() {
    logging();
    let stack = MailStack::start();
    let (time_of_day, slot) = digest_slot();
    let cfg = DaemonConfig::of(&stack)
        .password_command("echo pw")
        .staff_alerts()
        .raw(&digest(&time_of_day))
        .write();
    let config = cfg.load();
    // The real time, so the server's arrival stamps and the daemon agree; the test then moves
    // the clock to the digest's time.
    let clock = Clock::system();
    let d = InProcess::start(&config, &clock);

    let mails = vec![
        email(
            "ana@example.test",
            "a1@c",
            None,
            "Checkout is down for all our customers",
            "Since this morning checkout is down for all our customers and we are losing orders every minute. Please fix this now, it is urgent.",
        ),
        email(
            "ben@example.test",
            "b1@c",
            None,
            "Data breach? Our lawyer is involved",
            "Your app showed our customer list to another company. This is a data breach and our lawyer will contact you.",
        ),
        email(
            "cy@example.test",
            "c1@c",
            None,
            "Question about invoices",
            "Hello, which address is printed on the invoice? Thanks.",
        ),
        email(
            "dee@example.test",
            "d1@c",
            None,
            "Dark mode",
            "Would be nice to have a dark mode. Thanks!",
        ),
    ];
    let delivered = Instant::now();
    stack
        .append_many("support@example.test", "INBOX", &mails, None)
        .await;

    // The data-breach email raises one alert, in the staff mailbox within seconds.
    let staff = stack
        .wait_for(STAFF, "INBOX", |m| !m.is_empty(), WAIT)
        .await;
    let alert_latency = delivered.elapsed();
    eprintln!(
        "alert in the staff mailbox {} ms after delivery",
        alert_latency.as_millis()
    );
    assert!(alert_latency < Duration::from_secs(10), "{alert_latency:?}");
    let alert = &staff[0];
    let ben = |col: &str| -> String {
        daemon::db(&cfg)
            .query_row(
                &format!("SELECT {col} FROM tickets WHERE customer = 'ben@example.test'"),
                [],
                |r| r.get(0),
            )
            .expect("Ben's ticket")
    };
    let subject = header(alert, "Subject");
    assert!(
        subject.contains("ALERT") && subject.contains(&ben("tag")),
        "{subject}"
    );
    assert_eq!(header(alert, "Auto-Submitted"), "auto-generated");
    let body = text_of(alert);
    assert!(
        body.contains("security") && body.contains("data breach"),
        "{body}"
    );

    let acks = || {
        count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND state = 'sent'",
        )
    };
    until("four acknowledgements", || acks() == 4).await;

    // Ben writes again, just as alarming: the same ticket, no second alert.
    stack
        .append(
            "support@example.test",
            "INBOX",
            &email(
                "ben@example.test",
                "b2@c",
                Some("b1@c"),
                "Re: Data breach? Our lawyer is involved",
                "Still no answer about the data breach. Our lawyer is waiting.",
            ),
        )
        .await;
    until("Ben's second email recorded", || {
        count(&cfg, "SELECT count(*) FROM messages") == 5
    })
    .await;
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM notices WHERE kind = 'alert'"),
        1
    );

    // The digest's time.
    clock.advance(slot - clock.now());
    let staff = stack.wait_for(STAFF, "INBOX", |m| m.len() == 2, WAIT).await;
    let digest = &staff[1];
    let subject = header(digest, "Subject");
    assert!(
        subject.starts_with("[triaged] team digest: 2 urgent"),
        "urgent first in the subject: {subject}"
    );
    assert!(subject.ends_with("4 waiting"), "{subject}");
    assert_eq!(header(digest, "Auto-Submitted"), "auto-generated");
    assert!(
        String::from_utf8_lossy(&digest.raw).contains("multipart/alternative"),
        "text and HTML"
    );
    let text = text_of(digest);
    let urgent = text
        .find("== Urgent (2) ==")
        .unwrap_or_else(|| panic!("{text}"));
    let others = text
        .find("== Oldest unanswered (2) ==")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(urgent < others, "urgent before the rest:\n{text}");
    let tag = |who: &str| -> String {
        daemon::db(&cfg)
            .query_row("SELECT tag FROM tickets WHERE customer = ?1", [who], |r| {
                r.get(0)
            })
            .expect("ticket")
    };
    for who in ["ana@example.test", "ben@example.test"] {
        let at = text.find(&tag(who)).expect("listed");
        assert!(
            urgent < at && at < others,
            "{who} is in the urgent section:\n{text}"
        );
    }
    for who in ["cy@example.test", "dee@example.test"] {
        assert!(
            text.find(&tag(who)).expect("listed") > others,
            "{who}:\n{text}"
        );
    }
    assert!(text.contains("4 tickets waiting for a reply"), "{text}");
    assert!(
        text.contains("2nd email in 1 day"),
        "Ben wrote twice:\n{text}"
    );
    assert!(
        text.contains("outage (\u{201c}is down\u{201d})"),
        "the rule hits:\n{text}"
    );
    assert!(text.contains("Recurring themes"), "{text}");

    // A restart does not send that digest again; the next day's comes once.
    d.stop().await;
    let d = InProcess::start(&config, &clock);
    clock.advance(86_400);
    stack.wait_for(STAFF, "INBOX", |m| m.len() == 3, WAIT).await;
    assert!(header(&stack.fetch_all(STAFF, "INBOX").await[2], "Subject").contains("team digest"));
    d.stop().await;
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM notices WHERE kind = 'digest'"),
        2
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM notices WHERE kind = 'alert'"),
        1
    );
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM notices WHERE kind = 'health'"),
        0,
        "no false health alarm"
    );
    assert_eq!(stack.fetch_all(STAFF, "INBOX").await.len(), 3);

    // The command line: a preview from the store sends nothing; --send-now sends one at once.
    let triaged = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
            .args(args)
            .args(["--config", &cfg.path.display().to_string()])
            .output()
            .expect("run triaged");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let html = cfg.dir.path().join("preview.html");
    let preview = triaged(&["digest", "--preview", "--html", &html.display().to_string()]);
    assert!(
        preview.contains("(not sent)") && preview.contains("== Urgent (2) =="),
        "{preview}"
    );
    let page = std::fs::read_to_string(&html).expect("the HTML preview");
    assert!(page.contains("<h2 class=\"urgent\">Urgent"), "{page}");
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM notices WHERE kind = 'digest'"),
        2
    );
    let sent = triaged(&["digest", "--send-now", "--name", "team"]);
    assert!(
        sent.starts_with("Sent digest \"team\" to staff@example.test"),
        "{sent}"
    );
    let staff = stack.wait_for(STAFF, "INBOX", |m| m.len() == 4, WAIT).await;
    assert!(header(&staff[3], "Subject").contains("team digest"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_alerts_once_and_its_recovery_once() {
    logging();
    let stack = MailStack::start();
    let b = DaemonConfig::of(&stack);
    let password = b.dir().join("password");
    std::fs::write(&password, "wrong").expect("password file");
    let cfg = b
        .password_command(&format!("cat {}", password.display()))
        .staff_alerts()
        .raw(&digest("09:00"))
        .write();
    let config = cfg.load();
    let clock = Clock::system();
    let d = InProcess::start(&config, &clock);

    // The login keeps failing while the clock runs past the 5 minute grace.
    let health = || count(&cfg, "SELECT count(*) FROM notices WHERE kind = 'health'");
    let deadline = Instant::now() + WAIT;
    while health() == 0 {
        assert!(Instant::now() < deadline, "no health alert");
        clock.advance(120);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let staff = stack
        .wait_for(STAFF, "INBOX", |m| !m.is_empty(), WAIT)
        .await;
    let subject = header(&staff[0], "Subject");
    assert_eq!(subject, "[triaged] PROBLEM: IMAP login failing");
    let body = text_of(&staff[0]);
    assert!(
        body.contains("check the username and password source"),
        "{body}"
    );

    // Still failing, much later: no second alert.
    clock.advance(3600);
    // Fixed: the next login works; once it has stayed fine for 5 minutes, one recovery note.
    std::fs::write(&password, "pw").expect("password file");
    let deadline = Instant::now() + WAIT;
    while health() < 2 {
        assert!(Instant::now() < deadline, "no recovery note");
        clock.advance(120);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let staff = stack.wait_for(STAFF, "INBOX", |m| m.len() == 2, WAIT).await;
    assert_eq!(
        header(&staff[1], "Subject"),
        "[triaged] RECOVERED: IMAP login failing"
    );
    clock.advance(3600);
    d.stop().await;
    assert_eq!(health(), 2, "one alert, one recovery");
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM incidents WHERE resolved_at > 0"),
        1
    );
}
