//! Digests for staff: what needs a human now, most important first, each entry saying why.
//!
//! Building a digest is a pure function of a store snapshot, the time and the configuration
//! ([`build`]); the staff-mail side ([`crate::notices::render`]) turns it into the plain-text
//! and HTML bodies with the operator's templates. The daemon's scheduler ([`crate::notices`])
//! decides when, queues it durably and the outbox sends it.
//!
//! Every ticket appears once, in the first section it qualifies for, in this order: urgent; SLA
//! late or about to be; angry, abusive or threatening; wants to leave; repeat contact; VIP
//! customer; oldest unanswered; follow-ups due or failed; deliveries that failed. Its entry
//! lists every reason that applies, so nothing is hidden by the ordering (and a meek customer,
//! who says little, is pointed out in the entry: look deeper). A digest may keep to some teams'
//! tickets (`teams`), and each entry names the ticket's team.

pub mod fixture;
pub mod schedule;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

pub use fixture::samples;
pub use schedule::{QuietHours, Schedule};

use crate::score::Priority;
use crate::sla::SlaConfig;
use crate::sla::to_ts;
use crate::tickets::State;
use crate::wording::{age, one_line};

/// One configured digest (`[[digest]]`).
#[derive(Debug, Clone)]
pub struct DigestConfig {
    /// In subjects, logs and `triaged digest --name`.
    pub name: String,
    /// Staff recipients (validated: never a support address, always staff).
    pub to: Vec<String>,
    pub schedule: Schedule,
    /// A digest falling due in quiet hours goes out when they end.
    pub quiet: Option<QuietHours>,
    /// Send a digest with nothing in it (default: no).
    pub send_empty: bool,
    /// Only tickets with one of these intents (empty: all).
    pub intents: Vec<String>,
    /// Only tickets of these priorities (empty: all).
    pub priorities: Vec<Priority>,
    /// Only tickets routed to these teams (`[[team]]` names; empty: all).
    pub teams: Vec<String>,
    /// A reply due within this is "about to breach".
    pub due_soon: Duration,
    /// This many emails from one customer within `repeat_window` make a repeat contact.
    pub repeat_count: usize,
    pub repeat_window: Duration,
    /// Tones that put a ticket in the attention section.
    pub tones: Vec<String>,
    /// Intents that do the same (threats).
    pub threats: Vec<String>,
    /// How many unanswered tickets the "oldest unanswered" section shows.
    pub oldest: usize,
    /// Entries per section before "and N more".
    pub max_per_section: usize,
    /// The period that themes count over; `None`: since the previous scheduled digest.
    pub period: Option<Duration>,
}

impl DigestConfig {
    /// When the digest after `t` goes out: the next scheduled time, moved to the end of quiet
    /// hours if it falls inside them.
    pub fn next_send(&self, t: i64) -> i64 {
        self.defer(self.schedule.next_after(t))
    }

    /// `t`, or the end of the quiet hours it falls in.
    pub fn defer(&self, t: i64) -> i64 {
        self.quiet.as_ref().map_or(t, |q| q.defer(t))
    }
}

/// Everything the digest reads from the store at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Tickets waiting for staff, and any ticket with a follow-up or delivery problem.
    pub tickets: Vec<TicketFacts>,
    /// Customer emails since the start of the previous themes period.
    pub messages: Vec<ThemeEmail>,
}

/// A customer email as the themes count it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ThemeEmail {
    /// When it arrived.
    pub at: i64,
    /// Its intents and the themes of the rules it hit.
    pub themes: Vec<String>,
    /// The team of its ticket (empty: none).
    pub team: String,
    /// Staff corrected its verdict (a correction of its priority or tones is in force).
    pub corrected: bool,
}

/// What the digest knows about one ticket.
#[derive(Debug, Clone)]
pub struct TicketFacts {
    pub tag: String,
    pub customer: String,
    pub customer_name: String,
    pub subject: String,
    pub state: State,
    pub priority: Priority,
    pub created_at: i64,
    pub first_response_at: i64,
    pub last_customer_at: i64,
    /// The team it is with (`[[team]]` name; empty: none).
    pub team: String,
    /// Tones and intents of the customer's emails in this ticket.
    pub tones: Vec<String>,
    pub intents: Vec<String>,
    /// Rule hits of the customer's latest email, strongest first.
    pub hits: Vec<HitFact>,
    /// The start of the customer's latest email.
    pub excerpt: String,
    /// Arrival times of every email from this customer (any ticket) within the repeat window.
    pub contacts: Vec<i64>,
    /// Follow-ups pending or failed.
    pub followups: Vec<OutFact>,
    /// Emails to this customer that could not be delivered (refused or bounced).
    pub failed_deliveries: Vec<OutFact>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HitFact {
    pub rule: String,
    pub matched: String,
    pub weight: f64,
}

/// One outbox row as the digest sees it.
#[derive(Debug, Clone)]
pub struct OutFact {
    pub kind: String,
    pub state: String,
    pub due_at: i64,
    pub error: String,
}

/// The digest, ready for the templates.
#[derive(Debug, Clone, Serialize)]
pub struct Digest {
    pub name: String,
    pub at: i64,
    /// "Monday 23 November 2026, 09:00 CET".
    pub at_text: String,
    /// "since Friday 20 November, 15:00"
    pub period_text: String,
    pub subject: String,
    /// Counts for the headline, in section order, zeros left out.
    pub summary: Vec<Count>,
    /// Tickets waiting for staff (after the digest's filters).
    pub waiting: usize,
    /// Waiting tickets that no section lists.
    pub not_listed: usize,
    pub sections: Vec<Section>,
    pub themes: Vec<Theme>,
    /// How many of the period's verdicts staff corrected (none when they corrected none).
    pub corrections: Option<Corrections>,
    /// Nothing listed and no theme counted.
    pub empty: bool,
}

/// "Staff corrected 7 of 120 verdicts since ...": the customer emails of the themes period
/// (of the digest's teams), and how many of their verdicts staff corrected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Corrections {
    pub corrected: usize,
    pub verdicts: usize,
    /// Enough corrections ([`TUNE_HINT_AT`]) for the digest to point at `triaged tune --store`.
    pub suggest_tune: bool,
}

/// From this many corrections in a period the digest says `triaged tune --store` has
/// something to suggest: fewer are anecdotes, and the fit needs a few of each end class.
pub const TUNE_HINT_AT: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct Count {
    /// The section's id.
    pub id: &'static str,
    pub label: String,
    pub n: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub id: &'static str,
    pub title: String,
    /// A word or two for counts: "late or due soon".
    pub short: &'static str,
    pub entries: Vec<Entry>,
    /// Entries left out by `max_per_section`.
    pub more: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub tag: String,
    pub customer: String,
    pub customer_name: String,
    pub subject: String,
    pub state: String,
    pub priority: String,
    /// "3h", "2d 4h": since the ticket opened.
    pub age: String,
    /// The team it is with (empty: none).
    pub team: String,
    pub tones: Vec<String>,
    pub intents: Vec<String>,
    /// "late 2h", "reply due in 45m", or empty.
    pub sla: String,
    /// Every reason this ticket needs a human, most pressing first.
    pub reasons: Vec<String>,
    /// The rules that explain the score: "outage (\"is down\")".
    pub hits: Vec<String>,
    pub excerpt: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Theme {
    pub name: String,
    pub now: usize,
    pub before: usize,
    /// "new", "x3", "+2", "-50%", "same".
    pub change: String,
    pub rising: bool,
}

/// The sections, in the order a human should work through them.
const SECTIONS: [(&str, &str, &str); 9] = [
    ("urgent", "Urgent", "urgent"),
    ("sla", "Reply late or due soon", "late or due soon"),
    (
        "tone",
        "Angry, abusive or threatening",
        "angry or threatening",
    ),
    ("leave", "Wants to leave", "wants to leave"),
    (
        "repeat",
        "Customers writing again and again",
        "repeat contact",
    ),
    ("vip", "VIP customers", "VIP"),
    ("oldest", "Oldest unanswered", "oldest unanswered"),
    ("followups", "Follow-ups due or failed", "follow-up issue"),
    (
        "deliveries",
        "Emails that could not be delivered",
        "undelivered",
    ),
];

// Indexes into SECTIONS.
const URGENT: usize = 0;
const SLA: usize = 1;
const TONE: usize = 2;
const LEAVE: usize = 3;
const REPEAT: usize = 4;
const VIP_SECTION: usize = 5;
/// The "oldest unanswered" section lists only the first `oldest` tickets.
const OLDEST: usize = 6;
const FOLLOWUPS: usize = 7;
const DELIVERIES: usize = 8;
/// A reason that places a ticket in no section: said in its entry when a section lists it.
const NOTE: usize = SECTIONS.len();

/// The intent that marks a VIP customer: a `senders` rule with `intent = "vip"`.
pub const VIP: &str = "vip";

/// The intent of a customer who asks to leave (not one who threatens to: `churn-risk`): let
/// them go at once, with no retention offer.
pub const CANCEL: &str = "cancel";

/// The tone of a customer who says little and may be stuck: worth a deeper look.
pub const MEEK: &str = "meek";

/// What the rest of the configuration contributes.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub sla: &'a SlaConfig,
    /// Themes count emails in `[themes_from, at)` against the period of the same length
    /// before it (see [`themes_period`]).
    pub themes_from: i64,
}

/// The period themes are counted over for a digest at `at`: `[start, at)`, compared with the
/// period of the same length before it.
pub fn themes_period(cfg: &DigestConfig, at: i64) -> (i64, i64) {
    let len = match cfg.period {
        Some(p) => p.as_secs() as i64,
        None => cfg
            .schedule
            .last_at_or_before(at - 1)
            .map_or(86_400, |prev| (at - prev).max(60)),
    };
    (at - len, at)
}

/// Build the digest for `at` from `snap`.
pub fn build(snap: &Snapshot, at: i64, cfg: &DigestConfig, ctx: &Context<'_>) -> Digest {
    let tz = cfg.schedule.tz.clone();
    let start = ctx.themes_from.min(at - 60);
    let next = cfg.schedule.next_after(at);
    let wanted = |t: &TicketFacts| {
        (cfg.priorities.is_empty() || cfg.priorities.contains(&t.priority))
            && (cfg.intents.is_empty() || t.intents.iter().any(|i| cfg.intents.contains(i)))
            && (cfg.teams.is_empty() || cfg.teams.contains(&t.team))
    };
    let mut tickets: Vec<&TicketFacts> = snap.tickets.iter().filter(|t| wanted(t)).collect();
    // Oldest first within every section.
    tickets.sort_by_key(|t| (t.created_at, t.tag.clone()));

    let mut sections: Vec<Section> = SECTIONS
        .iter()
        .map(|(id, title, short)| Section {
            id,
            title: (*title).to_string(),
            short,
            entries: Vec::new(),
            more: 0,
        })
        .collect();
    let mut waiting = 0;
    let mut not_listed = 0;
    let mut oldest_taken = 0;
    for t in &tickets {
        let waits = t.state.waits_for_staff();
        waiting += usize::from(waits);
        let reasons = reasons(t, at, next, cfg, ctx);
        let first = reasons
            .iter()
            .map(|(section, _)| *section)
            .filter(|s| *s != NOTE && (*s != OLDEST || oldest_taken < cfg.oldest))
            .min();
        let Some(first) = first else {
            not_listed += usize::from(waits);
            continue;
        };
        if first == OLDEST {
            oldest_taken += 1;
        }
        let entry = entry(t, at, &reasons);
        let section = &mut sections[first];
        if section.entries.len() < cfg.max_per_section {
            section.entries.push(entry);
        } else {
            section.more += 1;
        }
    }
    let summary: Vec<Count> = sections
        .iter()
        .map(|s| Count {
            id: s.id,
            label: s.short.to_string(),
            n: s.entries.len() + s.more,
        })
        .filter(|c| c.n > 0)
        .collect();
    sections.retain(|s| !s.entries.is_empty());

    let themes = themes(snap, cfg, start, at);
    let corrections = corrections(snap, cfg, start, at);
    let listed: usize = summary.iter().map(|c| c.n).sum();
    let empty = listed == 0 && themes.iter().all(|t| t.now == 0);
    let local = |t: i64| to_ts(t).to_zoned(tz.clone());
    let at_z = local(at);
    let headline = headline(&sections, waiting);
    Digest {
        name: cfg.name.clone(),
        at,
        at_text: at_z.strftime("%A %-d %B %Y, %H:%M %Z").to_string(),
        period_text: format!("since {}", local(start).strftime("%A %-d %B, %H:%M")),
        subject: format!("[triaged] {} digest: {headline}", cfg.name),
        summary,
        waiting,
        not_listed,
        sections,
        themes,
        corrections,
        empty,
    }
}

/// The customer emails in `[start, at)` (of the digest's teams, when it keeps to some) and
/// how many staff corrected; `None` when they corrected none.
fn corrections(snap: &Snapshot, cfg: &DigestConfig, start: i64, at: i64) -> Option<Corrections> {
    let emails: Vec<&ThemeEmail> = snap
        .messages
        .iter()
        .filter(|m| m.at >= start && m.at < at)
        .filter(|m| cfg.teams.is_empty() || cfg.teams.contains(&m.team))
        .collect();
    let corrected = emails.iter().filter(|m| m.corrected).count();
    (corrected > 0).then_some(Corrections {
        corrected,
        verdicts: emails.len(),
        suggest_tune: corrected >= TUNE_HINT_AT,
    })
}

/// "2 urgent, 1 late or due soon, 7 waiting" / "nothing waiting".
fn headline(sections: &[Section], waiting: usize) -> String {
    let mut parts: Vec<String> = sections
        .iter()
        .filter(|s| s.id != "oldest")
        .map(|s| format!("{} {}", s.entries.len() + s.more, s.short))
        .collect();
    parts.push(if waiting == 0 {
        "nothing waiting".to_string()
    } else {
        format!("{waiting} waiting")
    });
    parts.join(", ")
}

/// Why a ticket needs a human: (section index, words), most pressing first.
fn reasons(
    t: &TicketFacts,
    at: i64,
    next: i64,
    cfg: &DigestConfig,
    ctx: &Context<'_>,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let waits = t.state.waits_for_staff();
    if waits && t.priority == Priority::Urgent {
        out.push((URGENT, "urgent".to_string()));
    }
    if let Some(due) = ctx.sla.response_due(
        t.state,
        t.priority,
        t.created_at,
        t.first_response_at,
        t.last_customer_at,
    ) {
        let soon = cfg.due_soon.as_secs() as i64;
        if due <= at || due - at <= soon {
            out.push((SLA, crate::wording::reply_due(due, at)));
        }
    }
    if waits {
        let tones: Vec<&str> = t
            .tones
            .iter()
            .filter(|x| cfg.tones.contains(x))
            .map(String::as_str)
            .collect();
        let threats: Vec<&str> = t
            .intents
            .iter()
            .filter(|x| cfg.threats.contains(x))
            .map(String::as_str)
            .collect();
        if !tones.is_empty() || !threats.is_empty() {
            let words: Vec<&str> = tones.into_iter().chain(threats).collect();
            out.push((TONE, words.join(", ")));
        }
        if t.intents.iter().any(|i| i == CANCEL) {
            out.push((
                LEAVE,
                "asks to cancel: let them go, no retention offer".to_string(),
            ));
        }
        let window = cfg.repeat_window.as_secs() as i64;
        let recent: Vec<i64> = t
            .contacts
            .iter()
            .copied()
            .filter(|c| *c > at - window)
            .collect();
        if recent.len() >= cfg.repeat_count.max(2) {
            let first = recent.iter().copied().min().unwrap_or(at);
            let days = ((at - first) as f64 / 86_400.0).ceil().max(1.0) as i64;
            out.push((
                REPEAT,
                format!(
                    "{} email in {} day{}",
                    ordinal(recent.len()),
                    days,
                    if days == 1 { "" } else { "s" }
                ),
            ));
        }
        if t.intents.iter().any(|i| i == VIP) {
            out.push((VIP_SECTION, "VIP customer".to_string()));
        }
        if t.first_response_at == 0 {
            out.push((OLDEST, format!("unanswered for {}", age(t.created_at, at))));
        }
        if t.tones.iter().any(|x| x == MEEK) {
            out.push((NOTE, "says little (meek): look deeper".to_string()));
        }
    }
    for f in &t.followups {
        match f.state.as_str() {
            "pending" if f.due_at <= next => {
                let when = if f.due_at <= at {
                    "now".to_string()
                } else {
                    format!("in {}", age(at, f.due_at))
                };
                out.push((FOLLOWUPS, format!("{} note due {when}", f.kind)));
            }
            "failed" | "uncertain" => {
                out.push((
                    FOLLOWUPS,
                    format!("{} note {}: {}", f.kind, f.state, clip(&f.error, 80)),
                ));
            }
            _ => {}
        }
    }
    for d in &t.failed_deliveries {
        let what = if d.kind == "ack" {
            "acknowledgement".to_string()
        } else {
            format!("{} note", d.kind)
        };
        out.push((
            DELIVERIES,
            format!("{what} not delivered: {}", clip(&d.error, 80)),
        ));
    }
    out.sort_by_key(|(s, _)| *s);
    out
}

fn entry(t: &TicketFacts, at: i64, reasons: &[(usize, String)]) -> Entry {
    let sla = reasons
        .iter()
        .find(|(s, _)| *s == SLA)
        .map(|(_, w)| w.clone())
        .unwrap_or_default();
    Entry {
        tag: t.tag.clone(),
        // The customer's words stay on their line: a line break or ESC in a subject or name
        // shows escaped, so it cannot forge a line of the digest or drive a terminal.
        customer: one_line(&t.customer).into_owned(),
        customer_name: one_line(&t.customer_name).into_owned(),
        subject: one_line(&t.subject).into_owned(),
        state: t.state.as_str().to_string(),
        priority: t.priority.as_str().to_string(),
        age: age(t.created_at, at),
        team: one_line(&t.team).into_owned(),
        tones: t.tones.clone(),
        intents: t.intents.clone(),
        sla,
        reasons: reasons.iter().map(|(_, w)| w.clone()).collect(),
        hits: t
            .hits
            .iter()
            .filter(|h| h.weight > 0.0)
            .take(3)
            .map(|h| {
                if h.matched.is_empty() {
                    h.rule.clone()
                } else {
                    format!("{} (\u{201c}{}\u{201d})", h.rule, clip(&h.matched, 40))
                }
            })
            .collect(),
        excerpt: clip(&t.excerpt, 160),
    }
}

/// Counts per theme in `[start, at)` against the period of the same length before it (of the
/// digest's teams' tickets, when it keeps to some); every theme seen in either period, the
/// biggest rise first.
fn themes(snap: &Snapshot, cfg: &DigestConfig, start: i64, at: i64) -> Vec<Theme> {
    let len = at - start;
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for m in &snap.messages {
        if !cfg.teams.is_empty() && !cfg.teams.contains(&m.team) {
            continue;
        }
        let t = m.at;
        let slot = if t >= start && t < at {
            0
        } else if t >= start - len && t < start {
            1
        } else {
            continue;
        };
        let unique: BTreeSet<&str> = m.themes.iter().map(String::as_str).collect();
        for theme in unique {
            if !cfg.intents.is_empty() && !cfg.intents.iter().any(|i| i == theme) {
                continue;
            }
            let c = counts.entry(theme).or_default();
            if slot == 0 {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
    }
    let mut out: Vec<Theme> = counts
        .into_iter()
        .map(|(name, (now, before))| Theme {
            name: name.to_string(),
            now,
            before,
            change: change(now, before),
            rising: now > before,
        })
        .collect();
    out.sort_by(|a, b| {
        // A theme that appeared from nothing counts as doubled.
        let rise = |t: &Theme| t.now as f64 / (t.before as f64).max(0.5);
        rise(b)
            .total_cmp(&rise(a))
            .then(b.now.cmp(&a.now))
            .then(a.name.cmp(&b.name))
    });
    out
}

/// How a count changed: "new", "x3" (at least doubled), "+2", "-50%", "same", "gone".
fn change(now: usize, before: usize) -> String {
    match (now, before) {
        (n, b) if n == b => "same".into(),
        (_, 0) => "new".into(),
        (0, _) => "gone".into(),
        (n, b) if n >= 2 * b => {
            let f = n as f64 / b as f64;
            if (f - f.round()).abs() < 0.05 {
                format!("x{}", f.round())
            } else {
                format!("x{f:.1}")
            }
        }
        (n, b) if n > b => format!("+{}", n - b),
        (n, b) => format!("-{}%", ((b - n) * 100).div_ceil(b)),
    }
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// `s` on one line (runs of white space as one space, control characters escaped), cut to `n`
/// characters.
fn clip(s: &str, n: usize) -> String {
    crate::wording::cell(&s.split_whitespace().collect::<Vec<_>>().join(" "), n)
}
