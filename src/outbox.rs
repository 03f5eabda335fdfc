//! The outbox worker: takes due rows from the store, renders them, sends them over SMTP, and
//! records the outcome. 4xx and connection errors retry with backoff; 5xx fails permanently
//! (the follow-ups too when it refused the recipient); a refusal of our own account, its
//! login or our sender address, holds all sending without using up any row's attempts.
//!
//! Up to `[outbox] concurrency` transactions are in flight; rate limits count those in flight.
//!
//! Delivery is exactly once where a witness exists ([`crate::config::Witness`]): a row is
//! marked `sending` (committed) before the SMTP transaction starts; each customer email's copy
//! (a Bcc to the mailbox's own address, or the provider's copy in Sent) proves it went out. A
//! row found `sending` after a crash becomes `unconfirmed`, settled as sent when its copy
//! arrives, or sent again when none has come once the folders were read through after
//! `witness_grace`. Without a witness it becomes `uncertain` and is not sent again: a customer
//! may, in that rare window, miss an acknowledgement; they never get two.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use lettre::Message;
use lettre::message::header;
use lettre::message::{Mailbox, MultiPart};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerts::Condition;
use crate::clock::Clock;
use crate::config::{
    AckConfig, FollowupConfig, MailboxConfig, OutboxConfig, RateLimit, Witness, mailbox_of_key,
};
use crate::headers;
use crate::notices::compose_notice;
use crate::sla::SlaConfig;
use crate::smtp::{SendError, Sender};
use crate::store::{ClaimedNotice, OutboxItem, OutboxKind, Store};
use crate::templates::{MailContext, Templates};
use crate::tickets::{self, Followup};
use crate::wording;

/// What the daemon's tasks share: the outbox's wake-up, the health board, the reload channel,
/// the counters and the watchers' read marks. `Default` gives fresh ones (tools and tests).
#[derive(Clone, Default)]
pub struct Shared {
    /// Poked when something was queued for the outbox.
    pub wake: Arc<Notify>,
    /// Where trouble is reported for health alerts and `/healthz`.
    pub health: crate::health::HealthBoard,
    /// Where a reloaded configuration arrives (none: fixed).
    pub live: Option<crate::reload::Live>,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// How far the watchers have read their folders (for settling interrupted sends).
    pub synced: SyncMarks,
}

/// Everything the worker needs besides the store.
pub struct Outbox {
    sender: Sender,
    templates: Templates,
    /// Teams (what an acknowledgement says of the ticket's team) and the questions it asks.
    routing: crate::route::Routing,
    ack: AckConfig,
    /// Business time: what acknowledgements and holding notes promise.
    sla: SlaConfig,
    /// Follow-up settings: customer-facing hours, the survey link.
    followups: FollowupConfig,
    policy: OutboxConfig,
    /// `[smtp] from`: staff mail, and customer mail of a mailbox without an `address`.
    from: Mailbox,
    /// The mailboxes (the first one first): an email is answered from the one it arrived in.
    mailboxes: Vec<MailboxConfig>,
    clock: Clock,
    /// Poked by the fetcher when it queued something.
    wake: Arc<Notify>,
    /// Provider sending limits.
    rate_limits: Vec<RateLimit>,
    /// How long to pause all sending when the provider pushes back.
    pushback_pause: Duration,
    /// At most this many alert emails an hour (`[alerts] max_per_hour`).
    alerts_per_hour: u32,
    /// `[alerts] quiet_hours`: alerts and health notes wait for their end.
    alerts_quiet: Option<crate::digest::QuietHours>,
    /// Domain of our Message-IDs.
    domain: String,
    /// Where SMTP trouble is reported for health alerts.
    health: crate::health::HealthBoard,
    /// While our SMTP account (its login or our sender address) is refused, all sending
    /// waits (not persisted: a restart tries at once).
    account_hold: AccountHold,
    /// Where a reloaded configuration arrives (none: fixed).
    live: Option<crate::reload::Live>,
    /// Counters for `/metrics`.
    metrics: crate::metrics::Metrics,
    /// How far the watchers have read their folders (for settling interrupted sends).
    synced: SyncMarks,
}

/// How far each watched folder has been read. Copies that prove an email went out
/// ([`crate::config::Witness`]) arrive in those folders, so an interrupted send whose copy is
/// not there once every folder was read through after its grace period did not go out. A
/// folder is read through as of `t` when a complete pass over it began at or after `t`, or
/// when its watcher waits in IDLE now (it has read all there is: new mail would wake it).
#[derive(Debug, Clone, Default)]
pub struct SyncMarks(Arc<std::sync::Mutex<std::collections::BTreeMap<String, Mark>>>);

/// One folder's mark: when its latest complete pass began (seconds), and whether its watcher
/// waits in IDLE with nothing unread.
#[derive(Debug, Clone, Copy)]
struct Mark {
    pass_began: i64,
    idle: bool,
}

impl SyncMarks {
    fn with(&self, folder: &str, f: impl FnOnce(&mut Mark)) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(folder.to_string()).or_insert(Mark {
            pass_began: i64::MIN,
            idle: false,
        }));
    }

    /// A folder to wait for (before its first pass: nothing settles until it has read).
    pub fn watch(&self, folder: &str) {
        self.with(folder, |_| {});
    }

    /// `folder` was read through by a pass that began at `started` (seconds).
    pub fn read_through(&self, folder: &str, started: i64) {
        self.with(folder, |m| m.pass_began = m.pass_began.max(started));
    }

    /// `folder`'s watcher waits in IDLE (`true`) with everything read, or has stopped waiting.
    pub fn idle(&self, folder: &str, idle: bool) {
        self.with(folder, |m| m.idle = idle);
    }

    /// Every watched folder was read through as of `t`.
    pub fn all_since(&self, t: i64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .all(|m| m.idle || m.pass_began >= t)
    }
}

/// The health board's name for this worker's SMTP connection.
const SMTP: &str = "smtp";

/// Until when all sending waits because the SMTP server refused our account, and how.
#[derive(Debug, Default)]
pub struct AccountHold {
    /// Ms since the epoch.
    until_ms: std::sync::atomic::AtomicI64,
    /// The refusal was of our sender address, not of the login.
    sender: std::sync::atomic::AtomicBool,
    /// From the first refusal until a send goes through: between two tries nothing is held,
    /// but sending has not resumed.
    refused: std::sync::atomic::AtomicBool,
}

impl AccountHold {
    fn refused(&self) -> bool {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A send went through: the account works.
    fn clear(&self) {
        self.refused
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A send that ended: the row, what its acknowledgement promised, when it began, how it went.
struct Finished {
    item: OutboxItem,
    promised: Option<i64>,
    started: std::time::Instant,
    result: Result<(), SendError>,
}

/// The store key holding the end of a provider-imposed pause (ms since the epoch).
pub const PAUSED_UNTIL: &str = "outbox.paused_until_ms";

/// Sending is held back for `reason` until `until_ms`.
#[derive(Debug, Clone, Copy)]
struct Hold {
    reason: &'static str,
    until_ms: i64,
    /// Held for a refused account (it is over when a send goes through).
    account: bool,
}

impl Outbox {
    /// The worker as `config` sets it up, sending with `sender` on `clock`, with what the
    /// daemon's tasks share (`Shared::default()`: fresh ones).
    pub fn new(
        config: &crate::config::Config,
        sender: Sender,
        clock: Clock,
        shared: &Shared,
    ) -> Outbox {
        Outbox {
            sender,
            templates: config.templates.clone(),
            routing: config.routing.clone(),
            ack: config.ack.clone(),
            sla: config.sla.clone(),
            followups: config.followups.clone(),
            policy: config.outbox.clone(),
            from: config.smtp.from.clone(),
            mailboxes: config.mailboxes.clone(),
            clock,
            wake: shared.wake.clone(),
            rate_limits: config.smtp.rate_limits.clone(),
            pushback_pause: config.smtp.pushback_pause,
            alerts_per_hour: config.alerts.as_ref().map_or(10, |a| a.max_per_hour),
            alerts_quiet: config.alerts.as_ref().and_then(|a| a.quiet.clone()),
            domain: config.support.domain.clone(),
            health: shared.health.clone(),
            account_hold: Default::default(),
            live: shared.live.clone(),
            metrics: shared.metrics.clone(),
            synced: shared.synced.clone(),
        }
    }

    /// Run until cancelled. Up to `[outbox] concurrency` sends are in flight at once, started
    /// most urgent first; their outcomes are recorded here, one at a time, as they finish. Sends
    /// in flight when cancellation arrives are finished and recorded (the caller bounds how long
    /// it waits), so no row is left half-recorded.
    pub async fn run(mut self, mut store: Store, cancel: CancellationToken) -> Result<()> {
        self.recover(&mut store)?;
        // When sends a crash interrupted (this time or before) may next be settled (none: there
        // are none).
        let mut settle_at = Some(i64::MIN);
        // Why sending is held back right now, to log a change once rather than every loop.
        let mut holding: Option<Hold> = None;
        // Tests move the clock; a wait until a due time must then look again.
        let mut clock_moved = self.clock.watch();
        // When held acknowledgements too old to send were last cancelled.
        let mut swept_at = i64::MIN;
        let mut in_flight: JoinSet<Finished> = JoinSet::new();
        loop {
            if cancel.is_cancelled() {
                while let Some(done) = in_flight.join_next().await {
                    self.finish(&mut store, done.context("A send task failed")?)?;
                }
                return Ok(());
            }
            // What finished meanwhile is recorded before anything new starts: a pushback or a
            // refused account it reports holds what would come next.
            while let Some(done) = in_flight.try_join_next() {
                self.finish(&mut store, done.context("A send task failed")?)?;
            }
            self.refresh();
            let now = self.clock.now();
            if now.saturating_sub(swept_at) >= 60 {
                swept_at = now;
                self.expire_held(&mut store, now)?;
            }
            if settle_at.is_some_and(|t| now >= t) {
                settle_at = self.settle_interrupted(&mut store, now)?;
            }
            let now_ms = self.clock.now_ms();
            if let Some(h) = self.held_back(&store, now_ms, in_flight.len() as u32, &mut holding)? {
                let wait = Duration::from_millis((h.until_ms - now_ms).clamp(1, 3_600_000) as u64);
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(wait) => {}
                    () = clock_moved.moved() => {}
                    Some(done) = in_flight.join_next() => {
                        self.finish(&mut store, done.context("A send task failed")?)?;
                    }
                }
                continue;
            }
            // Staff mail first: an alert is worth more than any single acknowledgement.
            // (A plain read first: most loops have no staff mail due, and a claim takes the
            // write lock.)
            let notice_due = store
                .notice_due_at()?
                .is_some_and(|due| due <= self.clock.now());
            if notice_due
                && let Some(n) = store.claim_notice(
                    self.clock.now(),
                    self.alerts_per_hour,
                    self.alerts_quiet.as_ref(),
                )?
            {
                self.deliver_notice(&mut store, n).await?;
                continue;
            }
            // Every connection busy: wait for one.
            if in_flight.len() >= self.policy.concurrency.max(1) {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    Some(done) = in_flight.join_next() => {
                        self.finish(&mut store, done.context("A send task failed")?)?;
                    }
                }
                continue;
            }
            match store.claim_next_due(self.clock.now())? {
                Some(item) if self.outside_customer_hours(&item) => {
                    let now = self.clock.now();
                    let at = self.followups.send_hours.next_open_secs(now);
                    tracing::info!(outbox = item.id, ticket = %item.ticket_tag, kind = %item.kind,
                        in_s = at.saturating_sub(now), "Follow-up waits for customer-facing hours");
                    store.mark_deferred(item.id, at, "waiting for customer-facing hours", now)?;
                }
                Some(item) => {
                    if let Some((msg, promised)) = self.start(&mut store, &item)? {
                        let sender = self.sender.clone();
                        in_flight.spawn(async move {
                            let started = std::time::Instant::now();
                            let result = sender.send(&msg).await;
                            Finished {
                                item,
                                promised,
                                started,
                                result,
                            }
                        });
                    }
                }
                None => {
                    let wait = self.idle_wait(&store, settle_at.is_some())?;
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = self.wake.notified() => {}
                        () = clock_moved.moved() => {}
                        () = tokio::time::sleep(wait.max(Duration::from_millis(50))) => {}
                        Some(done) = in_flight.join_next() => {
                            self.finish(&mut store, done.context("A send task failed")?)?;
                        }
                    }
                }
            }
        }
    }

    /// How long to wait with nothing to send: until the next row falls due (at most an hour),
    /// and at most a second while sends a crash interrupted wait to be settled.
    fn idle_wait(&self, store: &Store, settling: bool) -> Result<Duration> {
        let wait = match store.next_due_at()? {
            Some(due) => Duration::from_secs((due - self.clock.now()).clamp(0, 3600) as u64),
            None => Duration::from_secs(3600),
        };
        Ok(if settling {
            wait.min(Duration::from_secs(1))
        } else {
            wait
        })
    }

    /// Sends a crash cut off: settled by their witness copy later, or marked uncertain where
    /// no copy can be seen.
    fn recover(&self, store: &mut Store) -> Result<()> {
        let witness = self.policy.witness != Witness::Off;
        let recovered = store.recover_interrupted_sends(self.clock.now(), witness)?;
        if recovered > 0 && witness {
            tracing::warn!(
                rows = recovered,
                grace_s = self.policy.witness_grace.as_secs(),
                "Outbox rows were interrupted mid-send by a crash; each is sent again unless its copy arrives"
            );
        } else if recovered > 0 {
            tracing::warn!(
                rows = recovered,
                "Outbox rows were interrupted mid-send by a crash; marked uncertain, not resent"
            );
        }
        Ok(())
    }

    /// Held acknowledgements whose email is older than `[ack] max_age` are never sent.
    fn expire_held(&self, store: &mut Store, now: i64) -> Result<()> {
        let n = store.expire_held(now - self.ack.max_age.as_secs() as i64, now)?;
        if n > 0 {
            tracing::warn!(
                rows = n,
                "Held acknowledgements no one released within [ack] max_age: never sent"
            );
        }
        Ok(())
    }

    /// Settle what a crash interrupted as far as the witness copies allow; returns when to
    /// look again (none: nothing is left to settle).
    fn settle_interrupted(&self, store: &mut Store, now: i64) -> Result<Option<i64>> {
        let synced = &self.synced;
        let (again, given_up, next) = store.resolve_unconfirmed(
            self.policy.witness_grace.as_secs() as i64,
            |t| synced.all_since(t),
            now,
        )?;
        if again > 0 {
            tracing::warn!(
                rows = again,
                "No copy came of emails a crash interrupted: sending them again"
            );
        }
        if given_up > 0 {
            tracing::warn!(
                rows = given_up,
                "No copy of sent email arrives in the watched folders (see [outbox] witness): emails a crash interrupted are not sent again"
            );
        }
        Ok(next)
    }

    /// Why sending is held back now (none: it may go on), with `busy` sends in flight; a change
    /// from `holding` (the last hold) is logged once.
    fn held_back(
        &self,
        store: &Store,
        now_ms: i64,
        busy: u32,
        holding: &mut Option<Hold>,
    ) -> Result<Option<Hold>> {
        // Only rows that are due can be held back.
        let due_now = store.next_due_at()?.is_some_and(|due| due <= now_ms / 1000);
        let hold = if due_now {
            self.hold(store, now_ms, busy)?
        } else {
            None
        };
        // Between two tries of a refused account nothing is held, but sending has not
        // resumed until one goes through.
        let retrying =
            hold.is_none() && holding.is_some_and(|h| h.account) && self.account_hold.refused();
        // A limit that only the sends in flight fill is no hold worth a line.
        let quiet = hold.is_some_and(|h| h.reason == "rate limit")
            && busy > 0
            && self.hold(store, now_ms, 0)?.is_none();
        if hold.map(|h| h.reason) != holding.map(|h| h.reason) && !retrying && !quiet {
            match (hold, *holding) {
                (Some(h), _) => tracing::warn!(
                    reason = h.reason,
                    resume_in_s = (h.until_ms - now_ms) / 1000,
                    "Sending held back"
                ),
                (None, Some(h)) => tracing::info!(reason = h.reason, "Sending resumed"),
                (None, None) => {}
            }
            *holding = hold;
        }
        Ok(hold)
    }

    /// A follow-up is due, but customers are not written to at this hour.
    fn outside_customer_hours(&self, item: &OutboxItem) -> bool {
        item.kind.followup().is_some() && !self.followups.send_hours.is_open(self.clock.timestamp())
    }

    /// Take up a reloaded configuration (templates, acknowledgement, SLA, follow-up and alert
    /// settings) between emails.
    fn refresh(&mut self) {
        let Some(live) = &mut self.live else { return };
        if !live.has_changed().unwrap_or(false) {
            return;
        }
        let c = live.borrow_and_update().clone();
        self.templates = c.templates.clone();
        self.routing = c.routing.clone();
        self.ack = c.ack.clone();
        self.sla = c.sla.clone();
        self.followups = c.followups.clone();
        self.alerts_per_hour = c.alerts.as_ref().map_or(10, |a| a.max_per_hour);
        self.alerts_quiet = c.alerts.as_ref().and_then(|a| a.quiet.clone());
    }

    /// Our account was refused, its login or our sender address (`error` is
    /// [`SendError::Account`] or [`SendError::Sender`]): report it for health alerts, say in
    /// one line what to fix, and hold all sending for `[outbox] account_retry`. Returns when
    /// to try again (seconds since the epoch).
    fn hold_for_account(&self, error: &SendError) -> i64 {
        use std::sync::atomic::Ordering::Relaxed;
        let retry = self.policy.account_retry;
        let until_ms = self.clock.now_ms() + retry.as_millis() as i64;
        let sender = matches!(error, SendError::Sender { .. });
        self.account_hold.until_ms.store(until_ms, Relaxed);
        let was_refused = self.account_hold.refused.swap(true, Relaxed);
        let was_sender = self.account_hold.sender.swap(sender, Relaxed);
        self.health.fail(Condition::Smtp, SMTP, error.to_string());
        if was_refused && was_sender == sender {
            // Said when it began; the health alert tells staff.
            tracing::debug!(retry_in_s = retry.as_secs(), error = %error, "SMTP still refuses our account");
            return until_ms / 1000;
        }
        match error {
            SendError::Sender { from, reply } => {
                tracing::error!(retry_in_s = retry.as_secs(), from = %from, error = %reply,
                "SMTP server refuses our sender address {from}: all sending waits (check [smtp] from, or the mailbox's address, and that the [smtp] account may send as it)")
            }
            _ => tracing::error!(retry_in_s = retry.as_secs(), error = %error,
                "SMTP login failing: all sending waits (check [smtp] username and its password or token_command)"),
        }
        until_ms / 1000
    }

    /// Whether sending must wait, why, and until when: a pause the provider imposed (it
    /// survives restarts), or a configured rate limit (counted from the persistent send log).
    fn hold(&self, store: &Store, now_ms: i64, in_flight: u32) -> Result<Option<Hold>> {
        let paused = store
            .get_kv(PAUSED_UNTIL)?
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|t| *t > now_ms);
        if let Some(until_ms) = paused {
            return Ok(Some(Hold {
                reason: "provider pushback",
                until_ms,
                account: false,
            }));
        }
        let account = self
            .account_hold
            .until_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if account > now_ms {
            let sender = self
                .account_hold
                .sender
                .load(std::sync::atomic::Ordering::Relaxed);
            return Ok(Some(Hold {
                reason: if sender {
                    "SMTP server refuses our sender address"
                } else {
                    "SMTP login failing"
                },
                until_ms: account,
                account: true,
            }));
        }
        Ok(store
            .rate_limited_until(&self.rate_limits, now_ms, in_flight)?
            .map(|until_ms| Hold {
                reason: "rate limit",
                until_ms,
                account: false,
            }))
    }

    /// Send claimed staff mail; failures retry like customer mail (never a duplicate: the row
    /// was claimed before the SMTP transaction began).
    async fn deliver_notice(&self, store: &mut Store, n: ClaimedNotice) -> Result<()> {
        let now = self.clock.now();
        let msg = match compose_notice(
            &n,
            &self.templates,
            &self.from,
            &self.domain,
            self.clock.now(),
        ) {
            Ok(m) => m,
            Err(e) => {
                let err = format!("cannot build the email: {e:#}");
                tracing::error!(kind = %n.kind, key = %n.key, error = %err, "Staff email failed permanently");
                return store.notice_failed(&n.ids, &err, now);
            }
        };
        match self.sender.send(&msg).await {
            Ok(()) => {
                self.health.ok(Condition::Smtp, SMTP);
                self.account_hold.clear();
                store.notice_sent(&n.ids, self.clock.now_ms())?;
                tracing::info!(kind = %n.kind, key = %n.key, to = %n.recipients.join(","), emails = n.ids.len(), "Staff email sent");
            }
            Err(e @ (SendError::Account(_) | SendError::Sender { .. })) => {
                // As for customer mail: not this email's fault, so no attempt is used up.
                let until = self.hold_for_account(&e);
                store.notice_deferred(&n.ids, until, &e.to_string(), self.clock.now())?;
            }
            Err(SendError::Permanent(e) | SendError::Recipient(e)) => {
                tracing::error!(kind = %n.kind, key = %n.key, error = %e, "Staff email refused permanently; not retried");
                store.notice_failed(&n.ids, &e, self.clock.now())?;
            }
            Err(SendError::Pushback(e)) => {
                // As for customer mail: everything pauses, and this waits for the pause
                // without using up an attempt.
                let until_ms = self.clock.now_ms() + self.pushback_pause.as_millis() as i64;
                tracing::warn!(kind = %n.kind, key = %n.key, pause_s = self.pushback_pause.as_secs(), error = %e, "Provider pushback: pausing all sending");
                store.set_kv(PAUSED_UNTIL, &until_ms.to_string())?;
                store.notice_deferred(&n.ids, until_ms / 1000, &e, self.clock.now())?;
            }
            Err(SendError::Transient(e)) => {
                self.health.fail(Condition::Smtp, SMTP, e.clone());
                // Rows that used up their attempts fail; the rest (an alert that joined the
                // batch late) try again.
                type Rows = Vec<(i64, u32)>;
                let (spent, more): (Rows, Rows) = n
                    .ids
                    .iter()
                    .copied()
                    .zip(n.row_attempts.iter().copied())
                    .partition(|(_, a)| *a >= self.policy.max_attempts);
                let ids = |v: &[(i64, u32)]| v.iter().map(|(id, _)| *id).collect::<Vec<_>>();
                if !spent.is_empty() {
                    let err = format!("gave up after {} attempts: {e}", self.policy.max_attempts);
                    tracing::error!(kind = %n.kind, key = %n.key, error = %err, "Staff email failed");
                    store.notice_failed(&ids(&spent), &err, self.clock.now())?;
                }
                if !more.is_empty() {
                    let attempt = more.iter().map(|(_, a)| *a).max().unwrap_or(1);
                    let delay = crate::clock::backoff(
                        self.policy.retry_initial,
                        self.policy.retry_max,
                        attempt,
                    );
                    tracing::warn!(kind = %n.kind, key = %n.key, attempt, retry_in_s = delay.as_secs(), error = %e, "Staff email failed; will retry");
                    store.notice_retry(
                        &ids(&more),
                        self.clock.now() + delay.as_secs() as i64,
                        &e,
                        self.clock.now(),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The email for a claimed row, or `None` when none can be built (the row is failed, and
    /// its follow-ups too when the address is no address).
    fn start(
        &self,
        store: &mut Store,
        item: &OutboxItem,
    ) -> Result<Option<(Message, Option<i64>)>> {
        let now = self.clock.now();
        match self.compose(item) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                let err = format!("cannot build the email: {e:#}");
                tracing::error!(outbox = item.id, ticket = %item.ticket_tag, kind = %item.kind, error = %err, "Email failed permanently");
                store.mark_failed(item.id, &err, now)?;
                // No email to this address can be built; a template problem is this kind's
                // own, and the other kinds have theirs.
                if item.recipient.parse::<lettre::Address>().is_err() {
                    let reason =
                        format!("cannot write to {:?}: not an email address", item.recipient);
                    let n = store.cancel_followups_of(item.id, &reason, now)?;
                    if n > 0 {
                        tracing::warn!(ticket = %item.ticket_tag, cancelled = n, "Follow-ups cancelled: {reason}");
                    }
                }
                Ok(None)
            }
        }
    }

    /// Record how a send ended.
    fn finish(&self, store: &mut Store, done: Finished) -> Result<()> {
        let Finished {
            item,
            promised,
            started,
            result,
        } = done;
        match result {
            Ok(()) => {
                self.health.ok(Condition::Smtp, SMTP);
                self.account_hold.clear();
                store.mark_sent(item.id, self.clock.now_ms(), promised)?;
                if item.kind == OutboxKind::Ack {
                    let ms = (self.clock.now_ms() - item.received_at * 1000).max(0);
                    self.metrics.ack_sent(Duration::from_millis(ms as u64));
                }
                tracing::info!(outbox = item.id, ticket = %item.ticket_tag, to = %item.recipient, kind = %item.kind,
                    ms = started.elapsed().as_millis() as u64, "Sent");
            }
            Err(SendError::Pushback(e)) => {
                self.metrics.send_failed("pushback");
                // Throttling is the provider working as designed; a backlog it causes is
                // watched on its own.
                let pause = self.pushback_pause;
                let until_ms = self.clock.now_ms() + pause.as_millis() as i64;
                tracing::warn!(outbox = item.id, ticket = %item.ticket_tag, pause_s = pause.as_secs(), error = %e, "Provider pushback: pausing all sending");
                store.set_kv(PAUSED_UNTIL, &until_ms.to_string())?;
                store.mark_deferred(item.id, until_ms / 1000, &e, self.clock.now())?;
            }
            Err(e @ (SendError::Account(_) | SendError::Sender { .. })) => {
                self.metrics.send_failed("account");
                // Not this email's fault: it waits, with every other, for the account.
                let until = self.hold_for_account(&e);
                store.mark_deferred(item.id, until, &e.to_string(), self.clock.now())?;
            }
            Err(SendError::Recipient(e)) => {
                self.metrics.send_failed("permanent");
                self.health.ok(Condition::Smtp, SMTP);
                tracing::error!(outbox = item.id, ticket = %item.ticket_tag, to = %item.recipient, error = %e, "Send failed permanently: the recipient was refused; not retried");
                store.mark_failed(item.id, &e, self.clock.now())?;
                // The address does not take our mail: no follow-ups to it either.
                let n = store.cancel_followups_of(item.id, "undeliverable", self.clock.now())?;
                if n > 0 {
                    tracing::warn!(ticket = %item.ticket_tag, cancelled = n, "Follow-ups cancelled: the customer's address refused mail");
                }
            }
            Err(SendError::Permanent(e)) => {
                self.metrics.send_failed("permanent");
                self.health.ok(Condition::Smtp, SMTP);
                // The server refused this email (its content, size, a line), or did not say
                // what: nothing says the address refuses mail, and each follow-up is an email
                // of its own, so they stay queued (and fail on their own if refused too).
                tracing::error!(outbox = item.id, ticket = %item.ticket_tag, to = %item.recipient, kind = %item.kind, error = %e,
                    "Send failed permanently: the server refused this email; not retried (follow-ups stay queued)");
                store.mark_failed(item.id, &e, self.clock.now())?;
            }
            Err(SendError::Transient(e)) if item.attempts >= self.policy.max_attempts => {
                self.metrics.send_failed("transient");
                self.health.fail(Condition::Smtp, SMTP, e.clone());
                let err = format!("gave up after {} attempts: {e}", item.attempts);
                tracing::error!(outbox = item.id, ticket = %item.ticket_tag, to = %item.recipient, error = %err, "Send failed");
                store.mark_failed(item.id, &err, self.clock.now())?;
            }
            Err(SendError::Transient(e)) => {
                self.metrics.send_failed("transient");
                self.health.fail(Condition::Smtp, SMTP, e.clone());
                let delay = crate::clock::backoff(
                    self.policy.retry_initial,
                    self.policy.retry_max,
                    item.attempts,
                );
                tracing::warn!(outbox = item.id, ticket = %item.ticket_tag, attempt = item.attempts, retry_in_s = delay.as_secs(), error = %e, "Send failed; will retry");
                store.mark_retry(
                    item.id,
                    self.clock.now() + delay.as_secs() as i64,
                    &e,
                    self.clock.now(),
                )?;
            }
        }
        Ok(())
    }

    /// The ticket's team (when it is still configured) and, for an acknowledgement, its
    /// questions rendered: each `[[ask]]` decided when the email was recorded that the
    /// configuration still has. A question that does not render is left out, and said.
    fn with_team_and_questions(
        &self,
        mut ctx: MailContext,
        item: &OutboxItem,
        ack: bool,
    ) -> MailContext {
        if let Some(team) = self.routing.team(&item.team) {
            ctx.team = team.name.clone();
            ctx.team_description = clean(&team.description);
        }
        if !ack {
            return ctx;
        }
        for id in crate::store::list_column(&item.asks) {
            let Some(ask) = self.routing.asks.iter().find(|a| a.id == id) else {
                tracing::info!(ticket = %item.ticket_tag, ask = %id, "Question left out: [[ask]] {id:?} is no longer configured");
                continue;
            };
            match crate::templates::render_inline(&ask.question, &ctx) {
                Ok(q) if !q.is_empty() => ctx.questions.push(q),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(ticket = %item.ticket_tag, ask = %id, error = %e, "Question left out: it does not render");
                }
            }
        }
        ctx
    }

    /// Build the email for an outbox row: the acknowledgement or a follow-up; with the time an
    /// acknowledgement promises. It is From the mailbox the customer's email arrived in (the
    /// row's message says where), so whoever wrote to billing@ hears back from billing@.
    pub fn compose(&self, item: &OutboxItem) -> Result<(Message, Option<i64>)> {
        let mailbox = mailbox_of_key(&self.mailboxes, &item.folder);
        let from = mailbox
            .and_then(|m| m.from.clone())
            .unwrap_or_else(|| self.from.clone());
        let support_address = mailbox.map(|m| m.address.clone()).unwrap_or_default();
        let priority = item.priority;
        let now = self.clock.now();
        let followup = item.kind.followup();
        let template: &str = match followup {
            Some(f) => f.as_str(),
            None => &self.ack.template,
        };
        // The first-response target, counted from when the email arrived (or from now, should
        // the server's arrival stamp run ahead of our clock).
        let start = item.received_at.min(now);
        let first = self.sla.first_response(priority);
        let promised = followup
            .is_none()
            .then(|| self.sla.promised_deadline(start, first, now));
        let reply_time = match followup {
            None => self.sla.promise(start, first, now),
            // Still open past the target: a new, honest time, counted from now.
            Some(Followup::Holding) => self.sla.promise(now, self.sla.next_response(priority), now),
            Some(Followup::Verify | Followup::Survey) => String::new(),
        };
        let customer_name = if item.recipient_name.trim().is_empty() {
            item.recipient.split('@').next().unwrap_or("").to_string()
        } else {
            item.recipient_name.clone()
        };
        let ctx = MailContext {
            kind: item.kind.as_str().to_string(),
            customer_name: clean(&customer_name),
            customer_email: item.recipient.clone(),
            ticket: item.ticket_tag.clone(),
            subject: clean(&item.subject),
            priority: item.priority.as_str().to_string(),
            tones: crate::store::list_column(&item.tones),
            reply_time,
            survey_url: self.followups.survey_url.clone(),
            support_address,
            intents: crate::store::list_column(&item.intents),
            team: String::new(),
            team_description: String::new(),
            questions: Vec::new(),
        };
        let ctx = self.with_team_and_questions(ctx, item, followup.is_none());
        let body = self
            .templates
            .render(template, &ctx)
            .with_context(|| format!("Rendering the {template} template"))?;
        let to: lettre::Address = item
            .recipient
            .parse()
            .with_context(|| format!("Recipient {:?} is not an address", item.recipient))?;
        let to = Mailbox::new(
            Some(clean(&item.recipient_name)).filter(|n| !n.is_empty()),
            to,
        );
        // What was left out was logged when the email was recorded.
        let thread = headers::threading(&item.in_reply_to, &item.references);
        let mut b = Message::builder()
            .from(from.clone())
            .to(to.clone())
            .raw_header(headers::mailbox::<header::From>(&from))
            .raw_header(headers::mailbox::<header::To>(&to))
            .raw_header(headers::text(
                "Subject",
                &tickets::reply_subject(&item.subject, &item.ticket_tag),
            ))
            .message_id(Some(format!("<{}>", item.out_message_id)))
            .date(Clock::system_time(self.clock.now()));
        // The witness: an envelope-only copy to the mailbox's own address, taken by the server
        // in this very transaction (lettre leaves the Bcc header out of the email).
        if self.policy.witness == Witness::Bcc {
            let own = mailbox
                .and_then(|m| m.address.parse::<lettre::Address>().ok())
                .map_or_else(|| from.clone(), |a| Mailbox::new(None, a));
            b = b.bcc(own);
        }
        b = headers::robot_headers(b, "auto-replied", "auto_reply", &item.ticket_tag);
        if let Some(id) = &thread.in_reply_to {
            b = b.in_reply_to(format!("<{id}>"));
        }
        if !thread.references.is_empty() {
            b = b.references(
                thread
                    .references
                    .iter()
                    .map(|r| format!("<{r}>"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        let msg = b
            .multipart(MultiPart::alternative_plain_html(body.text, body.html))
            .context("Building the email")?;
        Ok((msg, promised))
    }
}

/// One line of `triaged queue`: an unfinished outbox row and why it waits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueLine {
    pub id: i64,
    /// `ack`, `holding`, `verify`, `survey`.
    pub kind: String,
    pub ticket: String,
    pub priority: String,
    /// `held`, `pending`, `sending`, `uncertain`, `failed`.
    pub state: String,
    pub attempts: u32,
    pub recipient: String,
    /// When it may go (seconds since the epoch).
    pub due_at: i64,
    /// Pending and due now (it goes as soon as limits allow).
    pub due: bool,
    pub why: String,
}

/// The outbox for `triaged queue`: the sending limits, then each unfinished row and why it
/// waits (only rows due now with `due_only`); as a table, or JSON with `json`.
pub fn queue_report(
    config: &crate::config::Config,
    clock: &Clock,
    due_only: bool,
    json: bool,
) -> Result<String> {
    use std::fmt::Write;
    let store = Store::open(&config.store.path)?;
    let now_ms = clock.now_ms();
    let now = now_ms / 1000;
    let paused = store
        .get_kv(PAUSED_UNTIL)?
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|t| *t > now_ms);
    let limited = store.rate_limited_until(&config.smtp.rate_limits, now_ms, 0)?;
    // A held row's due time is when it was queued, right after its email was read.
    let oldest = now - config.ack.max_age.as_secs() as i64;
    let lines: Vec<QueueLine> = store
        .queue()?
        .into_iter()
        .map(|r| {
            let due = r.state == "pending" && r.due_at <= now;
            let why = waiting_because(&r, now_ms, paused, limited, oldest);
            QueueLine {
                id: r.id,
                kind: r.kind.as_str().to_string(),
                ticket: r.ticket,
                priority: r.priority.as_str().to_string(),
                state: r.state,
                attempts: r.attempts,
                recipient: r.recipient,
                due_at: r.due_at,
                due,
                why,
            }
        })
        .filter(|l| !due_only || l.due)
        .collect();
    if json {
        let mut out = crate::wording::json(serde_json::to_string_pretty(&lines)?);
        out.push('\n');
        return Ok(out);
    }
    let mut out = String::new();
    for l in &config.smtp.rate_limits {
        let used = store.sent_within(now_ms, l.per.as_millis() as i64)?;
        let _ = writeln!(
            out,
            "rate limit: {used} of {} sent in the last {}",
            l.max,
            wording::within(l.per).trim_start_matches("within ")
        );
    }
    if let Some(until) = paused {
        let _ = writeln!(
            out,
            "sending paused by provider pushback for {} s more",
            (until - now_ms + 999) / 1000
        );
    }
    let _ = writeln!(
        out,
        "{:>5}  {:<7} {:<8} {:<7} {:<10} {:>3}  {:<32} waiting because",
        "id", "kind", "ticket", "prio", "state", "try", "recipient"
    );
    for l in &lines {
        let _ = writeln!(
            out,
            "{:>5}  {:<7} {:<8} {:<7} {:<10} {:>3}  {:<32} {}",
            l.id,
            l.kind,
            l.ticket,
            l.priority,
            l.state,
            l.attempts,
            // The address is the customer's, the reason may quote a server: neither reaches
            // the terminal raw.
            crate::wording::one_line(&l.recipient),
            crate::wording::one_line(&l.why)
        );
    }
    if lines.is_empty() {
        out.push_str(if due_only {
            "(nothing is due now)\n"
        } else {
            "(the outbox is empty)\n"
        });
    }
    Ok(out)
}

/// Why a row of `triaged queue` waits, in words: `paused` (provider pushback) and `limited`
/// (rate limit) until when in milliseconds, `oldest` the due time before which a held row is
/// too old to send.
fn waiting_because(
    r: &crate::store::QueueRow,
    now_ms: i64,
    paused: Option<i64>,
    limited: Option<i64>,
    oldest: i64,
) -> String {
    let now = now_ms / 1000;
    match r.state.as_str() {
        "pending" if paused.is_some() => "provider pushback: sending paused".to_string(),
        "pending" if r.due_at > now && r.attempts > 0 => {
            format!(
                "retry in {} after: {}",
                wording::span(r.due_at - now),
                r.last_error
            )
        }
        "pending" if r.due_at == i64::MAX => "never: no business hours ahead".to_string(),
        "pending" if r.due_at > now && !r.last_error.is_empty() => {
            format!("{} (in {})", r.last_error, wording::span(r.due_at - now))
        }
        "pending" if r.due_at > now => format!(
            "scheduled {} (in {})",
            crate::wording::when(r.due_at),
            wording::span(r.due_at - now)
        ),
        "pending" if limited.is_some() => format!(
            "rate limit: next send in {}",
            wording::span((limited.unwrap_or(now_ms) - now_ms + 999) / 1000)
        ),
        "pending" => "due now".to_string(),
        "sending" => "being sent".to_string(),
        "uncertain" => "interrupted mid-send by a crash; not resent".to_string(),
        "held" if r.due_at < oldest => format!("{}; too old to send now", r.last_error),
        "held" => format!(
            "{}; `triaged queue release {}` or `drop {}`",
            r.last_error, r.id, r.id
        ),
        _ => format!("failed: {}", r.last_error),
    }
}

/// `triaged queue cancel ID`: cancel one pending row, kept with who cancelled it.
pub fn cancel_row(config: &crate::config::Config, clock: &Clock, id: i64) -> Result<String> {
    let mut store = Store::open(&config.store.path)?;
    let who = format!(
        "cli ({})",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    match store.cancel_outbox_row(id, &who, clock.now())?.as_deref() {
        None => anyhow::bail!("No outbox row {id}: see `triaged queue`"),
        Some("pending") => Ok(format!("{id}: cancelled\n")),
        Some(state) => anyhow::bail!("Outbox row {id} is {state}, not pending: nothing to cancel"),
    }
}

/// `triaged queue release|drop [ID | --all]`: send held acknowledgements after all, or drop
/// them; each decision kept on its ticket with who made it.
pub fn decide_held(
    config: &crate::config::Config,
    clock: &Clock,
    id: Option<i64>,
    release: bool,
) -> Result<String> {
    let mut store = Store::open(&config.store.path)?;
    let who = format!(
        "cli ({})",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    let now = clock.now();
    let oldest = now - config.ack.max_age.as_secs() as i64;
    let (released, dropped) = store.decide_held(id, release, &who, oldest, now)?;
    if released + dropped == 0 {
        match id {
            Some(id) => anyhow::bail!("Outbox row {id} is not held: see `triaged queue`"),
            None => return Ok("No acknowledgement is held.\n".into()),
        }
    }
    Ok(match (release, dropped) {
        (true, 0) => format!("{released} released: they go out as the rate limits allow\n"),
        (true, _) => format!(
            "{released} released; {dropped} not sent: their email is older than [ack] max_age\n"
        ),
        (false, _) => format!("{dropped} dropped: never sent\n"),
    })
}

/// Text from customer input for a header or template: no control characters.
fn clean(s: &str) -> String {
    s.replace(|c: char| c.is_control(), " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_read_through_by_a_later_pass_or_while_idle() {
        let marks = SyncMarks::default();
        marks.watch("INBOX");
        marks.watch("Sent");
        assert!(!marks.all_since(100), "nothing read yet");
        marks.read_through("INBOX", 90);
        marks.read_through("Sent", 120);
        assert!(!marks.all_since(100), "INBOX's pass began before");
        marks.idle("INBOX", true);
        assert!(
            marks.all_since(100),
            "INBOX waits in IDLE with nothing unread"
        );
        marks.idle("INBOX", false);
        assert!(!marks.all_since(100), "woken: new mail may be unread");
        marks.read_through("INBOX", 101);
        assert!(marks.all_since(100));
        assert!(!marks.all_since(121));
    }

    #[test]
    fn reply_times_read_naturally() {
        let cases = [
            (3600, "within 1 hour"),
            (7200, "within 2 hours"),
            (86_400, "within 1 day"),
            (259_200, "within 3 days"),
            (90, "within 2 minutes"),
            (5400, "within 90 minutes"),
        ];
        for (secs, want) in cases {
            assert_eq!(wording::within(Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn ids_and_names_cannot_inject() {
        let t = headers::threading("abc@x\r\nBcc: evil@y", "<abc@x\r\nBcc: evil@y>");
        assert_eq!(t.in_reply_to, None);
        assert!(
            t.references
                .iter()
                .all(|r| headers::msg_id_problem(r).is_none() && !r.contains(char::is_whitespace)),
            "{:?}",
            t.references
        );
        assert_eq!(clean("Ada\r\nBcc: x"), "Ada Bcc: x");
    }
}
