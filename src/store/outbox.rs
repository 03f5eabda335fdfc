//! The outbox in the store: customer mail (acknowledgements and follow-ups) claimed in order
//! of urgency, recorded as sent, retried, deferred, failed or cancelled; acknowledgements held
//! for staff; sends a crash interrupted, settled by their witness copy; the send log the rate
//! limits count.

use std::fmt;

use anyhow::{Context, Result};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::Store;
use super::followups::{Happened, cancel_followup, followup_event};
use super::rows::priority_of_rank;
use super::tickets::{note_event, ticket_event};
use crate::score::Priority;
use crate::tickets::{Event, Followup};

/// What an outbox row sends: the acknowledgement, or one of the follow-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutboxKind {
    Ack,
    Followup(Followup),
}

impl OutboxKind {
    pub const ALL: [OutboxKind; 4] = [
        OutboxKind::Ack,
        OutboxKind::Followup(Followup::Holding),
        OutboxKind::Followup(Followup::Verify),
        OutboxKind::Followup(Followup::Survey),
    ];

    /// The name in the `kind` column (and of the follow-up's template).
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Ack => "ack",
            OutboxKind::Followup(f) => f.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<OutboxKind> {
        OutboxKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The follow-up it sends, `None` for the acknowledgement.
    pub fn followup(self) -> Option<Followup> {
        match self {
            OutboxKind::Ack => None,
            OutboxKind::Followup(f) => Some(f),
        }
    }

    /// Its row's `priority_rank` for a ticket of priority `p`: acknowledgements by the
    /// priority's rank, follow-ups after every acknowledgement
    /// ([`super::followups::FOLLOWUP_RANK`] + that rank).
    pub(super) fn rank(self, p: Priority) -> i64 {
        match self {
            OutboxKind::Ack => crate::tickets::rank(p),
            OutboxKind::Followup(_) => super::followups::FOLLOWUP_RANK + crate::tickets::rank(p),
        }
    }
}

/// Rank the rows of ticket `ticket_id` still queued (pending, or held for staff) for its
/// priority `p` now: a correction that changes the ticket's priority (or its undo) moves what
/// the ticket still has to send, urgent first. Rows claimed or done keep theirs. Returns the
/// rows re-ranked. In the caller's transaction.
pub(super) fn rerank_queued(tx: &Connection, ticket_id: i64, p: Priority) -> Result<usize> {
    let rows: Vec<(i64, OutboxKind, i64)> = tx
        .prepare_cached(
            "SELECT id, kind, priority_rank FROM outbox
             WHERE ticket_id = ?1 AND state IN ('pending', 'held')",
        )?
        .query_map([ticket_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .context("Reading the ticket's queued mail")?;
    let mut moved = 0;
    for (id, kind, rank) in rows {
        let new = kind.rank(p);
        if new != rank {
            tx.prepare_cached("UPDATE outbox SET priority_rank = ?2 WHERE id = ?1")?
                .execute(params![id, new])
                .context("Re-ranking the ticket's queued mail")?;
            moved += 1;
        }
    }
    Ok(moved)
}

impl fmt::Display for OutboxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outbox row ready to render and send.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub kind: OutboxKind,
    pub attempts: u32,
    pub recipient: String,
    pub recipient_name: String,
    pub out_message_id: String,
    pub ticket_tag: String,
    pub subject: String,
    /// The ticket's priority now.
    pub priority: Priority,
    /// Tone labels of the customer's email, comma-separated.
    pub tones: String,
    /// Message-ID of the customer's email (In-Reply-To).
    pub in_reply_to: String,
    /// References for the reply.
    pub references: String,
    /// When the customer's email arrived (seconds since the epoch): the SLA clock's start.
    pub received_at: i64,
    /// Where the customer's email was found (a folder key such as `INBOX` or `billing:INBOX`):
    /// the mailbox whose address answers it.
    pub folder: String,
    /// Intents of the customer's email, comma-separated.
    pub intents: String,
    /// The ticket's team now (`[[team]]` name; empty: none).
    pub team: String,
    /// The clarifying questions decided for the customer's email (`[[ask]]` ids),
    /// comma-separated.
    pub asks: String,
}

/// An outbox row as `triaged queue` shows it.
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub id: i64,
    pub kind: OutboxKind,
    pub ticket: String,
    pub recipient: String,
    /// The priority it was queued at.
    pub priority: Priority,
    pub state: String,
    pub attempts: u32,
    pub due_at: i64,
    pub last_error: String,
}

impl Store {
    /// Rows left in `sending` by a crash: we cannot know yet whether the server took them.
    /// With a witness (`witness`: a copy of each email that proves it went out) customer mail
    /// becomes `unconfirmed` and waits for its copy ([`Store::resolve_unconfirmed`]); without,
    /// it becomes `uncertain` and is never sent again (a customer must never get two). Staff
    /// mail is never worth a duplicate: always `uncertain`.
    pub fn recover_interrupted_sends(&self, now: i64, witness: bool) -> Result<usize> {
        let (state, why) = if witness {
            (
                "unconfirmed",
                "interrupted while sending; waiting for the copy that proves whether it went out",
            )
        } else {
            (
                "uncertain",
                "interrupted while sending; not retried to avoid a duplicate",
            )
        };
        self.conn
            .execute(
                "UPDATE outbox SET state = ?2, updated_at = ?1, last_error = ?3 WHERE state = 'sending'",
                params![now, state, why],
            )
            .and_then(|n| {
                // Staff mail too: a digest or alert is not worth a duplicate either.
                let m = self.conn.execute(
                    "UPDATE notices SET state = 'uncertain', updated_at = ?1,
                     last_error = 'interrupted while sending; not retried to avoid a duplicate'
                     WHERE state = 'sending'",
                    [now],
                )?;
                Ok(n + m)
            })
            .context("Recovering interrupted sends")
    }

    /// Settle sends a crash interrupted (`unconfirmed`) whose copy has not come: when
    /// `settled` — the mailbox was read through from `grace` after their recovery on — each
    /// goes again (`pending`, due now, attempts kept) if copies are known to arrive (one was
    /// seen within a week), or becomes `uncertain` (never sent again) if they are known not to
    /// (an email sent more than `grace` ago, the folders read through since, and no copy ever
    /// seen); until one or the other is known, it waits.
    /// `settled(t)`: every watched folder was read completely by a pass that began at or after
    /// `t`. Returns (sent again, given up), and when the next row may settle.
    pub fn resolve_unconfirmed(
        &mut self,
        grace: i64,
        settled: impl Fn(i64) -> bool,
        now: i64,
    ) -> Result<(usize, usize, Option<i64>)> {
        let rows: Vec<(i64, i64)> = self
            .conn
            .prepare_cached("SELECT id, updated_at FROM outbox WHERE state = 'unconfirmed'")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()
            .context("Reading unconfirmed sends")?;
        if rows.is_empty() {
            return Ok((0, 0, None));
        }
        let tx = self.conn.transaction().context("Starting transaction")?;
        let (mut again, mut given_up, mut next) = (0, 0, None::<i64>);
        for (id, since) in rows {
            let from = since + grace;
            if now < from || !settled(from) {
                next = Some(next.map_or(from, |n| n.min(from)).max(now + 1));
                continue;
            }
            // Copies are known to arrive: one was seen (within a week). Known not to: an email
            // sent long enough ago for its copy to have been read, and none ever seen.
            // Neither yet (nothing sent since the witness was configured): wait.
            let works = tx
                .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
                .query_row([WITNESS_SEEN], |r| r.get::<_, String>(0))
                .optional()
                .context("Reading when a copy was last seen")?
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|t| t >= now - 7 * 86_400);
            if !works {
                let sent_before: Vec<i64> = tx
                    .prepare_cached(
                        "SELECT sent_at FROM outbox WHERE state = 'sent' ORDER BY id DESC LIMIT 200",
                    )?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
                    .context("Reading recent sends")?;
                let failing = sent_before
                    .iter()
                    .any(|t| *t + grace <= now && settled(*t + grace));
                if !failing {
                    next = Some(next.map_or(now + 1, |n| n.min(now + 1)));
                    continue;
                }
            }
            if works {
                tx.execute(
                    "UPDATE outbox SET state = 'pending', due_at = ?2, updated_at = ?2,
                            last_error = 'interrupted while sending, and no copy came: sent again'
                     WHERE id = ?1 AND state = 'unconfirmed'",
                    params![id, now],
                )?;
                again += 1;
            } else {
                tx.execute(
                    "UPDATE outbox SET state = 'uncertain', updated_at = ?2,
                            last_error = 'interrupted while sending; no copy of sent email ever arrives here, so not retried to avoid a duplicate'
                     WHERE id = ?1 AND state = 'unconfirmed'",
                    params![id, now],
                )?;
                given_up += 1;
            }
        }
        tx.commit().context("Committing settled sends")?;
        Ok((again, given_up, next))
    }

    /// The most urgent due row, claimed (state `sending`, attempts + 1) in the same transaction.
    /// Read in the order of `outbox_due`, so the first due row ends the read (without the
    /// hint SQLite would sort every due row first: a backlog would cost its square).
    pub fn claim_next_due(&mut self, now: i64) -> Result<Option<OutboxItem>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("Starting transaction")?;
        let item = tx
            .query_row(
                "SELECT o.id, o.kind, o.attempts, o.recipient, m.sender_name, o.out_message_id, t.tag,
                        m.subject, t.priority, m.message_id, m.refs, m.tones, m.received_at, m.folder,
                        m.intents, t.team, m.asks
                 FROM outbox o INDEXED BY outbox_due
                 JOIN messages m ON m.id = o.message_row JOIN tickets t ON t.id = o.ticket_id
                 WHERE o.state = 'pending' AND o.due_at <= ?1
                 ORDER BY o.priority_rank, o.due_at, o.id LIMIT 1",
                [now],
                |r| {
                    Ok(OutboxItem {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        attempts: r.get(2)?,
                        recipient: r.get(3)?,
                        recipient_name: r.get(4)?,
                        out_message_id: r.get(5)?,
                        ticket_tag: r.get(6)?,
                        subject: r.get(7)?,
                        priority: r.get(8)?,
                        in_reply_to: r.get(9)?,
                        references: r.get(10)?,
                        tones: r.get(11)?,
                        received_at: r.get(12)?,
                        folder: r.get(13)?,
                        intents: r.get(14)?,
                        team: r.get(15)?,
                        asks: r.get(16)?,
                    })
                },
            )
            .optional()
            .context("Reading the outbox")?;
        if let Some(item) = &item {
            tx.execute(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
                params![item.id, now],
            )
            .context("Claiming outbox row")?;
        }
        tx.commit().context("Committing claim")?;
        Ok(item.map(|mut i| {
            i.attempts += 1;
            i
        }))
    }

    /// When the next pending row falls due, if any.
    pub fn next_due_at(&self) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT min(d) FROM (SELECT min(due_at) AS d FROM outbox WHERE state = 'pending'
                                     UNION ALL SELECT min(due_at) FROM notices WHERE state = 'pending')",
                [],
                |r| r.get(0),
            )
            .context("Reading next due time")
    }

    /// Record an accepted send: the row, its ticket, and the send log the rate limits count.
    /// `promised`: the time an acknowledgement promised; the ticket's holding note waits at
    /// least until then (an acknowledgement that went out late promises a later time).
    pub fn mark_sent(&mut self, id: i64, now_ms: i64, promised: Option<i64>) -> Result<()> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        sent_in(&tx, id, now_ms, promised)?;
        tx.commit().context("Committing sent state")
    }

    pub fn mark_retry(&self, id: i64, due_at: i64, error: &str, now: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE outbox SET state = CASE cancel_reason WHEN '' THEN 'pending' ELSE 'cancelled' END,
                        last_error = CASE cancel_reason WHEN '' THEN ?3 ELSE cancel_reason END,
                        due_at = ?2, updated_at = ?4
                 WHERE id = ?1",
                params![id, due_at, error, now],
            )
            .context("Scheduling retry")?;
        Ok(())
    }

    /// Put a row back without counting the attempt against it (the provider pushed back, or
    /// customer-facing hours are over; the message itself is fine).
    pub fn mark_deferred(&self, id: i64, due_at: i64, error: &str, now: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE outbox SET state = CASE cancel_reason WHEN '' THEN 'pending' ELSE 'cancelled' END,
                        last_error = CASE cancel_reason WHEN '' THEN ?3 ELSE cancel_reason END,
                        attempts = max(attempts - 1, 0), due_at = ?2, updated_at = ?4
                 WHERE id = ?1",
                params![id, due_at, error, now],
            )
            .context("Deferring outbox row")?;
        Ok(())
    }

    /// When sending may resume under these limits (ms since the epoch), or `None` when a send
    /// is allowed now. For each limit, if `max` sends fall in the last `per`, the next one may
    /// go when the oldest of the newest `max` leaves the window.
    pub fn rate_limited_until(
        &self,
        limits: &[crate::config::RateLimit],
        now_ms: i64,
        in_flight: u32,
    ) -> Result<Option<i64>> {
        let mut until: Option<i64> = None;
        for l in limits {
            let per = l.per.as_millis() as i64;
            // Sends in flight count as sent now: under concurrency a limit is never exceeded.
            let room = i64::from(l.max) - i64::from(in_flight);
            let nth: Option<i64> = if room <= 0 {
                Some(now_ms)
            } else {
                self.conn
                    .query_row(
                        "SELECT at_ms FROM send_log WHERE at_ms > ?1 ORDER BY at_ms DESC LIMIT 1 OFFSET ?2",
                        params![now_ms - per, room - 1],
                        |r| r.get(0),
                    )
                    .optional()
                    .context("Reading the send log")?
            };
            if let Some(at) = nth {
                until = Some(until.map_or(at + per, |u: i64| u.max(at + per)));
            }
        }
        Ok(until.filter(|u| *u > now_ms))
    }

    /// Sends in the last `window_ms`.
    pub fn sent_within(&self, now_ms: i64, window_ms: i64) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM send_log WHERE at_ms > ?1",
                [now_ms - window_ms],
                |r| r.get(0),
            )
            .context("Counting sends")
    }

    /// Cancel the pending follow-ups of the ticket that outbox row `id` belongs to (its
    /// customer's address failed permanently); returns how many.
    pub fn cancel_followups_of(&mut self, id: i64, reason: &str, now: i64) -> Result<usize> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        let ticket_id: Option<i64> = tx
            .prepare_cached("SELECT ticket_id FROM outbox WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()
            .context("Reading the outbox row")?;
        let mut n = 0;
        if let Some(t) = ticket_id {
            for kind in Followup::ALL {
                n += cancel_followup(&tx, t, kind, reason, now)?;
            }
        }
        tx.commit().context("Committing cancellation")?;
        Ok(n)
    }

    /// Cancel one pending outbox row by hand (`triaged queue cancel ID`). Returns the row's
    /// state before: `Some("pending")` when it was cancelled; another state when it could not
    /// be (already sent, failed, being sent); `None` when there is no such row.
    pub fn cancel_outbox_row(&mut self, id: i64, who: &str, now: i64) -> Result<Option<String>> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        let row: Option<(String, OutboxKind, i64)> = tx
            .prepare_cached("SELECT state, kind, ticket_id FROM outbox WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .context("Reading the outbox row")?;
        let Some((state, kind, ticket_id)) = row else {
            return Ok(None);
        };
        if state == "pending" {
            let reason = format!("cancelled by {who}");
            tx.execute(
                "UPDATE outbox SET state = 'cancelled', last_error = ?2, updated_at = ?3
                 WHERE id = ?1 AND state = 'pending'",
                params![id, reason, now],
            )
            .context("Cancelling the outbox row")?;
            note_event(
                &tx,
                ticket_id,
                "cancelled",
                now,
                None,
                &format!("{kind}: {reason}"),
            )?;
        }
        tx.commit().context("Committing cancellation")?;
        Ok(Some(state))
    }

    /// Decide held acknowledgements (`triaged queue release|drop`): one row by id, or all.
    /// Released rows are due now, unless their email arrived before `oldest` (older than
    /// `[ack] max_age`): those are cancelled, never sent. Each decision is logged on the ticket.
    /// Returns (released, dropped or too old).
    pub fn decide_held(
        &mut self,
        id: Option<i64>,
        release: bool,
        who: &str,
        oldest: i64,
        now: i64,
    ) -> Result<(usize, usize)> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        let rows: Vec<(i64, i64, i64)> = tx
            .prepare_cached(
                "SELECT o.id, o.ticket_id, m.received_at FROM outbox o JOIN messages m ON m.id = o.message_row
                 WHERE o.state = 'held' AND (?1 IS NULL OR o.id = ?1) ORDER BY o.id",
            )?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()
            .context("Reading held acknowledgements")?;
        let (mut released, mut dropped) = (0, 0);
        for (row, ticket_id, received_at) in rows {
            let (state, why) = if !release {
                ("cancelled", format!("held, then dropped by {who}"))
            } else if received_at < oldest {
                (
                    "cancelled",
                    format!("held, then too old to send when {who} released it ([ack] max_age)"),
                )
            } else {
                ("pending", String::new())
            };
            tx.execute(
                "UPDATE outbox SET state = ?2, due_at = ?3, last_error = ?4, updated_at = ?3
                 WHERE id = ?1 AND state = 'held'",
                params![row, state, now, why],
            )
            .context("Deciding a held acknowledgement")?;
            if state == "pending" {
                released += 1;
                note_event(
                    &tx,
                    ticket_id,
                    "ack_released",
                    now,
                    None,
                    &format!("by {who}"),
                )?;
            } else {
                dropped += 1;
                note_event(
                    &tx,
                    ticket_id,
                    "cancelled",
                    now,
                    None,
                    &format!("ack: {why}"),
                )?;
            }
        }
        tx.commit().context("Committing the decision")?;
        Ok((released, dropped))
    }

    /// Held acknowledgements whose email arrived before `oldest` can never be sent: cancelled,
    /// so they stop counting as undecided. Returns how many.
    pub fn expire_held(&self, oldest: i64, now: i64) -> Result<usize> {
        self.conn
            .execute(
                "UPDATE outbox SET state = 'cancelled', updated_at = ?2,
                        last_error = 'held, and no one released it within [ack] max_age: never sent'
                 WHERE state = 'held'
                   AND message_row IN (SELECT o.message_row FROM outbox o JOIN messages m ON m.id = o.message_row
                                       WHERE o.state = 'held' AND m.received_at < ?1)",
                params![oldest, now],
            )
            .context("Expiring held acknowledgements")
    }

    /// Every row that has not reached a final state, most urgent first, for `triaged queue`.
    pub fn queue(&self) -> Result<Vec<QueueRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.id, o.kind, t.tag, o.recipient, o.priority_rank, o.state, o.attempts, o.due_at,
                        o.last_error
                 FROM outbox o JOIN tickets t ON t.id = o.ticket_id
                 WHERE o.state IN ('held', 'pending', 'sending', 'uncertain', 'failed')
                 ORDER BY o.state = 'held' DESC, o.state = 'pending' DESC, o.priority_rank, o.due_at, o.id",
            )
            .context("Preparing queue query")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(QueueRow {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    ticket: r.get(2)?,
                    recipient: r.get(3)?,
                    priority: priority_of_rank(r.get(4)?).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(4, Type::Integer, e.into())
                    })?,
                    state: r.get(5)?,
                    attempts: r.get(6)?,
                    due_at: r.get(7)?,
                    last_error: r.get(8)?,
                })
            })
            .context("Reading the queue")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("Reading the queue")
    }

    pub fn mark_failed(&self, id: i64, error: &str, now: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE outbox SET state = 'failed', last_error = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, error, now],
            )
            .context("Marking failed")?;
        Ok(())
    }
}

/// A copy of our email `message_id` was seen: it went out. A send a crash interrupted
/// (`unconfirmed`, or `uncertain` from an earlier run), or one waiting to be retried after an
/// error that came too late to tell (a timeout after the data went), is settled as sent.
pub(super) fn witness_in(tx: &Connection, message_id: &str, now: i64) -> Result<()> {
    let row: Option<(i64, String)> = tx
        .prepare_cached("SELECT id, state FROM outbox WHERE out_message_id = ?1")?
        .query_row([message_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .context("Looking up our own email")?;
    let Some((id, state)) = row else {
        return Ok(());
    };
    tx.execute(
        "UPDATE outbox SET witnessed_at = ?2 WHERE id = ?1 AND witnessed_at = 0",
        params![id, now],
    )
    .context("Recording the copy of a sent email")?;
    tx.prepare_cached(
        "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![WITNESS_SEEN, now.to_string()])
    .context("Noting that copies arrive")?;
    // A send that ended without an answer (a crash, a timeout after the data went) and is
    // waiting to go again went out after all.
    let attempts: u32 = tx.query_row("SELECT attempts FROM outbox WHERE id = ?1", [id], |r| {
        r.get(0)
    })?;
    if state == "unconfirmed" || state == "uncertain" || (state == "pending" && attempts > 0) {
        sent_in(tx, id, now * 1000, None)?;
        tracing::info!(
            outbox = id,
            "A send that ended without an answer went out: its copy arrived"
        );
    }
    Ok(())
}

/// The store key holding when a copy of our own email was last seen (copies arrive).
const WITNESS_SEEN: &str = "witness.seen_at";

/// Record an accepted send in `tx`: the row, its ticket, and the send log the rate limits count.
fn sent_in(tx: &Connection, id: i64, now_ms: i64, promised: Option<i64>) -> Result<()> {
    let now = now_ms / 1000;
    tx.execute(
        "UPDATE outbox SET state = 'sent', sent_at = ?2, updated_at = ?2, last_error = '' WHERE id = ?1",
        params![id, now],
    )
    .context("Marking sent")?;
    tx.execute(
        "INSERT INTO send_log (at_ms, outbox_id) VALUES (?1, ?2)",
        params![now_ms, id],
    )
    .context("Logging the send")?;
    // The longest window anyone configures is a day or so; keep a week.
    tx.execute(
        "DELETE FROM send_log WHERE at_ms < ?1",
        [now_ms - 7 * 86_400_000],
    )
    .context("Pruning the send log")?;
    let (ticket_id, kind, recipient): (i64, OutboxKind, String) = tx
        .query_row(
            "SELECT ticket_id, kind, recipient FROM outbox WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .context("Reading the sent row")?;
    match kind {
        OutboxKind::Ack => {
            ticket_event(tx, ticket_id, Event::AckSent, now, None, &recipient, 0)?;
            if let Some(t) = promised {
                tx.execute(
                    "UPDATE outbox SET due_at = max(due_at, ?2)
                     WHERE ticket_id = ?1 AND kind = 'holding' AND state = 'pending'",
                    params![ticket_id, t],
                )
                .context("Moving the holding note to the promised time")?;
            }
        }
        OutboxKind::Followup(f) => {
            note_event(
                tx,
                ticket_id,
                followup_event(f, Happened::Sent),
                now,
                None,
                &recipient,
            )?;
        }
    }
    Ok(())
}
