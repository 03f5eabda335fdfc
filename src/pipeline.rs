//! One email through the stages: parse -> guard -> score -> store (one transaction).

use anyhow::Result;

use crate::clock::Clock;
use crate::guard::{self, GuardConfig};
use crate::parse::{self, ParseLimits};
use crate::score::{self, RuleSet, Thresholds};
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
                max_size: config.mailbox.max_message_size,
            },
            policy: Policy::from_config(config),
            clock,
            store,
            staff_folder,
            live: None,
            metrics: crate::metrics::Metrics::default(),
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
        self.thresholds = config.thresholds;
        self.guard = config.guard_config();
        self.policy = Policy::from_config(&config);
    }

    /// Triage one message and record it, with what it causes, in one transaction.
    pub fn process(&mut self, m: &Fetched<'_>) -> Result<Recorded> {
        let now = self.clock.now();
        let at = Location {
            folder: m.folder,
            uidvalidity: m.uidvalidity,
            uid: m.uid,
        };
        let received_at = m.arrived_at.unwrap_or(now);
        let parsed = match m.raw {
            Some(raw) => parse::parse(raw, &self.limits),
            None => Err(parse::Skip::TooLarge {
                size: m.size,
                limit: self.limits.max_size,
            }),
        };
        let email = match parsed {
            Ok(email) => email,
            Err(skip) => {
                let content = Content::Skipped {
                    reason: skip.code(),
                    detail: skip.to_string(),
                    size: m.size,
                };
                let out = self
                    .store
                    .record(&at, &content, received_at, &self.policy, now)?;
                if matches!(out, Recorded::New { .. }) {
                    self.metrics.email_seen(m.folder);
                    self.metrics.email_skipped(skip.code());
                }
                tracing::warn!(
                    folder = m.folder,
                    uid = m.uid,
                    action = "skipped",
                    reason = skip.code(),
                    "{skip}"
                );
                return Ok(out);
            }
        };
        let guard = guard::check(&email, &self.guard);
        let history = self
            .store
            .history(&email, now, self.rules.history_window_secs())?;
        let verdict = score::score(&email, &self.rules, &self.thresholds, &history, now);
        let role = tickets::role_of(guard, self.staff_folder);
        // Robots include bounces; `bounced_ids` keeps only reports of failed delivery.
        let bounced = match (role, m.raw) {
            (tickets::Role::Robot, Some(raw)) => {
                tickets::bounced_ids(&email, raw, &self.policy.domain)
            }
            _ => Vec::new(),
        };
        // Only a customer's email alerts staff, and only when alerts are configured.
        let alert = match (&self.policy.alerts, role) {
            (Some(a), tickets::Role::Customer) => {
                crate::alerts::alert_reasons(&verdict, &self.rules, &a.intents)
            }
            _ => Vec::new(),
        };
        let content = Content::Triaged {
            email: &email,
            verdict: &verdict,
            guard,
            role,
            bounced: &bounced,
            alert: &alert,
        };
        let out = self
            .store
            .record(&at, &content, received_at, &self.policy, now)?;
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
