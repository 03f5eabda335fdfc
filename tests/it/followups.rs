//! The promise kept, end to end against a real Dovecot and a real SMTP server: the daemon runs
//! in this process on a clock the test moves (business hours in Europe/Berlin), so a follow-up
//! due two working days later arrives in the customer's INBOX within seconds, and a restart in
//! between changes nothing.

use triaged::clock::Clock;

use crate::common::MailStack;
use crate::daemon;
use crate::daemon::{DaemonConfig, InProcess, WAIT, count, email, header, logging, text_of, until};

/// Business hours (the default Monday to Friday 09:00-17:00) in Berlin; every priority gets
/// the same 8 business hours, so the wording does not depend on how the rules score.
const POLICY: &str = r#"
[sla]
timezone = "Europe/Berlin"
[sla.first_response]
urgent = "8h"
high = "8h"
normal = "8h"
low = "8h"

[followups]
holding = true
verify = true
verify_after = "16h"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followups_keep_the_promise_on_business_time_and_survive_a_restart() {
    logging();
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack)
        .sent_folder("Sent")
        .password_command("echo pw")
        .raw(POLICY)
        .write();
    let config = cfg.load();

    // The daemon's clock starts at 09:29 on a Monday in Berlin at least a week ago.
    let (day, monday) = daemon::past_monday("Europe/Berlin", 9, 29);
    let wednesday = (day + jiff::Span::new().days(2)).to_string();
    let clock = Clock::system();
    clock.advance(monday - clock.now());
    // The Sent folder exists before the daemon starts.
    stack
        .append(
            "support@example.test",
            "Sent",
            &email(
                "support@example.test",
                "old@s",
                None,
                "Old",
                "An old reply.",
            ),
        )
        .await;
    let d = InProcess::start(&config, &clock);

    // Four customers write.
    let mails = vec![
        email(
            "ana@example.test",
            "a1@c",
            None,
            "Export fails",
            "The export does not finish.",
        ),
        email(
            "ben@example.test",
            "b1@c",
            None,
            "Invoice question",
            "Which address is on the invoice?",
        ),
        email(
            "cy@example.test",
            "c1@c",
            None,
            "Leaving",
            "Please cancel my subscription.",
        ),
        email(
            "dee@example.test",
            "d1@c",
            None,
            "Import question",
            "Can I import from CSV?",
        ),
    ];
    stack
        .append_many("support@example.test", "INBOX", &mails, None)
        .await;
    let sent = || count(&cfg, "SELECT count(*) FROM outbox WHERE state = 'sent'");
    until("four acknowledgements", || sent() == 4).await;
    let tag = |customer: &str| -> String {
        daemon::db(&cfg)
            .query_row(
                "SELECT tag FROM tickets WHERE customer = ?1",
                [customer],
                |r| r.get(0),
            )
            .expect("ticket")
    };
    let state = |customer: &str| -> String {
        daemon::db(&cfg)
            .query_row(
                "SELECT state FROM tickets WHERE customer = ?1",
                [customer],
                |r| r.get(0),
            )
            .unwrap_or_default()
    };

    // The acknowledgement promises a time on the desk's clock: 8 business hours from Monday
    // 09:29 is Tuesday 09:29, stated as the next quarter hour.
    let inbox = stack
        .wait_for("ana@example.test", "INBOX", |m| m.len() == 1, WAIT)
        .await;
    let ack = text_of(&inbox[0]);
    // (CET or CEST, depending on the season the week falls in.)
    assert!(ack.contains("will reply tomorrow by 09:30 CE"), "{ack}");

    // Staff answer Ana from the shared account (Sent) and Ben and Cy from their own address.
    stack
        .append(
            "support@example.test",
            "Sent",
            &email(
                "support@example.test",
                "s-a@s",
                Some("a1@c"),
                "Re: Export fails",
                "Fixed, try again.",
            ),
        )
        .await;
    let staff = vec![
        email(
            "staff@example.test",
            "s-b@s",
            Some("b1@c"),
            "Re: Invoice question",
            "The billing address.",
        ),
        email(
            "staff@example.test",
            "s-c@s",
            Some("c1@c"),
            "Re: Leaving",
            "Done, sorry to see you go.",
        ),
    ];
    stack
        .append_many("support@example.test", "INBOX", &staff, None)
        .await;
    until("three answered tickets", || {
        ["ana@example.test", "ben@example.test", "cy@example.test"]
            .iter()
            .all(|c| state(c) == "answered")
    })
    .await;
    // Ben writes back: his resolution check is cancelled, and a new wait begins.
    stack
        .append_many(
            "support@example.test",
            "INBOX",
            &[email(
                "ben@example.test",
                "b2@c",
                Some("s-b@s"),
                "Re: Invoice question",
                "And the VAT number?",
            )],
            None,
        )
        .await;
    until("Ben's ticket reopened", || {
        state("ben@example.test") == "reopened"
    })
    .await;

    let pending = |customer: &str| -> Vec<String> {
        let db = daemon::db(&cfg);
        let mut stmt = db
            .prepare(
                "SELECT o.kind FROM outbox o JOIN tickets t ON t.id = o.ticket_id
                 WHERE t.customer = ?1 AND o.state = 'pending' ORDER BY o.id",
            )
            .expect("prep");
        stmt.query_map([customer], |r| r.get(0))
            .expect("q")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(pending("ana@example.test"), ["verify"]);
    assert_eq!(pending("ben@example.test"), ["holding"]);
    assert!(
        pending("cy@example.test").is_empty(),
        "no follow-ups for a customer who leaves"
    );
    assert_eq!(pending("dee@example.test"), ["holding"]);
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE kind = 'verify' AND state = 'cancelled' AND last_error = 'customer_replied'"
        ),
        1
    );

    // A fifth customer's acknowledgement bounces: the report files with the ticket and cancels
    // its holding note.
    stack
        .append_many(
            "support@example.test",
            "INBOX",
            &[email(
                "customer@example.test",
                "e1@c",
                None,
                "Login",
                "I cannot log in.",
            )],
            None,
        )
        .await;
    until("the fifth acknowledgement", || sent() == 5).await;
    assert_eq!(pending("customer@example.test"), ["holding"]);
    let ack_id: String = daemon::db(&cfg)
        .query_row(
            "SELECT out_message_id FROM outbox WHERE kind = 'ack' AND recipient = 'customer@example.test'",
            [],
            |r| r.get(0),
        )
        .expect("ack id");
    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\nTo: support@example.test\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example.test>\r\n\
         Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full; the mail was returned.\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
         Final-Recipient: rfc822; customer@example.test\r\nAction: failed\r\nStatus: 5.2.2\r\n\
         --b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@example.test\r\n\
         To: customer@example.test\r\nMessage-ID: <{ack_id}>\r\nSubject: Re: Login\r\n--b--\r\n"
    );
    stack
        .append_many("support@example.test", "INBOX", &[dsn.into_bytes()], None)
        .await;
    until("the bounce cancelling the holding note", || {
        pending("customer@example.test").is_empty()
    })
    .await;
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE recipient = 'customer@example.test' AND kind = 'holding'
               AND state = 'cancelled' AND last_error = 'bounced'"
        ),
        1
    );

    let queue = triaged::outbox::queue_report(&config, &clock, false, false).expect("queue");
    assert!(
        queue.contains("verify") && queue.contains(&format!("scheduled {wednesday}")),
        "{queue}"
    );

    // A restart changes nothing: the same rows wait, nothing is sent again.
    let rows_before = count(&cfg, "SELECT count(*) FROM outbox");
    d.stop().await;
    let d = InProcess::start(&config, &clock);
    // Mail is processed in order: once a newsletter sent after the restart is recorded,
    // everything before it has been looked at again.
    let recorded = count(&cfg, "SELECT count(*) FROM messages");
    let newsletter = "From: <news@example.test>\r\nTo: support@example.test\r\nSubject: News\r\n\
        Message-ID: <n1@news>\r\nList-Id: <news.example.test>\r\nPrecedence: bulk\r\n\r\nNews.\r\n";
    stack
        .append_many(
            "support@example.test",
            "INBOX",
            &[newsletter.as_bytes().to_vec()],
            None,
        )
        .await;
    until("the newsletter recorded after the restart", || {
        count(&cfg, "SELECT count(*) FROM messages") == recorded + 1
    })
    .await;
    assert_eq!(count(&cfg, "SELECT count(*) FROM outbox"), rows_before);
    assert_eq!(sent(), 5);

    // Tuesday 09:59: the first-response target has passed for Dee and for Ben's second wait.
    clock.advance(monday + 86_400 + 30 * 60 - clock.now());
    until("two holding notes", || sent() == 7).await;
    let dee = stack
        .wait_for("dee@example.test", "INBOX", |m| m.len() == 2, WAIT)
        .await;
    assert_eq!(dee.len(), 2);
    let note = &dee[1];
    assert!(text_of(note).contains("still open"), "{}", text_of(note));
    assert!(text_of(note).contains("tomorrow by"), "{}", text_of(note));
    assert_eq!(header(note, "In-Reply-To"), "<d1@c>");
    assert_eq!(header(note, "Auto-Submitted"), "auto-replied");
    assert!(header(note, "Subject").contains(&format!("[#{}]", tag("dee@example.test"))));
    assert!(header(note, "Message-ID").contains(".holding.1@support.example.test"));
    assert_eq!(
        pending("ana@example.test"),
        ["verify"],
        "Ana's check is not due yet"
    );
    // The ticket list shows the SLA clock: Dee's reply is overdue, Ana is waited on by nobody.
    let list =
        triaged::tools::tickets::list(&config, &Default::default(), None, false, clock.now())
            .expect("list");
    let line = |customer: &str| {
        list.lines()
            .find(|l| l.contains(customer))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("dee@example.test").contains(" late "), "{list}");
    assert!(line("ana@example.test").contains(" answered "), "{list}");

    // Wednesday 09:59: 16 business hours after the answer, Ana is asked whether it helped.
    clock.advance(monday + 2 * 86_400 + 30 * 60 - clock.now());
    until("the resolution check", || sent() == 8).await;
    let ana = stack
        .wait_for("ana@example.test", "INBOX", |m| m.len() == 2, WAIT)
        .await;
    let check = text_of(&ana[1]);
    assert!(
        check.contains("Did our answer solve the problem?")
            && check.contains("How else can we help?"),
        "{check}"
    );
    assert_eq!(header(&ana[1], "In-Reply-To"), "<a1@c>");

    // A week on, after another restart: nothing else was due, nothing is sent twice.
    d.stop().await;
    clock.advance(7 * 86_400);
    let d = InProcess::start(&config, &clock);
    let due = triaged::outbox::queue_report(&config, &clock, true, false).expect("queue");
    assert!(due.ends_with("(nothing is due now)\n"), "{due}");
    d.stop().await;
    assert_eq!(sent(), 8);
    let cy = stack.fetch_all("cy@example.test", "INBOX").await;
    assert_eq!(cy.len(), 1, "Cy got the acknowledgement only");
}
