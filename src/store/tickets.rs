//! Tickets and their history: the lists `triaged tickets` and the status page show, one
//! ticket with its events, the staff commands from the command line, snoozes that end; and the
//! steps of the per-email transaction that read and write a ticket. Where a ticket goes is
//! decided by [`crate::tickets`]; this file reads what it needs and writes what it returns.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::followups::{Because, schedule_followups};
use super::{Policy, Store, sql_limit};
use crate::score::Priority;
use crate::tickets::{self, Command, Event, Joined, Reroute, State, TicketWrite};

/// A ticket as `triaged tickets` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TicketRow {
    pub tag: String,
    pub state: State,
    pub priority: Priority,
    pub customer: String,
    pub subject: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// 0 when staff have not answered yet.
    pub first_response_at: i64,
    pub snoozed_until: i64,
    /// When the customer last wrote.
    pub last_customer_at: i64,
    pub messages: i64,
    /// Intents of the ticket's emails, comma-separated, deduplicated.
    pub intents: String,
    /// The team it is with (`[[team]]` name; empty: none).
    pub team: String,
    /// Why: the evidence that routed it, or who re-routed it.
    pub route_reason: String,
}

/// Which tickets a list shows: every filter given must match.
#[derive(Debug, Clone, Copy, Default)]
pub struct TicketFilter<'a> {
    /// One of these states (empty: any).
    pub states: &'a [State],
    pub priority: Option<Priority>,
    /// With this team (`[[team]]` name).
    pub team: Option<&'a str>,
}

/// The clarifying questions asked of one of a ticket's emails (`[[ask]]` ids).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AskedEmail {
    pub received_at: i64,
    pub subject: String,
    pub asks: Vec<String>,
}

/// What a staff command did to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Close, snooze, reopen: the ticket's state after it.
    State(State),
    /// A re-route (`#team`, `triaged ticket route`): what it did, to which team, from which
    /// (empty: none).
    Team {
        outcome: Reroute,
        team: String,
        was: String,
    },
    /// A correction (`#priority`, `#tone`): whether it changed a label (false: the ticket has
    /// no customer email with a verdict, or staff said what was in force already).
    Relabeled { corrected: bool },
}

/// Some of the ticket list, and how many tickets match in all.
#[derive(Debug, Clone)]
pub struct TicketList {
    pub rows: Vec<TicketRow>,
    pub total: i64,
}

/// Open tickets: the first ones of each priority, and how many are open per priority.
#[derive(Debug, Clone)]
pub struct OpenTicketList {
    /// Most urgent first, oldest first within a priority.
    pub rows: Vec<TicketRow>,
    /// Every priority, 0 when none is open.
    pub open: std::collections::BTreeMap<Priority, i64>,
}

/// One line of a ticket's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TicketEvent {
    pub at: i64,
    pub event: String,
    /// `None` for the line that opened the ticket.
    #[serde(serialize_with = "super::rows::state_or_empty")]
    pub from_state: Option<State>,
    pub to_state: State,
    pub detail: String,
    /// The email that caused it, if one did: its subject.
    pub subject: String,
}

impl Store {
    /// Tickets, most urgent and oldest first, only those `filter` lets through; at most
    /// `limit` (`None`: all). `total` counts every ticket that matches, listed or not.
    ///
    /// The order is an index's, so the list stops after `limit` rows instead of sorting the
    /// whole table; a filter is applied while walking it. A filter without closed tickets
    /// walks the open ones only (`tickets_open`), any other all of them (`tickets_rank`).
    /// Without a team the total is the kept counts'; with one it is counted by `tickets_team`.
    pub fn tickets(&self, filter: &TicketFilter<'_>, limit: Option<usize>) -> Result<TicketList> {
        let TicketFilter {
            states,
            priority,
            team,
        } = *filter;
        let in_states: Option<String> = (!states.is_empty()).then(|| {
            states
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        });
        let walk = if states.is_empty() || states.contains(&State::Closed) {
            "INDEXED BY tickets_rank WHERE"
        } else {
            "INDEXED BY tickets_open WHERE t.state != 'closed' AND"
        };
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{TICKET_COLUMNS} FROM tickets t {walk}
                     (?1 IS NULL OR instr(',' || ?1 || ',', ',' || t.state || ',') > 0)
                     AND (?2 IS NULL OR t.priority = ?2)
                     AND (?4 IS NULL OR t.team = ?4)
                 ORDER BY {TICKET_RANK}, t.created_at, t.id LIMIT ?3"
            ))
            .context("Preparing ticket list")?;
        let rows = stmt
            .query_map(
                params![in_states, priority, sql_limit(limit), team],
                ticket_row,
            )
            .context("Listing tickets")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("Listing tickets")?;
        let total = match team {
            None => self
                .ticket_counts()?
                .into_iter()
                .filter(|((state, p), _)| {
                    (states.is_empty() || states.contains(state))
                        && priority.is_none_or(|want| want == *p)
                })
                .map(|(_, n)| n)
                .sum(),
            Some(team) => self
                .conn
                .prepare_cached(
                    "SELECT count(*) FROM tickets t INDEXED BY tickets_team
                     WHERE t.team = ?1 AND t.team != ''
                       AND (?2 IS NULL OR instr(',' || ?2 || ',', ',' || t.state || ',') > 0)
                       AND (?3 IS NULL OR t.priority = ?3)",
                )
                .context("Preparing the team's count")?
                .query_row(params![team, in_states, priority], |r| r.get(0))
                .context("Counting the team's tickets")?,
        };
        Ok(TicketList { rows, total })
    }

    /// Tickets not closed: per priority, the oldest `per_priority`, most urgent first; and how
    /// many are open at each priority. Reads at most `4 * per_priority` rows, through the
    /// partial index of open tickets.
    pub fn open_tickets(&self, per_priority: usize) -> Result<OpenTicketList> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{TICKET_COLUMNS} FROM tickets t INDEXED BY tickets_open
                 WHERE t.state != 'closed' AND {TICKET_RANK} = ?1
                 ORDER BY t.created_at, t.id LIMIT ?2"
            ))
            .context("Preparing open tickets")?;
        let mut rows = Vec::new();
        for p in Priority::ALL {
            let listed = stmt
                .query_map(
                    params![tickets::rank(p), sql_limit(Some(per_priority))],
                    ticket_row,
                )
                .context("Listing open tickets")?;
            for r in listed {
                rows.push(r.context("Listing open tickets")?);
            }
        }
        Ok(OpenTicketList {
            rows,
            open: self.open_ticket_counts()?,
        })
    }

    /// One ticket (by tag, `T-1042`, or `1042`) and its history, oldest first.
    pub fn ticket(&self, tag: &str) -> Result<Option<(TicketRow, Vec<TicketEvent>)>> {
        let tag = tickets::normal_tag(tag);
        let row = self
            .conn
            .query_row(
                &format!("{TICKET_COLUMNS} FROM tickets t WHERE t.tag = ?1"),
                [&tag],
                ticket_row,
            )
            .optional()
            .context("Reading the ticket")?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.at, e.event, nullif(e.from_state, ''), e.to_state, e.detail, coalesce(m.subject, '')
                 FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
                 LEFT JOIN messages m ON m.id = e.message_row
                 WHERE t.tag = ?1 ORDER BY e.at, e.id",
            )
            .context("Preparing ticket history")?;
        let events = stmt
            .query_map([&tag], |r| {
                Ok(TicketEvent {
                    at: r.get(0)?,
                    event: r.get(1)?,
                    from_state: r.get(2)?,
                    to_state: r.get(3)?,
                    detail: r.get(4)?,
                    subject: r.get(5)?,
                })
            })
            .context("Reading ticket history")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("Reading ticket history")?;
        Ok(Some((row, events)))
    }

    /// The clarifying questions asked of ticket `tag`'s emails (those with any), oldest first.
    pub fn ticket_questions(&self, tag: &str) -> Result<Vec<AskedEmail>> {
        let tag = tickets::normal_tag(tag);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.received_at, m.subject, m.asks FROM messages m JOIN tickets t ON t.id = m.ticket_id
                 WHERE t.tag = ?1 AND m.asks != '' ORDER BY m.received_at, m.id",
            )
            .context("Preparing the ticket's questions")?;
        stmt.query_map([&tag], |r| {
            Ok(AskedEmail {
                received_at: r.get(0)?,
                subject: r.get(1)?,
                asks: super::rows::list_column(&r.get::<_, String>(2)?),
            })
        })
        .context("Reading the ticket's questions")?
        .collect::<rusqlite::Result<_>>()
        .context("Reading the ticket's questions")
    }

    /// Apply a staff command from the command line to ticket `tag`; returns what it did, or
    /// `None` when there is no such ticket. A re-route to a team `policy` does not know, or to
    /// the team the ticket is with, changes nothing and says so.
    pub fn ticket_command(
        &mut self,
        tag: &str,
        cmd: &Command,
        now: i64,
        who: &str,
        policy: &Policy,
    ) -> Result<Option<Applied>> {
        let tag = tickets::normal_tag(tag);
        let tx = self.conn.transaction().context("Starting transaction")?;
        let id: Option<i64> = tx
            .query_row("SELECT id FROM tickets WHERE tag = ?1", [&tag], |r| {
                r.get(0)
            })
            .optional()
            .context("Finding the ticket")?;
        let Some(id) = id else {
            return Ok(None);
        };
        let applied = apply_command(&tx, id, cmd, now, None, who, policy)?;
        tx.commit().context("Committing the ticket change")?;
        Ok(Some(applied))
    }

    /// Tickets whose snooze has ended by `now` wait for staff again (a `reopen` by "snooze
    /// ended", with what that does to follow-ups); returns their tags.
    pub fn wake_snoozed(&mut self, now: i64, policy: &Policy) -> Result<Vec<String>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("Starting transaction")?;
        let due: Vec<(i64, String)> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, tag FROM tickets
                     WHERE state = 'snoozed' AND snoozed_until > 0 AND snoozed_until <= ?1 ORDER BY id",
                )
                .context("Preparing snooze query")?;
            stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))
                .context("Reading snoozed tickets")?
                .collect::<rusqlite::Result<_>>()
                .context("Reading snoozed tickets")?
        };
        for (id, _) in &due {
            let (from, to) = ticket_event(&tx, *id, Event::Reopen, now, None, "snooze ended", 0)?;
            schedule_followups(
                &tx,
                *id,
                Some((Event::Reopen, from, to)),
                Because::default(),
                now,
                policy,
                now,
            )?;
        }
        tx.commit().context("Committing woken tickets")?;
        Ok(due.into_iter().map(|(_, tag)| tag).collect())
    }
}

/// Carry out a staff command on ticket `ticket_id` (by email: `message_row` is the email's
/// row): move it and apply the follow-up policy after it, or re-route it ([`reroute`]).
pub(super) fn apply_command(
    tx: &Connection,
    ticket_id: i64,
    cmd: &Command,
    now: i64,
    message_row: Option<i64>,
    who: &str,
    policy: &Policy,
) -> Result<Applied> {
    match cmd {
        Command::Team(team) => return reroute(tx, ticket_id, team, now, message_row, who, policy),
        Command::Relabel(r) => {
            // From an email (its row) or the command line.
            let source = if message_row.is_some() {
                crate::corrections::Source::EmailCommand
            } else {
                crate::corrections::Source::Cli
            };
            let done = super::corrections::relabel_in(
                tx,
                ticket_id,
                std::slice::from_ref(r),
                source,
                who,
                now,
            )?;
            return Ok(Applied::Relabeled {
                corrected: done.is_some(),
            });
        }
        _ => {}
    }
    let Some((event, until)) = tickets::command_event(cmd, now) else {
        return Ok(Applied::State(ticket_state(tx, ticket_id)?));
    };
    let (from, to) = ticket_event(tx, ticket_id, event, now, message_row, who, until)?;
    let change = Some((event, from, to));
    schedule_followups(tx, ticket_id, change, Because::default(), now, policy, now)?;
    Ok(Applied::State(to))
}

/// Re-route a ticket to `team` when a `[[team]]` has that name and the ticket is not with it
/// already ([`tickets::reroute`]): its team and route reason change, and a `routed` event
/// says from which team and by whom.
fn reroute(
    tx: &Connection,
    ticket_id: i64,
    team: &str,
    now: i64,
    message_row: Option<i64>,
    who: &str,
    policy: &Policy,
) -> Result<Applied> {
    let was: String = tx
        .prepare_cached("SELECT team FROM tickets WHERE id = ?1")?
        .query_row([ticket_id], |r| r.get(0))
        .context("Reading the ticket's team")?;
    let outcome = tickets::reroute(&was, team, policy.teams.keys().map(String::as_str));
    if outcome == Reroute::Moves {
        tx.prepare_cached("UPDATE tickets SET team = ?2, route_reason = ?3 WHERE id = ?1")?
            .execute(params![
                ticket_id,
                team,
                tickets::rerouted_reason(&was, who)
            ])
            .context("Re-routing the ticket")?;
        let detail = tickets::rerouted_detail(team, &was, who);
        note_event(tx, ticket_id, "routed", now, message_row, &detail)?;
    }
    Ok(Applied::Team {
        outcome,
        team: team.to_string(),
        was,
    })
}

/// A ticket's priority as a rank, 0 (urgent) to 3 (low): the ticket lists' order
/// ([`tickets::rank`] in SQL). The same expression as the `tickets_open` and `tickets_rank`
/// indexes (SQLite uses an index on an expression only for that same expression; the
/// query-plan test checks it does). Migration 10's `CHECK` leaves the `ELSE` only `low`.
const TICKET_RANK: &str =
    "(CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END)";

/// The columns of a [`TicketRow`], of the ticket `t`: the email count and intents are read
/// only for the rows a list returns.
const TICKET_COLUMNS: &str =
    "SELECT t.tag, t.state, t.priority, t.customer, t.subject, t.created_at, t.updated_at,
            t.first_response_at, t.snoozed_until, t.last_customer_at,
            (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id),
            coalesce((SELECT group_concat(DISTINCT m.intents) FROM messages m
                      WHERE m.ticket_id = t.id AND m.intents != ''), ''),
            t.team, t.route_reason";

fn ticket_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TicketRow> {
    Ok(TicketRow {
        tag: r.get(0)?,
        state: r.get(1)?,
        priority: r.get(2)?,
        customer: r.get(3)?,
        subject: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        first_response_at: r.get(7)?,
        snoozed_until: r.get(8)?,
        last_customer_at: r.get(9)?,
        messages: r.get(10)?,
        intents: dedup_list(&r.get::<_, String>(11)?),
        team: r.get(12)?,
        route_reason: r.get(13)?,
    })
}

/// `a,b` + `b,c` -> `a,b,c` (order of first appearance).
fn dedup_list(joined: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for x in joined.split(',').filter(|x| !x.is_empty()) {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out.join(",")
}

fn event_name(e: Event) -> &'static str {
    match e {
        Event::CustomerWrote => "customer_wrote",
        Event::StaffReplied => "staff_replied",
        Event::AckSent => "ack_sent",
        Event::Close => "close",
        Event::Snooze => "snooze",
        Event::Reopen => "reopen",
    }
}

/// Move a ticket by `event` (the pure policy decides where to), keep the timestamps that go
/// with it, and log the change. Returns the state before and after.
pub(super) fn ticket_event(
    tx: &Connection,
    ticket_id: i64,
    event: Event,
    now: i64,
    message_row: Option<i64>,
    detail: &str,
    snooze_until: i64,
) -> Result<(State, State)> {
    let from = ticket_state(tx, ticket_id)?;
    let to = tickets::next_state(from, event);
    tx.prepare_cached(
        "UPDATE tickets SET state = ?2, updated_at = ?3,
                closed_at = CASE WHEN ?2 = 'closed' THEN ?3 ELSE closed_at END,
                snoozed_until = CASE WHEN ?2 = 'snoozed' THEN ?4 ELSE 0 END
         WHERE id = ?1",
    )?
    .execute(params![ticket_id, to, now, snooze_until])
    .context("Changing ticket state")?;
    log_event(
        tx,
        &EventLog {
            ticket_id,
            event: event_name(event),
            from: Some(from),
            to,
            at: now,
            message_row,
            detail,
        },
    )?;
    Ok((from, to))
}

/// Log something that happened to a ticket without changing its state (a follow-up queued,
/// sent or cancelled, a bounce, a survey answer).
pub(super) fn note_event(
    tx: &Connection,
    ticket_id: i64,
    event: &str,
    at: i64,
    message_row: Option<i64>,
    detail: &str,
) -> Result<()> {
    let state = ticket_state(tx, ticket_id)?;
    log_event(
        tx,
        &EventLog {
            ticket_id,
            event,
            from: Some(state),
            to: state,
            at,
            message_row,
            detail,
        },
    )
}

fn ticket_state(tx: &Connection, ticket_id: i64) -> Result<State> {
    tx.prepare_cached("SELECT state FROM tickets WHERE id = ?1")?
        .query_row([ticket_id], |r| r.get(0))
        .context("Reading ticket state")
}

/// One line of a ticket's history.
struct EventLog<'a> {
    ticket_id: i64,
    event: &'a str,
    from: Option<State>,
    to: State,
    at: i64,
    message_row: Option<i64>,
    detail: &'a str,
}

fn log_event(tx: &Connection, e: &EventLog<'_>) -> Result<()> {
    tx
        .prepare_cached("INSERT INTO ticket_events (ticket_id, at, event, from_state, to_state, message_row, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
        .execute(
        params![
            e.ticket_id,
            e.at,
            e.event,
            e.from.map_or("", State::as_str),
            e.to,
            e.message_row,
            e.detail
        ],
    )
    .context("Logging ticket event")?;
    Ok(())
}

// The per-email transaction's steps that read and write a ticket ([`super::record`]).

/// The ticket `id` as an email that joins it finds it.
pub(super) fn joined(tx: &Connection, id: i64) -> Result<Joined> {
    tx.prepare_cached(
        "SELECT t.state, t.priority,
                EXISTS (SELECT 1 FROM outbox o WHERE o.ticket_id = t.id AND o.kind = 'survey' AND o.state = 'sent')
         FROM tickets t WHERE t.id = ?1",
    )?
    .query_row([id], |r| {
        Ok(Joined {
            state: r.get(0)?,
            priority: r.get(1)?,
            survey_sent: r.get(2)?,
        })
    })
    .context("Reading the ticket the email joins")
}

/// Write what an email does to the ticket row ([`tickets::email_effect`]): open a ticket for
/// `customer`, or note the last word of either side in the ticket it `joins`. Returns the
/// ticket (id, tag), `None` when the email has none.
pub(super) fn write_ticket(
    tx: &Connection,
    write: TicketWrite,
    joins: Option<&(i64, String)>,
    customer: &str,
    subject: &str,
    now: i64,
) -> Result<Option<(i64, String)>> {
    match (write, joins) {
        (TicketWrite::Open(priority), _) => {
            open_ticket(tx, customer, subject, priority, now).map(Some)
        }
        (TicketWrite::None, _) | (_, None) => Ok(None),
        (TicketWrite::Join, Some(t)) => Ok(Some(t.clone())),
        (TicketWrite::CustomerWrote(priority), Some(t)) => {
            tx.prepare_cached(
                "UPDATE tickets SET updated_at = ?2, last_customer_at = ?2, priority = ?3 WHERE id = ?1",
            )?
            .execute(params![t.0, now, priority])
            .context("Updating ticket")?;
            // An escalation moves the ticket's queued mail up with it.
            super::outbox::rerank_queued(tx, t.0, priority)?;
            Ok(Some(t.clone()))
        }
        (TicketWrite::StaffWrote, Some(t)) => {
            tx.prepare_cached(
                "UPDATE tickets SET updated_at = ?2, last_staff_at = ?2,
                        first_response_at = CASE first_response_at WHEN 0 THEN ?2 ELSE first_response_at END
                 WHERE id = ?1",
            )?
            .execute(params![t.0, now])
            .context("Recording the staff reply")?;
            Ok(Some(t.clone()))
        }
    }
}

/// A new ticket, `new`, tagged after its id.
fn open_ticket(
    tx: &Connection,
    customer: &str,
    subject: &str,
    priority: Priority,
    now: i64,
) -> Result<(i64, String)> {
    let id: i64 = tx
        .query_row("SELECT coalesce(max(id), 0) + 1 FROM tickets", [], |r| {
            r.get(0)
        })
        .context("Allocating ticket id")?;
    let tag = tickets::tag_for(id);
    tx.execute(
        "INSERT INTO tickets (id, tag, customer, subject, state, priority, created_at, updated_at,
                              last_customer_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
        params![id, tag, customer, subject, State::New, priority, now],
    )
    .context("Opening ticket")?;
    Ok((id, tag))
}

/// Log that the email `message_row` from `sender` opened the ticket.
pub(super) fn log_opened(
    tx: &Connection,
    ticket_id: i64,
    now: i64,
    message_row: i64,
    sender: &str,
) -> Result<()> {
    log_event(
        tx,
        &EventLog {
            ticket_id,
            event: "opened",
            from: None,
            to: State::New,
            at: now,
            message_row: Some(message_row),
            detail: sender,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lists' SQL order is the core's ([`tickets::rank`]): the expression the indexes are
    /// made on cannot call Rust, so it spells the order again.
    #[test]
    fn the_lists_rank_priorities_as_the_core_does() {
        let conn = Connection::open_in_memory().expect("open");
        for p in Priority::ALL {
            let rank: i64 = conn
                .query_row(
                    &format!("SELECT {TICKET_RANK} FROM (SELECT ?1 AS priority) t"),
                    [p],
                    |r| r.get(0),
                )
                .expect("rank");
            assert_eq!(rank, tickets::rank(p), "{p:?}");
        }
    }
}
