//! A fixed store snapshot, written for the project: a Monday-morning support queue in Berlin.
//! It feeds the golden tests, the template lint of `triaged check`, and the screenshots in
//! docs/.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    Context, Digest, DigestConfig, HitFact, OutFact, Schedule, Snapshot, ThemeEmail, TicketFacts,
    build,
};
use crate::score::Priority;
use crate::sla::SlaConfig;
use crate::sla::{Calendar, RawCalendar};
use crate::tickets::State;

/// Berlin wall-clock time ("2026-11-23 09:00") as seconds since the epoch.
fn berlin(s: &str) -> i64 {
    let dt: jiff::civil::DateTime = s.parse().expect("fixture time");
    dt.to_zoned(crate::sla::time_zone("Europe/Berlin").expect("zone"))
        .expect("fixture time in Berlin")
        .timestamp()
        .as_second()
}

/// Business hours Monday to Friday 09:00-17:00 in Berlin, the default targets.
pub fn sla() -> SlaConfig {
    let calendar = Calendar::from_raw(&RawCalendar {
        timezone: "Europe/Berlin".into(),
        hours: BTreeMap::new(),
        holidays: Vec::new(),
    })
    .expect("fixture calendar");
    SlaConfig {
        calendar,
        business_hours: true,
        ..SlaConfig::default()
    }
}

/// The team digest: 09:00 and 15:00 on weekdays.
pub fn config() -> DigestConfig {
    let tz = crate::sla::time_zone("Europe/Berlin").expect("zone");
    let weekdays: Vec<String> = ["mon", "tue", "wed", "thu", "fri"]
        .iter()
        .map(|d| (*d).to_string())
        .collect();
    DigestConfig {
        name: "team".into(),
        to: vec!["lead@example.com".into()],
        schedule: Schedule::parse(tz, &["09:00".into(), "15:00".into()], &weekdays)
            .expect("fixture schedule"),
        quiet: None,
        send_empty: false,
        intents: Vec::new(),
        priorities: Vec::new(),
        teams: Vec::new(),
        due_soon: Duration::from_secs(2 * 3600),
        repeat_count: 3,
        repeat_window: Duration::from_secs(7 * 86_400),
        tones: vec!["angry".into(), "abusive".into()],
        threats: vec!["legal-threat".into(), "public-threat".into()],
        oldest: 1,
        max_per_section: 20,
        period: None,
    }
}

/// The digest's time: Monday 23 November 2026, 09:00 in Berlin.
pub fn at() -> i64 {
    berlin("2026-11-23 09:00")
}

struct T {
    tag: &'static str,
    name: &'static str,
    email: &'static str,
    subject: &'static str,
    state: State,
    priority: Priority,
    created: &'static str,
}

fn ticket(t: T) -> TicketFacts {
    let created_at = berlin(t.created);
    TicketFacts {
        tag: t.tag.into(),
        customer: t.email.into(),
        customer_name: t.name.into(),
        subject: t.subject.into(),
        state: t.state,
        priority: t.priority,
        created_at,
        first_response_at: 0,
        last_customer_at: created_at,
        team: String::new(),
        tones: Vec::new(),
        intents: Vec::new(),
        hits: Vec::new(),
        excerpt: String::new(),
        contacts: vec![created_at],
        followups: Vec::new(),
        failed_deliveries: Vec::new(),
    }
}

fn hit(rule: &str, matched: &str, weight: f64) -> HitFact {
    HitFact {
        rule: rule.into(),
        matched: matched.into(),
        weight,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

/// The Monday-morning queue.
pub fn snapshot() -> Snapshot {
    let mut tickets = Vec::new();

    let mut t = ticket(T {
        tag: "T-1041",
        name: "Ines Ortega",
        email: "ines@shop.example",
        subject: "Checkout is down for all our customers",
        state: State::Acknowledged,
        priority: Priority::Urgent,
        created: "2026-11-23 08:10",
    });
    t.team = "technical".into();
    t.tones = strings(&["angry"]);
    t.intents = strings(&["outage"]);
    t.hits = vec![
        hit("outage", "is down", 5.0),
        hit("many-affected", "all our customers", 3.0),
        hit("deadline", "black friday", 2.0),
        hit("polite", "thanks", -0.5),
    ];
    t.excerpt = "Since 7 this morning checkout is down for all our customers. Black Friday \
                 starts in four days and we are losing orders every minute. Call me: +34 600 \
                 000 000."
        .into();
    tickets.push(t);

    let mut t = ticket(T {
        tag: "T-1038",
        name: "Jonas Weber",
        email: "jonas.weber@example.net",
        subject: "Charged twice for November",
        state: State::Acknowledged,
        priority: Priority::High,
        created: "2026-11-20 10:00",
    });
    t.team = "billing".into();
    t.tones = strings(&["frustrated"]);
    t.intents = strings(&["billing", "refund"]);
    t.hits = vec![
        hit("charged-twice", "charged twice", 4.0),
        hit("refund", "refund", 1.0),
    ];
    t.excerpt = "My card was charged twice for the November invoice (2 x 49 EUR). Please \
                 refund one of them."
        .into();
    tickets.push(t);

    let mut t = ticket(T {
        tag: "T-1027",
        name: "Priya Nair",
        email: "priya@clinic.example",
        subject: "Export still failing",
        state: State::Reopened,
        priority: Priority::Normal,
        created: "2026-11-16 10:00",
    });
    t.first_response_at = berlin("2026-11-16 15:00");
    t.last_customer_at = berlin("2026-11-17 10:00");
    t.contacts = vec![
        berlin("2026-11-16 10:00"),
        berlin("2026-11-16 16:30"),
        berlin("2026-11-17 10:00"),
    ];
    t.tones = strings(&["anxious"]);
    t.hits = vec![hit("not-working", "still failing", 2.0)];
    t.excerpt = "The export you suggested still fails with the same error. We need the \
                 patient list for an audit on Friday."
        .into();
    tickets.push(t);

    let mut t = ticket(T {
        tag: "T-1040",
        name: "",
        email: "m.brandt@example.org",
        subject: "USELESS",
        state: State::Acknowledged,
        priority: Priority::Normal,
        created: "2026-11-23 07:30",
    });
    t.tones = strings(&["abusive", "angry"]);
    t.hits = vec![hit("insult", "useless", 2.0), hit("shouting", "0.85", 1.0)];
    t.excerpt =
        "THIS IS THE THIRD TIME I ASK. YOUR APP IS USELESS <script>alert(1)</script>".into();
    tickets.push(t);

    let mut t = ticket(T {
        tag: "T-1039",
        name: "Tomás Silva",
        email: "tomas@example.com",
        subject: "Where is my parcel?",
        state: State::Acknowledged,
        priority: Priority::Low,
        created: "2026-11-21 11:00",
    });
    t.contacts = vec![
        berlin("2026-11-19 18:00"),
        berlin("2026-11-21 11:00"),
        berlin("2026-11-22 20:15"),
    ];
    // Says little, politely, and is stuck: the meek customer.
    t.tones = strings(&["meek"]);
    t.excerpt = "Writing again: the tracking page has said 'label created' for five days.".into();
    tickets.push(t);

    let mut t = ticket(T {
        tag: "T-1043",
        name: "Rosa Alvarez",
        email: "rosa@example.org",
        subject: "Please cancel my subscription",
        state: State::Acknowledged,
        priority: Priority::Normal,
        created: "2026-11-23 08:50",
    });
    t.team = "billing".into();
    t.intents = strings(&["cancel"]);
    t.hits = vec![hit("leave-words", "cancel my subscription", 1.0)];
    t.excerpt = "Please cancel my subscription at the end of this month. Thank you for \
                 everything."
        .into();
    tickets.push(t);
    quieter_tickets(&mut tickets);
    // Themes: since Friday 15:00 against the 66 hours before it.
    let mut messages = Vec::new();
    // `corrected` of the `n`: staff corrected their verdicts.
    let mut add = |when: &str, themes: &[&str], team: &str, n: usize, corrected: usize| {
        for i in 0..n {
            messages.push(ThemeEmail {
                at: berlin(when),
                themes: strings(themes),
                team: team.into(),
                corrected: i < corrected,
            });
        }
    };
    add("2026-11-21 10:00", &["access"], "technical", 6, 4);
    add("2026-11-19 10:00", &["access"], "technical", 2, 1); // before the period: not counted
    add("2026-11-22 12:00", &["billing"], "billing", 3, 1);
    add("2026-11-18 12:00", &["billing"], "billing", 3, 0);
    add("2026-11-23 08:10", &["outage"], "technical", 1, 0);
    add("2026-11-23 08:50", &["cancel"], "billing", 1, 0);
    add("2026-11-19 12:00", &["refund"], "billing", 2, 0);
    add("2026-11-10 12:00", &["refund"], "billing", 9, 0); // before both periods: not counted
    Snapshot { tickets, messages }
}

/// The VIP, the question, the bounced acknowledgement, the failed follow-up and the one with
/// nothing remarkable.
fn quieter_tickets(tickets: &mut Vec<TicketFacts>) {
    let mut t = ticket(T {
        tag: "T-1037",
        name: "Helen Park",
        email: "helen.park@bigcustomer.example",
        subject: "Seats for the new Berlin office",
        state: State::Acknowledged,
        priority: Priority::Normal,
        created: "2026-11-22 20:00",
    });
    t.intents = strings(&["vip"]);
    t.hits = vec![hit("vip-senders", "bigcustomer.example", 1.0)];
    t.excerpt = "We are opening a Berlin office in January and need 40 more seats.".into();
    tickets.push(t);

    let mut t = ticket(T {
        tag: "T-1030",
        name: "Sam Lee",
        email: "sam@example.com",
        subject: "Question about the API rate limit",
        state: State::Acknowledged,
        priority: Priority::Low,
        created: "2026-11-18 12:00",
    });
    t.excerpt = "Is the limit of 100 requests per minute per key or per account?".into();
    tickets.push(t);

    let mut t = ticket(T {
        tag: "T-1029",
        name: "Ola Nordmann",
        email: "ola@typo-domain.example",
        subject: "Cannot log in",
        state: State::Acknowledged,
        priority: Priority::High,
        created: "2026-11-22 16:00",
    });
    t.team = "technical".into();
    t.intents = strings(&["access"]);
    t.hits = vec![hit("access", "cannot log in", 4.0)];
    t.excerpt = "I cannot log in since the update.".into();
    t.failed_deliveries = vec![OutFact {
        kind: "ack".into(),
        state: "failed".into(),
        due_at: berlin("2026-11-22 16:00"),
        error: "550 5.1.1 <ola@typo-domain.example>: Recipient address rejected".into(),
    }];
    tickets.push(t);

    let mut t = ticket(T {
        tag: "T-1022",
        name: "Lena Fischer",
        email: "lena@example.de",
        subject: "Invoice address",
        state: State::Answered,
        priority: Priority::Normal,
        created: "2026-11-13 09:40",
    });
    t.first_response_at = berlin("2026-11-13 11:00");
    t.team = "billing".into();
    t.followups = vec![OutFact {
        kind: "verify".into(),
        state: "failed".into(),
        due_at: berlin("2026-11-17 11:00"),
        error: "gave up after 10 attempts: 421 4.7.0 Try again later".into(),
    }];
    tickets.push(t);

    let t = ticket(T {
        tag: "T-1042",
        name: "Kim Novak",
        email: "kim@example.com",
        subject: "Dark mode?",
        state: State::Acknowledged,
        priority: Priority::Normal,
        created: "2026-11-23 08:40",
    });
    tickets.push(t);
}

/// The fixture digest, and an empty one, for lint renders and golden tests.
pub fn samples() -> Vec<Digest> {
    let sla = sla();
    let cfg = config();
    let ctx = Context {
        sla: &sla,
        themes_from: super::themes_period(&cfg, at()).0,
    };
    vec![
        build(&snapshot(), at(), &cfg, &ctx),
        build(&Snapshot::default(), at(), &cfg, &ctx),
    ]
}
