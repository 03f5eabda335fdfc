//! Folders and flag tasks: each folder's checkpoint (UIDVALIDITY and the last UID recorded),
//! the triage starts that reveal a poison message, and the IMAP keywords still to be set on
//! recorded messages.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Location, Store};
use crate::score::Priority;

/// Where a folder's processing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// A message whose IMAP keywords still have to be set.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagTask {
    pub row: i64,
    pub uid: u32,
    pub priority: Option<Priority>,
    pub tones: Vec<String>,
    /// Skipped, and left for staff (over its budget, or a poison message): `\Flagged`.
    pub skipped: bool,
    /// Our own email come back (the witness copy of what we sent): marked read, nothing else.
    pub own: bool,
    /// The team of a customer's email (its ticket's `[[team]]`), whose folder it may be filed
    /// into; empty: none (no team, or not a customer's email).
    pub team: String,
}

impl Store {
    /// The checkpoint of `folder`, if it has one.
    pub fn folder_state(&self, folder: &str) -> Result<Option<FolderState>> {
        self.conn
            .query_row(
                "SELECT uidvalidity, last_uid FROM folder_state WHERE folder = ?1",
                [folder],
                |r| {
                    Ok(FolderState {
                        uidvalidity: r.get(0)?,
                        last_uid: r.get(1)?,
                    })
                },
            )
            .optional()
            .with_context(|| format!("Reading checkpoint of {folder}"))
    }

    /// Set a folder's checkpoint outright (first sync, UIDVALIDITY change).
    pub fn set_folder_state(&self, folder: &str, st: FolderState, now: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO folder_state (folder, uidvalidity, last_uid, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(folder) DO UPDATE SET uidvalidity = ?2, last_uid = ?3, updated_at = ?4",
                params![folder, st.uidvalidity, st.last_uid, now],
            )
            .with_context(|| format!("Writing checkpoint of {folder}"))?;
        Ok(())
    }

    /// Note that triage of the email at `at` starts in daemon run `run`; returns how many
    /// earlier runs started it and died before recording it. Committed on its own, before the
    /// costly stages, so a process that dies in them leaves the mark behind.
    pub fn begin_triage(&self, at: &Location<'_>, run: &str, now: i64) -> Result<u32> {
        self.conn
            .query_row(
                "INSERT INTO triage_starts (folder, uidvalidity, uid, run, crashes, started_at)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5)
                 ON CONFLICT (folder, uidvalidity, uid) DO UPDATE SET
                     crashes = crashes + (run <> excluded.run), run = excluded.run, started_at = excluded.started_at
                 RETURNING crashes",
                params![at.folder, at.uidvalidity, at.uid, run, now],
                |r| r.get(0),
            )
            .with_context(|| format!("Noting the triage start of UID {} of {}", at.uid, at.folder))
    }

    /// Note that triage of `uids`, a fetch batch of `folder` triaged in UID order, starts in
    /// run `run`: one transaction per batch, not one per email. Returns, per UID, how many
    /// earlier runs died while triaging it. A watcher triages one email at a time in UID order,
    /// so of the starts another run left unrecorded in this folder only the lowest was in
    /// flight when that run died: it alone is counted, and all of them become this run's (so
    /// they are counted once). Starts of an older UIDVALIDITY are dropped.
    pub fn begin_triage_batch(
        &mut self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
        run: &str,
        now: i64,
    ) -> Result<BTreeMap<u32, u32>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("Starting transaction")?;
        tx.execute(
            "DELETE FROM triage_starts WHERE folder = ?1 AND uidvalidity <> ?2",
            params![folder, uidvalidity],
        )
        .context("Dropping triage starts of an old UIDVALIDITY")?;
        tx.execute(
            "UPDATE triage_starts SET crashes = crashes + 1
             WHERE folder = ?1 AND uidvalidity = ?2 AND run <> ?3
               AND uid = (SELECT min(uid) FROM triage_starts
                          WHERE folder = ?1 AND uidvalidity = ?2 AND run <> ?3)",
            params![folder, uidvalidity, run],
        )
        .context("Counting the email a stopped run died on")?;
        tx.execute(
            "UPDATE triage_starts SET run = ?3 WHERE folder = ?1 AND uidvalidity = ?2 AND run <> ?3",
            params![folder, uidvalidity, run],
        )
        .context("Taking over unrecorded triage starts")?;
        let mut crashes = BTreeMap::new();
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO triage_starts (folder, uidvalidity, uid, run, crashes, started_at)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5)
                     ON CONFLICT (folder, uidvalidity, uid) DO UPDATE SET started_at = excluded.started_at
                     RETURNING crashes",
                )
                .context("Preparing triage starts")?;
            for &uid in uids {
                let n: u32 = stmt
                    .query_row(params![folder, uidvalidity, uid, run, now], |r| r.get(0))
                    .context("Noting a triage start")?;
                crashes.insert(uid, n);
            }
        }
        tx.commit().context("Committing triage starts")?;
        Ok(crashes)
    }

    /// Forget the triage start of the email at `at` (an error, not a crash, ended it).
    pub fn forget_triage_start(&self, at: &Location<'_>) -> Result<usize> {
        self.conn
            .execute(
                "DELETE FROM triage_starts WHERE folder = ?1 AND uidvalidity = ?2 AND uid = ?3",
                params![at.folder, at.uidvalidity, at.uid],
            )
            .context("Forgetting a triage start")
    }

    /// Forget the triage starts of run `run` that were not recorded: it stops cleanly (or an
    /// error, not a crash, interrupted them), so they are no sign of a poison message.
    pub fn forget_triage_starts(&self, run: &str) -> Result<usize> {
        self.conn
            .execute("DELETE FROM triage_starts WHERE run = ?1", [run])
            .context("Forgetting unfinished triage starts")
    }

    /// Messages in this folder whose keywords are not set yet, oldest first: triaged ones
    /// with their priority and tones (staff's, where they corrected the verdict: the daemon
    /// never writes its own label over theirs; and a customer's email its ticket's team),
    /// skipped ones to flag for staff, our own copies to mark read.
    pub fn pending_flags(&self, folder: &str, uidvalidity: u32) -> Result<Vec<FlagTask>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.id, m.uid, nullif(coalesce(cp.new_value, m.priority), ''), coalesce(ct.new_value, m.tones),
                        m.status = 'skipped', m.ack = 'own_loop',
                        CASE WHEN m.role = 'customer' THEN coalesce(t.team, '') ELSE '' END
                 FROM messages m LEFT JOIN tickets t ON t.id = m.ticket_id
                 LEFT JOIN corrections cp ON cp.message_row = m.id AND cp.field = 'priority' AND cp.undone_at = 0
                 LEFT JOIN corrections ct ON ct.message_row = m.id AND ct.field = 'tone' AND ct.undone_at = 0
                 WHERE m.folder = ?1 AND m.uidvalidity = ?2 AND m.flags_state = 'pending' ORDER BY m.uid",
            )
            .context("Preparing pending flags query")?;
        let rows = stmt
            .query_map(params![folder, uidvalidity], |r| {
                let priority: Option<Priority> = r.get(2)?;
                let tones: String = r.get(3)?;
                let own: bool = r.get(5)?;
                Ok(FlagTask {
                    row: r.get(0)?,
                    uid: r.get(1)?,
                    priority: priority.filter(|_| !own),
                    tones: tones
                        .split(',')
                        .filter(|t| !t.is_empty() && !own)
                        .map(str::to_string)
                        .collect(),
                    skipped: r.get(4)?,
                    own,
                    team: r.get(6)?,
                })
            })
            .context("Reading pending flags")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("Reading pending flags")
    }

    /// The keywords of these messages are set: they are flag tasks no more.
    pub fn mark_flagged(&mut self, rows: &[i64]) -> Result<()> {
        let tx = self.conn.transaction().context("Starting transaction")?;
        {
            let mut stmt = tx
                .prepare_cached("UPDATE messages SET flags_state = 'done' WHERE id = ?1")
                .context("Preparing flag update")?;
            for row in rows {
                stmt.execute([row]).context("Marking message flagged")?;
            }
        }
        tx.commit().context("Committing flag state")
    }
}
