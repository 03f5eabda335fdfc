//! SQLite store: messages, verdicts, tickets, the outbox and the IMAP checkpoints.
//!
//! The message row, its rule hits, the ticket it opens or joins, the acknowledgement it causes and
//! the folder checkpoint are written in ONE transaction ([`Store::record`]), so a crash at any point
//! either keeps all of it or none of it, and re-processing the same UID is a no-op.
//!
//! No policy lives here: what an email does to its ticket, whether it is acknowledged, which
//! follow-ups a change queues or cancels, are decided by the pure functions of
//! [`crate::tickets`]; the store reads the facts they need, calls them and writes what they
//! return. Priorities, ticket states and outbox kinds are typed in rows (`rows`) and kept
//! valid by `CHECK` constraints.
//!
//! One file per thing kept, each with its own `impl Store`:
//! - `corrections`: staff corrections of verdicts (keywords changed in a mail client, email
//!   commands, `triaged ticket relabel`), the keywords last seen, each folder's HIGHESTMODSEQ;
//! - `folders`: folder checkpoints, triage starts (poison messages) and the keywords still to
//!   set in IMAP;
//! - `record`: the per-email transaction, in named steps, and the sender's history;
//! - `tickets`: tickets and their event log, lists, staff commands, snoozes;
//! - `followups`: the follow-ups a ticket's change queues, withholds or cancels;
//! - `outbox`: claiming, sending, retrying, holding and settling customer mail;
//! - `notices`: staff mail (digests, alerts, health notes) and incidents;
//! - `training`: what `triaged tune --store` fits to (verdicts, corrections, rule hits, the
//!   customer's words kept for it);
//! - `counts`: the counts triggers keep, for summaries, `/metrics` and the status page;
//! - `schema`: versioned migrations; `rows`: the enums' names in rows; `faults`: the errors
//!   that pass ([`Unavailable`]).
//!
//! Flat cost: a statement the daemon runs per email or per timer reads through an index and
//! touches only the rows it is about, never the history (`store/tests/plans.rs` traces a workload
//! and checks each statement's plan and VM steps against a store with a year of mail). Lists
//! stop at a limit in an index's order; the counts the status command, `/metrics` and the
//! status page show are kept in the `tally` table by triggers (migration 8).

mod corrections;
mod counts;
mod faults;
mod folders;
mod followups;
mod notices;
mod outbox;
mod record;
mod rows;
mod schema;
mod tickets;
mod training;

pub use corrections::{FILED_KEPT, Labelled, Noted, RECENT_EMAILS, Relabeled, label};
pub use counts::Counts;
pub use faults::Unavailable;
pub use folders::{FlagTask, FolderState};
pub use notices::{ClaimedNotice, HealthFacts, NewNotice, NoticeRow};
pub use outbox::{OutboxItem, OutboxKind, QueueRow};
pub use record::{Content, Location, Policy, Recorded, excerpt};
pub use rows::{UnknownName, list_column};
pub use tickets::{
    Applied, AskedEmail, OpenTicketList, TicketEvent, TicketFilter, TicketList, TicketRow,
};
pub use training::{KEPT_TEXT, MAX_TRAINING_EMAILS, StoredHit, TrainingEmail};

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

/// An open store. Each task opens its own (WAL lets readers and one writer work side by side).
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Open (creating if needed) and migrate the database at `path`, waiting at most
    /// [`crate::config::DEFAULT_BUSY_TIMEOUT`] for a lock another connection holds.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, crate::config::DEFAULT_BUSY_TIMEOUT)
    }

    /// [`Store::open`] with `busy_timeout` (`[store] busy_timeout`): how long a statement
    /// waits for a lock another connection holds before failing with
    /// [`Unavailable::Locked`].
    pub fn open_with(path: &Path, busy_timeout: Duration) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("Creating directory {}", dir.display()))?;
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("Opening database {}", path.display()))?;
        conn.busy_timeout(busy_timeout)
            .context("Setting busy timeout")?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .context("Enabling WAL")?;
        // NORMAL in WAL mode: a power cut may lose the last commits, never corrupt; a process
        // crash loses nothing.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .context("Setting synchronous")?;
        schema::migrate(&mut conn)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .context("Enabling foreign keys")?;
        Ok(Store { conn })
    }

    /// Write (and commit) one small row: whether the store takes writes again after it was
    /// [`Unavailable`]. A read would pass on a full disk or beside another process's lock.
    pub fn probe(&self, now: i64) -> Result<()> {
        self.set_kv("store.probed_at", &now.to_string())
    }

    /// A durable value (e.g. the end of a provider-imposed pause).
    pub fn get_kv(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .with_context(|| format!("Reading {key}"))
    }

    pub fn set_kv(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                params![key, value],
            )
            .with_context(|| format!("Writing {key}"))?;
        Ok(())
    }

    /// Direct access for tests and one-off queries.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// A row limit for SQL: -1 is none.
fn sql_limit(limit: Option<usize>) -> i64 {
    limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
