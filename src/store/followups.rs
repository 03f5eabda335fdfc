//! Follow-ups in the store: what a change to a ticket does to its holding note, verification
//! and survey. [`tickets::followup_actions`] decides; this file reads the ticket, queues,
//! withholds or cancels the outbox rows it names, and logs each on the ticket.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::Policy;
use super::tickets::note_event;
use crate::score::Priority;
use crate::tickets::{self, Event, Followup, FollowupAction, FollowupFacts, State};

/// Follow-ups rank after every acknowledgement: `FOLLOWUP_RANK` + the priority's rank.
pub(super) const FOLLOWUP_RANK: i64 = 10;

/// What the email behind a change to a ticket did, for the follow-up policy (default: no
/// email, e.g. a command).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Because {
    /// An acknowledgement was queued for it.
    pub acked: bool,
    /// It keeps an automatic loop going ([`tickets::unanswered_auto`] at its limit).
    pub auto_loop: bool,
}

/// Apply the follow-up policy to a ticket after `change` (`None`: it was just opened, with an
/// acknowledgement queued when `because.acked`). `at` is when the waiting began (the
/// customer's email arrived, staff replied, the ticket closed): due times count business time
/// from there.
pub(super) fn schedule_followups(
    tx: &Connection,
    ticket_id: i64,
    change: Option<(Event, State, State)>,
    because: Because,
    at: i64,
    policy: &Policy,
    now: i64,
) -> Result<()> {
    let (tag, customer, p): (String, String, Priority) = tx
        .prepare_cached("SELECT tag, customer, priority FROM tickets WHERE id = ?1")?
        .query_row([ticket_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .context("Reading the ticket")?;
    let cancel_intent: bool = tx
        .prepare_cached(
            "SELECT count(*) > 0 FROM messages WHERE ticket_id = ?1 AND sender = ?2
               AND instr(',' || intents || ',', ',cancel,') > 0",
        )?
        .query_row(params![ticket_id, customer], |r| r.get(0))
        .context("Reading the ticket's intents")?;
    let sla = &policy.sla;
    let f = &policy.followups;
    let target = match change {
        None => sla.first_response(p),
        Some(_) => sla.next_response(p),
    };
    let facts = FollowupFacts {
        change,
        acked: because.acked,
        cancel_intent,
        auto_loop: because.auto_loop,
        // When the promise runs out: the acknowledgement (or the holding note) states the same.
        holding_due: sla.promised_deadline(at, target, now),
        verify_due: sla.calendar.add_secs(at, f.verify_after),
        survey_due: sla.calendar.add_secs(at, f.survey_after),
    };
    for action in tickets::followup_actions(f.switches, &facts) {
        match action {
            FollowupAction::Cancel(kind, reason) => {
                cancel_followup(tx, ticket_id, kind, reason, now)?;
            }
            FollowupAction::Queue(kind, due) => {
                let due = f.send_hours.next_open_secs(due);
                queue_followup(tx, ticket_id, &tag, &customer, p, kind, due, policy, now)?;
            }
            FollowupAction::Withhold(kind, reason) => {
                note_event(
                    tx,
                    ticket_id,
                    followup_event(kind, Happened::Withheld),
                    now,
                    None,
                    reason,
                )?;
            }
        }
    }
    Ok(())
}

/// Queue a follow-up unless one of its kind is already waiting.
#[allow(clippy::too_many_arguments)]
fn queue_followup(
    tx: &Connection,
    ticket_id: i64,
    tag: &str,
    customer: &str,
    priority: Priority,
    kind: Followup,
    due: i64,
    policy: &Policy,
    now: i64,
) -> Result<()> {
    let waiting: bool = tx
        .prepare_cached(
            "SELECT count(*) > 0 FROM outbox WHERE ticket_id = ?1 AND kind = ?2
               AND (state = 'pending' OR (state = 'sending' AND cancel_reason = ''))",
        )?
        .query_row(params![ticket_id, kind], |r| r.get(0))
        .context("Looking for a waiting follow-up")?;
    if waiting || customer.is_empty() {
        return Ok(());
    }
    // Threaded under the customer's latest email in the ticket.
    let Some(message_row): Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM messages WHERE ticket_id = ?1 AND sender = ?2 AND status = 'triaged'
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![ticket_id, customer], |r| r.get(0))
        .optional()
        .context("Finding the customer's email")?
    else {
        return Ok(());
    };
    let seq: i64 = tx
        .prepare_cached(
            "SELECT coalesce(max(seq), 0) + 1 FROM outbox WHERE ticket_id = ?1 AND kind = ?2",
        )?
        .query_row(params![ticket_id, kind], |r| r.get(0))
        .context("Numbering the follow-up")?;
    let out_message_id = format!(
        "triaged.{}.{}.{seq}@{}",
        tag.to_ascii_lowercase(),
        kind.as_str(),
        policy.domain
    );
    tx
        .prepare_cached("INSERT INTO outbox (kind, ticket_id, message_row, seq, recipient, priority_rank, out_message_id,
                             due_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)")?
        .execute(
        params![
            kind,
            ticket_id,
            message_row,
            seq,
            customer,
            super::OutboxKind::Followup(kind).rank(priority),
            out_message_id,
            due,
            now
        ],
    )
    .context("Queueing a follow-up")?;
    let when = if due == i64::MAX {
        "never (no business hours ahead)".to_string()
    } else {
        crate::sla::to_ts(due).to_string()
    };
    note_event(
        tx,
        ticket_id,
        followup_event(kind, Happened::Queued),
        now,
        None,
        &format!("due {when}"),
    )
}

/// Cancel the pending follow-ups of one kind, keeping the reason; returns how many.
pub(super) fn cancel_followup(
    tx: &Connection,
    ticket_id: i64,
    kind: Followup,
    reason: &str,
    now: i64,
) -> Result<usize> {
    let pending = tx
        .prepare_cached(
            "UPDATE outbox SET state = 'cancelled', last_error = ?3, updated_at = ?4
             WHERE ticket_id = ?1 AND kind = ?2 AND state = 'pending'",
        )?
        .execute(params![ticket_id, kind, reason, now])
        .context("Cancelling a follow-up")?;
    // One the outbox holds right now cannot be stopped mid-send; if that attempt does not
    // deliver it, it is cancelled instead of going back in the queue.
    let in_flight = tx
        .prepare_cached(
            "UPDATE outbox SET cancel_reason = ?3, updated_at = ?4
             WHERE ticket_id = ?1 AND kind = ?2 AND state = 'sending' AND cancel_reason = ''",
        )?
        .execute(params![ticket_id, kind, reason, now])
        .context("Cancelling a follow-up being sent")?;
    let n = pending + in_flight;
    if n > 0 {
        note_event(
            tx,
            ticket_id,
            followup_event(kind, Happened::Cancelled),
            now,
            None,
            reason,
        )?;
    }
    Ok(n)
}

/// What happened to a follow-up, for its line in the ticket's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Happened {
    Queued,
    Withheld,
    Sent,
    Cancelled,
}

/// The event name for something that happened to a follow-up: `verify_sent`, ...
pub(super) fn followup_event(f: Followup, what: Happened) -> &'static str {
    use Followup::{Holding, Survey, Verify};
    use Happened::{Cancelled, Queued, Sent, Withheld};
    match (f, what) {
        (Holding, Sent) => "holding_sent",
        (Verify, Sent) => "verify_sent",
        (Survey, Sent) => "survey_sent",
        (Holding, Queued) => "holding_queued",
        (Verify, Queued) => "verify_queued",
        (Survey, Queued) => "survey_queued",
        (Holding, Withheld) => "holding_withheld",
        (Verify, Withheld) => "verify_withheld",
        (Survey, Withheld) => "survey_withheld",
        (Holding, Cancelled) => "holding_cancelled",
        (Verify, Cancelled) => "verify_cancelled",
        (Survey, Cancelled) => "survey_cancelled",
    }
}
