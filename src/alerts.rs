//! Alerts to staff, pure parts: which emails raise an instant alert, and the health incidents
//! (IMAP login failing, no mail, SMTP failing, outbox backlog, circuit breaker, the store
//! unavailable) as a small state machine that opens an incident once a problem has lasted
//! `after`, and closes it with a recovery note when the problem is gone — once per incident,
//! never a storm.
//!
//! The daemon's side (queuing, the monitor task, sending) is in [`crate::notices`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::digest::QuietHours;
use crate::score::{RuleSet, Verdict};

/// `[alerts]`.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Staff recipients of instant and health alerts.
    pub to: Vec<String>,
    /// Intents that raise an alert, besides rules marked `alert = true`.
    pub intents: Vec<String>,
    /// At most this many alert emails an hour; more alerts wait and go out together.
    pub max_per_hour: u32,
    /// Alerts falling due in quiet hours wait for their end.
    pub quiet: Option<QuietHours>,
    pub health: HealthConfig,
}

/// `[alerts.health]`.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub enabled: bool,
    /// How long a problem must last before it is an incident (blips are not).
    pub after: Duration,
    /// No email received for this long is a problem (`None`: not watched).
    pub no_mail_for: Option<Duration>,
    /// More due outbox rows than this is a backlog.
    pub backlog_max: usize,
    /// A due row older than this is a backlog.
    pub backlog_age: Duration,
}

/// Why an email raises an alert: the rules (marked `alert = true`, or with an alerting intent)
/// that fired, as `rule ("matched words")`. Empty: no alert.
pub fn alert_reasons(verdict: &Verdict, rules: &RuleSet, intents: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for hit in &verdict.hits {
        let Some(rule) = rules.rules().iter().find(|r| r.id == hit.rule) else {
            continue;
        };
        let by_intent = rule
            .intent
            .as_ref()
            .is_some_and(|i| intents.iter().any(|x| x == i));
        if !(rule.alert || by_intent) {
            continue;
        }
        let label = rule.intent.clone().unwrap_or_else(|| rule.id.clone());
        let words = if hit.matched.is_empty() || hit.target == "meta" {
            label
        } else {
            format!("{label} (\u{201c}{}\u{201d})", hit.matched)
        };
        if !out.contains(&words) {
            out.push(words);
        }
    }
    out
}

/// What an alert says about the email that raised it (kept with the queued alert, rendered when
/// it is sent).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertFacts {
    pub ticket: String,
    pub customer: String,
    pub customer_name: String,
    pub subject: String,
    pub priority: String,
    pub tones: Vec<String>,
    pub intents: Vec<String>,
    pub reasons: Vec<String>,
    pub excerpt: String,
    pub received_at: i64,
    /// The ticket's team ([[team]] name), empty without one; alerts queued before teams existed
    /// have none.
    #[serde(default)]
    pub team: String,
}

impl AlertFacts {
    /// The customer's words each on one line, control characters escaped: a line break or ESC
    /// in a subject or name cannot forge a line of the alert or drive a terminal.
    fn on_one_line(self) -> AlertFacts {
        let line = |s: String| crate::wording::one_line(&s).into_owned();
        AlertFacts {
            customer: line(self.customer),
            customer_name: line(self.customer_name),
            subject: line(self.subject),
            reasons: self.reasons.into_iter().map(line).collect(),
            excerpt: line(self.excerpt),
            ..self
        }
    }
}

/// The context of the `alert` templates: one or more alerts sent together.
#[derive(Debug, Clone, Serialize)]
pub struct AlertMail {
    pub subject: String,
    pub alerts: Vec<AlertFacts>,
    /// Alerts that waited for the rate limit or quiet hours.
    pub held: bool,
}

impl AlertMail {
    pub fn new(alerts: Vec<AlertFacts>, held: bool) -> AlertMail {
        let alerts: Vec<AlertFacts> = alerts.into_iter().map(AlertFacts::on_one_line).collect();
        let subject = match alerts.as_slice() {
            [one] => format!(
                "[triaged] ALERT {}: {} \u{2014} {}",
                one.ticket,
                one.reasons
                    .first()
                    .map(|r| r.split(" (").next().unwrap_or(r))
                    .unwrap_or("alert"),
                one.subject
            ),
            many => format!("[triaged] {} alerts", many.len()),
        };
        AlertMail {
            subject,
            alerts,
            held,
        }
    }
}

/// A problem the daemon watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// The IMAP server refuses our login (wrong password, expired token).
    ImapLogin,
    /// The IMAP server cannot be reached or drops us.
    ImapConnection,
    /// Nothing arrived for `no_mail_for`.
    NoMail,
    /// The SMTP server cannot be reached or refuses to send.
    Smtp,
    /// Due outbox rows pile up.
    Backlog,
    /// Acknowledgements are held because they look like a mail loop (the loop breaker).
    CircuitBreaker,
    /// The store takes no writes (locked by another process, disk full, I/O error,
    /// read-only): fetching and sending wait for it.
    Store,
}

impl Condition {
    pub const ALL: [Condition; 7] = [
        Condition::ImapLogin,
        Condition::ImapConnection,
        Condition::NoMail,
        Condition::Smtp,
        Condition::Backlog,
        Condition::CircuitBreaker,
        Condition::Store,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Condition::ImapLogin => "imap_login",
            Condition::ImapConnection => "imap_connection",
            Condition::NoMail => "no_mail",
            Condition::Smtp => "smtp",
            Condition::Backlog => "backlog",
            Condition::CircuitBreaker => "circuit_breaker",
            Condition::Store => "store",
        }
    }

    pub fn parse(s: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.key() == s)
    }

    /// What is wrong, for subjects.
    pub fn title(self) -> &'static str {
        match self {
            Condition::ImapLogin => "IMAP login failing",
            Condition::ImapConnection => "IMAP server unreachable",
            Condition::NoMail => "No mail received",
            Condition::Smtp => "SMTP sending failing",
            Condition::Backlog => "Outbox backlog growing",
            Condition::CircuitBreaker => "Acknowledgements held: a mail loop?",
            Condition::Store => "Store unavailable",
        }
    }

    /// What to do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Condition::ImapLogin => {
                "Check [mailbox] username and password (or the token command); mail is not being read."
            }
            Condition::ImapConnection => {
                "Check that the IMAP server is up and reachable; mail is not being read until it is."
            }
            Condition::NoMail => {
                "Check that mail still reaches the support mailbox (MX, forwarding, filters)."
            }
            Condition::Smtp => {
                "Check [smtp] and the provider's status; acknowledgements wait in the outbox and go out when it recovers."
            }
            Condition::Backlog => {
                "Check `triaged queue` (customer mail) and the log for why sending is slow or held back."
            }
            Condition::CircuitBreaker => {
                "Look at the held emails (`triaged queue`): a robot answering our mail from ever new addresses, or people? Release or drop them; held ones older than [ack] max_age are never sent."
            }
            Condition::Store => {
                "Free space under the store, end the program holding its lock, or fix its file system; mail is not fetched or sent until it takes writes again, and then nothing is lost (this note waited for it)."
            }
        }
    }
}

/// An incident as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: i64,
    pub condition: Condition,
    pub started_at: i64,
    pub detail: String,
}

/// What the monitor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthAction {
    /// A problem has lasted long enough: open an incident and alert.
    Open {
        condition: Condition,
        since: i64,
        detail: String,
    },
    /// The problem of an open incident is gone: close it and send the recovery note.
    Resolve { incident: Incident },
}

/// The monitor's memory between checks: problems seen but not yet long enough to alert, and
/// recoveries not yet long enough to be believed.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    since: BTreeMap<Condition, i64>,
    ok_since: BTreeMap<Condition, i64>,
}

impl Pending {
    /// When the next edge falls if nothing changes meanwhile: the earliest time a problem or a
    /// recovery seen now will have lasted `after`. `None`: nothing is pending.
    pub fn next_edge(&self, after: Duration) -> Option<i64> {
        let after = after.as_secs() as i64;
        self.since
            .values()
            .chain(self.ok_since.values())
            .min()
            .map(|t| t + after)
    }
}

/// One check: `observed` maps each condition looked at to `Some(detail)` when failing and
/// `None` when fine (conditions not looked at keep their state); `open` are the incidents open
/// in the store. Returns what to do; `pending` is updated.
///
/// Both edges wait `after`: a problem must last that long to open an incident, and an open
/// incident must stay fine that long to be resolved. A condition flapping faster than that
/// stays one incident, so staff get at most one alert and one recovery note per `2 x after`.
pub fn health_step(
    pending: &mut Pending,
    open: &[Incident],
    observed: &BTreeMap<Condition, Option<String>>,
    now: i64,
    after: Duration,
) -> Vec<HealthAction> {
    let after = after.as_secs() as i64;
    let mut out = Vec::new();
    for (cond, status) in observed {
        let incident = open.iter().find(|i| i.condition == *cond);
        match (status, incident) {
            (Some(_), Some(_)) => {
                pending.since.remove(cond);
                pending.ok_since.remove(cond);
            }
            (Some(detail), None) => {
                pending.ok_since.remove(cond);
                let since = *pending.since.entry(*cond).or_insert(now);
                if now - since >= after {
                    pending.since.remove(cond);
                    out.push(HealthAction::Open {
                        condition: *cond,
                        since,
                        detail: detail.clone(),
                    });
                }
            }
            (None, Some(i)) => {
                pending.since.remove(cond);
                let since = *pending.ok_since.entry(*cond).or_insert(now);
                if now - since >= after {
                    pending.ok_since.remove(cond);
                    out.push(HealthAction::Resolve {
                        incident: i.clone(),
                    });
                }
            }
            (None, None) => {
                pending.since.remove(cond);
                pending.ok_since.remove(cond);
            }
        }
    }
    out
}

/// The context of the `health` templates.
#[derive(Debug, Clone, Serialize)]
pub struct HealthMail {
    pub subject: String,
    pub title: String,
    /// "failing" or "recovered".
    pub status: String,
    pub detail: String,
    pub advice: String,
    /// When the problem began, in words.
    pub since: String,
    /// How long it lasted (recovery notes).
    pub lasted: String,
}

impl HealthMail {
    pub fn new(action: &HealthAction, now: i64) -> HealthMail {
        let when = |t: i64| crate::wording::when(t);
        match action {
            HealthAction::Open {
                condition,
                since,
                detail,
            } => HealthMail {
                subject: format!("[triaged] PROBLEM: {}", condition.title()),
                title: condition.title().to_string(),
                status: "failing".into(),
                detail: detail.clone(),
                advice: condition.advice().to_string(),
                since: when(*since),
                lasted: crate::wording::age(*since, now),
            },
            HealthAction::Resolve { incident } => HealthMail {
                subject: format!("[triaged] RECOVERED: {}", incident.condition.title()),
                title: incident.condition.title().to_string(),
                status: "recovered".into(),
                detail: incident.detail.clone(),
                advice: String::new(),
                since: when(incident.started_at),
                lasted: crate::wording::age(incident.started_at, now),
            },
        }
    }
}

/// Alert mails for lint renders: one alert, several held back.
pub fn alert_samples() -> Vec<AlertMail> {
    let one = AlertFacts {
        ticket: "T-1000".into(),
        customer: "ada@example.com".into(),
        customer_name: "Ada".into(),
        subject: "Your breach exposed our customer list".into(),
        priority: "urgent".into(),
        tones: vec!["angry".into()],
        intents: vec!["security".into(), "legal-threat".into()],
        reasons: vec![
            "security (\u{201c}data breach\u{201d})".into(),
            "legal-threat (\u{201c}our lawyer\u{201d})".into(),
        ],
        excerpt: "Our customer list is visible to anyone. Our lawyer will be in touch.".into(),
        received_at: 1_795_000_000,
        team: "security".into(),
    };
    vec![
        AlertMail::new(vec![one.clone()], false),
        AlertMail::new(vec![one.clone(), one], true),
    ]
}

/// Health mails for lint renders: a problem and its recovery.
pub fn health_samples() -> Vec<HealthMail> {
    let incident = Incident {
        id: 1,
        condition: Condition::ImapLogin,
        started_at: 1_795_000_000,
        detail: "NO [AUTHENTICATIONFAILED] Authentication failed.".into(),
    };
    vec![
        HealthMail::new(
            &HealthAction::Open {
                condition: incident.condition,
                since: incident.started_at,
                detail: incident.detail.clone(),
            },
            1_795_000_600,
        ),
        HealthMail::new(&HealthAction::Resolve { incident }, 1_795_003_600),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(300);

    fn failing(c: Condition, d: &str) -> BTreeMap<Condition, Option<String>> {
        BTreeMap::from([(c, Some(d.to_string()))])
    }

    fn fine(c: Condition) -> BTreeMap<Condition, Option<String>> {
        BTreeMap::from([(c, None)])
    }

    #[test]
    fn a_problem_alerts_once_after_lasting_and_recovers_once() {
        let mut p = Pending::default();
        let login = Condition::ImapLogin;
        // A blip shorter than `after` is nothing.
        assert!(health_step(&mut p, &[], &failing(login, "NO auth"), 0, AFTER).is_empty());
        assert!(health_step(&mut p, &[], &fine(login), 100, AFTER).is_empty());
        assert!(health_step(&mut p, &[], &failing(login, "NO auth"), 200, AFTER).is_empty());
        assert!(health_step(&mut p, &[], &failing(login, "NO auth"), 499, AFTER).is_empty());
        let opened = health_step(&mut p, &[], &failing(login, "NO auth"), 500, AFTER);
        assert_eq!(
            opened,
            vec![HealthAction::Open {
                condition: login,
                since: 200,
                detail: "NO auth".into()
            }]
        );
        let open = [Incident {
            id: 1,
            condition: login,
            started_at: 200,
            detail: "NO auth".into(),
        }];
        // Still failing with an incident open: nothing more, however long.
        for t in [600, 10_000, 100_000] {
            assert!(health_step(&mut p, &open, &failing(login, "NO auth"), t, AFTER).is_empty());
        }
        // Unobserved conditions keep their state.
        assert!(health_step(&mut p, &open, &BTreeMap::new(), 100_001, AFTER).is_empty());
        // A recovery must hold for `after` too: a blip of health is not a recovery.
        assert!(health_step(&mut p, &open, &fine(login), 100_002, AFTER).is_empty());
        assert!(health_step(&mut p, &open, &failing(login, "NO"), 100_100, AFTER).is_empty());
        assert!(health_step(&mut p, &open, &fine(login), 100_200, AFTER).is_empty());
        assert!(health_step(&mut p, &open, &fine(login), 100_499, AFTER).is_empty());
        let resolved = health_step(&mut p, &open, &fine(login), 100_500, AFTER);
        assert_eq!(
            resolved,
            vec![HealthAction::Resolve {
                incident: open[0].clone()
            }]
        );
    }

    #[test]
    fn the_next_edge_is_when_the_oldest_pending_change_has_lasted() {
        let mut p = Pending::default();
        assert_eq!(p.next_edge(AFTER), None);
        health_step(
            &mut p,
            &[],
            &failing(Condition::Store, "disk full"),
            100,
            AFTER,
        );
        assert_eq!(p.next_edge(AFTER), Some(400));
        health_step(&mut p, &[], &failing(Condition::Smtp, "421"), 150, AFTER);
        assert_eq!(p.next_edge(AFTER), Some(400));
        let open = [Incident {
            id: 1,
            condition: Condition::Backlog,
            started_at: 0,
            detail: String::new(),
        }];
        health_step(&mut p, &open, &fine(Condition::Backlog), 50, AFTER);
        assert_eq!(p.next_edge(AFTER), Some(350), "a recovery pending since 50");
        health_step(&mut p, &open, &fine(Condition::Store), 200, AFTER);
        health_step(&mut p, &open, &fine(Condition::Smtp), 200, AFTER);
        health_step(
            &mut p,
            &open,
            &failing(Condition::Backlog, "9 due"),
            200,
            AFTER,
        );
        assert_eq!(p.next_edge(AFTER), None);
    }

    #[test]
    fn zero_grace_alerts_at_first_sight() {
        let mut p = Pending::default();
        let got = health_step(
            &mut p,
            &[],
            &failing(Condition::Backlog, "120 due"),
            42,
            Duration::ZERO,
        );
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn alert_subjects() {
        let facts = AlertFacts {
            ticket: "T-7".into(),
            customer: "a@x".into(),
            customer_name: "A".into(),
            subject: "We will sue".into(),
            priority: "urgent".into(),
            tones: vec![],
            intents: vec!["legal-threat".into()],
            reasons: vec!["legal-threat (\u{201c}lawyer\u{201d})".into()],
            excerpt: String::new(),
            received_at: 0,
            team: String::new(),
        };
        assert_eq!(
            AlertMail::new(vec![facts.clone()], false).subject,
            "[triaged] ALERT T-7: legal-threat \u{2014} We will sue"
        );
        assert_eq!(
            AlertMail::new(vec![facts.clone(), facts], true).subject,
            "[triaged] 2 alerts"
        );
        for c in Condition::ALL {
            assert_eq!(Condition::parse(c.key()), Some(c));
        }
    }
}
