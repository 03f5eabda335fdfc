//! The daemon's staff-mail side: the digest scheduler, the health monitor, and composing staff
//! email for the outbox. What to say is decided by the pure modules ([`crate::digest`],
//! [`crate::alerts`]); this module decides when, and queues it in the store (each digest slot,
//! alert and incident exactly once) for the outbox to send.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub mod render;

pub use render::RenderedMail;

use crate::alerts::{
    AlertConfig, AlertMail, Condition, HealthAction, HealthMail, Pending, health_step,
};
use crate::clock::Clock;
use crate::config::{Config, StoreConfig};
use crate::digest::{self, Digest, DigestConfig};
use crate::health::HealthBoard;
use crate::reload::Live;
use crate::score::RuleSet;
use crate::store::{ClaimedNotice, NewNotice, Store, Unavailable};
use crate::templates::Templates;

/// The longest wait between two tries of an unavailable store.
pub const STORE_RETRY_MAX: Duration = Duration::from_secs(30);

/// An unavailable store is tried again after 1 s, 2 s, 4 s … capped at [`STORE_RETRY_MAX`]
/// ([`crate::clock::backoff`]).
pub fn store_retry_delay(failures: u32) -> Duration {
    crate::clock::backoff(Duration::from_secs(1), STORE_RETRY_MAX, failures)
}

/// How one task waits out an [`Unavailable`] store: the first task to meet a cause logs it in
/// one line for the whole daemon and raises [`Condition::Store`]; each task retries on its own
/// backoff; the last one to find the store working again logs the recovery. Any other store
/// error is left to the task, as before.
#[derive(Debug)]
pub struct StoreWait {
    board: HealthBoard,
    /// The task, as the health board knows it (a folder, "outbox", "digest" ...).
    source: String,
    path: std::path::PathBuf,
    busy_timeout: Duration,
    failures: u32,
}

impl StoreWait {
    pub fn new(board: &HealthBoard, source: impl Into<String>, store: &StoreConfig) -> StoreWait {
        StoreWait {
            board: board.clone(),
            source: source.into(),
            path: store.path.clone(),
            busy_timeout: store.busy_timeout,
            failures: 0,
        }
    }

    /// `e` came from the store. When the store is unavailable for a passing reason, report it
    /// and return how long to wait before trying again; `None` for any other error.
    pub fn failed(&mut self, e: &anyhow::Error) -> Option<Duration> {
        let cause = Unavailable::of(e)?.cause(&self.path, self.busy_timeout);
        self.failures += 1;
        let delay = store_retry_delay(self.failures);
        if self
            .board
            .fail(Condition::Store, &self.source, cause.clone())
        {
            tracing::error!(
                task = %self.source,
                error = %format!("{e:#}"),
                "Store unavailable: {cause}. Fetching stops and sending waits (nothing is marked done that was not recorded); retrying every {}s at most, and carrying on by itself when it takes writes again",
                STORE_RETRY_MAX.as_secs()
            );
        } else {
            tracing::debug!(task = %self.source, retry_in_s = delay.as_secs_f32(), "Store still unavailable: {cause}");
        }
        Some(delay)
    }

    /// The store worked for this task.
    pub fn worked(&mut self) {
        self.failures = 0;
        if self.board.ok(Condition::Store, &self.source) {
            tracing::info!(task = %self.source, "Store works again: fetching and sending resume");
        }
    }

    /// The last try failed and no try has worked since.
    pub fn waiting(&self) -> bool {
        self.failures > 0
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
    render::render(templates, "digest", &d.subject, d).context("Rendering the digest template")
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
/// once at start (only the latest one); the very first start sends nothing old. An unavailable
/// store is waited out ([`StoreWait`]): the slot is produced when it works again.
pub async fn digest_scheduler(
    mut live: Live,
    mut store: Store,
    board: HealthBoard,
    clock: Clock,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut moved = clock.watch();
    let mut waits = StoreWait::new(&board, "digest", &live.borrow().store);
    // The last slot produced, per digest name; a digest added by a reload starts from now.
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    loop {
        let config = live.borrow_and_update().clone();
        let now = clock.now();
        let mut next_wake = i64::MAX;
        for d in &config.digests {
            let last = last
                .entry(d.name.clone())
                .or_insert_with(|| first_slot(&mut store, &mut waits, &d.name, now));
            if let Some(slot) = d.schedule.last_at_or_before(now).filter(|s| *s > *last) {
                let due = d.defer(slot);
                if due <= now {
                    match produce_digest(&config, &mut store, d, slot, now) {
                        Ok((digest, true)) => {
                            waits.worked();
                            tracing::info!(digest = %d.name, subject = %digest.subject, "Digest queued");
                            wake.notify_one();
                            *last = slot;
                        }
                        Ok((_, false)) => {
                            waits.worked();
                            tracing::info!(digest = %d.name, "Digest empty; not sent (send_empty = false)");
                            *last = slot;
                        }
                        Err(e) => match waits.failed(&e) {
                            Some(retry) => {
                                next_wake = next_wake.min(now + retry.as_secs() as i64);
                            }
                            None => {
                                tracing::error!(digest = %d.name, error = %format!("{e:#}"), "Digest failed; trying again in a minute");
                                next_wake = next_wake.min(now + 60);
                            }
                        },
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
fn first_slot(store: &mut Store, waits: &mut StoreWait, name: &str, now: i64) -> i64 {
    match store.digest_last_slot(name) {
        Ok(Some(l)) if l > now + 86_400 => {
            tracing::warn!(digest = %name, "The last digest is recorded in the future; the clock was corrected? Scheduling from now");
            now
        }
        Ok(Some(l)) => l,
        Ok(None) => {
            // Not recorded (the store unavailable): the next start counts from its own now,
            // which only means no old slot is sent then either.
            if let Err(e) = store.record_first_start(name, now)
                && waits.failed(&e).is_none()
            {
                tracing::error!(digest = %name, error = %format!("{e:#}"), "Recording the digest's start failed");
            }
            now
        }
        Err(e) => {
            if waits.failed(&e).is_none() {
                tracing::error!(digest = %name, error = %format!("{e:#}"), "Reading digest state failed");
            }
            now
        }
    }
}

/// How often the monitor looks (it also looks when a task reports a change).
const HEALTH_CHECK: Duration = Duration::from_secs(15);

/// Watch for problems and send one alert per incident and one recovery note. The open
/// incidents it reads are kept on the board for `/healthz`. An incident it cannot record (the
/// store unavailable, perhaps the very problem) is recorded when the store works again, with
/// the time it began, and its alert goes out then.
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
    let mut unrecorded: Vec<HealthAction> = Vec::new();
    let mut waits = StoreWait::new(&board, "health", &live.borrow().store);
    let mut moved = clock.watch();
    loop {
        // Health alerts follow a reload too ([alerts.health] switched on or off).
        let config = live.borrow_and_update().clone();
        let mut next = HEALTH_CHECK;
        if let Some(alerts) = config.alerts.as_ref().filter(|a| a.health.enabled) {
            let mut check = Check {
                config: &config,
                alerts,
                store: &mut store,
                board: &board,
                pending: &mut pending,
                unrecorded: &mut unrecorded,
                clock: &clock,
                started,
            };
            match check.run() {
                Ok(()) => {
                    waits.worked();
                    wake.notify_one();
                }
                Err(e) => match waits.failed(&e) {
                    Some(retry) => next = next.min(retry),
                    None => tracing::error!(error = %format!("{e:#}"), "Health check failed"),
                },
            }
            // Look again when a problem or a recovery seen now has lasted `after`.
            if let Some(at) = pending.next_edge(alerts.health.after) {
                let wait = (at - clock.now()).max(1) as u64;
                next = next.min(Duration::from_secs(wait));
            }
        }
        // What `/healthz` shows (a read: it works beside another process's lock).
        match store.open_incidents() {
            Ok(open) => board.set_incidents(open),
            Err(e) => tracing::debug!(error = %format!("{e:#}"), "Reading open incidents failed"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(next) => {}
            () = moved.moved() => {}
            () = board.changed() => {}
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
    let age = |t: i64| crate::wording::age(t, now);
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
                    crate::wording::when(t)
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

/// One look of the health monitor.
struct Check<'a> {
    config: &'a Config,
    alerts: &'a AlertConfig,
    store: &'a mut Store,
    board: &'a HealthBoard,
    pending: &'a mut Pending,
    /// Actions decided but not recorded yet (the store failed), oldest first.
    unrecorded: &'a mut Vec<HealthAction>,
    clock: &'a Clock,
    started: i64,
}

impl Check<'_> {
    fn run(&mut self) -> Result<()> {
        // What could not be recorded comes first, as decided; until it is, no new decision is
        // made (it would open a second incident for the same problem).
        while let Some(action) = self.unrecorded.first().cloned() {
            match self.record(&action) {
                Ok(()) => {}
                Err(e) if Unavailable::of(&e).is_some() => return Err(e),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "Recording a health incident failed; dropped");
                }
            }
            self.unrecorded.remove(0);
        }
        let now = self.clock.now();
        let mut observed = self.board.snapshot();
        observed.extend(observe_store(
            self.alerts,
            self.config.ack.max_age,
            self.store,
            now,
            self.started,
        )?);
        let open = self.store.open_incidents()?;
        let actions = health_step(
            self.pending,
            &open,
            &observed,
            now,
            self.alerts.health.after,
        );
        for (i, action) in actions.iter().enumerate() {
            if let Err(e) = self.record(action) {
                // Decided, and `pending` has moved on: while the store is unavailable, keep
                // them to record when it works again.
                if Unavailable::of(&e).is_some() {
                    self.unrecorded.extend(actions[i..].iter().cloned());
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Record `action` and queue its email.
    fn record(&mut self, action: &HealthAction) -> Result<()> {
        let now = self.clock.now();
        let mail = HealthMail::new(action, now);
        let r = render::render(&self.config.templates, "health", &mail.subject, &mail)
            .context("Rendering the health template")?;
        let due = self.alerts.quiet.as_ref().map_or(now, |q| q.defer(now));
        let notice = NewNotice {
            kind: "health",
            key: String::new(),
            recipients: &self.alerts.to,
            subject: &r.subject,
            text: &r.text,
            html: &r.html,
            due_at: due,
        };
        match action {
            HealthAction::Open {
                condition,
                since,
                detail,
            } => {
                let id = self
                    .store
                    .open_incident(*condition, *since, detail, &notice, now)?;
                tracing::error!(incident = id, problem = condition.title(), detail = %detail, "Health alert queued for staff");
            }
            HealthAction::Resolve { incident } => {
                self.store.resolve_incident(incident.id, &notice, now)?;
                tracing::info!(
                    incident = incident.id,
                    problem = incident.condition.title(),
                    "Recovered; recovery note queued for staff"
                );
            }
        }
        Ok(())
    }
}

/// Build the email for claimed staff mail. Alerts are rendered now, all in one email.
pub fn compose_notice(
    n: &ClaimedNotice,
    templates: &Templates,
    from: &Mailbox,
    domain: &str,
    now: i64,
) -> Result<Message> {
    let (subject, text, html) = if n.kind == "alert" {
        anyhow::ensure!(!n.alerts.is_empty(), "no readable alert in this batch");
        let mail = AlertMail::new(n.alerts.clone(), n.held);
        let r = render::render(templates, "alert", &mail.subject, &mail)
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
        .date(Clock::system_time(now));
    b = crate::headers::robot_headers(b, "auto-generated", "bulk", &n.kind);
    for r in &n.recipients {
        let a: lettre::Address = r
            .parse()
            .with_context(|| format!("Recipient {r:?} is not an address"))?;
        b = b.to(Mailbox::new(None, a));
    }
    b.multipart(MultiPart::alternative_plain_html(text, html))
        .context("Building the email")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_mail_is_dated_by_the_injected_clock() {
        let notice = ClaimedNotice {
            ids: vec![7],
            kind: "digest".into(),
            key: "digest:team:1".into(),
            recipients: vec!["staff@example.test".into()],
            subject: "[triaged] team digest".into(),
            text: "nothing waiting".into(),
            html: "<p>nothing waiting</p>".into(),
            alerts: Vec::new(),
            held: false,
            attempts: 1,
            row_attempts: vec![1],
            created_at: 1_700_000_000,
        };
        let from: Mailbox = "triaged <support@example.test>".parse().expect("address");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let templates = Templates::load(&dir, &["digest", "alert", "health"]).expect("templates");
        // 2030-01-01 00:00:00 UTC: not the wall clock of any test run.
        let msg = compose_notice(&notice, &templates, &from, "example.test", 1_893_456_000)
            .expect("composes");
        let raw = String::from_utf8(msg.formatted()).expect("ascii");
        assert!(
            raw.contains("Date: Tue, 01 Jan 2030 00:00:00 +0000"),
            "{raw}"
        );
    }
    use rusqlite::ffi;

    fn store_config() -> StoreConfig {
        StoreConfig {
            path: "/srv/triaged/store.sqlite".into(),
            busy_timeout: Duration::from_secs(2),
            keep_text: true,
        }
    }

    fn sqlite(code: i32) -> anyhow::Error {
        anyhow::Error::new(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None))
            .context("Claiming the next row")
    }

    #[test]
    fn the_board_tells_news_and_the_last_recovery() {
        let board = HealthBoard::default();
        let c = Condition::Store;
        assert!(board.fail(c, "INBOX", "disk full under /x"));
        // Another task meeting the same cause is no news; a new cause is.
        assert!(!board.fail(c, "outbox", "disk full under /x"));
        assert!(board.fail(c, "digest", "store locked by another process"));
        assert_eq!(
            board.failures(c),
            vec![
                "disk full under /x".to_string(),
                "store locked by another process".to_string()
            ]
        );
        assert!(!board.ok(c, "INBOX"));
        assert!(!board.ok(c, "digest"));
        assert!(board.ok(c, "outbox"), "the last source to recover");
        assert!(!board.ok(c, "outbox"), "fine already");
        assert!(board.failures(c).is_empty());
        assert_eq!(board.snapshot().get(&c), Some(&None));
    }

    #[test]
    fn an_unavailable_store_is_waited_out_and_other_errors_are_not() {
        let board = HealthBoard::default();
        let mut inbox = StoreWait::new(&board, "INBOX", &store_config());
        let mut outbox = StoreWait::new(&board, "outbox", &store_config());
        assert_eq!(inbox.failed(&sqlite(ffi::SQLITE_CORRUPT)), None);
        assert_eq!(
            inbox.failed(&anyhow::anyhow!("IMAP: connection reset")),
            None
        );
        assert!(!inbox.waiting());
        assert!(board.failures(Condition::Store).is_empty());

        let first = inbox.failed(&sqlite(ffi::SQLITE_FULL)).expect("waited out");
        assert!(first <= Duration::from_millis(1200), "{first:?}");
        assert!(inbox.waiting());
        assert_eq!(
            board.failures(Condition::Store),
            vec!["disk full under /srv/triaged".to_string()]
        );
        outbox
            .failed(&sqlite(ffi::SQLITE_FULL))
            .expect("waited out");
        // Each task backs off on its own, up to the cap.
        let later = (0..20)
            .map(|_| inbox.failed(&sqlite(ffi::SQLITE_FULL)).expect("waited"))
            .last()
            .expect("a delay");
        assert!(
            later >= STORE_RETRY_MAX.mul_f64(0.8) && later <= STORE_RETRY_MAX.mul_f64(1.2),
            "{later:?}"
        );
        inbox.worked();
        assert!(!inbox.waiting());
        assert_eq!(
            board.failures(Condition::Store).len(),
            1,
            "the outbox still waits"
        );
        outbox.worked();
        assert!(board.failures(Condition::Store).is_empty());
    }

    #[test]
    fn store_retries_back_off_within_bounds() {
        for n in 1..40 {
            let d = store_retry_delay(n);
            assert!(
                d >= Duration::from_millis(800) && d <= STORE_RETRY_MAX.mul_f64(1.2),
                "{n}: {d:?}"
            );
        }
        assert!(store_retry_delay(3) >= Duration::from_millis(3200));
    }
}
