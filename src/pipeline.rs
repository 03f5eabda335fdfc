//! One email through the stages: parse -> guard -> score -> store (one transaction).

use anyhow::Result;

use crate::clock::Clock;
use crate::guard::{self, GuardConfig};
use crate::parse::Email;
use crate::parse::{self, ParseLimits};
use crate::score::{self, RuleSet, Thresholds};
use crate::score::{History, Verdict};
use crate::store::{Content, Location, Policy, Recorded, Store};
use crate::tickets;

/// A message as fetched from a folder. `raw` is `None` when it was too large to download.
pub struct Fetched<'a> {
    pub folder: &'a str,
    pub uidvalidity: u32,
    pub uid: u32,
    pub raw: Option<&'a [u8]>,
    pub size: usize,
    /// IMAP INTERNALDATE (arrival), seconds since the epoch.
    pub arrived_at: Option<i64>,
}

impl Fetched<'_> {
    fn location(&self) -> Location<'_> {
        Location {
            folder: self.folder,
            uidvalidity: self.uidvalidity,
            uid: self.uid,
        }
    }
}

/// The decision-making stages and the store they write to.
pub struct Pipeline {
    pub rules: RuleSet,
    pub thresholds: Thresholds,
    pub guard: GuardConfig,
    pub limits: ParseLimits,
    pub policy: Policy,
    pub clock: Clock,
    pub store: Store,
    /// Everything in this folder was written by staff (the support account's Sent folder).
    pub staff_folder: bool,
    /// Where a reloaded configuration arrives (none: fixed for the pipeline's life).
    pub live: Option<crate::reload::Live>,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Longest the costly stages may take for one email ([`Pipeline::process_bounded`]).
    pub deadline: std::time::Duration,
    /// Teams and clarifying questions (`[[team]]`, `[[ask]]`).
    pub routing: crate::route::Routing,
    /// Crashes counted per UID of the batch being triaged ([`Pipeline::begin_batch`]).
    starts: std::collections::BTreeMap<u32, u32>,
}

impl Pipeline {
    /// The stages as `config` sets them (rules, thresholds, guard, acknowledgement policy,
    /// size limit); `store` and `clock` are the pipeline's own.
    pub fn new(
        config: &crate::config::Config,
        clock: Clock,
        store: Store,
        staff_folder: bool,
    ) -> Pipeline {
        Pipeline {
            rules: config.rules.clone(),
            thresholds: config.thresholds,
            guard: config.guard_config(),
            limits: ParseLimits {
                max_size: config.mailbox().max_message_size,
            },
            policy: Policy::from_config(config),
            routing: config.routing.clone(),
            clock,
            store,
            staff_folder,
            live: None,
            metrics: crate::metrics::Metrics::default(),
            deadline: crate::config::DEFAULT_TRIAGE_TIMEOUT,
            starts: Default::default(),
        }
    }

    /// Take up a reloaded configuration, if one arrived since the last call. Called between
    /// emails, never during one.
    pub fn refresh(&mut self) {
        let Some(live) = &mut self.live else { return };
        if !live.has_changed().unwrap_or(false) {
            return;
        }
        let config = live.borrow_and_update().clone();
        self.rules = config.rules.clone();
        self.routing = config.routing.clone();
        self.thresholds = config.thresholds;
        self.guard = config.guard_config();
        self.policy = Policy::from_config(&config);
    }

    /// Triage one message and record it, with what it causes, in one transaction. The costly
    /// stages run here, on the caller's thread, without a deadline (tools and benches); the
    /// daemon uses [`Pipeline::process_bounded`].
    pub fn process(&mut self, m: &Fetched<'_>) -> Result<Recorded> {
        let now = self.clock.now();
        let at = m.location();
        if let Some(out) = self.begin(m, &at, now)? {
            return Ok(out);
        }
        let read = read(m.raw, m.size, &self.stages());
        let result = match read {
            Err(skip) => self.skip(m, &at, skip.code(), &skip.to_string(), false, now),
            Ok(read) => {
                let history = self.history(&read.email, now)?;
                let verdict =
                    score::score(&read.email, &self.rules, &self.thresholds, &history, now);
                self.finish(m, &at, read, verdict, now)
            }
        };
        self.end_on_error(&at, result)
    }

    /// [`Pipeline::process`] with the costly stages (parse and guard, then scoring of a long
    /// text) on the blocking pool, within `deadline` together: past it the email is recorded as skipped
    /// (`too_costly`) and flagged for staff, and the watcher goes on with the next one. The
    /// stage left running is not stopped (threads cannot be), but every stage has a budget of
    /// its own, so it ends.
    pub async fn process_bounded(&mut self, m: &Fetched<'_>) -> Result<Recorded> {
        let now = self.clock.now();
        let at = m.location();
        if let Some(out) = self.begin(m, &at, now)? {
            return Ok(out);
        }
        let started = tokio::time::Instant::now();
        let until = started + self.deadline;
        let stages = self.stages();
        let raw = m.raw.map(<[u8]>::to_vec);
        let size = m.size;
        let read = tokio::task::spawn_blocking(move || read(raw.as_deref(), size, &stages));
        let read = match tokio::time::timeout_at(until, read).await {
            Ok(Ok(read)) => read,
            Ok(Err(panic)) => {
                let detail = format!("parsing failed: {panic}");
                let r = self.skip(m, &at, "triage_failed", &detail, true, now);
                return self.end_on_error(&at, r);
            }
            Err(_) => {
                let r = self.too_costly(m, &at, "parsing", now);
                return self.end_on_error(&at, r);
            }
        };
        let read = match read {
            Ok(read) => read,
            Err(skip) => {
                let r = self.skip(m, &at, skip.code(), &skip.to_string(), false, now);
                return self.end_on_error(&at, r);
            }
        };
        let history = match self.history(&read.email, now) {
            Ok(h) => h,
            Err(e) => return self.end_on_error(&at, Err(e)),
        };
        // Scoring is ours and budgeted (at most 256 KB of text, linear scans): a short text
        // is scored here, which saves a second hand-over per email (a quarter of the backlog
        // rate), and only a long one goes to the pool under what is left of the deadline.
        if read.email.body_text.len() + read.email.subject.len() <= INLINE_SCORE_BYTES {
            let verdict = score::score(&read.email, &self.rules, &self.thresholds, &history, now);
            let result = self.finish(m, &at, read, verdict, now);
            return self.end_on_error(&at, result);
        }
        let (rules, thresholds) = (self.rules.clone(), self.thresholds);
        let scored = tokio::task::spawn_blocking(move || {
            let verdict = score::score(&read.email, &rules, &thresholds, &history, now);
            (read, verdict)
        });
        let result = match tokio::time::timeout_at(until, scored).await {
            Ok(Ok((read, verdict))) => self.finish(m, &at, read, verdict, now),
            Ok(Err(panic)) => {
                let detail = format!("scoring failed: {panic}");
                self.skip(m, &at, "triage_failed", &detail, true, now)
            }
            Err(_) => self.too_costly(m, &at, "scoring", now),
        };
        self.end_on_error(&at, result)
    }

    /// Note the triage start of a fetch batch of `folder` at once (see
    /// [`Store::begin_triage_batch`]); each email of it then costs no statement of its own.
    pub fn begin_batch(&mut self, folder: &str, uidvalidity: u32, uids: &[u32]) -> Result<()> {
        let now = self.clock.now();
        self.starts = self
            .store
            .begin_triage_batch(folder, uidvalidity, uids, run_id(), now)?;
        Ok(())
    }

    /// An email of the batch is gone from the server before it was fetched: its start is
    /// no sign of anything.
    pub fn gone(&mut self, folder: &str, uidvalidity: u32, uid: u32) {
        self.starts.remove(&uid);
        let at = Location {
            folder,
            uidvalidity,
            uid,
        };
        if let Err(e) = self.store.forget_triage_start(&at) {
            tracing::warn!("{e:#}");
        }
    }

    /// Forget this run's unrecorded triage starts: the watcher stops cleanly, so an email it
    /// was in the middle of is no poison message (it is triaged at the next start).
    pub fn stopped(&self) {
        if let Err(e) = self.store.forget_triage_starts(run_id()) {
            tracing::warn!("{e:#}");
        }
    }

    fn stages(&self) -> Stages {
        Stages {
            limits: self.limits,
            guard: self.guard.clone(),
            domain: self.policy.domain.clone(),
            staff_folder: self.staff_folder,
        }
    }

    /// Note that triage starts; when earlier runs died on this email, record it as skipped
    /// instead (a poison message is never fetched and triaged again and again).
    fn begin(&mut self, m: &Fetched<'_>, at: &Location<'_>, now: i64) -> Result<Option<Recorded>> {
        let crashes = match self.starts.remove(&at.uid) {
            Some(n) => n,
            None => self.store.begin_triage(at, run_id(), now)?,
        };
        if crashes < MAX_CRASHES {
            return Ok(None);
        }
        let detail = format!(
            "the daemon stopped {crashes} times while triaging this email; it is left for staff"
        );
        self.skip(m, at, "crashed_during_triage", &detail, true, now)
            .map(Some)
    }

    /// After an error (the store, not the email), the start is no sign of a poison message.
    fn end_on_error(&self, at: &Location<'_>, result: Result<Recorded>) -> Result<Recorded> {
        if result.is_err() {
            let _ = self.store.forget_triage_start(at);
        }
        result
    }

    fn history(&self, email: &Email, now: i64) -> Result<History> {
        self.store
            .history(email, now, self.rules.history_window_secs())
    }

    fn too_costly(
        &mut self,
        m: &Fetched<'_>,
        at: &Location<'_>,
        stage: &str,
        now: i64,
    ) -> Result<Recorded> {
        let detail = format!(
            "{stage} took longer than the {} s budget per email; left for staff",
            self.deadline.as_secs_f32()
        );
        self.skip(m, at, "too_costly", &detail, true, now)
    }

    /// Record the email as skipped with its reason; `flag` asks staff to look at it.
    fn skip(
        &mut self,
        m: &Fetched<'_>,
        at: &Location<'_>,
        reason: &'static str,
        detail: &str,
        flag: bool,
        now: i64,
    ) -> Result<Recorded> {
        let content = Content::Skipped {
            reason,
            detail: detail.to_string(),
            size: m.size,
            flag,
        };
        let received_at = m.arrived_at.unwrap_or(now);
        let out = self
            .store
            .record(at, &content, received_at, &self.policy, now)?;
        if matches!(out, Recorded::New { .. }) {
            self.metrics.email_seen(m.folder);
            self.metrics.email_skipped(reason);
        }
        tracing::warn!(
            folder = m.folder,
            uid = m.uid,
            action = "skipped",
            reason,
            "{detail}"
        );
        Ok(out)
    }

    /// A customer's email: its team and why, and the questions its acknowledgement asks
    /// (`[[ask]]` ids), as [`crate::route::Routing::decide`] makes them (`triaged explain`
    /// shows the same).
    fn route(
        &self,
        email: &crate::parse::Email,
        verdict: &Verdict,
    ) -> (Option<crate::route::Routed>, Vec<String>) {
        let d = self
            .routing
            .decide(verdict, &self.rules, &email.subject, &email.body_text);
        (d.routed, d.asks.into_iter().map(|a| a.id.clone()).collect())
    }

    /// Record a triaged email with what it causes.
    fn finish(
        &mut self,
        m: &Fetched<'_>,
        at: &Location<'_>,
        read: Read,
        verdict: Verdict,
        now: i64,
    ) -> Result<Recorded> {
        let Read {
            email,
            guard,
            role,
            bounced,
        } = read;
        for note in &email.budget {
            tracing::info!(folder = m.folder, uid = m.uid, "Budget: {note}");
        }
        // Only a customer's email alerts staff, and only when alerts are configured.
        let alert = match (&self.policy.alerts, role) {
            (Some(a), tickets::Role::Customer) => {
                crate::alerts::alert_reasons(&verdict, &self.rules, &a.intents)
            }
            _ => Vec::new(),
        };
        let (route, asks) = match role {
            tickets::Role::Customer => self.route(&email, &verdict),
            _ => (None, Vec::new()),
        };
        let content = Content::Triaged {
            email: &email,
            verdict: &verdict,
            guard,
            role,
            bounced: &bounced,
            alert: &alert,
            route: route.as_ref(),
            asks: &asks,
        };
        let received_at = m.arrived_at.unwrap_or(now);
        let out = self
            .store
            .record(at, &content, received_at, &self.policy, now)?;
        if matches!(out, Recorded::New { .. }) {
            self.metrics.email_seen(m.folder);
            self.metrics.email_triaged(verdict.priority.as_str());
            for hit in &verdict.hits {
                self.metrics.rule_hit(&hit.rule);
            }
        }
        match &out {
            Recorded::New { ticket, ack, .. } => tracing::info!(
                folder = m.folder,
                uid = m.uid,
                priority = verdict.priority.as_str(),
                tone = %verdict.tones.join(","),
                intent = %verdict.intents.join(","),
                score = verdict.score,
                ticket = ticket.as_deref().unwrap_or("-"),
                action = if ack == "queued" { "ack queued" } else { "no ack" },
                reason = %ack,
                "Triaged"
            ),
            Recorded::Relocated { row } => {
                tracing::info!(
                    folder = m.folder,
                    uid = m.uid,
                    row,
                    action = "relocated",
                    "Already recorded; location updated"
                )
            }
            Recorded::AlreadyDone { row } => {
                tracing::debug!(folder = m.folder, uid = m.uid, row, "Already processed")
            }
        }
        Ok(out)
    }
}

/// Text up to this many bytes is scored on the watcher's own worker (it takes well under a
/// millisecond); longer text is scored on the blocking pool, within the deadline.
const INLINE_SCORE_BYTES: usize = 32 * 1024;

/// A run whose start was noted this many times by earlier runs that then died is skipped.
/// One crash is not enough: a power cut or an OOM kill caused by another process can hit any
/// email once; the same email under two crashes in a row is the poison message.
pub const MAX_CRASHES: u32 = 2;

/// This process's run, as triage starts record it: unique per start of the daemon.
fn run_id() -> &'static str {
    static RUN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    });
    &RUN
}

/// What the parse-and-guard stage needs, owned, so it can run on another thread.
struct Stages {
    limits: ParseLimits,
    guard: GuardConfig,
    domain: String,
    staff_folder: bool,
}

/// What the parse-and-guard stage makes of an email.
struct Read {
    email: Email,
    guard: Result<(), guard::Refusal>,
    role: tickets::Role,
    bounced: Vec<String>,
}

/// Parse, guard, role, and the bounce reports in it: everything before scoring that costs.
fn read(raw: Option<&[u8]>, size: usize, st: &Stages) -> Result<Read, parse::Skip> {
    let email = match raw {
        Some(raw) => parse::parse(raw, &st.limits)?,
        None => {
            return Err(parse::Skip::TooLarge {
                size,
                limit: st.limits.max_size,
            });
        }
    };
    let guard = guard::check(&email, &st.guard);
    let role = tickets::role_of(guard, st.staff_folder);
    // Robots include bounces; `bounced_ids` keeps only reports of failed delivery.
    let bounced = match (role, raw) {
        (tickets::Role::Robot, Some(raw)) => tickets::bounced_ids(&email, raw, &st.domain),
        _ => Vec::new(),
    };
    Ok(Read {
        email,
        guard,
        role,
        bounced,
    })
}
