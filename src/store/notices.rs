//! Staff mail in the store: digests, alerts and health notes queued durably (each once, by a
//! unique key), claimed and recorded by the outbox like customer mail; health incidents; and
//! the reads a digest and the health monitor need.

use std::collections::HashMap;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::rows::list_column;
use super::{OutboxKind, Store};
use crate::alerts::{AlertConfig, AlertFacts, Condition, Incident};
use crate::digest::{HitFact, OutFact, QuietHours, Snapshot, ThemeEmail, TicketFacts};
use crate::score::Priority;
use crate::tickets::State;

/// A staff email to queue.
#[derive(Debug, Clone)]
pub struct NewNotice<'a> {
    pub kind: &'a str,
    /// Unique: a second notice with the same key is not queued.
    pub key: String,
    pub recipients: &'a [String],
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    pub due_at: i64,
}

/// Staff mail claimed for sending: one row, or several alerts that go out together.
#[derive(Debug, Clone)]
pub struct ClaimedNotice {
    pub ids: Vec<i64>,
    pub kind: String,
    /// Of the first row; the email's Message-ID is made from it.
    pub key: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Alerts: the facts of each, rendered now.
    pub alerts: Vec<AlertFacts>,
    /// Some alert waited (rate limit or quiet hours).
    pub held: bool,
    /// Of the first row, this attempt included.
    pub attempts: u32,
    /// Of each row (same order as `ids`), this attempt included: an alert that joined a batch
    /// late has its own budget.
    pub row_attempts: Vec<u32>,
    /// When the first row was queued (seconds): with its id, makes the Message-ID unique even
    /// across a new store.
    pub created_at: i64,
}

/// A notice as tests and tools see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRow {
    pub id: i64,
    pub kind: String,
    pub key: String,
    pub state: String,
    pub subject: String,
    pub due_at: i64,
    pub sent_at: i64,
    pub last_error: String,
}

/// What the health monitor reads from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthFacts {
    /// Outbox rows and notices due and not sent.
    pub due: i64,
    /// The oldest due time among them.
    pub oldest_due: Option<i64>,
    /// When the last email not written by staff or a robot was processed.
    pub last_mail: Option<i64>,
    /// Acknowledgements held for staff (they looked like a mail loop) and queued since the
    /// given time: undecided, and still young enough to be sent.
    pub held: i64,
    /// Why the latest of them is held, in words.
    pub held_why: Option<String>,
}

/// Queue the alert for a ticket to staff `to`, once per ticket. Returns whether it was new.
pub(super) fn queue_alert(
    tx: &rusqlite::Transaction<'_>,
    ticket_id: i64,
    facts: &AlertFacts,
    to: &[String],
    cfg: &AlertConfig,
    now: i64,
) -> Result<bool> {
    let due = cfg.quiet.as_ref().map_or(now, |q| q.defer(now));
    let n = tx
        .prepare_cached(
            "INSERT INTO notices (kind, key, recipients, detail, ticket_id, due_at, created_at, updated_at)
             VALUES ('alert', ?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(key) DO NOTHING",
        )
        .context("Preparing alert insert")?
        .execute(params![
            format!("alert:{}", facts.ticket),
            to.join(","),
            serde_json::to_string(facts).context("Encoding alert")?,
            ticket_id,
            due,
            now
        ])
        .context("Queuing alert")?;
    Ok(n == 1)
}

fn insert_notice(
    tx: &rusqlite::Transaction<'_>,
    n: &NewNotice<'_>,
    state: &str,
    now: i64,
) -> Result<bool> {
    let changed = tx
        .execute(
            "INSERT INTO notices (kind, key, recipients, subject, body_text, body_html, due_at, state,
                                  created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT(key) DO NOTHING",
            params![
                n.kind,
                n.key,
                n.recipients.join(","),
                n.subject,
                n.text,
                n.html,
                n.due_at,
                state,
                now
            ],
        )
        .context("Queuing staff mail")?;
    Ok(changed == 1)
}

/// The store key of a digest's last slot.
fn digest_kv(name: &str) -> String {
    format!("digest.{name}.last_slot")
}

impl Store {
    /// Queue one staff email unless its key was queued before. Returns whether it was new.
    pub fn queue_notice(&mut self, n: &NewNotice<'_>, now: i64) -> Result<bool> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        let new = insert_notice(&tx, n, "pending", now)?;
        tx.commit().context("Committing staff mail")?;
        Ok(new)
    }

    /// Record staff mail that the caller sends itself, already claimed (`sending`), so no
    /// outbox picks it up. `None` if the key exists.
    pub fn begin_notice(&mut self, n: &NewNotice<'_>, now: i64) -> Result<Option<i64>> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        if !insert_notice(&tx, n, "sending", now)? {
            return Ok(None);
        }
        let id = tx.last_insert_rowid();
        tx.execute("UPDATE notices SET attempts = 1 WHERE id = ?1", [id])
            .context("Claiming staff mail")?;
        tx.commit().context("Committing staff mail")?;
        Ok(Some(id))
    }

    /// A digest's first start: count its slots from `now` (nothing older is sent).
    pub fn record_first_start(&self, name: &str, now: i64) -> Result<()> {
        self.set_kv(&digest_kv(name), &now.to_string())
    }

    /// The slot of the digest `name` that was last produced (sent or found empty).
    pub fn digest_last_slot(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.get_kv(&digest_kv(name))?.and_then(|v| v.parse().ok()))
    }

    /// Record that the digest `name` for `slot` was produced: queued (`Some`) or not sent
    /// because it was empty (`None`, kept as an `empty` row). Both in one transaction, so a
    /// slot is done exactly once. Returns whether it was new.
    pub fn record_digest(
        &mut self,
        name: &str,
        slot: i64,
        mail: Option<&NewNotice<'_>>,
        empty: &NewNotice<'_>,
        now: i64,
    ) -> Result<bool> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        let new = match mail {
            Some(m) => insert_notice(&tx, m, "pending", now)?,
            None => insert_notice(&tx, empty, "empty", now)?,
        };
        tx.execute(
            "INSERT INTO kv (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE
             SET value = CAST(max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
            params![digest_kv(name), slot.to_string()],
        )
        .context("Recording the digest slot")?;
        tx.commit().context("Committing digest")?;
        Ok(new)
    }

    /// The earliest due time of pending staff mail.
    pub fn notice_due_at(&self) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT min(due_at) FROM notices WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .context("Reading staff mail due time")
    }

    /// Claim the next staff email that is due: a digest or health note, or every due alert
    /// at once. Alerts beyond `alerts_per_hour` emails in the last hour wait (their due time
    /// moves to when the hour frees up) and then go out together.
    ///
    /// Alerts and health notes falling due in `quiet` hours (a retry, the end of a rate-limit
    /// wait) are moved to their end.
    pub fn claim_notice(
        &mut self,
        now: i64,
        alerts_per_hour: u32,
        quiet: Option<&QuietHours>,
    ) -> Result<Option<ClaimedNotice>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("Starting transaction")?;
        if let Some(end) = quiet.and_then(|q| q.until(now)) {
            tx.execute(
                "UPDATE notices SET due_at = ?2, updated_at = ?1
                 WHERE kind IN ('alert', 'health') AND state = 'pending' AND due_at <= ?1",
                params![now, end],
            )
            .context("Holding alerts for quiet hours")?;
        }
        let claimed = match claim_alerts(&tx, now, alerts_per_hour)? {
            Some(alerts) => Some(alerts),
            None => claim_one(&tx, now)?,
        };
        tx.commit().context("Committing claim")?;
        Ok(claimed)
    }

    /// Record an accepted send of staff mail (and log it for the rate limits, as a negative id).
    pub fn notice_sent(&mut self, ids: &[i64], now_ms: i64) -> Result<()> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        for id in ids {
            tx.execute(
                "UPDATE notices SET state = 'sent', sent_at = ?2, updated_at = ?2, last_error = '' WHERE id = ?1",
                params![id, now_ms / 1000],
            )
            .context("Marking staff mail sent")?;
        }
        if let Some(first) = ids.first() {
            tx.execute(
                "INSERT INTO send_log (at_ms, outbox_id) VALUES (?1, ?2)",
                params![now_ms, -first],
            )
            .context("Logging the send")?;
        }
        tx.commit().context("Committing sent state")
    }

    /// Put claimed staff mail back for another try at `due_at` (all rows or none).
    pub fn notice_retry(&mut self, ids: &[i64], due_at: i64, error: &str, now: i64) -> Result<()> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        for id in ids {
            tx.execute(
                "UPDATE notices SET state = 'pending', due_at = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, due_at, error, now],
            )
            .context("Scheduling staff mail retry")?;
        }
        tx.commit().context("Committing staff mail retry")
    }

    /// Put claimed staff mail back for `due_at` without counting this attempt against it (our
    /// SMTP account was refused, or the provider pushed back; the email itself is fine).
    pub fn notice_deferred(
        &mut self,
        ids: &[i64],
        due_at: i64,
        error: &str,
        now: i64,
    ) -> Result<()> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        for id in ids {
            tx.execute(
                "UPDATE notices SET state = 'pending', due_at = ?2, last_error = ?3, updated_at = ?4,
                        attempts = max(attempts - 1, 0)
                 WHERE id = ?1",
                params![id, due_at, error, now],
            )
            .context("Deferring staff mail")?;
        }
        tx.commit().context("Committing staff mail deferral")
    }

    /// Give up on claimed staff mail (all rows or none).
    pub fn notice_failed(&mut self, ids: &[i64], error: &str, now: i64) -> Result<()> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        for id in ids {
            tx.execute(
                "UPDATE notices SET state = 'failed', last_error = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, error, now],
            )
            .context("Marking staff mail failed")?;
        }
        tx.commit().context("Committing staff mail failure")
    }

    /// Staff mail, newest first, optionally of one kind.
    pub fn notices(&self, kind: Option<&str>) -> Result<Vec<NoticeRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, kind, key, state, subject, due_at, sent_at, last_error FROM notices
                 WHERE ?1 IS NULL OR kind = ?1 ORDER BY id DESC",
            )
            .context("Preparing staff mail list")?;
        let rows = stmt
            .query_map([kind], |r| {
                Ok(NoticeRow {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    key: r.get(2)?,
                    state: r.get(3)?,
                    subject: r.get(4)?,
                    due_at: r.get(5)?,
                    sent_at: r.get(6)?,
                    last_error: r.get(7)?,
                })
            })
            .context("Listing staff mail")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("Listing staff mail")?;
        Ok(rows)
    }

    /// Incidents not yet resolved.
    pub fn open_incidents(&self) -> Result<Vec<Incident>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, condition, started_at, detail FROM incidents WHERE resolved_at = 0 ORDER BY id")
            .context("Preparing incidents")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .context("Reading incidents")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("Reading incidents")?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, c, started_at, detail)| {
                let Some(condition) = Condition::parse(&c) else {
                    // Not one this version knows (a row from another version): said, left open.
                    tracing::warn!(incident = id, condition = %c, "An open incident of a condition this version does not know is left as it is");
                    return None;
                };
                Some(Incident {
                    id,
                    condition,
                    started_at,
                    detail,
                })
            })
            .collect())
    }

    /// Open an incident and queue its alert, in one transaction. `mail.key` is ignored: the
    /// key is made from the new incident's id.
    pub fn open_incident(
        &mut self,
        condition: Condition,
        since: i64,
        detail: &str,
        mail: &NewNotice<'_>,
        now: i64,
    ) -> Result<i64> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        tx.execute(
            "INSERT INTO incidents (condition, started_at, detail) VALUES (?1, ?2, ?3)",
            params![condition.key(), since, detail],
        )
        .context("Opening incident")?;
        let id = tx.last_insert_rowid();
        let mail = NewNotice {
            key: format!("health:{id}:open"),
            ..mail.clone()
        };
        insert_notice(&tx, &mail, "pending", now)?;
        tx.commit().context("Committing incident")?;
        Ok(id)
    }

    /// Resolve an incident and queue its recovery note, in one transaction.
    pub fn resolve_incident(&mut self, id: i64, mail: &NewNotice<'_>, now: i64) -> Result<()> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        tx.execute(
            "UPDATE incidents SET resolved_at = ?2 WHERE id = ?1 AND resolved_at = 0",
            params![id, now],
        )
        .context("Resolving incident")?;
        let mail = NewNotice {
            key: format!("health:{id}:resolved"),
            ..mail.clone()
        };
        insert_notice(&tx, &mail, "pending", now)?;
        tx.commit().context("Committing recovery")
    }

    /// What the health monitor looks at: the backlog, the last email, acknowledgements held
    /// since `held_since`.
    pub fn health_facts(&self, now: i64, held_since: i64) -> Result<HealthFacts> {
        let (due, oldest_due): (i64, Option<i64>) = self
            .conn
            .query_row(
                "SELECT count(*), min(due_at) FROM (
                     SELECT due_at FROM outbox WHERE state = 'pending' AND due_at <= ?1
                     UNION ALL SELECT due_at FROM notices WHERE state = 'pending' AND due_at <= ?1)",
                [now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .context("Measuring the backlog")?;
        let last_mail: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(processed_at) FROM messages WHERE role != 'staff' AND role != 'robot'",
                [],
                |r| r.get(0),
            )
            .context("Reading the last email")?;
        let (held, latest): (i64, Option<i64>) = self
            .conn
            .query_row(
                "SELECT count(*), max(id) FROM outbox WHERE state = 'held' AND created_at > ?1",
                [held_since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .context("Counting held acknowledgements")?;
        let held_why = match latest {
            Some(id) => Some(
                self.conn
                    .query_row("SELECT last_error FROM outbox WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .context("Reading a held acknowledgement")?,
            ),
            None => None,
        };
        Ok(HealthFacts {
            due,
            oldest_due,
            last_mail,
            held,
            held_why,
        })
    }

    /// Everything a digest at `now` reads: tickets waiting for staff, tickets with follow-ups
    /// pending or anything that failed since `since`, and customer emails since
    /// `messages_since` with their themes (`rule_themes`: rule id -> theme, for rules without
    /// an intent). Contacts are counted back to `contacts_since`.
    pub fn digest_snapshot(
        &self,
        since: i64,
        messages_since: i64,
        contacts_since: i64,
        rule_themes: &HashMap<String, String>,
    ) -> Result<Snapshot> {
        let tickets = digest_tickets(&self.conn, since)?
            .into_iter()
            .map(|head| ticket_facts(&self.conn, head, since, contacts_since))
            .collect::<Result<_>>()?;
        let messages = theme_emails(&self.conn, messages_since, rule_themes)?;
        Ok(Snapshot { tickets, messages })
    }
}

/// Every due alert, claimed as one email; `None` when none is due, or when the alert emails of
/// the last hour reached `per_hour` (the due ones then wait until the hour frees up).
fn claim_alerts(
    tx: &rusqlite::Transaction<'_>,
    now: i64,
    per_hour: u32,
) -> Result<Option<ClaimedNotice>> {
    let due: i64 = tx
        .query_row(
            "SELECT count(*) FROM notices WHERE kind = 'alert' AND state = 'pending' AND due_at <= ?1",
            [now],
            |r| r.get(0),
        )
        .context("Counting due alerts")?;
    if due == 0 {
        return Ok(None);
    }
    let (sent, first): (i64, Option<i64>) = tx
        .query_row(
            "SELECT count(DISTINCT batch), min(sent_at) FROM notices
             WHERE kind = 'alert' AND state = 'sent' AND sent_at > ?1",
            [now - 3600],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("Counting alert emails")?;
    if sent >= i64::from(per_hour) {
        let free_at = first.unwrap_or(now) + 3600;
        tx.execute(
            "UPDATE notices SET due_at = ?2, updated_at = ?1,
                    last_error = 'waiting for the alert rate limit'
             WHERE kind = 'alert' AND state = 'pending' AND due_at <= ?1",
            params![now, free_at.max(now + 1)],
        )
        .context("Holding alerts back")?;
        return Ok(None);
    }
    let mut rows = due_alerts(tx, now)?;
    let Some(recipients) = rows.first().map(|r| r.recipients.clone()) else {
        return Ok(None);
    };
    // One email goes to one set of staff: alerts for a team with its own `alert_to` go
    // apart from the rest (the next claim takes them).
    rows.retain(|r| r.recipients == recipients);
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let batch = first.id;
    let mut alerts = Vec::new();
    let mut held = false;
    for a in &rows {
        // Moved later before any attempt: rate limit or quiet hours (a retry after an SMTP
        // error moves it too, but is not "held").
        held |= a.attempts == 0 && a.due_at > a.created_at;
        match serde_json::from_str::<AlertFacts>(&a.detail) {
            Ok(f) => alerts.push(f),
            Err(e) => {
                tracing::error!(notice = a.id, error = %e, "Unreadable alert facts; sending the others")
            }
        }
        tx.execute(
            "UPDATE notices SET state = 'sending', attempts = attempts + 1, batch = ?2, updated_at = ?3
             WHERE id = ?1",
            params![a.id, batch, now],
        )
        .context("Claiming alert")?;
    }
    Ok(Some(ClaimedNotice {
        ids: rows.iter().map(|r| r.id).collect(),
        kind: "alert".into(),
        key: first.key.clone(),
        recipients: list_column(&first.recipients),
        subject: String::new(),
        text: String::new(),
        html: String::new(),
        alerts,
        held,
        attempts: first.attempts + 1,
        row_attempts: rows.iter().map(|r| r.attempts + 1).collect(),
        created_at: first.created_at,
    }))
}

/// A due alert, as it waits in `notices`.
struct DueAlert {
    id: i64,
    key: String,
    recipients: String,
    /// Its facts (JSON), rendered when sent.
    detail: String,
    due_at: i64,
    created_at: i64,
    attempts: u32,
}

fn due_alerts(tx: &rusqlite::Transaction<'_>, now: i64) -> Result<Vec<DueAlert>> {
    let mut stmt = tx
        .prepare(
            "SELECT id, key, recipients, detail, due_at, created_at, attempts FROM notices
             WHERE kind = 'alert' AND state = 'pending' AND due_at <= ?1 ORDER BY id",
        )
        .context("Preparing alert claim")?;
    stmt.query_map([now], |r| {
        Ok(DueAlert {
            id: r.get(0)?,
            key: r.get(1)?,
            recipients: r.get(2)?,
            detail: r.get(3)?,
            due_at: r.get(4)?,
            created_at: r.get(5)?,
            attempts: r.get(6)?,
        })
    })
    .context("Reading alerts")?
    .collect::<rusqlite::Result<_>>()
    .context("Reading alerts")
}

/// The next due digest or health note (health first), claimed.
fn claim_one(tx: &rusqlite::Transaction<'_>, now: i64) -> Result<Option<ClaimedNotice>> {
    let row = tx
        .query_row(
            "SELECT id, kind, key, recipients, subject, body_text, body_html, attempts, created_at FROM notices
             WHERE kind != 'alert' AND state = 'pending' AND due_at <= ?1
             ORDER BY CASE kind WHEN 'health' THEN 0 ELSE 1 END, due_at, id LIMIT 1",
            [now],
            |r| {
                Ok(ClaimedNotice {
                    ids: vec![r.get(0)?],
                    kind: r.get(1)?,
                    key: r.get(2)?,
                    recipients: list_column(&r.get::<_, String>(3)?),
                    subject: r.get(4)?,
                    text: r.get(5)?,
                    html: r.get(6)?,
                    alerts: Vec::new(),
                    held: false,
                    attempts: r.get::<_, u32>(7)? + 1,
                    row_attempts: vec![r.get::<_, u32>(7)? + 1],
                    created_at: r.get(8)?,
                })
            },
        )
        .optional()
        .context("Reading staff mail")?;
    if let Some(n) = &row {
        tx.execute(
            "UPDATE notices SET state = 'sending', attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
            params![n.ids[0], now],
        )
        .context("Claiming staff mail")?;
    }
    Ok(row)
}

/// A ticket a digest shows, as its row says.
struct DigestTicket {
    id: i64,
    tag: String,
    customer: String,
    subject: String,
    state: State,
    priority: Priority,
    created_at: i64,
    first_response_at: i64,
    last_customer_at: i64,
    team: String,
}

/// The tickets a digest shows: waiting for staff, with follow-ups pending, or with anything
/// that failed or bounced since `since`.
fn digest_tickets(c: &Connection, since: i64) -> Result<Vec<DigestTicket>> {
    let mut stmt = c
        .prepare(
            "SELECT t.id, t.tag, t.customer, t.subject, t.state, t.priority, t.created_at,
                    t.first_response_at, t.last_customer_at, t.team
             FROM tickets t
             WHERE t.state IN ('new', 'acknowledged', 'reopened')
                OR t.id IN (SELECT ticket_id FROM outbox
                            WHERE (kind != 'ack' AND state = 'pending')
                               OR (state IN ('failed', 'uncertain') AND updated_at >= ?1))
                OR t.id IN (SELECT ticket_id FROM ticket_events WHERE event = 'bounced' AND at >= ?1)
             ORDER BY t.id",
        )
        .context("Preparing digest tickets")?;
    stmt.query_map([since], |r| {
        Ok(DigestTicket {
            id: r.get(0)?,
            tag: r.get(1)?,
            customer: r.get(2)?,
            subject: r.get(3)?,
            state: r.get(4)?,
            priority: r.get(5)?,
            created_at: r.get(6)?,
            first_response_at: r.get(7)?,
            last_customer_at: r.get(8)?,
            team: r.get(9)?,
        })
    })
    .context("Reading digest tickets")?
    .collect::<rusqlite::Result<_>>()
    .context("Reading digest tickets")
}

/// A customer's email in a ticket, as a digest reads it.
struct CustomerEmail {
    row: i64,
    sender_name: String,
    tones: String,
    intents: String,
    excerpt: String,
}

/// What a digest says of one ticket: its customer's emails (tones and intents of all, the
/// latest's hits and excerpt), how often the customer wrote, and what waits or went wrong.
fn ticket_facts(
    c: &Connection,
    t: DigestTicket,
    since: i64,
    contacts_since: i64,
) -> Result<TicketFacts> {
    // The customer's emails in this ticket, newest first.
    let emails: Vec<CustomerEmail> = c
        .prepare_cached(
            "SELECT id, sender_name, tones, intents, excerpt FROM messages
             WHERE ticket_id = ?1 AND sender = ?2 AND status = 'triaged' AND role IN ('customer', '')
             ORDER BY received_at DESC, id DESC",
        )
        .context("Preparing ticket emails")?
        .query_map(params![t.id, t.customer], |r| {
            Ok(CustomerEmail {
                row: r.get(0)?,
                sender_name: r.get(1)?,
                tones: r.get(2)?,
                intents: r.get(3)?,
                excerpt: r.get(4)?,
            })
        })
        .context("Reading ticket emails")?
        .collect::<rusqlite::Result<_>>()
        .context("Reading ticket emails")?;
    let union = |of: fn(&CustomerEmail) -> &str| {
        let mut v: Vec<String> = emails.iter().flat_map(|e| list_column(of(e))).collect();
        v.sort();
        v.dedup();
        v
    };
    let latest = emails.first();
    let hits = match latest {
        Some(e) => hits_of(c, e.row)?,
        None => Vec::new(),
    };
    let contacts: Vec<i64> = c
        .prepare_cached(
            "SELECT received_at FROM messages
             WHERE sender = ?1 AND status = 'triaged' AND role IN ('customer', '') AND received_at >= ?2
             ORDER BY received_at",
        )
        .context("Preparing contacts")?
        .query_map(params![t.customer, contacts_since], |r| r.get(0))
        .context("Reading contacts")?
        .collect::<rusqlite::Result<_>>()
        .context("Reading contacts")?;
    let (followups, failed_deliveries) = ticket_trouble(c, t.id, since)?;
    Ok(TicketFacts {
        tag: t.tag,
        customer_name: latest.map(|e| e.sender_name.clone()).unwrap_or_default(),
        customer: t.customer,
        subject: t.subject,
        state: t.state,
        priority: t.priority,
        created_at: t.created_at,
        first_response_at: t.first_response_at,
        last_customer_at: t.last_customer_at,
        team: t.team,
        tones: union(|e| &e.tones),
        intents: union(|e| &e.intents),
        hits,
        excerpt: latest.map(|e| e.excerpt.clone()).unwrap_or_default(),
        contacts,
        followups,
        failed_deliveries,
    })
}

/// The rule hits of the email `row`, strongest first.
fn hits_of(c: &Connection, row: i64) -> Result<Vec<HitFact>> {
    c.prepare_cached(
        "SELECT rule, matched, weight FROM hits WHERE message_row = ?1 ORDER BY weight DESC, rowid",
    )
    .context("Preparing hits")?
    .query_map([row], |r| {
        Ok(HitFact {
            rule: r.get(0)?,
            matched: r.get(1)?,
            weight: r.get(2)?,
        })
    })
    .context("Reading hits")?
    .collect::<rusqlite::Result<_>>()
    .context("Reading hits")
}

/// A ticket's follow-ups that wait or failed, and its deliveries that failed (an
/// acknowledgement, or a bounce) since `since`.
fn ticket_trouble(c: &Connection, id: i64, since: i64) -> Result<(Vec<OutFact>, Vec<OutFact>)> {
    let out: Vec<(OutboxKind, String, i64, String)> = c
        .prepare_cached(
            "SELECT kind, state, due_at, last_error FROM outbox
             WHERE ticket_id = ?1 AND ((kind != 'ack' AND state = 'pending')
                OR (state IN ('failed', 'uncertain') AND updated_at >= ?2))
             ORDER BY id",
        )
        .context("Preparing ticket outbox")?
        .query_map(params![id, since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .context("Reading ticket outbox")?
        .collect::<rusqlite::Result<_>>()
        .context("Reading ticket outbox")?;
    let mut followups = Vec::new();
    let mut failed_deliveries = Vec::new();
    for (kind, state, due_at, error) in out {
        let fact = OutFact {
            kind: kind.as_str().to_string(),
            state,
            due_at,
            error,
        };
        // An acknowledgement that failed is a delivery problem; a follow-up that failed or
        // waits is a follow-up matter.
        match kind {
            OutboxKind::Ack => failed_deliveries.push(fact),
            OutboxKind::Followup(_) => followups.push(fact),
        }
    }
    let bounces: Vec<(i64, String)> = c
        .prepare_cached(
            "SELECT at, detail FROM ticket_events WHERE ticket_id = ?1 AND event = 'bounced' AND at >= ?2",
        )
        .context("Preparing bounces")?
        .query_map(params![id, since], |r| Ok((r.get(0)?, r.get(1)?)))
        .context("Reading bounces")?
        .collect::<rusqlite::Result<_>>()
        .context("Reading bounces")?;
    for (at, detail) in bounces {
        failed_deliveries.push(OutFact {
            kind: "email".into(),
            state: "bounced".into(),
            due_at: at,
            error: detail,
        });
    }
    Ok((followups, failed_deliveries))
}

/// Customer emails since `since` (those that opened or joined a ticket as the customer), each
/// with its themes: its intents, and the themes of the rules it hit (`rule_themes`); its
/// ticket's team; and whether staff corrected its verdict (the digest's corrections line).
fn theme_emails(
    c: &Connection,
    since: i64,
    rule_themes: &HashMap<String, String>,
) -> Result<Vec<ThemeEmail>> {
    // Whether staff corrected it: a probe of the index of corrections in force.
    let emails: Vec<(i64, i64, String, String, bool)> = c
        .prepare(
            "SELECT m.id, m.received_at, m.intents, t.team,
                    EXISTS (SELECT 1 FROM corrections c WHERE c.message_row = m.id AND c.undone_at = 0)
             FROM messages m JOIN tickets t ON t.id = m.ticket_id
             WHERE m.status = 'triaged' AND m.sender = t.customer AND m.role IN ('customer', '')
               AND m.received_at >= ?1",
        )
        .context("Preparing theme emails")?
        .query_map([since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .context("Reading theme emails")?
        .collect::<rusqlite::Result<_>>()
        .context("Reading theme emails")?;
    let mut hits = c
        .prepare_cached("SELECT rule FROM hits WHERE message_row = ?1")
        .context("Preparing theme hits")?;
    let mut messages = Vec::with_capacity(emails.len());
    for (row, at, intents, team, corrected) in emails {
        let mut themes = list_column(&intents);
        if !rule_themes.is_empty() {
            let rules: Vec<String> = hits
                .query_map([row], |r| r.get(0))
                .context("Reading theme hits")?
                .collect::<rusqlite::Result<_>>()
                .context("Reading theme hits")?;
            themes.extend(rules.iter().filter_map(|r| rule_themes.get(r).cloned()));
        }
        themes.sort();
        themes.dedup();
        messages.push(ThemeEmail {
            at,
            themes,
            team,
            corrected,
        });
    }
    Ok(messages)
}
