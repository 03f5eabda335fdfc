//! The one place the wall clock is read (tests move time with [`Clock::advance`]), and the one
//! backoff every retry waits by.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// Exponential backoff with jitter: `initial` x 2^(attempt-1), capped at `max`, +-20 %. The
/// outbox's retries, the IMAP reconnects and the waits for an unavailable store all use it.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let base = exp.min(max).as_secs_f64();
    Duration::from_secs_f64(base * (0.8 + 0.4 * fastrand::f64()))
}

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
    /// The time `now` (seconds since the epoch) as the `Date:` header of the mail we write.
    pub fn system_time(secs: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
    }

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

    #[test]
    fn backoff_grows_and_caps() {
        let i = Duration::from_secs(10);
        let m = Duration::from_secs(300);
        for (attempt, base) in [(1, 10.0), (2, 20.0), (3, 40.0), (10, 300.0), (40, 300.0)] {
            let d = backoff(i, m, attempt).as_secs_f64();
            assert!(
                d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                "attempt {attempt}: {d}"
            );
        }
    }

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
