//! The one place the wall clock is read. Tests move time with [`Clock::advance`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// Seconds since the Unix epoch, plus an offset that tests may move forward.
#[derive(Debug, Clone)]
pub struct Clock {
    offset: Arc<AtomicI64>,
    /// Bumped when the offset moves, so a task sleeping until a due time can look again.
    moved: Arc<watch::Sender<u64>>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            offset: Arc::default(),
            moved: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Now, in seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        secs + self.offset.load(Ordering::Relaxed)
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        ms + self.offset.load(Ordering::Relaxed) * 1000
    }

    /// Now as a [`jiff::Timestamp`] (whole seconds).
    pub fn timestamp(&self) -> jiff::Timestamp {
        crate::sla::to_ts(self.now())
    }

    /// Move this clock (and its clones) forward, waking every [`ClockWatch`].
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
        self.moved.send_modify(|n| *n += 1);
    }

    /// A handle whose [`ClockWatch::moved`] resolves after each later [`Clock::advance`] (never,
    /// on the system clock). A move between two waits is not missed.
    pub fn watch(&self) -> ClockWatch {
        ClockWatch(self.moved.subscribe())
    }
}

/// See [`Clock::watch`].
pub struct ClockWatch(watch::Receiver<u64>);

impl ClockWatch {
    pub async fn moved(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn advance_moves_clones_and_wakes_watchers() {
        let c = Clock::system();
        let before = c.now();
        let mut w = c.clone().watch();
        // Moved before anyone waits: the next wait still sees it.
        c.advance(3600);
        tokio::time::timeout(std::time::Duration::from_secs(5), w.moved())
            .await
            .expect("woken");
        assert!(c.clone().now() >= before + 3600);
        // And nothing more until the next move.
        let idle = tokio::time::timeout(std::time::Duration::from_millis(20), w.moved()).await;
        assert!(idle.is_err());
    }
}
