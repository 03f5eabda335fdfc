//! Teams and clarifying questions on the real stack (issue 17): three customers write — a
//! double charge without an invoice number, one with it, an outage — and each acknowledgement
//! in their mailbox names the team that has their message and asks only what the email does not
//! already say; the tickets carry their teams and reasons; the billing team's digest lists only
//! billing tickets; a staff `#team` email re-routes a ticket, logged as an event.

use crate::common::MailStack;
use crate::daemon::{self, Daemon, DaemonConfig, WAIT, customer_email, text_of, wait_until};

const TEAMS: &str = r#"
[[team]]
name = "billing"
description = "our billing specialists, who can check the charges on your account"
staff = ["staff@example.test"]
intents = ["billing", "refund"]

[[team]]
name = "technical"
description = "our engineers, who can see what went wrong on our side"
staff = ["staff@example.test"]
intents = ["outage", "data-loss"]

[[team]]
name = "general"
description = "our support team"
staff = ["staff@example.test"]
default = true

[[ask]]
id = "invoice"
question = "Could you send us the invoice or order number?"
intents = ["billing", "refund"]
unless = ['(?i)\b(invoice|order|receipt)\b\W{0,3}(no\.?|number|#)?\W{0,3}[a-z]{0,4}-?\d{3,}']

[[ask]]
id = "since-when"
question = "What were you doing when it stopped working, and since when?"
intents = ["outage"]
unless = ['(?i)\b(since|yesterday|this morning|today|last night|ago)\b']

[[digest]]
name = "billing"
to = ["staff@example.test"]
times = ["06:00"]
timezone = "UTC"
teams = ["billing"]
send_empty = true
"#;

const INVOICE_Q: &str = "Could you send us the invoice or order number?";
const SINCE_Q: &str = "What were you doing when it stopped working, and since when?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_name_the_team_and_ask_only_what_is_missing() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).raw(TEAMS).write();
    let d = Daemon::start(&cfg);

    stack.deliver(
        "support@example.test",
        &customer_email(
            "ana@example.test",
            "a1@c",
            "Charged twice",
            "Hello, I was charged twice for my subscription this month. Please refund the second payment.",
        ),
    );
    stack.deliver(
        "support@example.test",
        &customer_email(
            "ben@example.test",
            "b1@c",
            "Double charge on invoice INV-20417",
            "Hello, invoice INV-20417 was charged twice to my card. Please refund one of the payments.",
        ),
    );
    stack.deliver(
        "support@example.test",
        &customer_email(
            "cy@example.test",
            "c1@c",
            "App is down",
            "The app is down, none of our team can work. Please fix it.",
        ),
    );

    let ack_of = |who: &'static str| {
        let stack = &stack;
        async move {
            let got = stack.wait_for(who, "INBOX", |m| !m.is_empty(), WAIT).await;
            text_of(&got[0])
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let ana = ack_of("ana@example.test").await;
    assert!(
        ana.contains("our billing specialists, who can check the charges on your account"),
        "{ana}"
    );
    assert!(ana.contains(INVOICE_Q), "{ana}");
    let ben = ack_of("ben@example.test").await;
    assert!(ben.contains("our billing specialists"), "{ben}");
    assert!(
        !ben.contains(INVOICE_Q) && !ben.contains(SINCE_Q),
        "the invoice number is in the email: nothing to ask\n{ben}"
    );
    let cy = ack_of("cy@example.test").await;
    assert!(
        cy.contains("our engineers, who can see what went wrong on our side"),
        "{cy}"
    );
    assert!(cy.contains(SINCE_Q), "{cy}");
    assert!(!cy.contains(INVOICE_Q), "{cy}");

    // The tickets carry their teams, and why.
    let team_of = |customer: &str| -> (String, String, String) {
        daemon::db(&cfg)
            .query_row(
                "SELECT tag, team, route_reason FROM tickets WHERE customer = ?1",
                [customer],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("the customer's ticket")
    };
    let (ana_tag, team, reason) = team_of("ana@example.test");
    assert_eq!(team, "billing");
    assert!(
        reason.starts_with("intent billing, rule billing-error"),
        "{reason}"
    );
    assert_eq!(team_of("ben@example.test").1, "billing");
    let (cy_tag, team, reason) = team_of("cy@example.test");
    assert_eq!(team, "technical");
    assert!(reason.starts_with("intent outage, rule outage"), "{reason}");

    // The billing team's digest lists only billing tickets.
    let triaged = |args: &[&str]| daemon::cli_ok(&cfg, args);
    let digest = triaged(&["digest", "--preview", "--name", "billing"]);
    assert!(
        digest.contains(&ana_tag) && digest.contains(&team_of("ben@example.test").0),
        "{digest}"
    );
    assert!(!digest.contains(&cy_tag), "{digest}");
    let listed = triaged(&["tickets", "--team", "technical"]);
    assert!(
        listed.contains(&cy_tag) && !listed.contains(&ana_tag),
        "{listed}"
    );

    // Staff re-route Ana's ticket by email.
    let reroute = format!(
        "From: <staff@example.test>\r\nTo: support@example.test\r\nSubject: Re: Charged twice [#{ana_tag}]\r\n\
         Message-ID: <s1@support>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n#team technical\r\nThe app charged twice: a bug.\r\n"
    );
    stack.deliver("support@example.test", reroute.as_bytes());
    assert!(
        wait_until(WAIT, || team_of("ana@example.test").1 == "technical"),
        "{}\n^ the daemon's log",
        d.log_text()
    );
    let events = daemon::count(
        &cfg,
        &format!(
            "SELECT count(*) FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
             WHERE t.tag = '{ana_tag}' AND e.event = 'routed'"
        ),
    );
    assert_eq!(events, 2, "routed when opened, and by staff");
    let shown = triaged(&["ticket", "show", &ana_tag]);
    assert!(shown.contains("technical"), "{shown}");

    // SIGHUP: a broken question is refused where it is written and the old teams stay; a new
    // description applies to the next acknowledgement.
    let config = std::fs::read_to_string(&cfg.path).expect("config");
    let broken = config.replace(r"(since|yesterday", r"(since|yesterday(");
    std::fs::write(&cfg.path, &broken).expect("write config");
    let mut d = d;
    d.hup();
    d.await_log(&["Reload refused"], WAIT);
    assert!(
        d.log_text().contains("unless pattern does not compile"),
        "the problem is named:\n{}",
        d.log_text()
    );
    let renamed = config.replace(
        "our billing specialists, who can check the charges on your account",
        "our payments team, who can see every charge",
    );
    std::fs::write(&cfg.path, &renamed).expect("write config");
    d.hup();
    d.await_log(&["Configuration reloaded"], WAIT);
    stack.deliver(
        "support@example.test",
        &customer_email(
            "dee@example.test",
            "d1@c",
            "Refund please",
            "I was charged twice, please refund me. Order 55123.",
        ),
    );
    let dee = ack_of("dee@example.test").await;
    assert!(
        dee.contains("our payments team, who can see every charge"),
        "{dee}"
    );
    assert!(!dee.contains(INVOICE_Q), "{dee}");
}
