//! Staff corrections by folder: an email staff move into the folder of another priority
//! (`[flags.folders]`, or the keyword fallback's `Triage/Urgent` … on a server without custom
//! keywords, where folders are the only way to correct) is their correction of the verdict's
//! priority, recorded as a keyword's is ([`Store::note_arrivals`], source `imap-folder`).
//!
//! Cheap and bounded, on the watch session of the account's first folder: a STATUS (UIDNEXT
//! UIDVALIDITY) of each priority folder at every connection, every `[flags]
//! corrections_interval`, and with CONDSTORE after each sync. Only a folder whose UIDNEXT
//! moved since the last look (kept in the store per folder and UIDVALIDITY, so a move made
//! while the daemon was stopped is seen at the next start, and none twice) is EXAMINEd, and
//! the Message-IDs of what arrived read (`UID FETCH n:* (UID BODY.PEEK[HEADER.FIELDS
//! (MESSAGE-ID)])`, the latest [`RECENT_EMAILS`] UIDs at most); then the watcher selects its
//! own folder again. A move always gives the email a new UID in its new folder, so UIDNEXT
//! says all there is to say (a HIGHESTMODSEQ would also move with every keyword change).
//!
//! The daemon's own filings are noted in the store before each move ([`Store::note_filing`])
//! and are never a correction. An email moved out of a priority folder into any other folder
//! (the watched one included) says nothing: a folder that is no priority's is no label.
//! The first look at a folder (or one whose UIDVALIDITY changed) takes what is in it as the
//! starting point; a folder that does not exist yet is looked at from its first email once
//! it does. Who moved the email IMAP does not tell; the correction's time is when it was seen.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::TryStreamExt;

use super::watch::refusal;
use super::{ImapSession, io};
use crate::config::FlagsConfig;
use crate::corrections::{self, FolderMark, Look};
use crate::score::Priority;
use crate::store::{RECENT_EMAILS, Store, label};

/// A priority folder: the server's name for it, its store key, and the priorities configured
/// for it (more than one: moving an email there says nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PriorityFolder {
    pub server: String,
    pub key: String,
    pub priorities: Vec<Priority>,
}

/// What one watcher knows about reading corrections by folder (kept across reconnects).
pub(super) struct FolderCorrections {
    /// The daemon's own filings into priority folders are noted (corrections are on).
    records: bool,
    /// This watcher looks into the priority folders (the account's first folder's).
    looks: bool,
    interval: Duration,
    /// When the folders are looked into again; `None`: at the next sync.
    next: Option<Instant>,
    /// Looked into since the watcher last waited for news.
    looked: bool,
    /// Folders whose refusal was said (once per run).
    told: BTreeSet<String>,
}

impl FolderCorrections {
    /// As `[flags]` says; `looks`: this watcher is the one of its account that looks.
    pub(super) fn new(flags: &FlagsConfig, looks: bool) -> FolderCorrections {
        let records = flags.enabled && flags.corrections;
        FolderCorrections {
            records,
            looks: records && looks,
            interval: flags.corrections_interval,
            next: None,
            looked: false,
            told: BTreeSet::new(),
        }
    }

    /// The daemon's own filings are to be noted.
    pub(super) fn records(&self) -> bool {
        self.records
    }

    /// Look at the next sync whatever the interval: a new connection may follow a gap.
    pub(super) fn connected(&mut self) {
        self.next = None;
    }

    /// The watcher waits for news now: with CONDSTORE the next sync looks again.
    pub(super) fn waiting(&mut self) {
        self.looked = false;
    }

    /// When the wait for news must end for the next look (`None`: this watcher does not look).
    pub(super) fn wait_until(&self) -> Option<Instant> {
        if self.looks { self.next } else { None }
    }

    /// A look is due: at a connection, on the interval, and `after_sync` (CONDSTORE) once
    /// per wait.
    pub(super) fn due(&self, after_sync: bool) -> bool {
        self.looks
            && (self.next.is_none_or(|t| Instant::now() >= t) || (after_sync && !self.looked))
    }

    /// Look into each of `folders` and record what staff moved there. Returns whether another
    /// folder was EXAMINEd (the watcher must select its own again). A refusal is said once per
    /// folder and skips it; a connection failure is an error.
    pub(super) async fn look(
        &mut self,
        session: &mut ImapSession,
        store: &mut Store,
        folders: &[PriorityFolder],
        now: i64,
    ) -> Result<bool> {
        self.next = Some(Instant::now() + self.interval);
        self.looked = true;
        let mut examined = false;
        for f in folders {
            let Some(mark) = self.status(session, f).await? else {
                continue;
            };
            let kept = store.folder_mark(&f.key)?;
            match corrections::look(kept, mark) {
                Look::Nothing => {
                    if mark == FolderMark::Missing && kept != Some(mark) {
                        store.set_folder_mark(&f.key, mark)?;
                    }
                }
                Look::Baseline => {
                    tracing::debug!(folder = %f.server, "Priority folder looked into for the first time (or renumbered): moves are read from now on");
                    store.set_folder_mark(&f.key, mark)?;
                }
                Look::From(first) => {
                    examined = true;
                    let FolderMark::At { uidvalidity, .. } = mark else {
                        continue;
                    };
                    let arrived = self
                        .arrivals(session, store, f, uidvalidity, first, now)
                        .await?;
                    if let Some(mark) = arrived {
                        store.set_folder_mark(&f.key, mark)?;
                    }
                }
            }
        }
        tracing::debug!(
            folders = folders.len(),
            examined,
            "Priority folders looked into"
        );
        Ok(examined)
    }

    /// What STATUS says of `f`; `None`: nothing to go by (refused, or no UIDNEXT).
    async fn status(
        &mut self,
        session: &mut ImapSession,
        f: &PriorityFolder,
    ) -> Result<Option<FolderMark>> {
        let what = format!("Reading the status of {}", f.server);
        match io(&what, session.status(&f.server, "(UIDNEXT UIDVALIDITY)")).await {
            Ok(m) => match (m.uid_validity, m.uid_next) {
                (Some(uidvalidity), Some(uid_next)) => Ok(Some(FolderMark::At {
                    uidvalidity,
                    uid_next,
                })),
                _ => {
                    self.refused(&f.server, "STATUS", "no UIDNEXT or UIDVALIDITY");
                    Ok(None)
                }
            },
            Err(e) => match refusal(&e) {
                Some(answer) if missing(&answer) => {
                    tracing::debug!(folder = %f.server, "Priority folder not there (yet): {answer}");
                    Ok(Some(FolderMark::Missing))
                }
                Some(answer) => {
                    self.refused(&f.server, "STATUS", &answer);
                    Ok(None)
                }
                None => Err(e),
            },
        }
    }

    /// EXAMINE `f`, read the Message-IDs of the emails from UID `first` of UIDVALIDITY
    /// `uidvalidity` on (the latest [`RECENT_EMAILS`] UIDs at most) and record what staff
    /// moved there. The mark to keep; `None`: refused (looked at again next time).
    async fn arrivals(
        &mut self,
        session: &mut ImapSession,
        store: &mut Store,
        f: &PriorityFolder,
        uidvalidity: u32,
        first: u32,
        now: i64,
    ) -> Result<Option<FolderMark>> {
        let server = f.server.as_str();
        let mbox = match io(&format!("Examining {server}"), session.examine(server)).await {
            Ok(m) => m,
            Err(e) => {
                let answer = refusal(&e).ok_or(e)?;
                self.refused(server, "EXAMINE", &answer);
                return Ok(None);
            }
        };
        let (Some(now_valid), Some(uid_next)) = (mbox.uid_validity, mbox.uid_next) else {
            self.refused(server, "EXAMINE", "no UIDNEXT or UIDVALIDITY");
            return Ok(None);
        };
        if now_valid != uidvalidity {
            // Renumbered since STATUS: a new baseline, as at a first look.
            return Ok(Some(FolderMark::At {
                uidvalidity: now_valid,
                uid_next,
            }));
        }
        let from = first.max(uid_next.saturating_sub(RECENT_EMAILS as u32));
        if from > first {
            tracing::info!(
                folder = server,
                "More than {RECENT_EMAILS} emails arrived in {server} since it was last looked into: only the latest are read for staff's moves"
            );
        }
        let found = if mbox.exists == 0 {
            Vec::new()
        } else {
            match message_ids(session, server, from).await {
                Ok(found) => found,
                Err(e) => {
                    let answer = refusal(&e).ok_or(e)?;
                    self.refused(server, "FETCH", &answer);
                    return Ok(None);
                }
            }
        };
        let noted = store.note_arrivals(&f.key, &found, &f.priorities, now)?;
        tracing::debug!(
            folder = server,
            arrived = found.len(),
            changed = noted.len(),
            "Arrivals read in a priority folder"
        );
        for n in &noted {
            let ticket = n.ticket.as_deref().unwrap_or("-");
            let (from, to) = (label(&n.before), label(&n.after));
            if n.undone {
                tracing::info!(
                    folder = server,
                    ticket,
                    field = "priority",
                    from,
                    to,
                    "Staff moved the email back into {server}, the verdict's folder: their correction is undone"
                );
            } else {
                tracing::info!(
                    folder = server,
                    ticket,
                    field = "priority",
                    from,
                    to,
                    "Staff moved the email into {server}: priority {from} -> {to}"
                );
            }
        }
        let seen = found.iter().map(|(uid, _)| uid + 1).max().unwrap_or(0);
        Ok(Some(FolderMark::At {
            uidvalidity,
            uid_next: uid_next.max(seen),
        }))
    }

    /// Say once per run that `server` refused `command`; moves into it are not read.
    fn refused(&mut self, server: &str, command: &str, answer: &str) {
        if self.told.insert(server.to_string()) {
            tracing::warn!(
                folder = server,
                "Cannot look into the priority folder {server:?} ({command}: \"{answer}\"): emails staff move into it are not read as corrections (this is not said again until a restart); triage goes on"
            );
        } else {
            tracing::debug!(
                folder = server,
                "Still cannot look into {server}: {command}: {answer}"
            );
        }
    }
}

/// `(uid, Message-ID)` of the emails of the examined `folder` from UID `from` on (those
/// without a Message-ID are left out), each response reduced to that as it streams in.
async fn message_ids(
    session: &mut ImapSession,
    folder: &str,
    from: u32,
) -> Result<Vec<(u32, String)>> {
    io(&format!("Reading the Message-IDs of {folder}"), async {
        session
            .uid_fetch(
                format!("{from}:*"),
                "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
            )
            .await?
            .try_filter_map(|f| {
                let kept = f
                    .uid
                    .filter(|uid| *uid >= from)
                    .and_then(|uid| Some((uid, corrections::header_message_id(f.header()?)?)));
                futures::future::ready(Ok(kept))
            })
            .try_collect::<Vec<_>>()
            .await
    })
    .await
}

/// A refusal that says the folder does not exist (RFC 5530 `[NONEXISTENT]`, or the words
/// servers use without it): not there yet, which is no fault.
fn missing(answer: &str) -> bool {
    let a = answer.to_ascii_lowercase();
    [
        "nonexistent",
        "not exist",
        "n't exist",
        "unknown mailbox",
        "no such",
        "not found",
    ]
    .iter()
    .any(|w| a.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_not_there_yet_is_told_from_one_refused() {
        for (answer, gone) in [
            ("[NONEXISTENT] Mailbox doesn't exist: Triage/Urgent", true),
            ("Mailbox does not exist", true),
            ("[NONEXISTENT] Unknown Mailbox: Triage/Urgent", true),
            ("No such mailbox", true),
            ("Folder not found", true),
            ("[NOPERM] Permission denied", false),
            ("[SERVERBUG] Internal error", false),
        ] {
            assert_eq!(missing(answer), gone, "{answer}");
        }
    }

    fn flags(corrections: bool) -> FlagsConfig {
        FlagsConfig {
            enabled: true,
            priority_keywords: Default::default(),
            tone_prefix: String::new(),
            flag_urgent: true,
            folders: [(Priority::Urgent, "Triage/Urgent".to_string())].into(),
            keyword_fallback: crate::config::KeywordFallback::Flagged,
            corrections,
            corrections_interval: Duration::from_secs(3600),
        }
    }

    #[test]
    fn looks_are_due_at_a_connection_on_the_interval_and_after_a_sync_with_condstore() {
        let mut f = FolderCorrections::new(&flags(true), true);
        assert!(f.records());
        assert!(f.due(false), "at the first sync");
        f.next = Some(Instant::now() + Duration::from_secs(3600));
        f.looked = true;
        assert!(!f.due(false) && !f.due(true), "looked just now");
        assert!(f.wait_until().is_some());
        f.waiting();
        assert!(
            f.due(true) && !f.due(false),
            "after news, with CONDSTORE only"
        );
        f.connected();
        assert!(f.due(false), "a new connection");
        // Another folder's watcher notes its filings but never looks.
        let other = FolderCorrections::new(&flags(true), false);
        assert!(other.records() && !other.due(false) && other.wait_until().is_none());
        let off = FolderCorrections::new(&flags(false), true);
        assert!(!off.records() && !off.due(true));
    }
}
