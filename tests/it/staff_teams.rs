//! Staff and teams on the real stack: the daemon binary routes each customer's ticket to a
//! `[[team]]`; staff re-route one by email (`#team NAME`) and from the command line; a name no
//! team has changes nothing and is said; `triaged tickets --team`, `triaged ticket show` and a
//! team's digest preview follow.

use std::time::Duration;

use crate::common::MailStack;
use crate::daemon::{self, Daemon, DaemonConfig, customer_email, wait_until};

const WAIT: Duration = Duration::from_secs(20);

const TEAMS: &str = r#"
[[team]]
name = "billing"
description = "our billing specialists, who can check the charges on your account"
staff = ["staff@example.test"]
intents = ["billing", "refund"]

[[team]]
name = "technical"
description = "our engineers, who can see what failed"
staff = ["staff@example.test"]
intents = ["outage"]
default = true

[[digest]]
name = "billing"
to = ["staff@example.test"]
times = ["09:00"]
teams = ["billing"]
"#;

/// A staff email under ticket `tag`'s subject tag whose first line is `body`.
fn staff_email(message_id: &str, tag: &str, body: &str) -> Vec<u8> {
    format!(
        "From: <staff@example.test>\r\nTo: support@example.test\r\nSubject: Re: Your message [#{tag}]\r\n\
         Message-ID: <{message_id}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_reroute_tickets_by_email_and_cli_and_list_a_teams_tickets() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack).raw(TEAMS).write();
    let d = Daemon::start(&cfg);
    let team = |tag: &str| -> String {
        daemon::db(&cfg)
            .query_row("SELECT team FROM tickets WHERE tag = ?1", [tag], |r| {
                r.get(0)
            })
            .unwrap_or_default()
    };
    let events = |tag: &str, event: &str| -> i64 {
        daemon::db(&cfg)
            .query_row(
                "SELECT count(*) FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
                 WHERE t.tag = ?1 AND e.event = ?2",
                [tag, event],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };
    let run = |args: &[&str]| {
        let (code, out, err) = daemon::cli(&cfg, args);
        (code == 0, out, err)
    };
    let ok = |args: &[&str]| {
        let (ok, out, err) = run(args);
        assert!(ok, "{args:?}: {err}");
        out
    };

    // A double charge goes to billing; an outage to technical.
    stack.deliver(
        "support@example.test",
        &customer_email(
            "ada@customer.example",
            "c1@customer",
            "Charged twice",
            "I was charged twice this month. Please refund one of the payments.",
        ),
    );
    assert!(
        wait_until(WAIT, || team("T-1001") == "billing"),
        "{}\n^ the daemon's log; T-1001 is with {:?}",
        d.log_text(),
        team("T-1001")
    );
    stack.deliver(
        "support@example.test",
        &customer_email(
            "bo@customer.example",
            "c2@customer",
            "Dashboard down",
            "The dashboard is down since this morning.",
        ),
    );
    assert!(
        wait_until(WAIT, || team("T-1002") == "technical"),
        "{}\n^ the daemon's log; T-1002 is with {:?}",
        d.log_text(),
        team("T-1002")
    );
    let billing = ok(&["tickets", "--team", "billing"]);
    assert!(
        billing.contains("T-1001") && !billing.contains("T-1002"),
        "{billing}"
    );
    assert!(billing.contains(" billing "), "the team column: {billing}");
    assert!(billing.ends_with("1 ticket(s)\n"), "{billing}");
    let show = ok(&["ticket", "show", "T-1001"]);
    assert!(show.contains("team      billing\n"), "{show}");
    assert!(show.contains("routed    intent "), "{show}");

    // The team's digest preview lists its ticket only.
    let preview = ok(&["digest", "--preview", "--name", "billing"]);
    assert!(
        preview.contains("T-1001") && !preview.contains("T-1002"),
        "{preview}"
    );
    assert!(preview.contains("team: billing"), "{preview}");

    // Staff re-route the charge to technical by email, among themselves: logged with who and
    // from where, and the ticket still waits for a reply (no one was answered).
    let state = |tag: &str| -> String {
        daemon::db(&cfg)
            .query_row("SELECT state FROM tickets WHERE tag = ?1", [tag], |r| {
                r.get(0)
            })
            .unwrap_or_default()
    };
    assert!(
        wait_until(WAIT, || state("T-1001") == "acknowledged"),
        "{}",
        d.log_text()
    );
    stack.deliver(
        "support@example.test",
        &staff_email("s1@support", "T-1001", "#team technical\nIt is the outage."),
    );
    assert!(
        wait_until(WAIT, || team("T-1001") == "technical"),
        "{}\n^ the daemon's log; T-1001 is with {:?}",
        d.log_text(),
        team("T-1001")
    );
    // A name no team has changes nothing, and is said in the history and the log.
    stack.deliver(
        "support@example.test",
        &staff_email("s2@support", "T-1001", "#team sales"),
    );
    assert!(
        wait_until(WAIT, || events("T-1001", "route_refused") == 1),
        "{}\n^ the daemon's log",
        d.log_text()
    );
    assert_eq!(team("T-1001"), "technical");
    assert_eq!(state("T-1001"), "acknowledged", "a note answers no one");
    assert!(
        d.log_text()
            .contains("Staff command #team refused, ticket unchanged"),
        "{}",
        d.log_text()
    );
    let show = ok(&["ticket", "show", "T-1001"]);
    for want in [
        "team      technical\n",
        "routed    re-routed from billing by #team from staff@example.test\n",
        "technical (was billing): #team from staff@example.test",
        "route_refused",
        "no [[team]] is named \"sales\" (teams: billing, technical)",
    ] {
        assert!(show.contains(want), "{want:?} missing from:\n{show}");
    }
    assert_eq!(
        ok(&["tickets", "--team", "billing"]),
        "No tickets.\n",
        "the charge is with technical now"
    );
    let technical = ok(&["tickets", "--team", "technical", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&technical).expect("json");
    let tags: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| t["tag"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(tags, ["T-1001", "T-1002"], "{technical}");
    let (_, typo, _) = run(&["tickets", "--team", "biling"]);
    assert!(
        typo.contains("no [[team]] is named \"biling\" (teams: billing, technical)"),
        "{typo}"
    );

    // From the command line: back to billing, then a no-op, then a refusal.
    let routed = ok(&["ticket", "route", "T-1001", "billing"]);
    assert!(
        routed.starts_with("T-1001: billing (was technical): cli ("),
        "{routed}"
    );
    assert_eq!(
        ok(&["ticket", "route", "1001", "billing"]),
        "T-1001 is with team billing already: nothing changed\n"
    );
    let (refused, _, err) = run(&["ticket", "route", "T-1001", "sales"]);
    assert!(!refused, "an unknown team is an error");
    assert!(err.contains("no [[team]] is named \"sales\""), "{err}");
    assert_eq!(team("T-1001"), "billing");
    assert_eq!(events("T-1001", "routed"), 3, "routed, #team, cli");
}
