//! The daemon's staff-mail side: the digest scheduler, the health monitor, and composing staff
//! email for the outbox. What to say is decided by the pure modules ([`crate::digest`],
//! [`crate::alerts`]); this module decides when, and queues it in the store (each digest slot,
//! alert and incident exactly once) for the outbox to send.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::alerts::{
    AlertConfig, AlertMail, Condition, HealthAction, HealthMail, Pending, health_step,
};
use crate::clock::Clock;
use crate::config::Config;
use crate::digest::{self, Digest, DigestConfig, RenderedMail};
use crate::reload::Live;
use crate::score::RuleSet;
use crate::store::{ClaimedNotice, NewNotice, Store};
use crate::templates::Templates;

/// Per (condition, source): the failure reported, or `None` for fine.
type Reports = BTreeMap<(Condition, String), Option<String>>;

/// Problems other tasks report (IMAP login and connection per folder watcher, SMTP), read by
/// the health monitor. A condition fails while any source reports it failing.
#[derive(Debug, Clone, Default)]
pub struct HealthBoard {
    state: Arc<Mutex<Reports>>,
    changed: Arc<Notify>,
}

impl HealthBoard {
    /// `c` is failing for `source`, with what the server said.
    pub fn fail(&self, c: Condition, source: &str, detail: impl Into<String>) {
        self.set(c, source, Some(detail.into()));
    }

    /// `c` works for `source`.
    pub fn ok(&self, c: Condition, source: &str) {
        self.set(c, source, None);
    }

    fn set(&self, c: Condition, source: &str, v: Option<String>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let key = (c, source.to_string());
        if s.get(&key) != Some(&v) {
            s.insert(key, v);
            self.changed.notify_one();
        }
    }

    /// Per condition: the first failure any source reports, or `None` when all are fine.
    fn snapshot(&self) -> BTreeMap<Condition, Option<String>> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<Condition, Option<String>> = BTreeMap::new();
        for ((c, _), v) in s.iter() {
            let entry = out.entry(*c).or_insert(None);
            if entry.is_none() {
                entry.clone_from(v);
            }
        }
        out
    }
}

/// Themes for rules without an intent: their group, if any. Only rules that raise the score
/// count: a group of politeness rules ("calm") is not a theme to act on.
pub fn rule_themes(rules: &RuleSet) -> HashMap<String, String> {
    rules
        .rules()
        .iter()
        .filter(|r| r.intent.is_none() && r.weight > 0.0)
        .filter_map(|r| {
            let g = rules.groups().get(r.group?)?;
            Some((r.id.clone(), g.id.clone()))
        })
        .collect()
}

/// Build the digest `d` as of `at` from the store, counting themes since `themes_from`.
pub fn build_digest(
    config: &Config,
    store: &Store,
    d: &DigestConfig,
    at: i64,
    themes_from: i64,
) -> Result<Digest> {
    let len = (at - themes_from).max(60);
    let snap = store.digest_snapshot(
        themes_from,
        themes_from - len,
        at - d.repeat_window.as_secs() as i64,
        &rule_themes(&config.rules),
    )?;
    Ok(digest::build(
        &snap,
        at,
        d,
        &digest::Context {
            sla: &config.sla,
            themes_from,
        },
    ))
}

/// Render a digest with the configured templates.
pub fn render_digest(templates: &Templates, d: &Digest) -> Result<RenderedMail> {
    digest::render(templates, "digest", &d.subject, d).context("Rendering the digest template")
}

/// Build, render and queue digest `d` for `slot` as of `now` (or record it as empty). Returns
/// the digest and whether it was queued for sending.
pub fn produce_digest(
    config: &Config,
    store: &mut Store,
    d: &DigestConfig,
    slot: i64,
    now: i64,
) -> Result<(Digest, bool)> {
    let themes_from = digest::themes_period(d, slot).0;
    let digest = build_digest(config, store, d, now, themes_from)?;
    let mail = render_digest(&config.templates, &digest)?;
    let key = format!("digest:{}:{slot}", d.name);
    let notice = NewNotice {
        kind: "digest",
        key,
        recipients: &d.to,
        subject: &mail.subject,
        text: &mail.text,
        html: &mail.html,
        due_at: now,
    };
    let send = !digest.empty || d.send_empty;
    store.record_digest(&d.name, slot, send.then_some(&notice), &notice, now)?;
    Ok((digest, send))
}

/// Sends each digest at its scheduled times. A slot missed while the daemon was down is sent
/// once at start (only the latest one); the very first start sends nothing old.
pub async fn digest_scheduler(
    mut live: Live,
    mut store: Store,
    clock: Clock,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut moved = clock.watch();
    // The last slot produced, per digest name; a digest added by a reload starts from now.
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    loop {
        let config = live.borrow_and_update().clone();
        let now = clock.now();
        let mut next_wake = i64::MAX;
        for d in &config.digests {
            let last = last
                .entry(d.name.clone())
                .or_insert_with(|| first_slot(&mut store, &d.name, now));
            if let Some(slot) = d.schedule.last_at_or_before(now).filter(|s| *s > *last) {
                let due = d.defer(slot);
                if due <= now {
                    match produce_digest(&config, &mut store, d, slot, now) {
                        Ok((digest, true)) => {
                            tracing::info!(digest = %d.name, subject = %digest.subject, "Digest queued");
                            wake.notify_one();
                            *last = slot;
                        }
                        Ok((_, false)) => {
                            tracing::info!(digest = %d.name, "Digest empty; not sent (send_empty = false)");
                            *last = slot;
                        }
                        Err(e) => {
                            tracing::error!(digest = %d.name, error = %format!("{e:#}"), "Digest failed; trying again in a minute");
                            next_wake = next_wake.min(now + 60);
                        }
                    }
                } else {
                    next_wake = next_wake.min(due);
                }
            }
            next_wake = next_wake.min(d.next_send(now.max(*last)));
        }
        let wait = Duration::from_secs((next_wake.saturating_sub(now)).clamp(1, 3600) as u64);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = moved.moved() => {}
            r = live.changed() => if r.is_err() { return },
        }
    }
}

/// Where a digest's schedule starts: its last produced slot, or now on its first run (nothing
/// old is sent), or now when the recorded slot lies in the future (the clock was corrected).
fn first_slot(store: &mut Store, name: &str, now: i64) -> i64 {
    match store.digest_last_slot(name) {
        Ok(Some(l)) if l > now + 86_400 => {
            tracing::warn!(digest = %name, "The last digest is recorded in the future; the clock was corrected? Scheduling from now");
            now
        }
        Ok(Some(l)) => l,
        Ok(None) => {
            if let Err(e) = store.record_first_start(name, now) {
                tracing::error!(digest = %name, error = %format!("{e:#}"), "Recording the digest's start failed");
            }
            now
        }
        Err(e) => {
            tracing::error!(digest = %name, error = %format!("{e:#}"), "Reading digest state failed");
            now
        }
    }
}

/// How often the monitor looks (it also looks when a task reports a change).
const HEALTH_CHECK: Duration = Duration::from_secs(15);

/// Watch for problems and send one alert per incident and one recovery note.
pub async fn health_monitor(
    mut live: Live,
    mut store: Store,
    board: HealthBoard,
    clock: Clock,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let started = clock.now();
    let mut pending = Pending::default();
    let mut moved = clock.watch();
    loop {
        // Health alerts follow a reload too ([alerts.health] switched on or off).
        let config = live.borrow_and_update().clone();
        if let Some(alerts) = config.alerts.as_ref().filter(|a| a.health.enabled) {
            if let Err(e) = health_check(
                &config,
                alerts,
                &mut store,
                &board,
                &mut pending,
                &clock,
                started,
            ) {
                tracing::error!(error = %format!("{e:#}"), "Health check failed");
            } else {
                wake.notify_one();
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(HEALTH_CHECK) => {}
            () = moved.moved() => {}
            () = board.changed.notified() => {}
            r = live.changed() => if r.is_err() { return },
        }
    }
}

/// What the store says about the backlog, the mail flow and the circuit breaker.
fn observe_store(
    alerts: &AlertConfig,
    max_age: Duration,
    store: &Store,
    now: i64,
    started: i64,
) -> Result<BTreeMap<Condition, Option<String>>> {
    let h = &alerts.health;
    // A held acknowledgement is a live problem until staff decide, or it is too old to send.
    let f = store.health_facts(now, now - max_age.as_secs() as i64)?;
    let age = |t: i64| crate::tools::tickets::age(t, now);
    let mut out = BTreeMap::new();
    let backlog_age = h.backlog_age.as_secs() as i64;
    let backlog = match f.oldest_due {
        Some(oldest) if f.due as usize > h.backlog_max || now - oldest > backlog_age => {
            Some(format!(
                "{} emails due and not sent; the oldest has waited {}",
                f.due,
                age(oldest)
            ))
        }
        _ => None,
    };
    out.insert(Condition::Backlog, backlog);
    if let Some(quiet_for) = h.no_mail_for {
        let last = f.last_mail.unwrap_or(started).max(started);
        let silent = now - last >= quiet_for.as_secs() as i64;
        out.insert(
            Condition::NoMail,
            silent.then(|| match f.last_mail {
                Some(t) if t >= started => format!(
                    "no email received for {} (the last at {})",
                    age(t),
                    crate::tools::tickets::when(t)
                ),
                _ => format!(
                    "no email received since triaged started {} ago",
                    age(started)
                ),
            }),
        );
    }
    out.insert(
        Condition::CircuitBreaker,
        (f.held > 0).then(|| {
            format!(
                "{} acknowledgements are held because they look like a mail loop (the latest {}). \
                 `triaged queue` lists them; `triaged queue release --all` sends them, \
                 `triaged queue drop --all` drops them",
                f.held,
                f.held_why.as_deref().unwrap_or("held")
            )
        }),
    );
    Ok(out)
}

fn health_check(
    config: &Config,
    alerts: &AlertConfig,
    store: &mut Store,
    board: &HealthBoard,
    pending: &mut Pending,
    clock: &Clock,
    started: i64,
) -> Result<()> {
    let now = clock.now();
    let mut observed = board.snapshot();
    observed.extend(observe_store(
        alerts,
        config.ack.max_age,
        store,
        now,
        started,
    )?);
    let open = store.open_incidents()?;
    for action in health_step(pending, &open, &observed, now, alerts.health.after) {
        let mail = HealthMail::new(&action, now);
        let r = digest::render(&config.templates, "health", &mail.subject, &mail)
            .context("Rendering the health template")?;
        let due = alerts.quiet.as_ref().map_or(now, |q| q.defer(now));
        let notice = NewNotice {
            kind: "health",
            key: String::new(),
            recipients: &alerts.to,
            subject: &r.subject,
            text: &r.text,
            html: &r.html,
            due_at: due,
        };
        match &action {
            HealthAction::Open {
                condition,
                since,
                detail,
            } => {
                let id = store.open_incident(*condition, *since, detail, &notice, now)?;
                tracing::error!(incident = id, problem = condition.title(), detail = %detail, "Health alert queued for staff");
            }
            HealthAction::Resolve { incident } => {
                store.resolve_incident(incident.id, &notice, now)?;
                tracing::info!(
                    incident = incident.id,
                    problem = incident.condition.title(),
                    "Recovered; recovery note queued for staff"
                );
            }
        }
    }
    Ok(())
}

/// Build the email for claimed staff mail. Alerts are rendered now, all in one email.
pub fn compose_notice(
    n: &ClaimedNotice,
    templates: &Templates,
    from: &Mailbox,
    domain: &str,
) -> Result<Message> {
    let (subject, text, html) = if n.kind == "alert" {
        anyhow::ensure!(!n.alerts.is_empty(), "no readable alert in this batch");
        let mail = AlertMail::new(n.alerts.clone(), n.held);
        let r = digest::render(templates, "alert", &mail.subject, &mail)
            .context("Rendering the alert template")?;
        (r.subject, r.text, r.html)
    } else {
        (n.subject.clone(), n.text.clone(), n.html.clone())
    };
    let id: String = n
        .key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect();
    let mut b = Message::builder()
        .from(from.clone())
        .raw_header(crate::headers::mailbox::<lettre::message::header::From>(
            from,
        ))
        // An alert's subject carries the customer's.
        .raw_header(crate::headers::text("Subject", &subject))
        .message_id(Some(format!(
            "<triaged.{id}.{}.{}@{domain}>",
            n.ids.first().copied().unwrap_or(0),
            n.created_at
        )))
        .date_now();
    b = crate::outbox::robot_headers(b, "auto-generated", "bulk", &n.kind);
    for r in &n.recipients {
        let a: lettre::Address = r
            .parse()
            .with_context(|| format!("Recipient {r:?} is not an address"))?;
        b = b.to(Mailbox::new(None, a));
    }
    b.multipart(MultiPart::alternative_plain_html(text, html))
        .context("Building the email")
}
