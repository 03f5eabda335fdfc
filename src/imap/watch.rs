//! The watch loop for one folder: connect, sync by UID above the checkpoint, flag, wait (IDLE or
//! poll), repeat; on any error drop the session and reconnect with jittered exponential backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use async_imap::extensions::idle::IdleResponse;
use async_imap::types::{Fetch, Flag, UnsolicitedResponse};
use futures::TryStreamExt;
use tokio::sync::Notify;
use tokio_rustls::rustls::ClientConfig;
use tokio_util::sync::CancellationToken;

use super::corrections::Corrections;
use super::folder_corrections::{FolderCorrections, PriorityFolder};
use super::folders::{self, Hierarchy};
use super::{IO_TIMEOUT, ImapSession, ImapStream, connect, io};
use crate::alerts::Condition;
use crate::config::{Config, FlagsConfig, Login, MailboxConfig, Start};
use crate::health::HealthBoard;
use crate::notices::StoreWait;
use crate::outbox::Shared;
use crate::pipeline::{Fetched, Pipeline};
use crate::route::TeamFolder;
use crate::score::Priority;
use crate::store::{FlagTask, FolderState};

/// One IMAP account as its watchers share it: the mailbox's settings, its TLS roots and its
/// login (one token cache per account).
#[derive(Clone)]
pub struct Account {
    pub mailbox: MailboxConfig,
    pub tls: Arc<ClientConfig>,
    pub login: Login,
}

/// Watches one folder until cancelled.
pub struct Watcher {
    /// The folder this watcher owns (one of the mailbox's folders, or its Sent folder), as IMAP
    /// names it. The store, health board, metrics and logs know it by `mailbox.key(folder)`.
    folder: String,
    mailbox: MailboxConfig,
    flags: FlagsConfig,
    tls: Arc<ClientConfig>,
    /// The account's password or token (shared with the mailbox's other watchers).
    login: Login,
    pipeline: Pipeline,
    /// Poked after something was queued for the outbox.
    outbox_wake: Arc<Notify>,
    /// Where login and connection trouble is reported for health alerts.
    health: HealthBoard,
    /// The folder `SENT_AUTO` stands for, once found.
    resolved: Option<String>,
    /// The keyword fallback was announced (once per run, not per reconnect).
    told_fallback: bool,
    /// Connection state and IDLE/poll for `/metrics`.
    metrics: crate::metrics::Metrics,
    /// Where moved email goes on this server, and the folders it refused.
    moves: Moves,
    /// Where a complete pass over the folder is told (keyed `mailbox.key(folder)` of the
    /// configured folder name).
    synced: crate::outbox::SyncMarks,
    /// How an unavailable store is waited out: fetching stops, the connection stays.
    store_wait: StoreWait,
    /// Reading the keywords staff change (corrections).
    corrections: Corrections,
    /// Reading the emails staff move into another priority's folder (corrections).
    folder_corrections: FolderCorrections,
}

impl Watcher {
    /// A watcher of `folder` of `account`'s mailbox — its Sent folder when `staff_folder`, whose
    /// mail is staff's and is never flagged — triaging through `pipeline` and reporting to what
    /// the daemon's tasks share.
    pub fn new(
        config: &Config,
        account: &Account,
        folder: String,
        staff_folder: bool,
        pipeline: Pipeline,
        shared: &Shared,
    ) -> Watcher {
        let key = account.mailbox.key(&folder);
        shared.synced.watch(&key);
        let mut flags = config.flags.clone();
        if staff_folder {
            flags.enabled = false;
        }
        // One watcher per account looks into the priority folders: its first folder's.
        let looks = !staff_folder && account.mailbox.folders.first() == Some(&folder);
        Watcher {
            corrections: Corrections::new(&flags),
            folder_corrections: FolderCorrections::new(&flags, looks),
            store_wait: StoreWait::new(&shared.health, key, &config.store),
            synced: shared.synced.clone(),
            folder,
            mailbox: account.mailbox.clone(),
            flags,
            tls: account.tls.clone(),
            login: account.login.clone(),
            pipeline,
            outbox_wake: shared.wake.clone(),
            health: shared.health.clone(),
            resolved: None,
            told_fallback: false,
            moves: Moves::default(),
            metrics: shared.metrics.clone(),
        }
    }
}

/// What the watcher knows about filing email into folders (kept across reconnects).
#[derive(Debug, Default)]
pub struct Moves {
    /// The account's hierarchy, read at connect when any move is configured (or before the
    /// first move, when a reload configured one).
    hierarchy: Hierarchy,
    /// `hierarchy` was read from the server on this connection.
    discovered: bool,
    /// Server names of the folders that refused email, each reported once (until it works).
    refused: BTreeSet<String>,
    /// Configured names the server spells differently were said (once per run).
    told_names: bool,
}

impl Moves {
    /// The server's name for a configured folder.
    fn server_name(&self, configured: &str) -> String {
        self.hierarchy.server_name(configured)
    }
}

/// The server said NO (or BAD) to a command, as opposed to not answering: the connection is
/// fine. Its answer, when `e` is such a refusal.
pub(super) fn refusal(e: &anyhow::Error) -> Option<String> {
    use async_imap::error::Error;
    e.chain().find_map(|c| match c.downcast_ref::<Error>()? {
        Error::No(text) | Error::Bad(text) => Some(server_words(text)),
        Error::Validate(v) => Some(format!("not sent: {v}")),
        _ => None,
    })
}

/// The server's own words in an async-imap NO or BAD (which holds them as
/// `code: Some(TryCreate), info: Some("Mailbox doesn't exist")`): `[TRYCREATE] Mailbox doesn't
/// exist`. Anything of another shape is returned as it is.
fn server_words(raw: &str) -> String {
    let info = ["info: Some(\"", "information: Some(\""]
        .iter()
        .find_map(|m| raw.find(m).map(|i| &raw[i + m.len()..]))
        .and_then(|rest| {
            let mut out = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    '"' => return Some(out),
                    c => out.push(c),
                }
            }
            None
        });
    let code = raw
        .find("code: Some(")
        .and_then(|i| {
            raw[i + 11..]
                .split(|c: char| !c.is_ascii_alphanumeric())
                .next()
        })
        .filter(|c| !c.is_empty());
    match (code, info) {
        (_, None) => raw.trim().to_string(),
        (Some(code), Some(info)) => format!("[{}] {info}", code.to_ascii_uppercase()),
        (None, Some(info)) => info,
    }
}

/// A move the server refused: what it answered to CREATE (if it refused that too) and to
/// MOVE or COPY.
#[derive(Debug)]
struct MoveRefused {
    create: Option<String>,
    command: &'static str,
    answer: String,
}

/// What the server can do, read once per connection (keywords: per folder, at SELECT).
struct Caps {
    idle: bool,
    mv: bool,
    uidplus: bool,
    /// NAMESPACE (RFC 2342): where the account's folders live.
    namespace: bool,
    keywords: Keywords,
    /// `\Flagged` is among the folder's PERMANENTFLAGS (a read-only ACL can take it away).
    flagged: bool,
    /// CONDSTORE (RFC 7162): keywords staff changed are read by what changed since the last
    /// read.
    condstore: bool,
}

/// Which custom keywords the selected folder keeps (its PERMANENTFLAGS).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Keywords {
    /// `\*`: any new keyword.
    Any,
    /// Only these, already defined (none on Microsoft 365).
    Only(Vec<String>),
}

impl Keywords {
    fn from_permanent_flags(flags: &[Flag<'_>]) -> Keywords {
        // No PERMANENTFLAGS at all: every flag is permanent (RFC 3501 7.1).
        if flags.is_empty() || flags.iter().any(|f| matches!(f, Flag::MayCreate)) {
            return Keywords::Any;
        }
        Keywords::Only(
            flags
                .iter()
                .filter_map(|f| match f {
                    Flag::Custom(k) if !k.starts_with('\\') => Some(k.to_ascii_lowercase()),
                    _ => None,
                })
                .collect(),
        )
    }

    fn allows(&self, keyword: &str) -> bool {
        match self {
            Keywords::Any => true,
            Keywords::Only(known) => known.iter().any(|k| k.eq_ignore_ascii_case(keyword)),
        }
    }
}

/// `sent_folder = "auto"`: the folder the server marks `\Sent` (RFC 6154 SPECIAL-USE), such as
/// Gmail's `[Gmail]/Sent Mail` or Microsoft's `Sent Items`.
pub const SENT_AUTO: &str = "auto";

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Reconnects back off: 1 s, 2 s, 4 s … capped at 5 min ([`crate::clock::backoff`]).
pub fn backoff_delay(failures: u32) -> Duration {
    crate::clock::backoff(BACKOFF_MIN, BACKOFF_MAX, failures)
}

impl Watcher {
    /// Run until cancelled. Never returns an error: every failure is logged and retried.
    pub async fn run(mut self, cancel: CancellationToken) {
        // `billing:INBOX` and `INBOX` are different sources: one cannot clear the other.
        let source = self.mailbox.key(&self.folder);
        let mut failures: u32 = 0;
        loop {
            let result = tokio::select! {
                r = self.session(&cancel, &mut failures) => r,
                () = cancel.cancelled() => Ok(()),
            };
            if cancel.is_cancelled() {
                self.pipeline.stopped();
                return;
            }
            if let Err(e) = result {
                self.metrics.imap_state(&source, false);
                // A refused login or an unreadable password will not fix itself; anything
                // else (a folder that cannot be selected too) is the connection's condition.
                if super::Failure::of(&e) == super::Failure::Login {
                    // The server answered: the connection is fine, the credentials are not.
                    self.health.ok(Condition::ImapConnection, &source);
                    self.health
                        .fail(Condition::ImapLogin, &source, format!("{e:#}"));
                } else {
                    self.health
                        .fail(Condition::ImapConnection, &source, format!("{e:#}"));
                }
                failures += 1;
                let delay = backoff_delay(failures);
                tracing::error!(folder = %source, attempt = failures, retry_in_s = delay.as_secs_f32(), "IMAP: {e:#}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    }

    /// One connection's life. Returns only on error (or never, until cancelled by the caller).
    async fn session(&mut self, cancel: &CancellationToken, failures: &mut u32) -> Result<()> {
        let source = self.mailbox.key(&self.folder);
        let mut session = log_in(&self.mailbox, &self.tls, &self.login, &source).await?;
        self.health.ok(Condition::ImapLogin, &source);
        let caps = io("Reading CAPABILITY", session.capabilities()).await?;
        let special_use = caps.has_str("SPECIAL-USE") && caps.has_str("LIST-EXTENDED");
        let namespace = caps.has_str("NAMESPACE");
        self.moves.discovered = false;
        if self.flags.enabled && (self.flags.may_move() || self.team_folders()) {
            self.discover(&mut session, namespace).await?;
        }
        let mut caps = Caps {
            idle: caps.has_str("IDLE"),
            mv: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
            namespace,
            keywords: Keywords::Any,
            flagged: true,
            condstore: caps.has_str("CONDSTORE"),
        };
        self.corrections.connected();
        self.folder_corrections.connected();
        let folder = if self.folder == SENT_AUTO {
            let found = find_sent_folder(&mut session, special_use).await?;
            if self.resolved.as_deref() != Some(found.as_str()) {
                tracing::info!(folder = %found, "Sent folder found through SPECIAL-USE (\\Sent)");
                self.resolved = Some(found.clone());
            }
            found
        } else {
            self.folder.clone()
        };
        // SELECT takes the folder's own name; the store and the pipeline take its key.
        let key = self.mailbox.key(&folder);
        tracing::info!(mailbox = %self.mailbox.name, host = %self.mailbox.host, folder = %folder, idle = caps.idle, condstore = caps.condstore, "IMAP connected");
        // Healthy once the folder is selected and synced (below); a folder that cannot be
        // selected keeps its connection problem.
        loop {
            let mbox = super::select(&mut session, &folder, caps.condstore).await?;
            caps.keywords = Keywords::from_permanent_flags(&mbox.permanent_flags);
            caps.flagged = mbox.permanent_flags.is_empty()
                || mbox
                    .permanent_flags
                    .iter()
                    .any(|f| matches!(f, Flag::Flagged | Flag::MayCreate));
            if caps.keywords != Keywords::Any && self.flags.enabled && !self.told_fallback {
                self.told_fallback = true;
                self.tell_fallback(&folder, &caps);
            }
            let uidvalidity = mbox
                .uid_validity
                .ok_or_else(|| anyhow!("Server sent no UIDVALIDITY for {folder}"))?;
            let pass_began = self.pipeline.clock.now();
            let modseq = mbox.highest_modseq.filter(|_| caps.condstore);
            let synced = self
                .sync_folder(
                    &mut session,
                    &key,
                    uidvalidity,
                    mbox.uid_next,
                    modseq,
                    &caps,
                )
                .await;
            let examined = match synced {
                Ok(examined) => examined,
                Err(e) => {
                    // The store is unavailable (locked, disk full): fetch nothing until it
                    // takes writes again, then sync from the checkpoint, which moved only
                    // with what was recorded. Any other error ends the session, as ever.
                    let retry = self.store_wait.failed(&e).ok_or(e)?;
                    session = self.wait_for_store(session, retry, cancel).await?;
                    if cancel.is_cancelled() {
                        return Ok(());
                    }
                    continue;
                }
            };
            self.store_wait.worked();
            self.synced
                .read_through(&self.mailbox.key(&self.folder), pass_began);
            *failures = 0;
            self.health.ok(Condition::ImapConnection, &source);
            self.metrics.imap_state(&source, true);
            self.metrics.imap_wait_mode(
                &source,
                if caps.idle {
                    crate::metrics::WaitMode::Idle
                } else {
                    crate::metrics::WaitMode::Poll
                },
            );
            // A priority folder was examined: select the watched folder again, and sync what
            // arrived meanwhile (it was not announced to this session).
            if examined {
                continue;
            }
            // Mail that arrived while we were listing or flagging was announced (EXISTS) in the
            // responses to those commands; the server will not announce it again in IDLE, so
            // go round once more instead of waiting for news that already came.
            if new_mail_announced(&session) {
                tracing::debug!(folder = %folder, "New mail announced while syncing; syncing again");
                continue;
            }
            // Keywords staff changed are news where the folder has a HIGHESTMODSEQ; elsewhere
            // they are read again on a timer, which ends the wait.
            let until = [
                self.corrections.wait_until(modseq.is_some()),
                self.folder_corrections.wait_until(),
            ]
            .into_iter()
            .flatten()
            .min();
            self.folder_corrections.waiting();
            session = if caps.idle {
                // Waiting in IDLE with nothing unread: read through, for as long as it lasts.
                let marked = self.mailbox.key(&self.folder);
                self.synced.idle(&marked, true);
                let waited = Self::idle(&self.mailbox, session, cancel, &source, until).await;
                self.synced.idle(&marked, false);
                waited?
            } else {
                Self::poll(&self.mailbox, session, cancel, &source, until).await?
            };
            if cancel.is_cancelled() {
                // Best effort: the connection is dropped either way.
                let _ = tokio::time::timeout(Duration::from_secs(2), session.logout()).await;
                return Ok(());
            }
        }
    }

    /// Everything above the checkpoint fetched and recorded, flags applied, the keywords
    /// staff changed read back (`modseq`: the folder's HIGHESTMODSEQ, with CONDSTORE), and,
    /// when due, the priority folders looked into for emails staff moved. Returns whether
    /// another folder was examined (the watched one is no longer selected).
    async fn sync_folder(
        &mut self,
        session: &mut ImapSession,
        key: &str,
        uidvalidity: u32,
        uid_next: Option<u32>,
        modseq: Option<u64>,
        caps: &Caps,
    ) -> Result<bool> {
        let state = self.checkpoint(session, key, uidvalidity, uid_next).await?;
        self.sync(session, key, state).await?;
        self.apply_flags(session, key, uidvalidity, caps).await?;
        // Where the folder keeps no custom keywords, staff cannot change one either.
        if caps.keywords == Keywords::Any {
            let now = self.pipeline.clock.now();
            let store = &mut self.pipeline.store;
            self.corrections
                .read(session, store, key, uidvalidity, modseq, now)
                .await?;
        }
        if !self.folder_corrections.due(modseq.is_some()) {
            return Ok(false);
        }
        let folders = self.priority_folders(&caps.keywords);
        if folders.is_empty() {
            return Ok(false);
        }
        let now = self.pipeline.clock.now();
        self.folder_corrections
            .look(session, &mut self.pipeline.store, &folders, now)
            .await
    }

    /// The folders email is filed into by priority on this server (`[flags.folders]`; where
    /// the folder keeps no custom keywords, the keyword fallback's), by the server's name,
    /// each with the priorities it is configured for. A watched folder is none: what arrives
    /// there is new mail.
    fn priority_folders(&self, keywords: &Keywords) -> Vec<PriorityFolder> {
        let mut by_name: BTreeMap<String, Vec<Priority>> = BTreeMap::new();
        for p in Priority::ALL {
            let configured = match keywords {
                Keywords::Any => self.flags.folders.get(&p).cloned(),
                Keywords::Only(_) => self.flags.fallback_folder(p),
            };
            if let Some(c) = configured {
                by_name
                    .entry(self.moves.server_name(&c))
                    .or_default()
                    .push(p);
            }
        }
        let watched = |name: &str| {
            self.mailbox.folders.iter().any(|w| w == name)
                || self.mailbox.sent_folder.as_deref() == Some(name)
        };
        by_name
            .into_iter()
            .filter(|(server, _)| !watched(server))
            .map(|(server, priorities)| PriorityFolder {
                key: self.mailbox.key(&server),
                server,
                priorities,
            })
            .collect()
    }

    /// Wait until the store takes a write again, first `retry`, then on the store's backoff;
    /// meanwhile the connection is kept alive (a NOOP every `liveness_interval`), so a server
    /// that drops it is still noticed. Returns at once when cancelled.
    async fn wait_for_store(
        &mut self,
        mut session: ImapSession,
        mut retry: Duration,
        cancel: &CancellationToken,
    ) -> Result<ImapSession> {
        loop {
            let mut left = retry;
            while !left.is_zero() {
                let step = left.min(self.mailbox.liveness_interval);
                tokio::select! {
                    () = tokio::time::sleep(step) => {}
                    () = cancel.cancelled() => return Ok(session),
                }
                left = left.saturating_sub(step);
                if !left.is_zero() {
                    live(
                        &self.mailbox,
                        "Checking the connection (NOOP)",
                        session.noop(),
                    )
                    .await?;
                }
            }
            // Whether recording works is said by the sync that follows, not by this probe.
            match self.pipeline.store.probe(self.pipeline.clock.now()) {
                Ok(()) => return Ok(session),
                Err(e) => retry = self.store_wait.failed(&e).ok_or(e)?,
            }
        }
    }

    /// The checkpoint for this folder, initialising it on first run and resetting it when
    /// UIDVALIDITY changed (the re-sync then finds known emails by Message-ID). `folder` is
    /// the selected folder's store key ([`MailboxConfig::key`]).
    async fn checkpoint(
        &mut self,
        session: &mut ImapSession,
        folder: &str,
        uidvalidity: u32,
        uid_next: Option<u32>,
    ) -> Result<FolderState> {
        let now = self.pipeline.clock.now();
        let known = self.pipeline.store.folder_state(folder)?;
        match known {
            Some(st) if st.uidvalidity == uidvalidity => Ok(st),
            Some(st) => {
                tracing::warn!(
                    folder,
                    old = st.uidvalidity,
                    new = uidvalidity,
                    "UIDVALIDITY changed: re-syncing by Message-ID (no email is acknowledged twice)"
                );
                let st = FolderState {
                    uidvalidity,
                    last_uid: 0,
                };
                self.pipeline.store.set_folder_state(folder, st, now)?;
                Ok(st)
            }
            None => {
                let last_uid = match self.mailbox.start {
                    Start::All => 0,
                    Start::New => match uid_next {
                        Some(n) => n.saturating_sub(1),
                        None => max_uid(session).await?,
                    },
                    Start::Since(date) => {
                        let query = format!("SINCE {}", date.strftime("%d-%b-%Y"));
                        let uids = io("Searching by date", session.uid_search(&query)).await?;
                        match uids.iter().min() {
                            Some(min) => min - 1,
                            None => max_uid(session).await?,
                        }
                    }
                };
                let st = FolderState {
                    uidvalidity,
                    last_uid,
                };
                tracing::info!(
                    folder,
                    start_after_uid = last_uid,
                    "First run on this folder"
                );
                self.pipeline.store.set_folder_state(folder, st, now)?;
                Ok(st)
            }
        }
    }

    /// Fetch and process everything above the checkpoint, in UID order, in batches. `folder`
    /// is the selected folder's store key, as the pipeline records it.
    async fn sync(
        &mut self,
        session: &mut ImapSession,
        folder: &str,
        st: FolderState,
    ) -> Result<()> {
        let mut last = st.last_uid;
        loop {
            // Sizes first, so an oversized message is recorded without being downloaded. Each
            // response is reduced to (uid, size) as it streams in, so a backlog of any length
            // costs a few bytes per email here, not a parsed response.
            let query = format!("{}:*", last.saturating_add(1));
            let mut pending: Vec<(u32, usize)> =
                io(&format!("Listing new mail in {folder}"), async {
                    session
                        .uid_fetch(&query, "(UID RFC822.SIZE)")
                        .await?
                        .try_filter_map(|f| {
                            futures::future::ready(Ok(f
                                .uid
                                .map(|uid| (uid, f.size.unwrap_or(0) as usize))))
                        })
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await?;
            // "N:*" returns the last message even when its UID is below N.
            pending.retain(|(uid, _)| *uid > last);
            if pending.is_empty() {
                return Ok(());
            }
            pending.sort_unstable();
            pending.dedup();
            for chunk in batches(
                &pending,
                self.mailbox.batch_size,
                self.mailbox.max_message_size,
            ) {
                let wanted: Vec<String> = chunk
                    .iter()
                    .filter(|(_, size)| *size <= self.mailbox.max_message_size)
                    .map(|(uid, _)| uid.to_string())
                    .collect();
                let mut bodies: BTreeMap<u32, Fetch> = BTreeMap::new();
                if !wanted.is_empty() {
                    let set = wanted.join(",");
                    let fetched: Vec<Fetch> = io(
                        &format!("Fetching {} emails from {folder}", wanted.len()),
                        async {
                            session
                                .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
                                .await?
                                .try_collect()
                                .await
                        },
                    )
                    .await?;
                    bodies.extend(fetched.into_iter().filter_map(|f| Some((f.uid?, f))));
                }
                let uids: Vec<u32> = chunk.iter().map(|(uid, _)| *uid).collect();
                self.pipeline.begin_batch(folder, st.uidvalidity, &uids)?;
                for &(uid, size) in chunk {
                    let fetched = bodies.get(&uid);
                    let raw = fetched.and_then(Fetch::body);
                    if size <= self.mailbox.max_message_size && raw.is_none() {
                        // Deleted (or expunged) between listing and fetching: nothing to record.
                        tracing::debug!(folder, uid, "Gone before it could be fetched");
                        self.pipeline.gone(folder, st.uidvalidity, uid);
                        continue;
                    }
                    let m = Fetched {
                        folder,
                        uidvalidity: st.uidvalidity,
                        uid,
                        raw,
                        size,
                        arrived_at: fetched
                            .and_then(Fetch::internal_date)
                            .map(|d| d.timestamp()),
                    };
                    self.pipeline.refresh();
                    self.pipeline
                        .process_bounded(&m)
                        .await
                        .with_context(|| format!("Recording UID {uid} of {folder}"))?;
                    last = last.max(uid);
                }
                self.outbox_wake.notify_one();
            }
        }
    }

    /// Set keywords (and `\Flagged`, and moves) for every recorded message still waiting for them.
    async fn apply_flags(
        &mut self,
        session: &mut ImapSession,
        folder: &str,
        uidvalidity: u32,
        caps: &Caps,
    ) -> Result<()> {
        let tasks = self.pipeline.store.pending_flags(folder, uidvalidity)?;
        if tasks.is_empty() {
            return Ok(());
        }
        if self.flags.enabled {
            let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for t in &tasks {
                let flags = self.flag_list(t, &caps.keywords, caps.flagged);
                if !flags.is_empty() {
                    groups.entry(flags).or_default().push(t.uid);
                }
            }
            for (flags, uids) in &groups {
                let set = uid_set(uids);
                io(&format!("Setting flags in {folder}"), async {
                    session
                        .uid_store(&set, format!("+FLAGS.SILENT ({flags})"))
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await?;
            }
            self.file(session, folder, &tasks, caps).await?;
        }
        let rows: Vec<i64> = tasks.iter().map(|t| t.row).collect();
        self.pipeline.store.mark_flagged(&rows)
    }

    /// Some `[[team]]` has a folder.
    fn team_folders(&self) -> bool {
        self.pipeline
            .routing
            .teams
            .iter()
            .any(|t| t.folder.is_some())
    }

    /// Read how the server names folders (NAMESPACE, else LIST's delimiter), and say once how
    /// configured folders are spelled there.
    async fn discover(&mut self, session: &mut ImapSession, namespace: bool) -> Result<()> {
        self.moves.hierarchy = folders::discover(session, namespace, IO_TIMEOUT).await?;
        self.moves.discovered = true;
        self.tell_names();
        Ok(())
    }

    /// File the flagged emails `tasks` of the selected `folder` into their team's folder
    /// (`[[team]] folder`) and their priority's (`[flags.folders]`, the keyword fallback), as
    /// [`filing`] decides. Copies first: a copy is taken where the email arrived, before a move
    /// takes it away. A connection lost after a copy and before the pass is recorded files that
    /// copy again on the next pass (a second copy, never a lost one).
    async fn file(
        &mut self,
        session: &mut ImapSession,
        folder: &str,
        tasks: &[FlagTask],
        caps: &Caps,
    ) -> Result<()> {
        let mut copies: BTreeMap<Target, Vec<u32>> = BTreeMap::new();
        let mut moves: BTreeMap<Target, Vec<u32>> = BTreeMap::new();
        for t in tasks {
            let priority = t.priority.and_then(|p| match caps.keywords {
                Keywords::Any => self.flags.folders.get(&p).cloned(),
                Keywords::Only(_) => self.flags.fallback_folder(p),
            });
            let team = self
                .pipeline
                .routing
                .team(&t.team)
                .and_then(|team| Some((team.name.as_str(), team.folder.as_ref()?)));
            let f = filing(priority, team);
            if let Some(c) = f.copy {
                copies.entry(c).or_default().push(t.uid);
            }
            if let Some(m) = f.mv {
                moves.entry(m).or_default().push(t.uid);
            }
        }
        if copies.is_empty() && moves.is_empty() {
            return Ok(());
        }
        if !self.moves.discovered {
            // A team folder a reload configured after this connection began.
            self.discover(session, caps.namespace).await?;
        }
        // Filings into a priority folder are noted before they are made: when the emails
        // arrive there, they are the daemon's own, not staff's move (a correction).
        let looked_into: BTreeSet<String> = if self.folder_corrections.records() {
            self.priority_folders(&caps.keywords)
                .into_iter()
                .map(|f| f.server)
                .collect()
        } else {
            BTreeSet::new()
        };
        let row_of: BTreeMap<u32, i64> = tasks.iter().map(|t| (t.uid, t.row)).collect();
        let groups = copies
            .iter()
            .map(|g| (g, true))
            .chain(moves.iter().map(|g| (g, false)));
        for ((target, uids), copy) in groups {
            let server = self.moves.server_name(&target.configured);
            let noted = looked_into.contains(&server).then(|| {
                let rows: Vec<i64> = uids.iter().filter_map(|u| row_of.get(u).copied()).collect();
                (self.mailbox.key(&server), rows)
            });
            if let Some((key, rows)) = &noted {
                let now = self.pipeline.clock.now();
                self.pipeline.store.note_filing(key, rows, now)?;
            }
            let filed = self
                .file_group(session, folder, target, uids, caps, copy)
                .await?;
            if let (false, Some((key, rows))) = (filed, &noted) {
                self.pipeline.store.forget_filing(key, rows)?;
            }
        }
        Ok(())
    }

    /// Move (or copy) `uids` into `target`; a folder the server refuses is said once (until it
    /// works again), and the emails stay where they are. Returns whether they were filed.
    async fn file_group(
        &mut self,
        session: &mut ImapSession,
        folder: &str,
        target: &Target,
        uids: &[u32],
        caps: &Caps,
        copy: bool,
    ) -> Result<bool> {
        let configured = &target.configured;
        let server = self.moves.server_name(configured);
        let Some(r) = file_into(session, folder, &server, uids, caps, copy).await? else {
            if self.moves.refused.remove(&server) {
                tracing::info!(folder, target = %server, "Email is filed into {server} again");
            }
            return Ok(true);
        };
        let create = r
            .create
            .map(|a| format!("CREATE with \"{a}\" and "))
            .unwrap_or_default();
        let what = format!(
            "the server answered {create}{} with \"{}\"",
            r.command, r.answer
        );
        let check = match &target.by {
            By::Priority => "check the name in [flags.folders]".to_string(),
            By::Team(name) => format!("check the folder of [[team]] {name:?}"),
        };
        let stay = if copy {
            format!(
                "no copy is filed, the emails are otherwise flagged and filed as usual from {folder}"
            )
        } else {
            format!("the emails stay in {folder} with their flags")
        };
        if self.moves.refused.insert(server.clone()) {
            tracing::warn!(
                folder,
                target = %server,
                emails = uids.len(),
                "Cannot file email into folder {server:?} (configured as {configured:?}): {what}; {stay}, and this is not said again until it works ({check} and the account's right to create folders)"
            );
        } else {
            tracing::debug!(folder, target = %server, emails = uids.len(), "Still cannot file email into {server}: {what}");
        }
        Ok(false)
    }

    /// Say once, at start-up, how priorities are shown where custom keywords are refused.
    fn tell_fallback(&self, folder: &str, caps: &Caps) {
        let mut shown = Vec::new();
        if self.flags.flag_urgent && caps.flagged {
            shown.push("\\Flagged on urgent email".to_string());
        }
        let folders: Vec<String> = Priority::ALL
            .iter()
            .filter_map(|p| {
                self.flags
                    .fallback_folder(*p)
                    .map(|f| format!("{} -> {}", p.as_str(), self.moves.server_name(&f)))
            })
            .collect();
        if !folders.is_empty() {
            shown.push(format!(
                "folders ({}{})",
                folders.join(", "),
                if caps.mv || caps.uidplus { "" } else { "; the server has neither MOVE nor UIDPLUS, so moved originals stay marked \\Deleted" }
            ));
        }
        let shown = if shown.is_empty() {
            "nothing (set [flags] keyword_fallback = \"folders\" to file email into a folder per priority)".to_string()
        } else {
            shown.join(" and ")
        };
        tracing::warn!(host = %self.mailbox.host, folder, "The server does not keep custom keywords in this folder (no \\* in PERMANENTFLAGS): priorities are shown by {shown}");
    }

    /// Say once per run how configured move targets are spelled on this server, when that
    /// differs from the configuration.
    fn tell_names(&mut self) {
        if self.moves.told_names {
            return;
        }
        let mut configured: Vec<String> = self.flags.folders.values().cloned().collect();
        configured.extend(
            Priority::ALL
                .iter()
                .filter_map(|p| self.flags.fallback_folder(*p)),
        );
        configured.extend(
            self.pipeline
                .routing
                .teams
                .iter()
                .filter_map(|t| Some(t.folder.as_ref()?.name.clone())),
        );
        configured.sort();
        configured.dedup();
        let renamed: Vec<String> = configured
            .iter()
            .filter_map(|c| {
                let server = self.moves.server_name(c);
                (server != *c).then(|| format!("{c} -> {server}"))
            })
            .collect();
        self.moves.told_names = true;
        if !renamed.is_empty() {
            let h = &self.moves.hierarchy;
            tracing::info!(
                host = %self.mailbox.host,
                delimiter = %h.delimiter.map(String::from).unwrap_or_else(|| "none".into()),
                prefix = %h.prefix,
                "Folders are named as the server names them: {}",
                renamed.join(", ")
            );
        }
    }

    fn flag_list(&self, t: &FlagTask, keywords: &Keywords, flagged: bool) -> String {
        // A copy of what we sent (the witness) is read: staff need not open it.
        if t.own {
            return "\\Seen".to_string();
        }
        let mut flags = Vec::new();
        if t.skipped && flagged {
            flags.push("\\Flagged".to_string());
        }
        if let Some(p) = t.priority {
            if let Some(k) = self.flags.priority_keywords.get(&p)
                && keywords.allows(k)
            {
                flags.push(k.clone());
            }
            if p == Priority::Urgent && self.flags.flag_urgent && flagged {
                flags.push("\\Flagged".to_string());
            }
        }
        if !self.flags.tone_prefix.is_empty() {
            for tone in &t.tones {
                let kw: String = tone
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    .collect();
                let kw = format!("{}{kw}", self.flags.tone_prefix);
                if kw.len() > self.flags.tone_prefix.len() && keywords.allows(&kw) {
                    flags.push(kw);
                }
            }
        }
        flags.join(" ")
    }

    /// IDLE until the server reports something, `idle_timeout` passes, `until` comes (keywords
    /// are due to be read), or we are cancelled.
    /// Every `liveness_interval` IDLE is ended, a NOOP sent and IDLE begun again, each answer
    /// awaited at most `liveness_timeout`: a connection that went silent is an error here
    /// (and a reconnect) within `liveness_interval + liveness_timeout`.
    async fn idle(
        mailbox: &MailboxConfig,
        mut session: ImapSession,
        cancel: &CancellationToken,
        source: &str,
        until: Option<Instant>,
    ) -> Result<ImapSession> {
        let began = Instant::now();
        loop {
            let announced = session.unsolicited_responses.clone();
            let mut handle = session.idle();
            live(mailbox, "Starting IDLE", handle.init()).await?;
            // An EXISTS sent before the server's "+ idling" lands in the unsolicited channel,
            // not in the IDLE stream: it needs no wait.
            let already = std::iter::from_fn(|| announced.try_recv().ok()).any(|r| is_new_mail(&r));
            let wait_for = mailbox
                .idle_timeout
                .saturating_sub(began.elapsed())
                .min(mailbox.liveness_interval)
                .min(time_left(until));
            let woke = if already {
                tracing::debug!("New mail announced as IDLE began");
                Woke::News
            } else {
                // The server's keepalives reset async-imap's own timeout, so bound the whole
                // wait too.
                let (wait, _stop) = handle.wait_with_timeout(wait_for);
                tokio::select! {
                    r = tokio::time::timeout(wait_for, wait) => match r {
                        Ok(Ok(IdleResponse::NewData(d))) => {
                            tracing::debug!(response = ?d, "IDLE woke");
                            Woke::News
                        }
                        Ok(Ok(IdleResponse::Timeout | IdleResponse::ManualInterrupt)) | Err(_) => {
                            Woke::Timer
                        }
                        Ok(Err(e)) => return Err(e).context("Waiting in IDLE"),
                    },
                    () = cancel.cancelled() => Woke::Cancelled,
                }
            };
            session = live(mailbox, "Ending IDLE", handle.done()).await?;
            if woke != Woke::Timer
                || began.elapsed() >= mailbox.idle_timeout
                || time_left(until).is_zero()
            {
                return Ok(session);
            }
            live(mailbox, "Checking the connection (NOOP)", session.noop()).await?;
            tracing::debug!(folder = source, "IMAP connection checked (NOOP answered)");
            // News in the answers to DONE or NOOP: sync first (the loop re-lists by UID).
            if new_mail_announced(&session) {
                return Ok(session);
            }
        }
    }

    /// Wait `poll_interval` (on a server without IDLE), or until `until` when that comes
    /// first, with a NOOP at least every `liveness_interval` and at the end, each answer
    /// awaited at most `liveness_timeout`.
    async fn poll(
        mailbox: &MailboxConfig,
        mut session: ImapSession,
        cancel: &CancellationToken,
        source: &str,
        until: Option<Instant>,
    ) -> Result<ImapSession> {
        let mut left = mailbox.poll_interval.min(time_left(until));
        while !left.is_zero() {
            let step = left.min(mailbox.liveness_interval);
            tokio::select! {
                () = tokio::time::sleep(step) => {}
                () = cancel.cancelled() => return Ok(session),
            }
            left = left.saturating_sub(step);
            live(mailbox, "Checking the connection (NOOP)", session.noop()).await?;
            tracing::debug!(folder = source, "IMAP connection checked (NOOP answered)");
            if new_mail_announced(&session) {
                break;
            }
        }
        Ok(session)
    }
}

/// The time left until `until` (none: no end).
fn time_left(until: Option<Instant>) -> Duration {
    until.map_or(Duration::MAX, |u| {
        u.saturating_duration_since(Instant::now())
    })
}

/// Why an IDLE wait ended.
#[derive(Debug, PartialEq, Eq)]
enum Woke {
    /// The server sent something (new mail, an expunge, a flag change).
    News,
    /// `liveness_interval` (or what was left of `idle_timeout`) passed.
    Timer,
    Cancelled,
}

/// Await an answer that shows the connection is alive, at most `liveness_timeout`.
async fn live<T, E>(
    mailbox: &MailboxConfig,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(mailbox.liveness_timeout, fut).await {
        Ok(r) => r.with_context(|| what.to_string()),
        Err(_) => Err(anyhow!(
            "{what}: no answer from the server in {}s (liveness_timeout): the connection is dead or the server hung; reconnecting",
            mailbox.liveness_timeout.as_secs_f32()
        )),
    }
}

/// Where one email is filed once its keywords are set: its team's folder and its priority's.
#[derive(Debug, Default, PartialEq, Eq)]
struct Filing {
    /// A copy goes here; the email stays (and may still be moved).
    copy: Option<Target>,
    /// The email is moved here.
    mv: Option<Target>,
}

/// A folder as configured, and what configured it (named when the server refuses it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    configured: String,
    by: By,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum By {
    /// `[flags.folders]` or the keyword fallback's `Triage/...`.
    Priority,
    /// `[[team]] folder` of this team.
    Team(String),
}

/// Where an email is filed, given its priority's folder and its team's (name and folder).
/// An email is in one place: a team folder to move to wins over the priority's (the team is
/// the more specific, and who works the email). A team folder to copy to adds a copy and
/// changes nothing else: the email stays where it arrived, or moves to its priority's folder
/// (a copy into that same folder would only be a second one). Keywords are set either way.
fn filing(priority: Option<String>, team: Option<(&str, &TeamFolder)>) -> Filing {
    let by_priority = priority.map(|configured| Target {
        configured,
        by: By::Priority,
    });
    let Some((name, folder)) = team else {
        return Filing {
            copy: None,
            mv: by_priority,
        };
    };
    let by_team = Target {
        configured: folder.name.clone(),
        by: By::Team(name.to_string()),
    };
    if !folder.copy {
        return Filing {
            copy: None,
            mv: Some(by_team),
        };
    }
    let same = by_priority
        .as_ref()
        .is_some_and(|p| p.configured == by_team.configured);
    Filing {
        copy: (!same).then_some(by_team),
        mv: by_priority,
    }
}

/// Move `uids` of the selected `folder` into `target` (`copy`: copy them there), creating it
/// first: MOVE, or where the server lacks it COPY, then `\Deleted` and UID EXPUNGE of just
/// those emails (UIDPLUS); a copy is UID COPY. `Ok(Some(_))`: the server refused (a name it
/// does not allow, no right to create, over quota); nothing was filed and the connection is
/// fine. `Err`: the connection failed.
async fn file_into(
    session: &mut ImapSession,
    folder: &str,
    target: &str,
    uids: &[u32],
    caps: &Caps,
    copy: bool,
) -> Result<Option<MoveRefused>> {
    // CREATE fails harmlessly when the folder exists (its answer is kept for the report in
    // case the move fails too).
    let create = match io(&format!("Creating {target}"), session.create(target)).await {
        Ok(()) => None,
        Err(e) => Some(refusal(&e).ok_or(e)?),
    };
    let refused = |e: anyhow::Error, command| -> Result<Option<MoveRefused>> {
        let answer = refusal(&e).ok_or(e)?;
        Ok(Some(MoveRefused {
            create: create.clone(),
            command,
            answer,
        }))
    };
    if copy {
        let mut set = uid_set(uids);
        if !caps.mv {
            // Without MOVE, an original marked \Deleted by a move an interruption cut short
            // would be copied with that flag: those are left out.
            let todo = io(
                "Searching what is left to copy",
                session.uid_search(format!("UID {set} UNDELETED")),
            )
            .await?;
            if todo.is_empty() {
                return Ok(None);
            }
            set = uid_set(&todo.into_iter().collect::<Vec<_>>());
        }
        return match io(
            &format!("Copying to {target}"),
            session.uid_copy(&set, target),
        )
        .await
        {
            Ok(()) => Ok(None),
            Err(e) => refused(e, "COPY"),
        };
    }
    let set = uid_set(uids);
    if caps.mv {
        return match io(&format!("Moving to {target}"), session.uid_mv(&set, target)).await {
            Ok(()) => Ok(None),
            Err(e) => refused(e, "MOVE"),
        };
    }
    // Originals already marked \Deleted were copied before an interruption: not again.
    let search = format!("UID {set} UNDELETED");
    let todo = io(
        "Searching what is left to move",
        session.uid_search(&search),
    )
    .await?;
    if todo.is_empty() {
        return Ok(None);
    }
    let set = uid_set(&todo.into_iter().collect::<Vec<_>>());
    if let Err(e) = io(
        &format!("Copying to {target}"),
        session.uid_copy(&set, target),
    )
    .await
    {
        return refused(e, "COPY");
    }
    io(&format!("Marking moved email deleted in {folder}"), async {
        session
            .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    // A plain EXPUNGE could remove what others deleted: only UID EXPUNGE of these.
    if caps.uidplus {
        io(&format!("Expunging moved email from {folder}"), async {
            session
                .uid_expunge(&set)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
    }
    Ok(None)
}

/// Connect and log in. A token from the cache that the server refuses (expired or revoked
/// early) is forgotten and the login tried once more with a token fetched now.
async fn log_in(
    mailbox: &MailboxConfig,
    tls: &Arc<ClientConfig>,
    login: &Login,
    folder: &str,
) -> Result<ImapSession> {
    let unreadable = |e: anyhow::Error| super::ImapError::Credential {
        noun: login.credential.noun(),
        detail: format!("{e:#}"),
    };
    let first = login.get().await.map_err(unreadable)?;
    match connect(mailbox, tls, &first.secret).await {
        Err(e)
            if !first.fresh
                && matches!(e.downcast_ref(), Some(super::ImapError::LoginRefused(_))) =>
        {
            tracing::info!(
                folder = folder,
                "IMAP refused the cached token; fetching a new one"
            );
            login.forget(&first.secret).await;
            let again = login.get().await.map_err(unreadable)?;
            connect(mailbox, tls, &again.secret).await
        }
        r => r,
    }
}

/// The folder marked `\\Sent`: from a plain LIST (Gmail and Dovecot mark special use there), or
/// LIST with RETURN (SPECIAL-USE) where the server needs it asked.
async fn find_sent_folder(session: &mut ImapSession, extended: bool) -> Result<String> {
    use async_imap::types::NameAttribute;
    let mut patterns = vec!["\"*\""];
    if extended {
        patterns.push("\"*\" RETURN (SPECIAL-USE)");
    }
    for pattern in patterns {
        let names: Vec<_> = io("Listing folders", async {
            session
                .list(Some(""), Some(pattern))
                .await?
                .try_collect()
                .await
        })
        .await?;
        if let Some(n) = names.iter().find(|n| {
            n.attributes()
                .iter()
                .any(|a| matches!(a, NameAttribute::Sent))
        }) {
            return Ok(n.name().to_string());
        }
    }
    Err(anyhow!(
        "sent_folder = \"auto\": the server marks no folder \\Sent (SPECIAL-USE); set sent_folder to its name"
    ))
}

/// The highest UID in the selected folder (0 when empty).
async fn max_uid(session: &mut ImapSession) -> Result<u32> {
    let uids = io("Searching all UIDs", session.uid_search("ALL")).await?;
    Ok(uids.into_iter().max().unwrap_or(0))
}

/// Empty the unsolicited channel (every sync re-lists by UID, so the responses themselves are
/// not needed) and say whether any of them announced new mail.
pub fn new_mail_announced<T: ImapStream>(session: &async_imap::Session<T>) -> bool {
    std::iter::from_fn(|| session.unsolicited_responses.try_recv().ok())
        .fold(false, |any, r| any | is_new_mail(&r))
}

fn is_new_mail(r: &UnsolicitedResponse) -> bool {
    matches!(
        r,
        UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
    )
}

/// `1,2,3,7` -> `1:3,7`.
/// Most bytes of email fetched in one round trip: a backlog of large emails is fetched a few
/// at a time (one at a time when each is this large), not `batch_size` of them at once.
pub const BATCH_BYTES: usize = 32 * 1024 * 1024;

/// `pending` (uid, size) cut into fetch batches of at most `max_count` emails and, counting
/// only those that will be downloaded (not over `max_size`), at most [`BATCH_BYTES`].
fn batches(pending: &[(u32, usize)], max_count: usize, max_size: usize) -> Vec<&[(u32, usize)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, &(_, size)) in pending.iter().enumerate() {
        let size = if size <= max_size { size } else { 0 };
        if i > start && (i - start >= max_count.max(1) || bytes + size > BATCH_BYTES) {
            out.push(&pending[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < pending.len() {
        out.push(&pending[start..]);
    }
    out
}

pub(super) fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_words_are_taken_out_of_async_imaps_wrapping() {
        for (raw, words) in [
            (
                r#"code: None, info: Some("[NOPERM] Permission denied (0.001 + 0.000 secs).")"#,
                "[NOPERM] Permission denied (0.001 + 0.000 secs).",
            ),
            (
                r#"code: Some(TryCreate), info: Some("Mailbox doesn't exist: Triage.Urgent")"#,
                "[TRYCREATE] Mailbox doesn't exist: Triage.Urgent",
            ),
            (
                r#"outcome: Outcome { code: None, information: Some("Quota \"x\" exceeded") }"#,
                r#"Quota "x" exceeded"#,
            ),
            ("code: None, info: None", "code: None, info: None"),
        ] {
            assert_eq!(server_words(raw), words, "{raw}");
        }
    }

    #[test]
    fn a_team_folder_to_move_to_wins_and_one_to_copy_to_adds_a_copy() {
        let folder = |name: &str, copy: bool| TeamFolder {
            name: name.into(),
            copy,
        };
        let priority = |f: &str| Target {
            configured: f.into(),
            by: By::Priority,
        };
        let team = |f: &str| Target {
            configured: f.into(),
            by: By::Team("billing".into()),
        };
        let urgent = || Some("Triage/Urgent".to_string());
        // No team: the priority's folder, if any.
        assert_eq!(
            filing(urgent(), None),
            Filing {
                copy: None,
                mv: Some(priority("Triage/Urgent"))
            }
        );
        assert_eq!(filing(None, None), Filing::default());
        // Move: the team's folder, whatever the priority's.
        let billing = folder("Teams/Billing", false);
        for p in [urgent(), None] {
            assert_eq!(
                filing(p, Some(("billing", &billing))),
                Filing {
                    copy: None,
                    mv: Some(team("Teams/Billing"))
                }
            );
        }
        // Copy: a copy, and the email filed as without a team.
        let billing = folder("Teams/Billing", true);
        assert_eq!(
            filing(urgent(), Some(("billing", &billing))),
            Filing {
                copy: Some(team("Teams/Billing")),
                mv: Some(priority("Triage/Urgent"))
            }
        );
        assert_eq!(
            filing(None, Some(("billing", &billing))),
            Filing {
                copy: Some(team("Teams/Billing")),
                mv: None
            }
        );
        // A copy into the folder it moves to anyway would be a second one.
        let same = folder("Triage/Urgent", true);
        assert_eq!(
            filing(urgent(), Some(("billing", &same))),
            Filing {
                copy: None,
                mv: Some(priority("Triage/Urgent"))
            }
        );
    }

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 7]), "1:3,7");
        assert_eq!(uid_set(&[9, 8, 8, 10, 1]), "1,8:10");
        assert_eq!(uid_set(&[5]), "5");
    }

    #[test]
    fn large_emails_are_fetched_a_few_at_a_time() {
        let mb = 1024 * 1024;
        let sizes = |b: &[&[(u32, usize)]]| -> Vec<Vec<u32>> {
            b.iter()
                .map(|c| c.iter().map(|(u, _)| *u).collect())
                .collect()
        };
        let small: Vec<(u32, usize)> = (1..=5).map(|u| (u, 1000)).collect();
        assert_eq!(
            sizes(&batches(&small, 2, 25 * mb)),
            vec![vec![1, 2], vec![3, 4], vec![5]]
        );
        let big = [
            (1, 20 * mb),
            (2, 20 * mb),
            (3, 5 * mb),
            (4, 5 * mb),
            (5, 40 * mb),
            (6, 1),
        ];
        // 5 is over the size limit: not downloaded, so it weighs nothing.
        assert_eq!(
            sizes(&batches(&big, 100, 25 * mb)),
            vec![vec![1], vec![2, 3, 4, 5, 6]]
        );
        let huge = [(1, 30 * mb), (2, 30 * mb)];
        assert_eq!(sizes(&batches(&huge, 100, 64 * mb)), vec![vec![1], vec![2]]);
        assert!(batches(&[], 10, mb).is_empty());
    }

    #[test]
    fn backoff_stays_in_bounds() {
        for failures in 1..40 {
            let d = backoff_delay(failures);
            assert!(
                d >= Duration::from_millis(800) && d <= Duration::from_secs(360),
                "{failures}: {d:?}"
            );
        }
        assert!(backoff_delay(30) >= Duration::from_secs(240));
    }
}
