//! The per-email record: one email and everything it causes — its row and rule hits, the
//! ticket it opens, joins or moves, the follow-ups that change queues or cancels, the alert and
//! the acknowledgement it raises — in one transaction with the folder's checkpoint.
//!
//! [`record_in`] is a list of steps; each reads what a pure function of [`crate::tickets`]
//! needs ([`tickets::email_effect`], [`tickets::ack_decision`], [`tickets::unanswered_auto`])
//! and writes what it returns.

use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::followups::{Because, cancel_followup, schedule_followups};
use super::outbox::witness_in;
use super::tickets::{Applied, apply_command, log_opened, note_event, ticket_event, write_ticket};
use super::{OutboxKind, Store, notices};
use crate::config::{Config, FollowupConfig};
use crate::guard::Refusal;
use crate::parse::Email;
use crate::route::Routed;
use crate::score::{History, Verdict};
use crate::sla::SlaConfig;
use crate::tickets::{
    self, AckDecision, AckFacts, Command, EmailEvent, EmailFacts, Followup, Reroute, Role, State,
    TicketEffect,
};

/// Where an email was found.
#[derive(Debug, Clone)]
pub struct Location<'a> {
    pub folder: &'a str,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// What arrived at a location.
pub enum Content<'a> {
    /// Parsed, checked and scored.
    Triaged {
        email: &'a Email,
        verdict: &'a Verdict,
        guard: Result<(), Refusal>,
        /// Who wrote it, for the ticket it joins.
        role: Role,
        /// Our own Message-IDs this failed-delivery report returns (empty for anything else).
        bounced: &'a [String],
        /// Why this email raises an instant alert to staff (empty: it does not).
        alert: &'a [String],
        /// The team a customer's email is routed to, and why (`None`: no team applies).
        route: Option<&'a Routed>,
        /// The clarifying questions (`[[ask]]` ids) its acknowledgement asks.
        asks: &'a [String],
    },
    /// Could not be triaged (too large, unparseable, over its budget).
    Skipped {
        reason: &'static str,
        detail: String,
        size: usize,
        /// Flag it in the mailbox (`\\Flagged`) so staff read what triage could not.
        flag: bool,
    },
}

/// The policy values the store applies: acknowledgements and follow-ups.
#[derive(Debug, Clone)]
pub struct Policy {
    pub enabled: bool,
    pub max_age: Duration,
    pub per_sender_limit: u32,
    pub per_sender_window: Duration,
    pub circuit_breaker_per_minute: u32,
    pub loop_burst: u32,
    pub loop_window: Duration,
    /// The automatic-loop rule ([`tickets::unanswered_auto`]): at this many rounds no
    /// acknowledgement or follow-up (0: off); an answer within `auto_answer_within` is automatic.
    pub max_unanswered_auto: u32,
    pub auto_answer_within: Duration,
    /// Domain of this daemon's own Message-IDs.
    pub domain: String,
    /// Business time and response targets (when holding notes fall due).
    pub sla: SlaConfig,
    pub followups: FollowupConfig,
    /// Instant alerts (`None`: off).
    pub alerts: Option<crate::alerts::AlertConfig>,
    /// The configured teams (`[[team]]`) by name, each with the staff its instant alerts go
    /// to (empty: `[alerts] to`): `#team NAME` must name one.
    pub teams: std::collections::BTreeMap<String, Vec<String>>,
    /// Keep a customer email's own words (`messages.text`, `[store] keep_text`).
    pub keep_text: bool,
}

impl Policy {
    pub fn from_config(config: &Config) -> Policy {
        Policy {
            enabled: config.ack.enabled,
            max_age: config.ack.max_age,
            per_sender_limit: config.ack.per_sender_limit,
            per_sender_window: config.ack.per_sender_window,
            circuit_breaker_per_minute: config.ack.circuit_breaker_per_minute,
            loop_burst: config.ack.loop_burst,
            loop_window: config.ack.loop_window,
            max_unanswered_auto: config.ack.max_unanswered_auto,
            auto_answer_within: config.ack.auto_answer_within,
            domain: config.support.domain.clone(),
            sla: config.sla.clone(),
            followups: config.followups.clone(),
            alerts: config.alerts.clone(),
            keep_text: config.store.keep_text,
            teams: config
                .routing
                .teams
                .iter()
                .map(|t| (t.name.clone(), t.alert_to.clone()))
                .collect(),
        }
    }
}

/// What [`Store::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new message row.
    New {
        row: i64,
        ticket: Option<String>,
        ack: String,
        outbox: Option<i64>,
    },
    /// The same email was already recorded (e.g. after a UIDVALIDITY change); its location was
    /// updated and nothing else happened.
    Relocated { row: i64 },
    /// This exact location was already processed.
    AlreadyDone { row: i64 },
}

impl Store {
    /// Record one email and everything it causes, and move the folder checkpoint past it, in one
    /// transaction.
    pub fn record(
        &mut self,
        at: &Location<'_>,
        content: &Content<'_>,
        received_at: i64,
        policy: &Policy,
        now: i64,
    ) -> Result<Recorded> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("Starting transaction")?;
        let outcome = record_in(&tx, at, content, received_at, policy, now)?;
        tx.execute(
            "DELETE FROM triage_starts WHERE folder = ?1 AND uidvalidity = ?2 AND uid = ?3",
            params![at.folder, at.uidvalidity, at.uid],
        )
        .context("Clearing the triage start")?;
        tx.execute(
            "INSERT INTO folder_state (folder, uidvalidity, last_uid, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(folder) DO UPDATE SET last_uid = max(last_uid, ?3), updated_at = ?4
             WHERE uidvalidity = ?2",
            params![at.folder, at.uidvalidity, at.uid, now],
        )
        .context("Moving checkpoint")?;
        tx.commit()
            .with_context(|| format!("Committing UID {} of {}", at.uid, at.folder))?;
        Ok(outcome)
    }

    /// What the scoring history signals need about the sender of `email`: when they wrote
    /// before (within `window_secs`; 0 skips the lookup) and whether this replies to a ticket
    /// staff already answered.
    pub fn history(&self, email: &Email, now: i64, window_secs: i64) -> Result<History> {
        let (sender, _) = sender_of(email);
        let mut earlier_contacts = Vec::new();
        if window_secs > 0 && !sender.is_empty() {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT received_at FROM messages
                     WHERE sender = ?1 AND status = 'triaged' AND received_at >= ?2 AND received_at <= ?3
                     ORDER BY received_at",
                )
                .context("Preparing contact history")?;
            earlier_contacts = stmt
                .query_map(params![sender, now - window_secs, now], |r| r.get(0))
                .context("Reading contact history")?
                .collect::<rusqlite::Result<_>>()
                .context("Reading contact history")?;
        }
        let reply_to_answered = match find_ticket(&self.conn, email, Some(&sender))? {
            Some((id, _)) => {
                let state: State = self
                    .conn
                    .query_row("SELECT state FROM tickets WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .context("Reading ticket state")?;
                state == State::Answered
            }
            None => false,
        };
        Ok(History {
            earlier_contacts,
            reply_to_answered,
        })
    }
}

/// A triaged email and who wrote it: what the steps of [`record_in`] read.
struct Mail<'a> {
    at: &'a Location<'a>,
    email: &'a Email,
    verdict: &'a Verdict,
    guard: Result<(), Refusal>,
    role: Role,
    /// Our own Message-IDs this failed-delivery report returns.
    bounced: &'a [String],
    /// Why it raises an instant alert to staff (empty: it does not).
    alert: &'a [String],
    route: Option<&'a Routed>,
    asks: &'a [String],
    /// The reply address (lower-cased) and a name to greet.
    sender: String,
    sender_name: String,
    received_at: i64,
}

/// The tickets an email belongs to.
struct Thread {
    /// The ticket it joins: by thread, by tag, or (a robot's) the one a bounce returns.
    joined: Option<(i64, String)>,
    /// The tickets whose emails this failed-delivery report returns.
    bounced: Vec<(i64, String)>,
}

/// The acknowledgement decision and the loop evidence behind it.
struct AckCall {
    decision: AckDecision,
    /// The email's loop pattern ([`tickets::loop_pattern`]), kept on its acknowledgement.
    pattern: Option<String>,
    /// Acknowledgements of that pattern within the loop window.
    same_pattern: u32,
    /// Acknowledgements of the last minute (counted only under a circuit breaker).
    last_minute: u32,
    /// It keeps an automatic loop going ([`tickets::auto_loop`]).
    auto_loop: bool,
}

/// Record one email in `tx`.
fn record_in(
    tx: &rusqlite::Transaction<'_>,
    at: &Location<'_>,
    content: &Content<'_>,
    received_at: i64,
    policy: &Policy,
    now: i64,
) -> Result<Recorded> {
    // Re-processing the same location (should not happen: the checkpoint moves in this same
    // transaction) is a no-op.
    if let Some(row) = recorded_at(tx, at)? {
        return Ok(Recorded::AlreadyDone { row });
    }
    match content {
        Content::Skipped {
            reason,
            detail,
            size,
            flag,
        } => record_skipped(tx, at, reason, detail, *size, *flag, received_at, now).map(skipped),
        Content::Triaged {
            email,
            verdict,
            guard,
            role,
            bounced,
            alert,
            route,
            asks,
        } => {
            let (sender, sender_name) = sender_of(email);
            let mail = Mail {
                at,
                email,
                verdict,
                guard: *guard,
                role: *role,
                bounced,
                alert,
                route: *route,
                asks,
                sender,
                sender_name,
                received_at,
            };
            match seen_before(tx, &mail, now)? {
                Some(done) => Ok(done),
                None => record_triaged(tx, &mail, policy, now),
            }
        }
    }
}

/// Record a triaged email seen for the first time: each step reads what the core needs and
/// writes what it decides.
fn record_triaged(
    tx: &rusqlite::Transaction<'_>,
    mail: &Mail<'_>,
    policy: &Policy,
    now: i64,
) -> Result<Recorded> {
    // Our own email come back: the copy that proves it went out.
    if mail.guard == Err(Refusal::OwnLoop) {
        witness_in(tx, &mail.email.message_id, now)?;
    }
    let thread = thread_of(tx, mail)?;
    let effect = tickets::email_effect(&EmailFacts {
        role: mail.role,
        joined: match &thread.joined {
            Some((id, _)) => Some(super::tickets::joined(tx, *id)?),
            None => None,
        },
        may_open: mail.guard.is_ok(),
        priority: mail.verdict.priority,
        body: &mail.email.body_text,
        to_customer: match (&thread.joined, mail.role) {
            (Some((id, _)), Role::Staff) => to_customer(tx, mail.email, *id)?,
            _ => false,
        },
    });
    let ack = decide_ack(tx, mail, thread.joined.as_ref(), policy, now)?;
    let (customer, subject) = (&mail.sender, &mail.email.subject);
    let joins = thread.joined.as_ref();
    let ticket = write_ticket(tx, effect.write, joins, customer, subject, now)?;
    let ticket_id = ticket.as_ref().map(|t| t.0);
    let row = insert_message(tx, mail, ticket_id, ack.decision, policy.keep_text, now)?;
    if let Some(t) = &ticket {
        move_ticket(tx, mail, t, row, &effect, &ack, policy, now)?;
        // After `opened` in the history; before the alert, which goes to the team's staff.
        route_ticket(tx, mail, t.0, row, now)?;
        alert_staff(tx, mail, t, policy, now)?;
    }
    note_bounces(tx, mail, &thread.bounced, row, now)?;
    insert_hits(tx, row, mail.verdict)?;
    let outbox = match &ticket {
        Some(t) => queue_ack(tx, mail, t, row, &ack, policy, now)?,
        None => None,
    };
    Ok(Recorded::New {
        row,
        ticket: ticket.map(|t| t.1),
        ack: ack.decision.code().to_string(),
        outbox,
    })
}

/// Whether `email` is addressed (To or Cc) to the customer of ticket `ticket_id`.
fn to_customer(tx: &Connection, email: &Email, ticket_id: i64) -> Result<bool> {
    let customer: String = tx
        .prepare_cached("SELECT customer FROM tickets WHERE id = ?1")?
        .query_row([ticket_id], |r| r.get(0))
        .context("Reading the ticket's customer")?;
    Ok(!customer.is_empty()
        && email
            .to
            .iter()
            .chain(&email.cc)
            .any(|a| a.email.eq_ignore_ascii_case(&customer)))
}

/// A customer's email routes a ticket that has no team yet (a new one, or one opened before
/// teams were configured); a ticket's team is never changed by a later email, only by staff
/// (`#team`, `triaged ticket route`).
fn route_ticket(
    tx: &Connection,
    mail: &Mail<'_>,
    ticket_id: i64,
    row: i64,
    now: i64,
) -> Result<()> {
    let Some(route) = mail.route.filter(|_| mail.role == Role::Customer) else {
        return Ok(());
    };
    let changed = tx
        .prepare_cached(
            "UPDATE tickets SET team = ?2, route_reason = ?3 WHERE id = ?1 AND team = ''",
        )?
        .execute(params![ticket_id, route.team, route.reason])
        .context("Routing the ticket")?;
    if changed > 0 {
        note_event(
            tx,
            ticket_id,
            "routed",
            now,
            Some(row),
            &format!("{}: {}", route.team, route.reason),
        )?;
    }
    Ok(())
}

/// What [`record_in`] says of an email recorded as skipped.
fn skipped(row: i64) -> Recorded {
    Recorded::New {
        row,
        ticket: None,
        ack: "skipped".into(),
        outbox: None,
    }
}

/// The message recorded at this location, if one was.
fn recorded_at(tx: &Connection, at: &Location<'_>) -> Result<Option<i64>> {
    tx.query_row(
        "SELECT id FROM messages WHERE folder = ?1 AND uidvalidity = ?2 AND uid = ?3",
        params![at.folder, at.uidvalidity, at.uid],
        |r| r.get(0),
    )
    .optional()
    .context("Looking up location")
}

/// The key of a message by its location (one without a Message-ID of its own to go by).
fn location_key(at: &Location<'_>) -> String {
    format!("loc:{}:{}:{}", at.folder, at.uidvalidity, at.uid)
}

/// Record an email that could not be triaged; returns its row.
#[allow(clippy::too_many_arguments)]
fn record_skipped(
    tx: &Connection,
    at: &Location<'_>,
    reason: &str,
    detail: &str,
    size: usize,
    flag: bool,
    received_at: i64,
    now: i64,
) -> Result<i64> {
    let flags_state = if flag { "pending" } else { "done" };
    tx.execute(
        "INSERT INTO messages (dedup_key, folder, uidvalidity, uid, status, skip_reason, skip_detail, ack,
                               size, received_at, processed_at, flags_state)
         VALUES (?1, ?2, ?3, ?4, 'skipped', ?5, ?6, 'skipped', ?7, ?8, ?9, ?10)",
        params![location_key(at), at.folder, at.uidvalidity, at.uid, reason, detail, size as i64, received_at, now, flags_state],
    )
    .context("Recording skipped message")?;
    Ok(tx.last_insert_rowid())
}

/// The same email seen before: after a UIDVALIDITY change it is the same message at a new
/// location (relocated); in the same folder generation it is a second copy (e.g. delivered
/// twice), recorded as a skipped duplicate. `None`: it is new.
fn seen_before(tx: &Connection, mail: &Mail<'_>, now: i64) -> Result<Option<Recorded>> {
    let (at, email) = (mail.at, mail.email);
    let existing: Option<(i64, String, u32)> = tx
        .query_row(
            "SELECT id, folder, uidvalidity FROM messages WHERE dedup_key = ?1",
            [&email.message_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .context("Looking up Message-ID")?;
    let Some((row, folder, uidvalidity)) = existing else {
        return Ok(None);
    };
    if folder == at.folder && uidvalidity != at.uidvalidity {
        tx.execute(
            "UPDATE messages SET uidvalidity = ?2, uid = ?3, flags_state = 'pending' WHERE id = ?1",
            params![row, at.uidvalidity, at.uid],
        )
        .context("Relocating message")?;
        return Ok(Some(Recorded::Relocated { row }));
    }
    tx.execute(
        "INSERT INTO messages (dedup_key, message_id, folder, uidvalidity, uid, status, skip_reason, skip_detail,
                               ack, sender, sender_name, subject, size, received_at, processed_at, flags_state)
         VALUES (?1, ?2, ?3, ?4, ?5, 'skipped', 'duplicate', ?6, 'skipped', ?7, ?8, ?9, ?10, ?11, ?12, 'done')",
        params![
            location_key(at),
            email.message_id,
            at.folder,
            at.uidvalidity,
            at.uid,
            format!("same Message-ID as message {row}"),
            mail.sender,
            mail.sender_name,
            email.subject,
            email.size as i64,
            mail.received_at,
            now
        ],
    )
    .context("Recording duplicate")?;
    Ok(Some(skipped(tx.last_insert_rowid())))
}

/// The ticket the email joins, and those whose emails it returns (a failed-delivery report).
fn thread_of(tx: &Connection, mail: &Mail<'_>) -> Result<Thread> {
    // Staff may reply under the ticket tag from any address; a customer only from their own.
    let customer = (mail.role == Role::Customer).then_some(mail.sender.as_str());
    let mut joined = find_ticket(tx, mail.email, customer)?;
    let mut bounced: Vec<(i64, String)> = Vec::new();
    for id in mail.bounced {
        let t: Option<(i64, String)> = tx
            .query_row(
                "SELECT t.id, t.tag FROM outbox o JOIN tickets t ON t.id = o.ticket_id WHERE o.out_message_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context("Looking up a returned email")?;
        if let Some(t) = t.filter(|t| !bounced.contains(t)) {
            bounced.push(t);
        }
    }
    // A failed-delivery report joins the ticket whose email it returns.
    if joined.is_none() && mail.role == Role::Robot {
        joined = bounced.first().cloned();
    }
    Ok(Thread { joined, bounced })
}

/// Whether the email is acknowledged ([`tickets::ack_decision`]): the counts and the loop
/// evidence it needs, read here.
fn decide_ack(
    tx: &Connection,
    mail: &Mail<'_>,
    joined: Option<&(i64, String)>,
    policy: &Policy,
    now: i64,
) -> Result<AckCall> {
    let (email, sender, customer) = (mail.email, &mail.sender, mail.role == Role::Customer);
    let loop_since = now - policy.loop_window.as_secs() as i64;
    let recent_to_sender: u32 = tx
        .query_row(
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND recipient = ?1 AND created_at > ?2",
            params![sender, now - policy.per_sender_window.as_secs() as i64],
            |r| r.get(0),
        )
        .context("Counting acknowledgements to sender")?;
    // The ceiling (off by default) counts every acknowledgement of the last minute.
    let last_minute: u32 = if policy.circuit_breaker_per_minute > 0 {
        tx.query_row(
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND created_at > ?1",
            [now - 60],
            |r| r.get(0),
        )
        .context("Counting recent acknowledgements")?
    } else {
        0
    };
    // What loops look like: answers to our recent mail (its ticket's tag in the subject or the
    // text, within the loop window) from someone we did not write to (whose email therefore
    // joined no ticket), and replies with the same words from one domain again and again.
    let pattern = (customer && tickets::is_reply_subject(&email.subject))
        .then(|| tickets::loop_pattern(sender, &email.subject, &email.body_text))
        .flatten();
    let same_pattern: u32 = match &pattern {
        Some(p) if policy.loop_burst > 0 => tx
            .prepare_cached(LOOP_PATTERN)?
            .query_row(params![p, loop_since], |r| r.get(0))
            .context("Counting acknowledgements of one pattern")?,
        _ => 0,
    };
    // The tag in the subject, or quoted from our email in the text.
    let answers_our_mail_elsewhere = customer
        && joined.is_none()
        && match tickets::tag_in_subject(&email.subject)
            .or_else(|| tickets::tag_in_subject(&email.body_text))
        {
            Some(tag) => tx
                .prepare_cached(
                    "SELECT 1 FROM tickets t JOIN outbox o ON o.ticket_id = t.id
                     WHERE t.tag = ?1 AND o.created_at > ?2",
                )?
                .exists(params![tag, loop_since])
                .context("Looking up a ticket tag")?,
            None => false,
        };
    let unanswered_auto = if customer {
        unanswered_auto(tx, sender, joined.map(|t| t.0), policy, now)?
    } else {
        0
    };
    let decision = tickets::ack_decision(&AckFacts {
        acks_enabled: policy.enabled,
        guard: mail.guard,
        joins_ticket: joined.is_some(),
        age_secs: now - mail.received_at,
        max_age_secs: policy.max_age.as_secs() as i64,
        recent_to_sender,
        per_sender_limit: policy.per_sender_limit,
        last_minute,
        circuit_breaker_per_minute: policy.circuit_breaker_per_minute,
        answers_our_mail_elsewhere,
        same_pattern,
        loop_burst: policy.loop_burst,
        unanswered_auto,
        max_unanswered_auto: policy.max_unanswered_auto,
    });
    Ok(AckCall {
        decision,
        pattern,
        same_pattern,
        last_minute,
        auto_loop: tickets::auto_loop(unanswered_auto, policy.max_unanswered_auto),
    })
}

/// The message row of a triaged email (a customer's own words kept when `keep_text`);
/// returns its id.
fn insert_message(
    tx: &Connection,
    mail: &Mail<'_>,
    ticket_id: Option<i64>,
    decision: AckDecision,
    keep_text: bool,
    now: i64,
) -> Result<i64> {
    let (at, email, verdict) = (mail.at, mail.email, mail.verdict);
    let mut refs: Vec<&str> = email.references.iter().map(String::as_str).collect();
    if refs.is_empty() {
        refs.extend(email.in_reply_to.iter().map(String::as_str));
    }
    refs.push(&email.message_id);
    // What a reply can carry: bounded, without ids no header could hold. Said once, here,
    // for the emails we write to.
    let thread = crate::headers::threading(&email.message_id, &refs.join(" "));
    if mail.role == Role::Customer && !thread.dropped.is_empty() {
        tracing::info!(folder = at.folder, uid = at.uid, left_out = %thread.dropped.join("; "),
            "Replies to this email leave out what their threading headers cannot carry");
    }
    let refs = thread
        .references
        .iter()
        .map(|r| format!("<{r}>"))
        .collect::<Vec<_>>()
        .join(" ");
    tx.execute(
        "INSERT INTO messages (dedup_key, message_id, folder, uidvalidity, uid, ticket_id, status, ack, sender,
                               sender_name, subject, refs, score, priority, tones, size, received_at, processed_at,
                               intents, excerpt, role, asks, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'triaged', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
                 ?20, ?21, ?22)",
        params![
            email.message_id,
            email.message_id,
            at.folder,
            at.uidvalidity,
            at.uid,
            ticket_id,
            decision.code(),
            mail.sender,
            mail.sender_name,
            email.subject,
            refs,
            verdict.score,
            verdict.priority,
            verdict.tones.join(","),
            email.size as i64,
            mail.received_at,
            now,
            verdict.intents.join(","),
            excerpt(&email.body_text),
            role_name(mail.role),
            mail.asks.join(","),
            // What `triaged tune --store` learns phrases from: a customer's words only, and
            // none where `[store] keep_text = false`.
            if mail.role == Role::Customer && keep_text {
                super::training::kept_text(&email.body_text)
            } else {
                String::new()
            },
        ],
    )
    .context("Recording message")?;
    Ok(tx.last_insert_rowid())
}

/// The `role` column's name for who wrote an email.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "customer",
        Role::Staff => "staff",
        Role::Robot => "robot",
    }
}

/// Move the ticket as the email does ([`tickets::email_effect`]) and apply the follow-up
/// policy after it; note a survey answer; carry out a staff command given in the email.
#[allow(clippy::too_many_arguments)]
fn move_ticket(
    tx: &Connection,
    mail: &Mail<'_>,
    (ticket_id, tag): &(i64, String),
    row: i64,
    effect: &TicketEffect,
    ack: &AckCall,
    policy: &Policy,
    now: i64,
) -> Result<()> {
    let (ticket_id, sender) = (*ticket_id, mail.sender.as_str());
    let waiting_since = tickets::waiting_since(mail.role, mail.received_at, now);
    let because = Because {
        acked: false,
        auto_loop: ack.auto_loop,
    };
    match effect.event {
        None => {}
        Some(EmailEvent::Moves(e)) => {
            let (from, to) = ticket_event(tx, ticket_id, e, now, Some(row), sender, 0)?;
            let change = Some((e, from, to));
            schedule_followups(tx, ticket_id, change, because, waiting_since, policy, now)?;
        }
        Some(EmailEvent::Opened) => {
            log_opened(tx, ticket_id, now, row, sender)?;
            let because = Because {
                acked: ack.decision == AckDecision::Queue,
                ..because
            };
            schedule_followups(tx, ticket_id, None, because, waiting_since, policy, now)?;
        }
    }
    if let Some(rating) = effect.rating {
        let detail = format!("rated {rating} of 5 by {sender}");
        note_event(tx, ticket_id, "survey_answer", now, Some(row), &detail)?;
    }
    if let Some(cmd) = &effect.command {
        // A correction names its author as the address (the corrections' `who`).
        let who = match cmd {
            Command::Team(_) => format!("#team from {sender}"),
            Command::Relabel(_) => sender.to_string(),
            _ => format!("email command from {sender}"),
        };
        match apply_command(tx, ticket_id, cmd, now, Some(row), &who, policy)? {
            Applied::State(to) => {
                tracing::info!(ticket = %tag, command = ?cmd, state = to.as_str(), "Staff command by email");
            }
            Applied::Relabeled { corrected } => {
                tracing::info!(ticket = %tag, command = ?cmd, corrected, "Staff correction by email");
            }
            Applied::Team { outcome, team, was } => {
                said_reroute(
                    tx,
                    (ticket_id, tag),
                    row,
                    outcome,
                    (&team, &was),
                    &who,
                    policy,
                    now,
                )?;
            }
        }
    }
    Ok(())
}

/// Say what a `#team` command did: one log line each way; a name no team has is also noted
/// in the ticket's history (`route_refused`), where the staff who wrote it will look.
#[allow(clippy::too_many_arguments)]
fn said_reroute(
    tx: &Connection,
    (ticket_id, tag): (i64, &str),
    row: i64,
    outcome: Reroute,
    (team, was): (&str, &str),
    who: &str,
    policy: &Policy,
    now: i64,
) -> Result<()> {
    match outcome {
        Reroute::Moves => {
            tracing::info!(ticket = %tag, team, was, by = who, "Ticket re-routed by email");
        }
        Reroute::Already => {
            tracing::info!(ticket = %tag, team, by = who, "Ticket is with this team already; nothing changed");
        }
        Reroute::Unknown => {
            let known: Vec<&str> = policy.teams.keys().map(String::as_str).collect();
            let why = tickets::unknown_team(team, &known);
            tracing::warn!(ticket = %tag, by = who, "Staff command #team refused, ticket unchanged: {why}");
            let detail = format!("{who}: {why}");
            note_event(tx, ticket_id, "route_refused", now, Some(row), &detail)?;
        }
    }
    Ok(())
}

/// Queue the instant alert a customer's email raises, once per ticket.
fn alert_staff(
    tx: &rusqlite::Transaction<'_>,
    mail: &Mail<'_>,
    (ticket_id, tag): &(i64, String),
    policy: &Policy,
    now: i64,
) -> Result<()> {
    let Some(alerts) = &policy.alerts else {
        return Ok(());
    };
    if mail.role != Role::Customer || mail.alert.is_empty() {
        return Ok(());
    }
    let (email, verdict) = (mail.email, mail.verdict);
    // The ticket's team: named in the alert, and its own alert recipients, if it has them,
    // instead of `[alerts] to`.
    let team: String = tx
        .prepare_cached("SELECT team FROM tickets WHERE id = ?1")?
        .query_row([ticket_id], |r| r.get(0))
        .context("Reading the ticket's team")?;
    let facts = crate::alerts::AlertFacts {
        ticket: tag.clone(),
        customer: mail.sender.clone(),
        customer_name: mail.sender_name.clone(),
        subject: email.subject.clone(),
        priority: verdict.priority.as_str().to_string(),
        tones: verdict.tones.clone(),
        intents: verdict.intents.clone(),
        reasons: mail.alert.to_vec(),
        excerpt: excerpt(&email.body_text),
        received_at: mail.received_at,
        team: team.clone(),
    };
    let to = match policy.teams.get(&team) {
        Some(to) if !to.is_empty() => to,
        _ => &alerts.to,
    };
    if notices::queue_alert(tx, *ticket_id, &facts, to, alerts, now)? {
        tracing::warn!(ticket = %tag, reasons = %mail.alert.join("; "), to = %to.join(","), "Alert queued for staff");
    }
    Ok(())
}

/// A failed-delivery report: the follow-ups of each ticket it returns an email of are
/// cancelled, and the bounce noted on it.
fn note_bounces(
    tx: &Connection,
    mail: &Mail<'_>,
    bounced: &[(i64, String)],
    row: i64,
    now: i64,
) -> Result<()> {
    for (ticket_id, tag) in bounced {
        let mut cancelled = 0;
        for kind in Followup::ALL {
            cancelled += cancel_followup(tx, *ticket_id, kind, "bounced", now)?;
        }
        let detail = format!("report from {}", mail.sender);
        note_event(tx, *ticket_id, "bounced", now, Some(row), &detail)?;
        tracing::warn!(ticket = %tag, cancelled, "Delivery to the customer failed; follow-ups cancelled");
    }
    Ok(())
}

/// The rule hits of the verdict, for `explain`, the digest and `triaged tune --store`.
fn insert_hits(tx: &Connection, row: i64, verdict: &Verdict) -> Result<()> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO hits (message_row, rule, field, matched, weight, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .context("Preparing hit insert")?;
    for h in &verdict.hits {
        stmt.execute(params![
            row,
            h.rule.as_str(),
            h.target.as_str(),
            h.matched.as_str(),
            h.weight,
            h.count
        ])
        .context("Recording rule hit")?;
    }
    Ok(())
}

/// Queue the acknowledgement of the email `row` as [`decide_ack`] decided: due now, or held
/// for staff with the reason; returns the outbox row.
fn queue_ack(
    tx: &Connection,
    mail: &Mail<'_>,
    (ticket_id, tag): &(i64, String),
    row: i64,
    ack: &AckCall,
    policy: &Policy,
    now: i64,
) -> Result<Option<i64>> {
    let held = match ack.decision {
        AckDecision::Queue => None,
        AckDecision::Hold(code) => Some(held_because(
            code,
            &mail.sender,
            ack.same_pattern,
            ack.last_minute,
            policy,
        )),
        AckDecision::Skip(_) => return Ok(None),
    };
    let out_message_id = format!(
        "triaged.{}.ack.{row}@{}",
        tag.to_ascii_lowercase(),
        policy.domain
    );
    tx.execute(
        "INSERT INTO outbox (kind, ticket_id, message_row, seq, recipient, priority_rank, out_message_id,
                             due_at, created_at, updated_at, state, last_error, pattern)
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?7, ?7, ?8, ?9, ?10)",
        params![
            OutboxKind::Ack,
            ticket_id,
            row,
            mail.sender,
            OutboxKind::Ack.rank(mail.verdict.priority),
            out_message_id,
            now,
            if held.is_some() { "held" } else { "pending" },
            held.as_deref().unwrap_or(""),
            ack.pattern
        ],
    )
    .context("Queueing acknowledgement")?;
    let outbox = tx.last_insert_rowid();
    if let Some(why) = &held {
        note_event(tx, *ticket_id, "ack_held", now, Some(row), why)?;
        // Said when a hold begins; the health alert tells staff, `triaged queue` lists
        // the rest.
        let first = match ack.decision.code() {
            "loop_burst" => ack.same_pattern == policy.loop_burst,
            _ => ack.last_minute == policy.circuit_breaker_per_minute,
        };
        if first {
            tracing::warn!(ticket = %tag, to = %mail.sender, reason = ack.decision.code(), evidence = %why,
                "Acknowledgements held: this looks like a mail loop; `triaged queue` lists them, `triaged queue release` or `drop` decides");
        }
    }
    Ok(Some(outbox))
}

/// Acknowledgements of one loop pattern within the window (`outbox_pattern`).
const LOOP_PATTERN: &str = "SELECT count(*) FROM outbox WHERE pattern = ?1 AND created_at > ?2";

/// Why an acknowledgement is held, in words for `triaged queue`, the ticket's history and the
/// staff alert.
fn held_because(
    code: &str,
    sender: &str,
    same_pattern: u32,
    last_minute: u32,
    policy: &Policy,
) -> String {
    let domain = sender.rsplit_once('@').map_or(sender, |(_, d)| d);
    if code == "loop_burst" {
        format!(
            "held: reply {} with the same words from {domain} {} (loop_burst = {}): a mail loop?",
            same_pattern + 1,
            crate::wording::within(policy.loop_window),
            policy.loop_burst
        )
    } else {
        format!(
            "held: {} acknowledgements in the last minute (circuit_breaker_per_minute = {})",
            last_minute + 1,
            policy.circuit_breaker_per_minute
        )
    }
}

/// How far apart the mail server's clock (arrival times) and ours may be.
const CLOCK_SKEW: i64 = 3600;

/// The loop rule's reads (run for every customer email; their query plans are tested).
pub(super) const LOOP_SENT: &str = "SELECT ticket_id, message_row, sent_at FROM outbox
     WHERE recipient = ?1 AND state = 'sent' AND sent_at <= ?2
     ORDER BY created_at DESC LIMIT ?3";
pub(super) const LOOP_ANSWER: &str = "SELECT min(processed_at) FROM messages
     WHERE sender = ?1 AND received_at BETWEEN ?2 AND ?3 AND processed_at >= ?4 AND id > ?5";
pub(super) const LOOP_TICKETS: &str = "SELECT DISTINCT ticket_id FROM messages
     WHERE sender = ?1 AND received_at >= ?2 AND ticket_id IS NOT NULL";

/// The loop rule's count for an email from `sender` recorded `now` ([`tickets::unanswered_auto`]):
/// the facts from the store. `joined`: the ticket the email joins.
///
/// Our latest automatic emails to the sender (rows queued long before they went out, like a
/// holding note, are ordered by when they went out: a few more rows than needed are read);
/// for each, when the sender's next email was recorded after it — looked for only among emails
/// that arrived shortly after it, so the read stays small for a sender with thousands; and,
/// when this email answers our latest at once, when staff last wrote in a ticket of the run:
/// those of our emails, of the sender's emails since the run began, and the one this email
/// joins. Indexed: `outbox_recipient`, `messages_sender`, the tickets' key.
fn unanswered_auto(
    tx: &Connection,
    sender: &str,
    joined: Option<i64>,
    policy: &Policy,
    now: i64,
) -> Result<u32> {
    let n = policy.max_unanswered_auto;
    if n == 0 || sender.is_empty() {
        return Ok(0);
    }
    // (ticket, the email it answered or followed, when it went out)
    let mut rows: Vec<(i64, i64, i64)> = tx
        .prepare_cached(LOOP_SENT)?
        .query_map(params![sender, now, 4 * i64::from(n)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .context("Reading the automatic emails to the sender")?
        .collect::<rusqlite::Result<_>>()
        .context("Reading the automatic emails to the sender")?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    rows.truncate(n as usize);
    let within = policy.auto_answer_within.as_secs() as i64;
    let mut answer = tx.prepare_cached(LOOP_ANSWER)?;
    let mut sent = Vec::with_capacity(rows.len());
    for &(_, after, at) in &rows {
        // Times are in seconds: an answer recorded in the second ours went out counts, the
        // email ours answered (recorded before it, perhaps in that second too) does not.
        let answered_at: Option<i64> = answer
            .query_row(
                params![sender, at - CLOCK_SKEW, at + within + CLOCK_SKEW, at, after],
                |r| r.get(0),
            )
            .context("Looking for the sender's answer")?;
        sent.push(tickets::AutoSent {
            sent_at: at,
            answered_at,
        });
    }
    let facts = |last_staff_at| tickets::LoopFacts {
        sent: &sent,
        last_staff_at,
        now,
        answer_within: within,
    };
    // A staff message can only end a run early: without one there is nothing to look up.
    let run = tickets::unanswered_auto(&facts(0));
    let Some(first) = run.checked_sub(1).and_then(|i| sent.get(i as usize)) else {
        return Ok(0);
    };
    let mut ticket_ids: Vec<i64> = tx
        .prepare_cached(LOOP_TICKETS)?
        .query_map(params![sender, first.sent_at - CLOCK_SKEW], |r| r.get(0))
        .context("Reading the sender's tickets")?
        .collect::<rusqlite::Result<_>>()
        .context("Reading the sender's tickets")?;
    ticket_ids.extend(rows.iter().map(|r| r.0).chain(joined));
    let mut staff = tx.prepare_cached("SELECT last_staff_at FROM tickets WHERE id = ?1")?;
    let mut last_staff_at = 0;
    for id in ticket_ids {
        let at: i64 = staff
            .query_row([id], |r| r.get(0))
            .context("Reading when staff last wrote")?;
        last_staff_at = last_staff_at.max(at);
    }
    Ok(tickets::unanswered_auto(&facts(last_staff_at)))
}

/// The reply address (lower-cased) and a name to greet.
fn sender_of(email: &Email) -> (String, String) {
    match email.reply_address() {
        Some(a) => {
            let name = email
                .from
                .as_ref()
                .and_then(|f| f.name.clone())
                .or_else(|| a.name.clone())
                .unwrap_or_default();
            (a.email.clone(), name)
        }
        None => (String::new(), String::new()),
    }
}

/// The ticket this email belongs to: by In-Reply-To/References (our acknowledgements' IDs or a
/// customer email's), else by the subject tag when `customer` is `None` (staff) or is the
/// ticket's customer.
fn find_ticket(
    tx: &Connection,
    email: &Email,
    customer: Option<&str>,
) -> Result<Option<(i64, String)>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT t.id, t.tag FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.dedup_key = ?1
             UNION ALL
             SELECT t.id, t.tag FROM outbox o JOIN tickets t ON t.id = o.ticket_id WHERE o.out_message_id = ?1
             LIMIT 1",
        )
        .context("Preparing thread lookup")?;
    for id in email
        .in_reply_to
        .iter()
        .chain(email.references.iter().rev())
    {
        if let Some(t) = stmt
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .context("Looking up thread")?
        {
            return Ok(Some(t));
        }
    }
    if let Some(tag) = tickets::tag_in_subject(&email.subject) {
        return tx
            .query_row(
                "SELECT id, tag FROM tickets WHERE tag = ?1 AND (?2 IS NULL OR customer = ?2)",
                params![tag, customer],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context("Looking up ticket tag");
    }
    Ok(None)
}

/// The start of what the customer wrote (quotes and signature left out), for digests and alerts.
pub fn excerpt(body: &str) -> String {
    const MAX: usize = 300;
    let own = crate::score::text::own_words(body);
    let mut out = String::new();
    for word in own.split_whitespace() {
        if out.chars().count() + word.chars().count() + 1 > MAX {
            out.push('\u{2026}');
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
