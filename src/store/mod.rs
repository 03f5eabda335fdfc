//! SQLite store: messages, verdicts, tickets, the outbox and the IMAP checkpoints.
//!
//! The message row, its rule hits, the ticket it opens or joins, the acknowledgement it causes and
//! the folder checkpoint are written in ONE transaction ([`Store::record`]), so a crash at any point
//! either keeps all of it or none of it, and re-processing the same UID is a no-op.
//!
//! Flat cost: a statement the daemon runs per email or per timer reads through an index and
//! touches only the rows it is about, never the history (`store/tests/plans.rs` traces a workload
//! and checks each statement's plan and VM steps against a store with a year of mail). Lists
//! stop at a limit in an index's order; the counts the status command, `/metrics` and the
//! status page show are kept in the `tally` table by triggers (migration 8).

mod faults;
mod notices;
mod schema;

pub use faults::Unavailable;
pub use notices::{ClaimedNotice, HealthFacts, NewNotice, NoticeRow};

use std::path::Path;
use std::time::Duration;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::config::{Config, FollowupConfig};
use crate::guard::Refusal;
use crate::parse::Email;
use crate::score::{History, Priority, Verdict};
use crate::sla::SlaConfig;
use crate::tickets::{
    self, AckDecision, AckFacts, Event, Followup, FollowupAction, FollowupFacts, Role, State,
};

/// An open store. Each task opens its own (WAL lets readers and one writer work side by side).
pub struct Store {
    conn: Connection,
}

/// Where a folder's processing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

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
}

/// An outbox row ready to render and send.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub kind: String,
    pub attempts: u32,
    pub recipient: String,
    pub recipient_name: String,
    pub out_message_id: String,
    pub ticket_tag: String,
    pub subject: String,
    pub priority: String,
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
}

/// An outbox row as `triaged queue` shows it.
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub id: i64,
    pub kind: String,
    pub ticket: String,
    pub recipient: String,
    pub priority: Priority,
    pub state: String,
    pub attempts: u32,
    pub due_at: i64,
    pub last_error: String,
}

/// A ticket as `triaged tickets` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TicketRow {
    pub tag: String,
    pub state: String,
    pub priority: String,
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
    pub open: BTreeMap<Priority, i64>,
}

/// One line of a ticket's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TicketEvent {
    pub at: i64,
    pub event: String,
    pub from_state: String,
    pub to_state: String,
    pub detail: String,
    /// The email that caused it, if one did: its subject.
    pub subject: String,
}

/// A count of rows per key, for summaries.
pub type Counts = Vec<(String, i64)>;

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
        let conn = Connection::open(path)
            .with_context(|| format!("Opening database {}", path.display()))?;
        conn.busy_timeout(busy_timeout)
            .context("Setting busy timeout")?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .context("Enabling WAL")?;
        // NORMAL in WAL mode: a power cut may lose the last commits, never corrupt; a process
        // crash loses nothing.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .context("Setting synchronous")?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .context("Enabling foreign keys")?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    /// Bring the schema up to date. A store that is up to date is only read: opening it
    /// takes no write lock, so a lock another process holds (or a full disk) does not stop a
    /// task from starting; its writes will wait.
    fn migrate(&mut self) -> Result<()> {
        let known = schema::MIGRATIONS.len() as i64;
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .context("Reading schema version")?;
        if version == known {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("Starting migration")?;
        // Read again under the write lock: another task may have migrated meanwhile.
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .context("Reading schema version")?;
        if version > known {
            anyhow::bail!(
                "Database schema version {version} is newer than this triaged knows ({known}): upgrade triaged"
            );
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)
                .with_context(|| format!("Applying migration {}", i + 1))?;
        }
        tx.pragma_update(None, "user_version", known)
            .context("Writing schema version")?;
        tx.commit().context("Committing migrations")
    }

    /// Write (and commit) one small row: whether the store takes writes again after it was
    /// [`Unavailable`]. A read would pass on a full disk or beside another process's lock.
    pub fn probe(&self, now: i64) -> Result<()> {
        self.set_kv("store.probed_at", &now.to_string())
    }

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

    /// Tickets, most urgent and oldest first, optionally only those in one of `states` (empty:
    /// any) and of `priority`; at most `limit` (`None`: all). `total` counts every ticket that
    /// matches, listed or not.
    ///
    /// The order is an index's, so the list stops after `limit` rows instead of sorting the
    /// whole table; a filter is applied while walking it. A filter without closed tickets
    /// walks the open ones only (`tickets_open`), any other all of them (`tickets_rank`).
    pub fn tickets(
        &self,
        states: &[State],
        priority: Option<Priority>,
        limit: Option<usize>,
    ) -> Result<TicketList> {
        let filter: Option<String> = (!states.is_empty()).then(|| {
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
                 ORDER BY {TICKET_RANK}, t.created_at, t.id LIMIT ?3"
            ))
            .context("Preparing ticket list")?;
        let rows = stmt
            .query_map(
                params![filter, priority.map(Priority::as_str), sql_limit(limit)],
                ticket_row,
            )
            .context("Listing tickets")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("Listing tickets")?;
        let total = self
            .ticket_counts()?
            .into_iter()
            .filter(|((state, p), _)| {
                (states.is_empty() || states.iter().any(|s| s.as_str() == state))
                    && priority.is_none_or(|want| want.as_str() == p)
            })
            .map(|(_, n)| n)
            .sum();
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
                .query_map(params![rank(p), sql_limit(Some(per_priority))], ticket_row)
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

    /// Tickets not closed, by priority (every priority present, 0 when none).
    pub fn open_ticket_counts(&self) -> Result<BTreeMap<Priority, i64>> {
        let mut open: BTreeMap<Priority, i64> = Priority::ALL.iter().map(|p| (*p, 0)).collect();
        for ((state, p), n) in self.ticket_counts()? {
            if state != State::Closed.as_str() {
                // A priority this version does not know is counted as normal, as it is listed.
                *open
                    .entry(parse_priority(&p).unwrap_or(Priority::Normal))
                    .or_default() += n;
            }
        }
        Ok(open)
    }

    /// Tickets per (state, priority), from the counts the triggers keep.
    fn ticket_counts(&self) -> Result<Vec<((String, String), i64)>> {
        Ok(self
            .tally("tickets")?
            .into_iter()
            .map(|(key, n)| {
                let (state, p) = key.split_once(':').unwrap_or((key.as_str(), ""));
                ((state.to_string(), p.to_string()), n)
            })
            .collect())
    }

    /// The counts kept in `tally` for `what` (keys with a count of 0 left out).
    fn tally(&self, what: &str) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, n FROM tally WHERE what = ?1 AND n != 0 ORDER BY key")
            .context("Preparing counts")?;
        stmt.query_map([what], |r| Ok((r.get(0)?, r.get(1)?)))
            .context("Reading counts")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("Reading counts")
    }

    /// Outbox rows waiting to be sent (due or not) by kind, and the earliest due time among
    /// them: what `/metrics` shows of the queue.
    pub fn outbox_depth(&self) -> Result<(BTreeMap<String, i64>, Option<i64>)> {
        let depth = self
            .tally("outbox")?
            .into_iter()
            .filter_map(|(key, n)| {
                let (state, kind) = key.split_once(':')?;
                (state == "pending").then(|| (kind.to_string(), n))
            })
            .collect();
        let first: Option<i64> = self
            .conn
            .prepare_cached("SELECT min(due_at) FROM outbox WHERE state = 'pending'")
            .context("Preparing the first due time")?
            .query_row([], |r| r.get(0))
            .context("Reading the first due time")?;
        Ok((depth, first))
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
                "SELECT e.at, e.event, e.from_state, e.to_state, e.detail, coalesce(m.subject, '')
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

    /// Apply a staff command from the command line to ticket `tag`; returns the new state, or
    /// `None` when there is no such ticket.
    pub fn ticket_command(
        &mut self,
        tag: &str,
        cmd: tickets::Command,
        now: i64,
        who: &str,
        policy: &Policy,
    ) -> Result<Option<State>> {
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
        let (event, until) = command_event(cmd, now);
        let (from, to) = ticket_event(&tx, id, event, now, None, who, until)?;
        schedule_followups(
            &tx,
            id,
            Some((event, from, to)),
            Because::default(),
            now,
            policy,
            now,
        )?;
        tx.commit().context("Committing the ticket change")?;
        Ok(Some(to))
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
                let state: String = self
                    .conn
                    .query_row("SELECT state FROM tickets WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .context("Reading ticket state")?;
                state == "answered"
            }
            None => false,
        };
        Ok(History {
            earlier_contacts,
            reply_to_answered,
        })
    }

    /// Messages in this folder whose keywords are not set yet, oldest first.
    pub fn pending_flags(&self, folder: &str, uidvalidity: u32) -> Result<Vec<FlagTask>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, uid, priority, tones, status = 'skipped', ack = 'own_loop' FROM messages
                 WHERE folder = ?1 AND uidvalidity = ?2 AND flags_state = 'pending' ORDER BY uid",
            )
            .context("Preparing pending flags query")?;
        let rows = stmt
            .query_map(params![folder, uidvalidity], |r| {
                let priority: String = r.get(2)?;
                let tones: String = r.get(3)?;
                let own: bool = r.get(5)?;
                Ok(FlagTask {
                    row: r.get(0)?,
                    uid: r.get(1)?,
                    priority: parse_priority(&priority).filter(|_| !own),
                    tones: tones
                        .split(',')
                        .filter(|t| !t.is_empty() && !own)
                        .map(str::to_string)
                        .collect(),
                    skipped: r.get(4)?,
                    own,
                })
            })
            .context("Reading pending flags")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("Reading pending flags")
    }

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
                        m.subject, t.priority, m.message_id, m.refs, m.tones, m.received_at, m.folder
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
        let row: Option<(String, String, i64)> = tx
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
                "SELECT o.id, o.kind, t.tag, o.recipient, o.priority_rank % 10, o.state, o.attempts, o.due_at,
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
                    priority: Priority::ALL
                        .get(r.get::<_, usize>(4)?)
                        .copied()
                        .unwrap_or(Priority::Low),
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

    /// Messages per status/skip reason and ack decision, outbox rows per state: for summaries.
    /// Read from the counts the triggers keep, so it costs the same over any store.
    pub fn summary(&self) -> Result<(Counts, Counts, Counts)> {
        let regroup = |rows: Vec<(String, i64)>, label: &dyn Fn(&str) -> String| -> Counts {
            let mut out: BTreeMap<String, i64> = BTreeMap::new();
            for (key, n) in rows {
                *out.entry(label(&key)).or_default() += n;
            }
            out.into_iter().filter(|(_, n)| *n != 0).collect()
        };
        // 'status:skip_reason:priority': a skipped email by its reason, a triaged one by its
        // priority.
        let messages = regroup(self.tally("messages")?, &|key| {
            let mut parts = key.splitn(3, ':');
            let (status, reason, priority) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            if status == "skipped" {
                format!("skipped:{reason}")
            } else {
                priority.to_string()
            }
        });
        let acks = regroup(self.tally("ack")?, &|key| key.to_string());
        // 'state:kind' by state.
        let outbox = regroup(self.tally("outbox")?, &|key| {
            key.split_once(':')
                .map_or(key, |(state, _)| state)
                .to_string()
        });
        Ok((messages, acks, outbox))
    }

    /// Direct access for tests and one-off queries.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
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

fn parse_priority(s: &str) -> Option<Priority> {
    Priority::ALL.into_iter().find(|p| p.as_str() == s)
}

/// A ticket's priority as a rank, 0 (urgent) to 3 (low): the ticket lists' order. The same
/// expression as the `tickets_open` and `tickets_rank` indexes (SQLite uses an index on an
/// expression only for that same expression; the query-plan test checks it does).
const TICKET_RANK: &str =
    "(CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END)";

/// The columns of a [`TicketRow`], of the ticket `t`: the email count and intents are read
/// only for the rows a list returns.
const TICKET_COLUMNS: &str =
    "SELECT t.tag, t.state, t.priority, t.customer, t.subject, t.created_at, t.updated_at,
            t.first_response_at, t.snoozed_until, t.last_customer_at,
            (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id),
            coalesce((SELECT group_concat(DISTINCT m.intents) FROM messages m
                      WHERE m.ticket_id = t.id AND m.intents != ''), '')";

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
    })
}

/// A row limit for SQL: -1 is none.
fn sql_limit(limit: Option<usize>) -> i64 {
    limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

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
    let here: Option<i64> = tx
        .query_row(
            "SELECT id FROM messages WHERE folder = ?1 AND uidvalidity = ?2 AND uid = ?3",
            params![at.folder, at.uidvalidity, at.uid],
            |r| r.get(0),
        )
        .optional()
        .context("Looking up location")?;
    if let Some(row) = here {
        return Ok(Recorded::AlreadyDone { row });
    }

    let (email, verdict, guard, role, bounced, alert) = match content {
        Content::Skipped {
            reason,
            detail,
            size,
            flag,
        } => {
            let key = format!("loc:{}:{}:{}", at.folder, at.uidvalidity, at.uid);
            let flags_state = if *flag { "pending" } else { "done" };
            tx.execute(
                "INSERT INTO messages (dedup_key, folder, uidvalidity, uid, status, skip_reason, skip_detail, ack,
                                       size, received_at, processed_at, flags_state)
                 VALUES (?1, ?2, ?3, ?4, 'skipped', ?5, ?6, 'skipped', ?7, ?8, ?9, ?10)",
                params![key, at.folder, at.uidvalidity, at.uid, reason, detail, *size as i64, received_at, now, flags_state],
            )
            .context("Recording skipped message")?;
            return Ok(Recorded::New {
                row: tx.last_insert_rowid(),
                ticket: None,
                ack: "skipped".into(),
                outbox: None,
            });
        }
        Content::Triaged {
            email,
            verdict,
            guard,
            role,
            bounced,
            alert,
        } => (*email, *verdict, *guard, *role, *bounced, *alert),
    };

    // The same email seen before: after a UIDVALIDITY change it is the same message at a new
    // location; in the same folder generation it is a second copy (e.g. delivered twice).
    let existing: Option<(i64, String, u32)> = tx
        .query_row(
            "SELECT id, folder, uidvalidity FROM messages WHERE dedup_key = ?1",
            [&email.message_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .context("Looking up Message-ID")?;
    let mut dedup_key = email.message_id.clone();
    if let Some((row, folder, uidvalidity)) = existing {
        if folder == at.folder && uidvalidity != at.uidvalidity {
            tx.execute(
                "UPDATE messages SET uidvalidity = ?2, uid = ?3, flags_state = 'pending' WHERE id = ?1",
                params![row, at.uidvalidity, at.uid],
            )
            .context("Relocating message")?;
            return Ok(Recorded::Relocated { row });
        }
        dedup_key = format!("loc:{}:{}:{}", at.folder, at.uidvalidity, at.uid);
        let (sender, sender_name) = sender_of(email);
        tx.execute(
            "INSERT INTO messages (dedup_key, message_id, folder, uidvalidity, uid, status, skip_reason, skip_detail,
                                   ack, sender, sender_name, subject, size, received_at, processed_at, flags_state)
             VALUES (?1, ?2, ?3, ?4, ?5, 'skipped', 'duplicate', ?6, 'skipped', ?7, ?8, ?9, ?10, ?11, ?12, 'done')",
            params![
                dedup_key,
                email.message_id,
                at.folder,
                at.uidvalidity,
                at.uid,
                format!("same Message-ID as message {row}"),
                sender,
                sender_name,
                email.subject,
                email.size as i64,
                received_at,
                now
            ],
        )
        .context("Recording duplicate")?;
        return Ok(Recorded::New {
            row: tx.last_insert_rowid(),
            ticket: None,
            ack: "skipped".into(),
            outbox: None,
        });
    }

    let (sender, sender_name) = sender_of(email);
    // Our own email come back: the copy that proves it went out.
    if guard == Err(Refusal::OwnLoop) {
        witness_in(tx, &email.message_id, now)?;
    }
    // Staff may reply under the ticket tag from any address; a customer only from their own.
    let mut joined = find_ticket(
        tx,
        email,
        (role == Role::Customer).then_some(sender.as_str()),
    )?;
    // A failed-delivery report joins the ticket whose email it returns.
    let mut bounced_tickets: Vec<(i64, String)> = Vec::new();
    for id in bounced {
        let t: Option<(i64, String)> = tx
            .query_row(
                "SELECT t.id, t.tag FROM outbox o JOIN tickets t ON t.id = o.ticket_id WHERE o.out_message_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context("Looking up a returned email")?;
        if let Some(t) = t.filter(|t| !bounced_tickets.contains(t)) {
            bounced_tickets.push(t);
        }
    }
    if joined.is_none() && role == Role::Robot {
        joined = bounced_tickets.first().cloned();
    }
    // A lone number in reply to a survey on a closed ticket is its answer, not a reopening.
    let rating = match &joined {
        Some((id, _)) if role == Role::Customer => survey_answer(tx, *id, &email.body_text)?,
        _ => None,
    };
    let window_start = now - policy.per_sender_window.as_secs() as i64;
    let recent_to_sender: u32 = tx
        .query_row(
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND recipient = ?1 AND created_at > ?2",
            params![sender, window_start],
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
    let pattern = (role == Role::Customer && tickets::is_reply_subject(&email.subject))
        .then(|| tickets::loop_pattern(&sender, &email.subject, &email.body_text))
        .flatten();
    let same_pattern: u32 = match &pattern {
        Some(p) if policy.loop_burst > 0 => tx
            .prepare_cached(LOOP_PATTERN)?
            .query_row(params![p, now - policy.loop_window.as_secs() as i64], |r| {
                r.get(0)
            })
            .context("Counting acknowledgements of one pattern")?,
        _ => 0,
    };
    // The tag in the subject, or quoted from our email in the text.
    let answers_our_mail_elsewhere = role == Role::Customer
        && joined.is_none()
        && match tickets::tag_in_subject(&email.subject)
            .or_else(|| tickets::tag_in_subject(&email.body_text))
        {
            Some(tag) => tx
                .prepare_cached(
                    "SELECT 1 FROM tickets t JOIN outbox o ON o.ticket_id = t.id
                     WHERE t.tag = ?1 AND o.created_at > ?2",
                )?
                .exists(params![tag, now - policy.loop_window.as_secs() as i64])
                .context("Looking up a ticket tag")?,
            None => false,
        };
    let unanswered_auto = if role == Role::Customer {
        unanswered_auto(tx, &sender, joined.as_ref().map(|t| t.0), policy, now)?
    } else {
        0
    };
    let auto_loop = tickets::auto_loop(unanswered_auto, policy.max_unanswered_auto);
    let decision = tickets::ack_decision(&AckFacts {
        acks_enabled: policy.enabled,
        guard,
        joins_ticket: joined.is_some(),
        age_secs: now - received_at,
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

    // A conversation: joins its ticket, or opens one unless a robot wrote it.
    let ticket: Option<(i64, String)> = match &joined {
        Some(t) if rating.is_some() => Some(t.clone()),
        // A customer who writes again, angrier, raises the ticket's priority; staff do not.
        Some(t) if role == Role::Customer => {
            tx.execute(
                "UPDATE tickets SET updated_at = ?2, last_customer_at = ?2,
                        priority = CASE WHEN ?3 < (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1
                                                   WHEN 'normal' THEN 2 ELSE 3 END) THEN ?4 ELSE priority END
                 WHERE id = ?1",
                params![t.0, now, rank(verdict.priority), verdict.priority.as_str()],
            )
            .context("Updating ticket")?;
            Some(t.clone())
        }
        Some(t) if role == Role::Robot => Some(t.clone()),
        Some(t) => {
            tx.execute(
                "UPDATE tickets SET updated_at = ?2, last_staff_at = ?2,
                        first_response_at = CASE first_response_at WHEN 0 THEN ?2 ELSE first_response_at END
                 WHERE id = ?1",
                params![t.0, now],
            )
            .context("Recording the staff reply")?;
            Some(t.clone())
        }
        None if guard.is_ok() => {
            let id: i64 = tx
                .query_row("SELECT coalesce(max(id), 0) + 1 FROM tickets", [], |r| {
                    r.get(0)
                })
                .context("Allocating ticket id")?;
            let tag = tickets::tag_for(id);
            tx.execute(
                "INSERT INTO tickets (id, tag, customer, subject, state, priority, created_at, updated_at,
                                      last_customer_at)
                 VALUES (?1, ?2, ?3, ?4, 'new', ?5, ?6, ?6, ?6)",
                params![id, tag, sender, email.subject, verdict.priority.as_str(), now],
            )
            .context("Opening ticket")?;
            Some((id, tag))
        }
        None => None,
    };

    let mut refs: Vec<&str> = email.references.iter().map(String::as_str).collect();
    if refs.is_empty() {
        refs.extend(email.in_reply_to.iter().map(String::as_str));
    }
    refs.push(&email.message_id);
    // What a reply can carry: bounded, without ids no header could hold. Said once, here,
    // for the emails we write to.
    let thread = crate::headers::threading(&email.message_id, &refs.join(" "));
    if role == Role::Customer && !thread.dropped.is_empty() {
        tracing::info!(folder = at.folder, uid = at.uid, left_out = %thread.dropped.join("; "),
            "Replies to this email leave out what their threading headers cannot carry");
    }
    let refs = thread
        .references
        .iter()
        .map(|r| format!("<{r}>"))
        .collect::<Vec<_>>()
        .join(" ");
    let tones = verdict.tones.join(",");
    let excerpt = excerpt(&email.body_text);
    tx.execute(
        "INSERT INTO messages (dedup_key, message_id, folder, uidvalidity, uid, ticket_id, status, ack, sender,
                               sender_name, subject, refs, score, priority, tones, size, received_at, processed_at,
                               intents, excerpt, role)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'triaged', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
                 ?20)",
        params![
            dedup_key,
            email.message_id,
            at.folder,
            at.uidvalidity,
            at.uid,
            ticket.as_ref().map(|t| t.0),
            decision.code(),
            sender,
            sender_name,
            email.subject,
            refs,
            verdict.score,
            verdict.priority.as_str(),
            tones,
            email.size as i64,
            received_at,
            now,
            verdict.intents.join(","),
            excerpt,
            match role {
                Role::Customer => "customer",
                Role::Staff => "staff",
                Role::Robot => "robot",
            }
        ],
    )
    .context("Recording message")?;
    let row = tx.last_insert_rowid();
    if let Some((ticket_id, tag)) = &ticket {
        let event = match (role, joined.is_some()) {
            (Role::Robot, _) => None,
            (Role::Customer, _) if rating.is_some() => None,
            (Role::Customer, false) => Some(None),
            (Role::Customer, true) => Some(Some(Event::CustomerWrote)),
            (Role::Staff, _) => Some(Some(Event::StaffReplied)),
        };
        // The SLA clock of a customer's email starts when it arrived; of anything else, now.
        let at = if role == Role::Customer {
            received_at.min(now)
        } else {
            now
        };
        match event {
            None => {}
            Some(Some(e)) => {
                let (from, to) = ticket_event(tx, *ticket_id, e, now, Some(row), &sender, 0)?;
                let because = Because {
                    acked: false,
                    auto_loop,
                };
                schedule_followups(
                    tx,
                    *ticket_id,
                    Some((e, from, to)),
                    because,
                    at,
                    policy,
                    now,
                )?;
            }
            Some(None) => {
                log_event(
                    tx,
                    &EventLog {
                        ticket_id: *ticket_id,
                        event: "opened",
                        from: None,
                        to: State::New,
                        at: now,
                        message_row: Some(row),
                        detail: &sender,
                    },
                )?;
                let because = Because {
                    acked: decision == AckDecision::Queue,
                    auto_loop,
                };
                schedule_followups(tx, *ticket_id, None, because, at, policy, now)?;
            }
        }
        if let Some(rating) = rating {
            note_event(
                tx,
                *ticket_id,
                "survey_answer",
                now,
                Some(row),
                &format!("rated {rating} of 5 by {sender}"),
            )?;
        }
        if role == Role::Staff
            && let Some(cmd) = tickets::staff_command(&email.body_text)
        {
            let (e, until) = command_event(cmd, now);
            let who = format!("email command from {sender}");
            let (from, to) = ticket_event(tx, *ticket_id, e, now, Some(row), &who, until)?;
            schedule_followups(
                tx,
                *ticket_id,
                Some((e, from, to)),
                Because::default(),
                now,
                policy,
                now,
            )?;
            tracing::info!(ticket = %tag, command = ?cmd, state = to.as_str(), "Staff command by email");
        }
    }
    if role == Role::Customer
        && !alert.is_empty()
        && let (Some((ticket_id, tag)), Some(alerts)) = (&ticket, &policy.alerts)
    {
        let facts = crate::alerts::AlertFacts {
            ticket: tag.clone(),
            customer: sender.clone(),
            customer_name: sender_name.clone(),
            subject: email.subject.clone(),
            priority: verdict.priority.as_str().to_string(),
            tones: verdict.tones.clone(),
            intents: verdict.intents.clone(),
            reasons: alert.to_vec(),
            excerpt: excerpt.clone(),
            received_at,
        };
        if notices::queue_alert(tx, *ticket_id, &facts, alerts, now)? {
            tracing::warn!(ticket = %tag, reasons = %alert.join("; "), "Alert queued for staff");
        }
    }
    for (ticket_id, tag) in &bounced_tickets {
        let mut cancelled = 0;
        for kind in Followup::ALL {
            cancelled += cancel_followup(tx, *ticket_id, kind, "bounced", now)?;
        }
        note_event(
            tx,
            *ticket_id,
            "bounced",
            now,
            Some(row),
            &format!("report from {sender}"),
        )?;
        tracing::warn!(ticket = %tag, cancelled, "Delivery to the customer failed; follow-ups cancelled");
    }
    {
        let mut stmt = tx
            .prepare_cached("INSERT INTO hits (message_row, rule, field, matched, weight) VALUES (?1, ?2, ?3, ?4, ?5)")
            .context("Preparing hit insert")?;
        for h in &verdict.hits {
            stmt.execute(params![row, h.rule, h.target, h.matched, h.weight])
                .context("Recording rule hit")?;
        }
    }

    let mut outbox = None;
    let held = match decision {
        AckDecision::Queue => Some(None),
        AckDecision::Hold(code) => Some(Some(held_because(
            code,
            &sender,
            same_pattern,
            last_minute,
            policy,
        ))),
        AckDecision::Skip(_) => None,
    };
    if let (Some(held), Some((ticket_id, tag))) = (held, &ticket) {
        let out_message_id = format!(
            "triaged.{}.ack.{row}@{}",
            tag.to_ascii_lowercase(),
            policy.domain
        );
        tx.execute(
            "INSERT INTO outbox (kind, ticket_id, message_row, seq, recipient, priority_rank, out_message_id,
                                 due_at, created_at, updated_at, state, last_error, pattern)
             VALUES ('ack', ?1, ?2, 0, ?3, ?4, ?5, ?6, ?6, ?6, ?7, ?8, ?9)",
            params![
                ticket_id,
                row,
                sender,
                rank(verdict.priority),
                out_message_id,
                now,
                if held.is_some() { "held" } else { "pending" },
                held.as_deref().unwrap_or(""),
                pattern
            ],
        )
        .context("Queueing acknowledgement")?;
        outbox = Some(tx.last_insert_rowid());
        if let Some(why) = &held {
            note_event(tx, *ticket_id, "ack_held", now, Some(row), why)?;
            // Said when a hold begins; the health alert tells staff, `triaged queue` lists
            // the rest.
            let first = match decision.code() {
                "loop_burst" => same_pattern == policy.loop_burst,
                _ => last_minute == policy.circuit_breaker_per_minute,
            };
            if first {
                tracing::warn!(ticket = %tag, to = %sender, reason = decision.code(), evidence = %why,
                    "Acknowledgements held: this looks like a mail loop; `triaged queue` lists them, `triaged queue release` or `drop` decides");
            }
        }
    }
    Ok(Recorded::New {
        row,
        ticket: ticket.map(|t| t.1),
        ack: decision.code().to_string(),
        outbox,
    })
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

/// A copy of our email `message_id` was seen: it went out. A send a crash interrupted
/// (`unconfirmed`, or `uncertain` from an earlier run), or one waiting to be retried after an
/// error that came too late to tell (a timeout after the data went), is settled as sent.
fn witness_in(tx: &Connection, message_id: &str, now: i64) -> Result<()> {
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
    let (ticket_id, kind, recipient): (i64, String, String) = tx
        .query_row(
            "SELECT ticket_id, kind, recipient FROM outbox WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .context("Reading the sent row")?;
    match Followup::parse(&kind) {
        None => {
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
        Some(f) => {
            note_event(
                tx,
                ticket_id,
                followup_event(f, "sent"),
                now,
                None,
                &recipient,
            )?;
        }
    }
    Ok(())
}

/// How far apart the mail server's clock (arrival times) and ours may be.
const CLOCK_SKEW: i64 = 3600;

/// The loop rule's reads (run for every customer email; their query plans are tested).
const LOOP_SENT: &str = "SELECT ticket_id, message_row, sent_at FROM outbox
     WHERE recipient = ?1 AND state = 'sent' AND sent_at <= ?2
     ORDER BY created_at DESC LIMIT ?3";
const LOOP_ANSWER: &str = "SELECT min(processed_at) FROM messages
     WHERE sender = ?1 AND received_at BETWEEN ?2 AND ?3 AND processed_at >= ?4 AND id > ?5";
const LOOP_TICKETS: &str = "SELECT DISTINCT ticket_id FROM messages
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

/// Follow-ups rank after every acknowledgement: `FOLLOWUP_RANK` + the priority's rank.
const FOLLOWUP_RANK: i64 = 10;

fn rank(p: Priority) -> i64 {
    match p {
        Priority::Urgent => 0,
        Priority::High => 1,
        Priority::Normal => 2,
        Priority::Low => 3,
    }
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

/// The event and snooze time (0: none) of a staff command.
pub fn command_event(cmd: tickets::Command, now: i64) -> (Event, i64) {
    match cmd {
        tickets::Command::Close => (Event::Close, 0),
        tickets::Command::Reopen => (Event::Reopen, 0),
        tickets::Command::Snooze(d) => (Event::Snooze, now + d.as_secs() as i64),
    }
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
/// with it, and log the change. Returns the new state.
fn ticket_event(
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
    .execute(params![ticket_id, to.as_str(), now, snooze_until])
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
fn note_event(
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
    let current: String = tx
        .prepare_cached("SELECT state FROM tickets WHERE id = ?1")?
        .query_row([ticket_id], |r| r.get(0))
        .context("Reading ticket state")?;
    Ok(State::parse(&current).unwrap_or(State::Acknowledged))
}

/// The event name for something that happened to a follow-up: `verify_sent`, ...
fn followup_event(f: Followup, what: &str) -> &'static str {
    match (f, what) {
        (Followup::Holding, "sent") => "holding_sent",
        (Followup::Verify, "sent") => "verify_sent",
        (Followup::Survey, "sent") => "survey_sent",
        (Followup::Holding, "queued") => "holding_queued",
        (Followup::Verify, "queued") => "verify_queued",
        (Followup::Survey, "queued") => "survey_queued",
        (Followup::Holding, "withheld") => "holding_withheld",
        (Followup::Verify, "withheld") => "verify_withheld",
        (Followup::Survey, "withheld") => "survey_withheld",
        (Followup::Holding, _) => "holding_cancelled",
        (Followup::Verify, _) => "verify_cancelled",
        (Followup::Survey, _) => "survey_cancelled",
    }
}

/// What the email behind a change to a ticket did, for the follow-up policy (default: no
/// email, e.g. a command).
#[derive(Debug, Clone, Copy, Default)]
struct Because {
    /// An acknowledgement was queued for it.
    acked: bool,
    /// It keeps an automatic loop going ([`tickets::unanswered_auto`] at its limit).
    auto_loop: bool,
}

/// Apply the follow-up policy to a ticket after `change` (`None`: it was just opened, with an
/// acknowledgement queued when `because.acked`). `at` is when the waiting began (the
/// customer's email arrived, staff replied, the ticket closed): due times count business time
/// from there.
fn schedule_followups(
    tx: &Connection,
    ticket_id: i64,
    change: Option<(Event, State, State)>,
    because: Because,
    at: i64,
    policy: &Policy,
    now: i64,
) -> Result<()> {
    let (tag, customer, priority): (String, String, String) = tx
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
    let p = parse_priority(&priority).unwrap_or(Priority::Normal);
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
                    followup_event(kind, "withheld"),
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
        .query_row(params![ticket_id, kind.as_str()], |r| r.get(0))
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
        .query_row(params![ticket_id, kind.as_str()], |r| r.get(0))
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
            kind.as_str(),
            ticket_id,
            message_row,
            seq,
            customer,
            FOLLOWUP_RANK + rank(priority),
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
        followup_event(kind, "queued"),
        now,
        None,
        &format!("due {when}"),
    )
}

/// Cancel the pending follow-ups of one kind, keeping the reason; returns how many.
fn cancel_followup(
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
        .execute(params![ticket_id, kind.as_str(), reason, now])
        .context("Cancelling a follow-up")?;
    // One the outbox holds right now cannot be stopped mid-send; if that attempt does not
    // deliver it, it is cancelled instead of going back in the queue.
    let in_flight = tx
        .prepare_cached(
            "UPDATE outbox SET cancel_reason = ?3, updated_at = ?4
             WHERE ticket_id = ?1 AND kind = ?2 AND state = 'sending' AND cancel_reason = ''",
        )?
        .execute(params![ticket_id, kind.as_str(), reason, now])
        .context("Cancelling a follow-up being sent")?;
    let n = pending + in_flight;
    if n > 0 {
        note_event(
            tx,
            ticket_id,
            followup_event(kind, "cancelled"),
            now,
            None,
            reason,
        )?;
    }
    Ok(n)
}

/// The rating in `body` when it answers a survey sent for this closed ticket.
fn survey_answer(tx: &Connection, ticket_id: i64, body: &str) -> Result<Option<u8>> {
    let Some(rating) = tickets::survey_rating(body) else {
        return Ok(None);
    };
    let asked: bool = tx
        .prepare_cached("SELECT count(*) > 0 FROM outbox o JOIN tickets t ON t.id = o.ticket_id
             WHERE o.ticket_id = ?1 AND o.kind = 'survey' AND o.state = 'sent' AND t.state = 'closed'")?
        .query_row(
            [ticket_id],
            |r| r.get(0),
        )
        .context("Looking for a survey")?;
    Ok(asked.then_some(rating))
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
            e.to.as_str(),
            e.message_row,
            e.detail
        ],
    )
    .context("Logging ticket event")?;
    Ok(())
}

#[cfg(test)]
mod tests;
