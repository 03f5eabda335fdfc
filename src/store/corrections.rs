//! Staff corrections of verdicts (migration 12): the triage keywords staff changed in their
//! mail client, read back and recorded ([`Store::note_keywords`]); the `#priority` / `#tone`
//! email commands ([`relabel_in`], in the per-email transaction) and `triaged ticket relabel`
//! ([`Store::relabel`], [`Store::undo_relabel`]); the HIGHESTMODSEQ of each folder read with
//! CONDSTORE; emails staff moved into another priority's folder (migration 14:
//! [`Store::note_arrivals`], what was last seen of each priority folder, the daemon's own
//! filings); and the emails `triaged eval --store` compares the rules with staff on.
//!
//! What a change means is decided by [`crate::corrections`]; this file reads what it needs
//! and writes what it returns. A priority correction also sets the ticket's priority (it is
//! what staff said) and re-ranks what the ticket still has queued in the outbox (its
//! acknowledgement and follow-ups go out in the order of the new priority; an undo ranks
//! them back), and every correction made or undone is logged on the ticket
//! (`relabeled`, `relabel_undone`), so `triaged ticket show` lists it.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::Store;
use super::outbox::rerank_queued;
use super::tickets::note_event;
use crate::corrections::{self, Field, FolderMark, KeywordNames, Relabel, Shown, Source, Step};
use crate::score::Priority;

/// A correction made or undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noted {
    pub ticket: Option<String>,
    /// The email's row.
    pub message_row: i64,
    pub field: Field,
    /// The verdict's label (a priority, or tones comma-separated).
    pub verdict: String,
    /// The label in force before, and after.
    pub before: String,
    pub after: String,
    /// The verdict's label is back: the correction in force was undone.
    pub undone: bool,
}

/// What `triaged ticket relabel` changed: the email corrected and each change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relabeled {
    pub tag: String,
    /// The email's sender and subject (`None`: the ticket has no triaged email from its
    /// customer, so nothing could be corrected).
    pub email: Option<(String, String)>,
    /// Empty: every label was the one in force already (or nothing was in force to undo).
    pub changes: Vec<Noted>,
}

/// One email of the period `triaged eval --store` looks at: the verdict, and staff's labels
/// where staff corrected it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub priority: Priority,
    /// Tones, comma-separated.
    pub tones: String,
    pub staff_priority: Option<Priority>,
    pub staff_tones: Option<String>,
}

/// An email as its corrections need it.
struct Verdicted {
    row: i64,
    ticket_id: Option<i64>,
    tag: Option<String>,
    priority: Priority,
    tones: String,
}

impl Verdicted {
    fn verdict(&self, field: Field) -> String {
        match field {
            Field::Priority => self.priority.as_str().to_string(),
            Field::Tone => self.tones.clone(),
        }
    }

    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Verdicted> {
        Ok(Verdicted {
            row: r.get(0)?,
            ticket_id: r.get(1)?,
            tag: r.get(2)?,
            priority: r.get(3)?,
            tones: corrections::tone_set(r.get::<_, String>(4)?.split(',')),
        })
    }
}

/// The columns [`Verdicted::read`] reads, of the email `m` and its ticket `t`, and where
/// from.
const COLUMNS: &str = "m.id, m.ticket_id, t.tag, m.priority, m.tones";
const FROM: &str = "FROM messages m LEFT JOIN tickets t ON t.id = m.ticket_id";

/// How many of a folder's latest emails are re-read where the server has no CONDSTORE (and
/// how many of the latest arrivals in a priority folder are looked at, at most).
pub const RECENT_EMAILS: usize = 500;

/// How long the daemon's own filing of an email into a priority folder is remembered when
/// the email never arrives there (staff moved it first, or the server lost it): 7 days.
pub const FILED_KEPT: i64 = 7 * 86_400;

impl Store {
    /// The UIDs of the latest `limit` emails recorded in `folder` (newest first): those whose
    /// keywords are read again on a server without CONDSTORE.
    pub fn recent_uids(&self, folder: &str, uidvalidity: u32, limit: usize) -> Result<Vec<u32>> {
        self.conn
            .prepare_cached(
                "SELECT uid FROM messages WHERE folder = ?1 AND uidvalidity = ?2
                 ORDER BY uid DESC LIMIT ?3",
            )?
            .query_map(
                params![folder, uidvalidity, super::sql_limit(Some(limit))],
                |r| r.get(0),
            )
            .context("Reading the latest emails of the folder")?
            .collect::<rusqlite::Result<_>>()
            .context("Reading the latest emails of the folder")
    }

    /// The HIGHESTMODSEQ `folder` had when its keywords were last read, if read with
    /// CONDSTORE in this UIDVALIDITY.
    pub fn highest_modseq(&self, folder: &str, uidvalidity: u32) -> Result<Option<u64>> {
        let v: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT highest_modseq FROM folder_modseq WHERE folder = ?1 AND uidvalidity = ?2",
            )?
            .query_row(params![folder, uidvalidity], |r| r.get(0))
            .optional()
            .with_context(|| format!("Reading the mod-sequence of {folder}"))?;
        Ok(v.and_then(|v| u64::try_from(v).ok()))
    }

    /// Keep the HIGHESTMODSEQ up to which `folder`'s keywords were read.
    pub fn set_highest_modseq(&self, folder: &str, uidvalidity: u32, modseq: u64) -> Result<()> {
        // RFC 7162 keeps mod-sequences below 2^63: an SQLite integer.
        let modseq = i64::try_from(modseq).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(
                "INSERT INTO folder_modseq (folder, uidvalidity, highest_modseq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (folder) DO UPDATE SET uidvalidity = ?2, highest_modseq = ?3",
            )?
            .execute(params![folder, uidvalidity, modseq])
            .with_context(|| format!("Writing the mod-sequence of {folder}"))?;
        Ok(())
    }

    /// The keywords of emails of `folder` as the server shows them now (`(uid, keywords)`):
    /// where staff changed a triage keyword, the change is recorded as a correction (or undoes
    /// one). Emails whose keywords the daemon has not set yet, and ones it did not triage, are
    /// passed over. Reading the same keywords again records nothing. One transaction.
    pub fn note_keywords(
        &mut self,
        folder: &str,
        uidvalidity: u32,
        read: &[(u32, Vec<String>)],
        names: &KeywordNames,
        now: i64,
    ) -> Result<Vec<Noted>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("Starting transaction")?;
        let mut noted = Vec::new();
        for (uid, flags) in read {
            let m: Option<Verdicted> = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} {FROM} WHERE m.folder = ?1 AND m.uidvalidity = ?2 AND m.uid = ?3
                       AND m.status = 'triaged' AND m.priority != '' AND m.flags_state = 'done'
                       AND m.ack != 'own_loop'"
                ))?
                .query_row(params![folder, uidvalidity, uid], Verdicted::read)
                .optional()
                .context("Looking up the email")?;
            let Some(m) = m else { continue };
            let shown = names.shown(flags);
            let seen = seen(&tx, &m, names)?;
            if shown == seen {
                continue;
            }
            tx.prepare_cached(
                "INSERT INTO keywords_seen (message_row, priorities, tones, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (message_row) DO UPDATE SET priorities = ?2, tones = ?3, at = ?4",
            )?
            .execute(params![m.row, shown.priority_list(), shown.tones, now])
            .context("Keeping the keywords seen")?;
            if shown.priorities != seen.priorities {
                let said = corrections::priority_shown(&seen.priorities, &shown.priorities);
                let said = said.map(Priority::as_str);
                noted.extend(relabel_field(
                    &tx,
                    &m,
                    Field::Priority,
                    said,
                    Source::ImapKeyword,
                    "",
                    now,
                )?);
            }
            if shown.tones != seen.tones {
                let said = Some(shown.tones.as_str());
                noted.extend(relabel_field(
                    &tx,
                    &m,
                    Field::Tone,
                    said,
                    Source::ImapKeyword,
                    "",
                    now,
                )?);
            }
        }
        tx.commit().context("Committing corrections")?;
        Ok(noted)
    }

    /// What the last look at the priority folder `folder` (its store key) found, if it was
    /// looked at before.
    pub fn folder_mark(&self, folder: &str) -> Result<Option<FolderMark>> {
        let kept: Option<(u32, u32)> = self
            .conn
            .prepare_cached("SELECT uidvalidity, uid_next FROM folder_arrivals WHERE folder = ?1")?
            .query_row([folder], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .with_context(|| format!("Reading what was last seen of {folder}"))?;
        Ok(kept.map(|(uidvalidity, uid_next)| match uidvalidity {
            0 => FolderMark::Missing,
            _ => FolderMark::At {
                uidvalidity,
                uid_next,
            },
        }))
    }

    /// Keep what a look at the priority folder `folder` found.
    pub fn set_folder_mark(&self, folder: &str, mark: FolderMark) -> Result<()> {
        let (uidvalidity, uid_next) = match mark {
            FolderMark::Missing => (0, 0),
            FolderMark::At {
                uidvalidity,
                uid_next,
            } => (uidvalidity, uid_next),
        };
        self.conn
            .prepare_cached(
                "INSERT INTO folder_arrivals (folder, uidvalidity, uid_next) VALUES (?1, ?2, ?3)
                 ON CONFLICT (folder) DO UPDATE SET uidvalidity = ?2, uid_next = ?3",
            )?
            .execute(params![folder, uidvalidity, uid_next])
            .with_context(|| format!("Keeping what was seen of {folder}"))?;
        Ok(())
    }

    /// The daemon is about to file the emails `rows` into the priority folder `folder`: when
    /// they arrive there, they are its own, not staff's move. Written before the move, so a
    /// crash between the two cannot make the daemon's move look like staff's.
    pub fn note_filing(&mut self, folder: &str, rows: &[i64], now: i64) -> Result<()> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO daemon_filed (folder, message_row, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (folder, message_row) DO UPDATE SET at = ?3",
            )?;
            for row in rows {
                stmt.execute(params![folder, row, now])
                    .context("Noting the daemon's own filing")?;
            }
        }
        tx.commit().context("Committing the daemon's own filing")
    }

    /// The server refused to file `rows` into `folder`: they will not arrive there.
    pub fn forget_filing(&mut self, folder: &str, rows: &[i64]) -> Result<()> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        {
            let mut stmt = tx.prepare_cached(
                "DELETE FROM daemon_filed WHERE folder = ?1 AND message_row = ?2",
            )?;
            for row in rows {
                stmt.execute(params![folder, row])
                    .context("Forgetting the daemon's own filing")?;
            }
        }
        tx.commit().context("Committing the daemon's own filing")
    }

    /// Emails that arrived in the priority folder `folder` (configured for `priorities`), as
    /// `(uid, Message-ID)`: one the daemon triaged and did not file there itself was moved
    /// there by staff, which corrects its priority (or undoes the correction in force, or
    /// changes nothing: [`corrections::moved_into`], [`corrections::step`]). The daemon's own
    /// filings seen arrive are done with; those older than [`FILED_KEPT`] that never arrived
    /// (staff moved the email first) are dropped. One transaction.
    pub fn note_arrivals(
        &mut self,
        folder: &str,
        found: &[(u32, String)],
        priorities: &[Priority],
        now: i64,
    ) -> Result<Vec<Noted>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("Starting transaction")?;
        let mut noted = Vec::new();
        for (_, message_id) in found {
            let m: Option<Verdicted> = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} {FROM} WHERE m.dedup_key = ?1 AND m.status = 'triaged'
                       AND m.priority != '' AND m.ack != 'own_loop'"
                ))?
                .query_row([message_id], Verdicted::read)
                .optional()
                .context("Looking up the email by Message-ID")?;
            let Some(m) = m else { continue };
            let own = tx
                .prepare_cached("DELETE FROM daemon_filed WHERE folder = ?1 AND message_row = ?2")?
                .execute(params![folder, m.row])
                .context("Finding the daemon's own filing")?
                > 0;
            let said = corrections::moved_into(priorities, own).map(Priority::as_str);
            noted.extend(relabel_field(
                &tx,
                &m,
                Field::Priority,
                said,
                Source::ImapFolder,
                "",
                now,
            )?);
        }
        tx.prepare_cached("DELETE FROM daemon_filed WHERE folder = ?1 AND at < ?2")?
            .execute(params![folder, now - FILED_KEPT])
            .context("Dropping the daemon's filings that never arrived")?;
        tx.commit().context("Committing corrections")?;
        Ok(noted)
    }

    /// `triaged ticket relabel`: correct the latest email of ticket `tag` from its customer
    /// as `changes` say, one after the other. `None`: there is no such ticket.
    pub fn relabel(
        &mut self,
        tag: &str,
        changes: &[Relabel],
        who: &str,
        now: i64,
    ) -> Result<Option<Relabeled>> {
        self.relabel_with(tag, |tx, id| {
            relabel_in(tx, id, changes, Source::Cli, who, now)
        })
    }

    /// `triaged ticket relabel --undo`: undo every correction in force on the emails of ticket
    /// `tag` (their verdicts count again). `None`: there is no such ticket.
    pub fn undo_relabel(&mut self, tag: &str, who: &str, now: i64) -> Result<Option<Relabeled>> {
        self.relabel_with(tag, |tx, id| {
            let current: Vec<(Verdicted, Field)> = tx
                .prepare(&format!(
                    "SELECT {COLUMNS}, c.field FROM messages m
                     JOIN tickets t ON t.id = m.ticket_id
                     JOIN corrections c ON c.message_row = m.id AND c.undone_at = 0
                     WHERE m.ticket_id = ?1 ORDER BY m.id, c.field"
                ))?
                .query_map([id], |r| Ok((Verdicted::read(r)?, r.get(5)?)))
                .and_then(|rows| rows.collect())
                .context("Reading the ticket's corrections")?;
            let mut email = None;
            let mut changes = Vec::new();
            for (m, field) in current {
                let verdict = m.verdict(field);
                changes.extend(relabel_field(
                    tx,
                    &m,
                    field,
                    Some(&verdict),
                    Source::Cli,
                    who,
                    now,
                )?);
                email = Some(m.row);
            }
            Ok(email.map(|row| (row, changes)))
        })
    }

    /// Run `change` on ticket `tag` in one transaction; it returns the email it corrected
    /// and the changes.
    fn relabel_with(
        &mut self,
        tag: &str,
        change: impl FnOnce(&Connection, i64) -> Result<Option<(i64, Vec<Noted>)>>,
    ) -> Result<Option<Relabeled>> {
        let tag = crate::tickets::normal_tag(tag);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("Starting transaction")?;
        let id: Option<i64> = tx
            .query_row("SELECT id FROM tickets WHERE tag = ?1", [&tag], |r| {
                r.get(0)
            })
            .optional()
            .context("Finding the ticket")?;
        let Some(id) = id else {
            return Ok(None);
        };
        let done = change(&tx, id)?;
        let email = match &done {
            Some((row, _)) => tx
                .query_row(
                    "SELECT sender, subject FROM messages WHERE id = ?1",
                    [row],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .context("Reading the corrected email")?,
            None => None,
        };
        tx.commit().context("Committing the correction")?;
        Ok(Some(Relabeled {
            tag,
            email,
            changes: done.map(|d| d.1).unwrap_or_default(),
        }))
    }

    /// The emails from customers received since `since` that were triaged, with staff's
    /// corrections in force, oldest first (`triaged eval --store`).
    pub fn labelled(&self, since: i64) -> Result<Vec<Labelled>> {
        self.conn
            .prepare(
                "SELECT m.priority, m.tones, cp.new_value, ct.new_value FROM messages m
                 LEFT JOIN corrections cp ON cp.message_row = m.id AND cp.field = 'priority' AND cp.undone_at = 0
                 LEFT JOIN corrections ct ON ct.message_row = m.id AND ct.field = 'tone' AND ct.undone_at = 0
                 WHERE m.received_at >= ?1 AND m.status = 'triaged' AND m.role = 'customer'
                   AND m.priority != ''
                 ORDER BY m.received_at, m.id",
            )
            .context("Preparing the labelled emails")?
            .query_map([since], |r| {
                Ok(Labelled {
                    priority: r.get(0)?,
                    tones: corrections::tone_set(r.get::<_, String>(1)?.split(',')),
                    staff_priority: r.get(2)?,
                    staff_tones: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect())
            .context("Reading the labelled emails")
    }
}

/// The keywords `m` showed when last read: as kept when they were not what the daemon wrote,
/// else what it wrote (the verdict's).
fn seen(tx: &Connection, m: &Verdicted, names: &KeywordNames) -> Result<Shown> {
    let kept: Option<(String, String)> = tx
        .prepare_cached("SELECT priorities, tones FROM keywords_seen WHERE message_row = ?1")?
        .query_row([m.row], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .context("Reading the keywords seen")?;
    Ok(match kept {
        Some((priorities, tones)) => Shown {
            priorities: Shown::priorities_of(&priorities),
            tones,
        },
        None => {
            let written = if names.reads_tones() { &m.tones } else { "" };
            Shown::written(m.priority, written)
        }
    })
}

/// Correct the latest triaged email from the customer of ticket `ticket_id` as `changes` say,
/// one after the other (in the per-email transaction for an email command, `who` its
/// sender). Returns the email's row and what changed; `None` when the ticket has no such
/// email.
pub(super) fn relabel_in(
    tx: &Connection,
    ticket_id: i64,
    changes: &[Relabel],
    source: Source,
    who: &str,
    now: i64,
) -> Result<Option<(i64, Vec<Noted>)>> {
    let m: Option<Verdicted> = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} {FROM} WHERE m.ticket_id = ?1 AND m.role = 'customer' AND m.status = 'triaged'
               AND m.priority != '' ORDER BY m.id DESC LIMIT 1"
        ))?
        .query_row([ticket_id], Verdicted::read)
        .optional()
        .context("Finding the customer's email")?;
    let Some(m) = m else {
        return Ok(None);
    };
    let mut noted = Vec::new();
    for change in changes {
        let field = change.field();
        let current = current(tx, m.row, field)?.map(|c| c.1);
        let said = change.applied_to(&current.unwrap_or_else(|| m.verdict(field)));
        noted.extend(relabel_field(tx, &m, field, Some(&said), source, who, now)?);
    }
    Ok(Some((m.row, noted)))
}

/// The correction in force for `field` of the email `row`: its id and label.
fn current(tx: &Connection, row: i64, field: Field) -> Result<Option<(i64, String)>> {
    tx.prepare_cached(
        "SELECT id, new_value FROM corrections WHERE message_row = ?1 AND field = ?2 AND undone_at = 0",
    )?
    .query_row(params![row, field], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
    .context("Reading the correction in force")
}

/// Staff say `said` of `field` of `m` ([`corrections::step`] decides what that does): record
/// the correction, or undo the one in force; set the ticket's priority; log it on the ticket.
fn relabel_field(
    tx: &Connection,
    m: &Verdicted,
    field: Field,
    said: Option<&str>,
    source: Source,
    who: &str,
    now: i64,
) -> Result<Option<Noted>> {
    let verdict = m.verdict(field);
    let current = current(tx, m.row, field)?;
    let before = current
        .as_ref()
        .map_or_else(|| verdict.clone(), |c| c.1.clone());
    let after = match corrections::step(&verdict, current.as_ref().map(|c| c.1.as_str()), said) {
        Step::Keep => return Ok(None),
        Step::Undo => verdict.clone(),
        Step::Correct(label) => label,
    };
    if let Some((id, _)) = &current {
        tx.prepare_cached("UPDATE corrections SET undone_at = ?2 WHERE id = ?1")?
            .execute(params![id, now])
            .context("Ending the correction in force")?;
    }
    let undone = after == verdict;
    if !undone {
        tx.prepare_cached(
            "INSERT INTO corrections (message_row, ticket_id, field, old_value, new_value, source, who, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![m.row, m.ticket_id, field, verdict, after, source, who, now])
        .context("Recording the correction")?;
    }
    if let Some(ticket_id) = m.ticket_id {
        if field == Field::Priority {
            tx.prepare_cached("UPDATE tickets SET priority = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![ticket_id, after, now])
                .context("Setting the ticket's priority")?;
            // What the ticket still has to send goes out in the order of its new priority.
            if let Some(p) = Priority::ALL.into_iter().find(|p| p.as_str() == after) {
                rerank_queued(tx, ticket_id, p)?;
            }
        }
        let by = match (source, who) {
            (_, "") => source.as_str().to_string(),
            // `cli (USER)` says where already.
            (Source::Cli, who) => who.to_string(),
            (_, who) => format!("{} by {who}", source.as_str()),
        };
        let (event, detail) = if undone {
            (
                "relabel_undone",
                format!(
                    "{} {} -> {} (the verdict's again; {by})",
                    field.as_str(),
                    label(&before),
                    label(&after)
                ),
            )
        } else {
            (
                "relabeled",
                format!(
                    "{} {} -> {} ({by})",
                    field.as_str(),
                    label(&before),
                    label(&after)
                ),
            )
        };
        note_event(tx, ticket_id, event, now, Some(m.row), &detail)?;
    }
    Ok(Some(Noted {
        ticket: m.tag.clone(),
        message_row: m.row,
        field,
        verdict,
        before,
        after,
        undone,
    }))
}

/// A label as people read it: an empty tone set is "none".
pub fn label(s: &str) -> &str {
    if s.is_empty() { "none" } else { s }
}
