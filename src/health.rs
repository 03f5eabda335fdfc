//! What is failing right now: the board the watchers, the outbox and the store-using tasks
//! report to (per condition and source), read by the health monitor ([`crate::notices`]) and by
//! `/healthz` ([`crate::http`]) without touching the store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::alerts::{Condition, Incident};

/// Per (condition, source): the failure reported, or `None` for fine.
type Reports = BTreeMap<(Condition, String), Option<String>>;

/// Problems other tasks report (IMAP login and connection per folder watcher, SMTP, the store
/// per task), read by the health monitor and by `/healthz`. A condition fails while any
/// source reports it failing.
#[derive(Debug, Clone, Default)]
pub struct HealthBoard {
    state: Arc<Mutex<Reports>>,
    changed: Arc<Notify>,
    /// The open incidents as the health monitor last read them: what `/healthz` reports
    /// without reading the store (which may be locked).
    incidents: Arc<Mutex<Vec<Incident>>>,
}

impl HealthBoard {
    /// `c` is failing for `source`, with what the server said. Returns whether this is news:
    /// no source reported `c` failing with this `detail` before.
    pub fn fail(&self, c: Condition, source: &str, detail: impl Into<String>) -> bool {
        let detail = detail.into();
        let mut s = self.lock();
        let news = !s
            .iter()
            .any(|((k, _), v)| *k == c && v.as_deref() == Some(detail.as_str()));
        Self::set(&mut s, &self.changed, c, source, Some(detail));
        news
    }

    /// `c` works for `source`. Returns whether `c` was failing and now works for every source.
    pub fn ok(&self, c: Condition, source: &str) -> bool {
        let mut s = self.lock();
        let failing = |s: &Reports| s.iter().any(|((k, _), v)| *k == c && v.is_some());
        let before = failing(&s);
        Self::set(&mut s, &self.changed, c, source, None);
        before && !failing(&s)
    }

    fn set(s: &mut Reports, changed: &Notify, c: Condition, source: &str, v: Option<String>) {
        let key = (c, source.to_string());
        if s.get(&key) != Some(&v) {
            s.insert(key, v);
            changed.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reports> {
        // Every update is one insert: a panic elsewhere leaves nothing half done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Per condition: the first failure any source reports, or `None` when all are fine.
    pub(crate) fn snapshot(&self) -> BTreeMap<Condition, Option<String>> {
        let s = self.lock();
        let mut out: BTreeMap<Condition, Option<String>> = BTreeMap::new();
        for ((c, _), v) in s.iter() {
            let entry = out.entry(*c).or_insert(None);
            if entry.is_none() {
                entry.clone_from(v);
            }
        }
        out
    }

    /// The different failures sources report for `c` now (empty: fine).
    pub fn failures(&self, c: Condition) -> Vec<String> {
        let s = self.lock();
        let mut out: Vec<String> = Vec::new();
        for ((k, _), v) in s.iter() {
            if let (true, Some(v)) = (*k == c, v)
                && !out.contains(v)
            {
                out.push(v.clone());
            }
        }
        out
    }

    /// Completes at the next change of any report (the health monitor wakes on it).
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// The open incidents, as last read from the store.
    pub fn incidents(&self) -> Vec<Incident> {
        self.incidents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_incidents(&self, open: Vec<Incident>) {
        *self.incidents.lock().unwrap_or_else(|e| e.into_inner()) = open;
    }

    #[cfg(test)]
    pub(crate) fn set_incidents_for_test(&self, open: Vec<Incident>) {
        self.set_incidents(open);
    }
}
