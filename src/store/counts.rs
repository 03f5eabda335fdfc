//! The counts the status command, `/metrics` and the status page show, read from the
//! `tally` table that triggers keep in the transaction that changes the rows (migration 8):
//! they cost the same over any store.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::Store;
use crate::score::Priority;
use crate::tickets::State;

/// A count of rows per key, for summaries.
pub type Counts = Vec<(String, i64)>;

impl Store {
    /// Tickets not closed, by priority (every priority present, 0 when none).
    pub fn open_ticket_counts(&self) -> Result<BTreeMap<Priority, i64>> {
        let mut open: BTreeMap<Priority, i64> = Priority::ALL.iter().map(|p| (*p, 0)).collect();
        for ((state, p), n) in self.ticket_counts()? {
            if state != State::Closed {
                *open.entry(p).or_default() += n;
            }
        }
        Ok(open)
    }

    /// Tickets per (state, priority), from the counts the triggers keep (keys
    /// `state:priority`).
    pub(super) fn ticket_counts(&self) -> Result<Vec<((State, Priority), i64)>> {
        self.tally("tickets")?
            .into_iter()
            .map(|(key, n)| {
                let named = key.split_once(':').and_then(|(state, p)| {
                    Some((
                        State::parse(state)?,
                        Priority::ALL.into_iter().find(|x| x.as_str() == p)?,
                    ))
                });
                named.map(|k| (k, n)).ok_or_else(|| {
                    anyhow::anyhow!("Reading ticket counts: unknown key {key:?} in the store")
                })
            })
            .collect()
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
}
