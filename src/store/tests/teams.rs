//! Teams in the store: a ticket keeps the team its first email was routed to; staff re-route
//! it by email (`#team NAME`) or from the command line, each logged; a name no team has
//! changes nothing and is said; lists filter by team; a team's own alert recipients.

use super::*;
use crate::route::Routed;

const ALICE: &str = "alice@support.example";

fn routed(team: &str, reason: &str) -> Option<Routed> {
    Some(Routed {
        team: team.into(),
        reason: reason.into(),
    })
}

/// Teams `billing` (alerts to its own lead) and `technical` (alerts to `[alerts] to`).
fn with_teams(mut t: T) -> T {
    t.policy.teams = [
        (
            "billing".to_string(),
            vec!["billing-lead@example.test".into()],
        ),
        ("technical".to_string(), vec![]),
    ]
    .into();
    t
}

impl T {
    /// (team, route reason) of ticket `tag`.
    fn team_of(&self, tag: &str) -> (String, String) {
        self.store
            .conn()
            .query_row(
                "SELECT team, route_reason FROM tickets WHERE tag = ?1",
                [tag],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("ticket")
    }

    /// `event: detail` of ticket `tag`'s history lines named in `events`, oldest first.
    fn events_of(&self, tag: &str, events: &[&str]) -> Vec<String> {
        let (_, history) = self.store.ticket(tag).expect("read").expect("ticket");
        history
            .into_iter()
            .filter(|e| events.contains(&e.event.as_str()))
            .map(|e| format!("{}: {}", e.event, e.detail))
            .collect()
    }

    /// A staff email under ticket `tag`'s subject tag, saying `body`.
    fn staff_says(&mut self, uid: u32, tag: &str, body: &str) -> Recorded {
        let mut e = email(
            &format!("s{uid}@x"),
            ALICE,
            &format!("Re: [#{tag}] Charged twice"),
        );
        e.body_text = body.into();
        let now = self.now;
        self.route = None;
        self.put_as(
            1,
            uid,
            &e,
            Priority::Low,
            now,
            Err(Refusal::StaffSender),
            Role::Staff,
        )
    }
}

#[test]
fn a_ticket_keeps_its_first_route_and_staff_reroute_it_by_email() {
    let mut t = with_teams(T::new());
    t.route = routed(
        "billing",
        "intent refund, rule charged-twice: \u{201c}charged twice\u{201d}",
    );
    t.asks = vec!["invoice".into(), "account".into()];
    let r = t.put(
        1,
        &email("c1@x", "ada@customer.example", "Charged twice"),
        Priority::High,
    );
    assert_eq!(ack_of(&r).1, Some("T-1001"));
    assert_eq!(
        t.team_of("T-1001"),
        (
            "billing".into(),
            "intent refund, rule charged-twice: \u{201c}charged twice\u{201d}".into()
        )
    );
    // A later email of the customer routed elsewhere does not move the ticket: only staff do.
    t.route = routed("technical", "intent outage");
    t.asks = vec![];
    let mut again = email(
        "c2@x",
        "ada@customer.example",
        "Re: [#T-1001] Charged twice",
    );
    again.body_text = "And now the site is down too".into();
    t.put(2, &again, Priority::High);
    assert_eq!(t.team_of("T-1001").0, "billing");

    // `#team technical` from staff to support only: re-routed, logged with who and from
    // where; a note among staff, so the ticket still waits for a reply.
    let waiting = t.ticket("T-1001");
    t.staff_says(
        3,
        "T-1001",
        "#team technical\nThis is the outage, not the charge.",
    );
    assert_eq!(t.ticket("T-1001"), waiting, "not answered by a note");
    assert_eq!(
        t.team_of("T-1001"),
        (
            "technical".into(),
            format!("re-routed from billing by #team from {ALICE}")
        )
    );
    // The same again: nothing changes, nothing logged. A name no team has: nothing changes,
    // and the history says why (the log says it too).
    t.staff_says(4, "T-1001", "#team technical");
    t.staff_says(5, "T-1001", "#team billng");
    assert_eq!(t.team_of("T-1001").0, "technical");
    assert_eq!(
        t.events_of("T-1001", &["routed", "route_refused"]),
        [
            "routed: billing: intent refund, rule charged-twice: \u{201c}charged twice\u{201d}"
                .to_string(),
            format!("routed: technical (was billing): #team from {ALICE}"),
            format!(
                "route_refused: #team from {ALICE}: no [[team]] is named \"billng\" \
                 (teams: billing, technical)"
            ),
        ]
    );
    // A customer cannot give the command.
    t.route = None;
    let mut sly = email(
        "c3@x",
        "ada@customer.example",
        "Re: [#T-1001] Charged twice",
    );
    sly.body_text = "#team billing".into();
    t.put(6, &sly, Priority::Normal);
    assert_eq!(t.team_of("T-1001").0, "technical");

    // Staff who write to the customer and re-route in the same email answer them too.
    let mut answer = email("s7@x", ALICE, "Re: [#T-1001] Charged twice");
    answer.to = vec![crate::parse::Address {
        name: None,
        email: "Ada@Customer.example".into(),
    }];
    answer.body_text = "#team billing\nHi Ada, our billing team will write to you.".into();
    t.route = None;
    t.put_as(
        1,
        7,
        &answer,
        Priority::Low,
        NOW,
        Err(Refusal::StaffSender),
        Role::Staff,
    );
    assert_eq!(t.team_of("T-1001").0, "billing");
    assert_eq!(t.ticket("T-1001").0, "answered");

    // The questions asked of each email are kept with it.
    let asked = t.store.ticket_questions("T-1001").expect("questions");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].asks, ["invoice", "account"]);
    assert_eq!(asked[0].subject, "Charged twice");
}

#[test]
fn staff_reroute_from_the_command_line_only_to_a_configured_team() {
    let mut t = with_teams(T::new());
    t.put(
        1,
        &email("c1@x", "bo@customer.example", "Hello"),
        Priority::Normal,
    );
    assert_eq!(t.team_of("T-1001").0, "", "no route: no team");
    let policy = t.policy.clone();
    let mut route = |team: &str| {
        t.store
            .ticket_command(
                "1001",
                &tickets::Command::Team(team.into()),
                NOW,
                "cli (bob)",
                &policy,
            )
            .expect("route")
    };
    let applied = |outcome, team: &str, was: &str| {
        Some(Applied::Team {
            outcome,
            team: team.into(),
            was: was.into(),
        })
    };
    use crate::tickets::Reroute;
    assert_eq!(route("billing"), applied(Reroute::Moves, "billing", ""));
    assert_eq!(
        route("billing"),
        applied(Reroute::Already, "billing", "billing")
    );
    assert_eq!(
        route("sales"),
        applied(Reroute::Unknown, "sales", "billing")
    );
    assert_eq!(
        route("technical"),
        applied(Reroute::Moves, "technical", "billing")
    );
    assert_eq!(
        t.team_of("T-1001"),
        (
            "technical".into(),
            "re-routed from billing by cli (bob)".into()
        )
    );
    assert_eq!(
        t.events_of("T-1001", &["routed", "route_refused"]),
        [
            "routed: billing (was none): cli (bob)",
            "routed: technical (was billing): cli (bob)"
        ]
    );
    let none = t
        .store
        .ticket_command(
            "T-9",
            &tickets::Command::Team("billing".into()),
            NOW,
            "cli",
            &policy,
        )
        .expect("no ticket");
    assert_eq!(none, None);
    // Without teams configured every name is refused.
    let mut bare = policy.clone();
    bare.teams.clear();
    let refused = t
        .store
        .ticket_command(
            "T-1001",
            &tickets::Command::Team("billing".into()),
            NOW,
            "cli",
            &bare,
        )
        .expect("route");
    assert!(
        matches!(
            refused,
            Some(Applied::Team {
                outcome: Reroute::Unknown,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(t.team_of("T-1001").0, "technical");
}

#[test]
fn ticket_lists_filter_by_team_and_count_the_team_exactly() {
    let mut t = with_teams(T::new());
    let teams = [
        Some("billing"),
        Some("technical"),
        Some("billing"),
        None,
        Some("billing"),
    ];
    for (i, team) in teams.iter().enumerate() {
        let uid = i as u32 + 1;
        t.route = team.and_then(|n| routed(n, "intent x"));
        let who = format!("c{uid}@customer.example");
        t.put(
            uid,
            &email(&format!("m{uid}@x"), &who, "Hi"),
            Priority::Normal,
        );
    }
    t.store
        .ticket_command(
            "T-1003",
            &tickets::Command::Close,
            NOW,
            "cli",
            &t.policy.clone(),
        )
        .expect("close");
    let tags = |filter: TicketFilter<'_>, limit| {
        let list = t.store.tickets(&filter, limit).expect("list");
        let tags: Vec<String> = list.rows.iter().map(|r| r.tag.clone()).collect();
        (tags, list.total)
    };
    let billing = TicketFilter {
        team: Some("billing"),
        ..TicketFilter::default()
    };
    assert_eq!(
        tags(billing, None),
        (vec!["T-1001".into(), "T-1003".into(), "T-1005".into()], 3)
    );
    assert_eq!(tags(billing, Some(1)), (vec!["T-1001".into()], 3));
    let open: Vec<State> = State::ALL
        .into_iter()
        .filter(|s| *s != State::Closed)
        .collect();
    let open_billing = TicketFilter {
        states: &open,
        ..billing
    };
    assert_eq!(
        tags(open_billing, None),
        (vec!["T-1001".into(), "T-1005".into()], 2)
    );
    let high_billing = TicketFilter {
        priority: Some(Priority::High),
        ..billing
    };
    assert_eq!(tags(high_billing, None), (vec![], 0));
    let sales = TicketFilter {
        team: Some("sales"),
        ..TicketFilter::default()
    };
    assert_eq!(tags(sales, None), (vec![], 0));
    let list = t
        .store
        .tickets(&TicketFilter::default(), None)
        .expect("all");
    assert_eq!(list.total, 5);
    assert_eq!(list.rows[1].team, "technical");
    assert_eq!(list.rows[3].team, "");
}

#[test]
fn a_team_with_its_own_alert_recipients_is_alerted_apart() {
    let mut t = with_teams(T::with_alerts(10));
    t.route = routed("billing", "intent refund");
    t.customer(1, "a@c.example", "Chargeback");
    t.route = routed("technical", "intent outage");
    t.customer(2, "b@c.example", "Breach");
    t.route = None;
    t.customer(3, "c@c.example", "Breach");
    t.route = routed("billing", "intent refund");
    t.customer(4, "d@c.example", "Chargeback");
    let recipients = |key: &str| -> String {
        t.store
            .conn()
            .query_row(
                "SELECT recipients FROM notices WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .expect("alert row")
    };
    assert_eq!(recipients("alert:T-1001"), "billing-lead@example.test");
    assert_eq!(
        recipients("alert:T-1002"),
        LEAD,
        "a team without alert_to: [alerts] to"
    );
    assert_eq!(recipients("alert:T-1003"), LEAD, "no team");
    assert_eq!(recipients("alert:T-1004"), "billing-lead@example.test");
    // One email per set of recipients: each gets its own alerts only.
    let first = t
        .store
        .claim_notice(NOW, 10, None)
        .expect("claim")
        .expect("alerts");
    let second = t
        .store
        .claim_notice(NOW, 10, None)
        .expect("claim")
        .expect("alerts");
    assert!(
        t.store
            .claim_notice(NOW, 10, None)
            .expect("claim")
            .is_none()
    );
    let tickets =
        |c: &ClaimedNotice| -> Vec<String> { c.alerts.iter().map(|a| a.ticket.clone()).collect() };
    assert_eq!(first.recipients, ["billing-lead@example.test"]);
    assert_eq!(tickets(&first), ["T-1001", "T-1004"]);
    assert_eq!(second.recipients, [LEAD]);
    assert_eq!(tickets(&second), ["T-1002", "T-1003"]);
    // Each alert names its ticket's team (none: empty), for the template's "Team:" line.
    let teams =
        |c: &ClaimedNotice| -> Vec<String> { c.alerts.iter().map(|a| a.team.clone()).collect() };
    assert_eq!(teams(&first), ["billing", "billing"]);
    assert_eq!(teams(&second), ["technical", ""]);
}

#[test]
fn a_digest_reads_each_ticket_and_themed_email_with_its_team() {
    let mut t = with_teams(T::new());
    t.route = routed("billing", "intent refund");
    t.put(
        1,
        &email("c1@x", "a@customer.example", "Refund"),
        Priority::Normal,
    );
    t.route = None;
    t.put(
        2,
        &email("c2@x", "b@customer.example", "Hello"),
        Priority::Normal,
    );
    let policy = t.policy.clone();
    t.store
        .ticket_command(
            "T-1002",
            &tickets::Command::Team("technical".into()),
            NOW,
            "cli",
            &policy,
        )
        .expect("route");
    let snap = t
        .store
        .digest_snapshot(NOW - 60, NOW - 7200, NOW - 4000, &HashMap::new())
        .expect("snapshot");
    let teams: Vec<(&str, &str)> = snap
        .tickets
        .iter()
        .map(|f| (f.tag.as_str(), f.team.as_str()))
        .collect();
    assert_eq!(teams, [("T-1001", "billing"), ("T-1002", "technical")]);
    let mut themed: Vec<&str> = snap.messages.iter().map(|m| m.team.as_str()).collect();
    themed.sort();
    assert_eq!(themed, ["billing", "technical"], "the ticket's team now");
}
