//! Staff corrections read from the mailbox: after each sync the watcher reads the triage
//! keywords staff may have changed in their mail client, and the store records what changed
//! ([`Store::note_keywords`]: a correction, an undo, or nothing — the daemon's own keywords
//! are what it compares with, so they never count).
//!
//! Where the server has CONDSTORE (RFC 7162), only what changed is read: `UID FETCH 1:* (UID
//! FLAGS) (CHANGEDSINCE n)` with the folder's HIGHESTMODSEQ of the last read, kept in the
//! store, so a change made while the daemon was stopped is read at the next start; a folder
//! read for the first time (or whose UIDVALIDITY changed) is read as below once. Elsewhere
//! the keywords of the folder's latest [`RECENT_EMAILS`] emails are read again every
//! `[flags] corrections_interval` (5 min), and once at every connection.

use std::time::{Duration, Instant};

use anyhow::Result;
use async_imap::types::Flag;
use futures::TryStreamExt;

use super::{ImapSession, io};
use crate::config::FlagsConfig;
use crate::corrections::KeywordNames;
use crate::store::{RECENT_EMAILS, Store, label};

/// What one watcher knows about reading corrections (kept across reconnects).
pub(super) struct Corrections {
    names: KeywordNames,
    enabled: bool,
    interval: Duration,
    /// When the latest emails' keywords are read again (no CONDSTORE, or the first read with
    /// it); `None`: at the next sync.
    next_read: Option<Instant>,
}

impl Corrections {
    /// As `[flags]` says; off where flags are (a Sent folder's watcher).
    pub(super) fn new(flags: &FlagsConfig) -> Corrections {
        Corrections {
            names: KeywordNames {
                priority: flags.priority_keywords.clone(),
                tone_prefix: flags.tone_prefix.clone(),
            },
            enabled: flags.enabled && flags.corrections,
            interval: flags.corrections_interval,
            next_read: None,
        }
    }

    /// Read at the next sync whatever the interval: a new connection may follow a gap.
    pub(super) fn connected(&mut self) {
        self.next_read = None;
    }

    /// How long the watcher may wait for news before keywords are due to be read again:
    /// `None` when only news matters (`by_modseq`: the folder is read by what changed, which
    /// IDLE or the poll brings; or corrections are off).
    pub(super) fn wait_until(&self, by_modseq: bool) -> Option<Instant> {
        if !self.enabled || by_modseq {
            return None;
        }
        self.next_read
    }

    /// Read what staff changed in the selected `folder` (its store key) and record it.
    /// `highest_modseq`: the folder's, from SELECT (CONDSTORE).
    pub(super) async fn read(
        &mut self,
        session: &mut ImapSession,
        store: &mut Store,
        folder: &str,
        uidvalidity: u32,
        highest_modseq: Option<u64>,
        now: i64,
    ) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let since = match highest_modseq {
            Some(_) => store.highest_modseq(folder, uidvalidity)?,
            None => None,
        };
        let fetched = match (highest_modseq, since) {
            (Some(h), Some(s)) if h == s => return Ok(()),
            (Some(h), Some(s)) if h > s => {
                keywords(
                    session,
                    folder,
                    "1:*",
                    &format!("(UID FLAGS) (CHANGEDSINCE {s})"),
                )
                .await
            }
            // No CONDSTORE, a first read, or a server that went back (read it all once).
            _ => {
                if self.next_read.is_some_and(|t| Instant::now() < t) {
                    return Ok(());
                }
                self.next_read = Some(Instant::now() + self.interval);
                let uids = store.recent_uids(folder, uidvalidity, RECENT_EMAILS)?;
                if uids.is_empty() {
                    Ok(Vec::new())
                } else {
                    let set = super::watch::uid_set(&uids);
                    keywords(session, folder, &set, "(UID FLAGS)").await
                }
            }
        };
        let read = match fetched {
            Ok(read) => read,
            // The server refused the FETCH (the connection is fine): corrections are not read
            // from this folder until a restart, and triage goes on.
            Err(e) => match super::watch::refusal(&e) {
                Some(answer) => {
                    self.enabled = false;
                    tracing::warn!(
                        folder,
                        "The server refused to read keywords back (\"{answer}\"): staff's keyword changes in {folder} are not read as corrections until a restart; triage goes on"
                    );
                    return Ok(());
                }
                None => return Err(e),
            },
        };
        let noted = store.note_keywords(folder, uidvalidity, &read, &self.names, now)?;
        tracing::debug!(
            folder,
            read = read.len(),
            changed = noted.len(),
            "Keywords read back"
        );
        for n in &noted {
            let ticket = n.ticket.as_deref().unwrap_or("-");
            let (from, to) = (label(&n.before), label(&n.after));
            if n.undone {
                tracing::info!(
                    folder,
                    ticket,
                    field = n.field.as_str(),
                    from,
                    to,
                    "Staff put the verdict's {} back in the mailbox: their correction is undone",
                    n.field.as_str()
                );
            } else {
                tracing::info!(
                    folder,
                    ticket,
                    field = n.field.as_str(),
                    from,
                    to,
                    "Staff corrected the {} in the mailbox: {from} -> {to}",
                    n.field.as_str()
                );
            }
        }
        if let Some(h) = highest_modseq {
            store.set_highest_modseq(folder, uidvalidity, h)?;
        }
        Ok(())
    }
}

/// `(uid, keywords)` of the emails `set` of the selected folder, as `query` asks, each
/// response reduced to that as it streams in.
async fn keywords(
    session: &mut ImapSession,
    folder: &str,
    set: &str,
    query: &str,
) -> Result<Vec<(u32, Vec<String>)>> {
    io(&format!("Reading the keywords in {folder}"), async {
        session
            .uid_fetch(set, query)
            .await?
            .try_filter_map(|f| {
                let kept = f.uid.map(|uid| {
                    let keywords = f
                        .flags()
                        .filter_map(|fl| match fl {
                            Flag::Custom(k) => Some(k.to_string()),
                            _ => None,
                        })
                        .collect();
                    (uid, keywords)
                });
                futures::future::ready(Ok(kept))
            })
            .try_collect::<Vec<_>>()
            .await
    })
    .await
}
