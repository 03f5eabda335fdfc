//! Reload on SIGHUP: the config file and everything it names (rules, weights, templates) are
//! read and validated again by [`Config::load`], the function `triaged check` uses, so a reload
//! accepts what `check` accepts and nothing else; a valid change is swapped in whole, an invalid
//! one is refused with its errors logged, and the running configuration stays.
//!
//! SIGHUP is listened to from the first instant of `triaged run` ([`Hangups`]); one that
//! arrives while the daemon starts is taken as "reload once running".
//!
//! Tasks hold a [`Live`] receiver and pick the current configuration up at their next unit of
//! work (an email, an outbox row, a digest slot), so no email is scored by half of one
//! configuration and half of another.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::diag::Diagnostic;

/// The configuration in force, as the tasks see it.
pub type Live = watch::Receiver<Arc<Config>>;

/// What a reload did.
#[derive(Debug)]
pub enum Outcome {
    /// Swapped in. `restart` names sections whose change waits for a restart.
    Applied { restart: Vec<&'static str> },
    /// Refused: these problems; the old configuration stays.
    Refused(Vec<Diagnostic>),
}

/// Sections read only at start-up (connections, the store, the HTTP listener, flag settings of
/// running watchers): a change there is kept for the next start, and said so.
pub fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    if differs(&old.mailboxes, &new.mailboxes) {
        out.push("[mailbox]");
    }
    if differs(&old.smtp, &new.smtp) {
        out.push("[smtp]");
    }
    // `keep_text` is read per email (the pipeline's policy), so it applies at once.
    let opened = |c: &Config| (c.store.path.clone(), c.store.busy_timeout);
    if differs(&opened(old), &opened(new)) {
        out.push("[store]");
    }
    if differs(&old.flags, &new.flags) {
        out.push("[flags]");
    }
    if differs(&old.outbox, &new.outbox) {
        out.push("[outbox]");
    }
    if differs(&old.http, &new.http) {
        out.push("[http]");
    }
    out
}

/// Load `path` again and, when it is valid, publish it. The synchronous part of [`on_sighup`].
pub fn reload(path: &Path, live: &watch::Sender<Arc<Config>>) -> Outcome {
    apply(Config::load(path), live)
}

/// Publish a freshly loaded configuration, or refuse it with its problems.
fn apply(loaded: Result<Config, Vec<Diagnostic>>, live: &watch::Sender<Arc<Config>>) -> Outcome {
    let new = match loaded {
        Ok(c) => c,
        Err(errors) => return Outcome::Refused(errors),
    };
    let old = live.borrow().clone();
    let restart = restart_only(&old, &new);
    live.send_replace(Arc::new(new));
    Outcome::Applied { restart }
}

/// SIGHUP, listened to from the first instant of `triaged run` (before the configuration is
/// loaded or a token fetched): without a handler, a SIGHUP ends a process, and `systemctl
/// reload` right after a start would do just that. One that arrives while the daemon is still
/// starting is kept and taken as "reload once running".
pub struct Hangups {
    signal: Option<tokio::signal::unix::Signal>,
    /// A SIGHUP arrived while starting and was said in the log.
    pending: bool,
}

impl Hangups {
    /// Install the handler now (needs a Tokio runtime). Without one (the system refused),
    /// SIGHUP keeps its default action, and reload needs a restart; that is said in the log.
    pub fn listen() -> Hangups {
        use tokio::signal::unix::{SignalKind, signal};
        let signal = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("No SIGHUP handler ({e}); reload needs a restart");
                None
            }
        };
        Hangups {
            signal,
            pending: false,
        }
    }

    /// Await `work` of the start-up; a SIGHUP meanwhile is noted (once in the log), not
    /// acted on: the configuration is read again once the daemon runs.
    pub async fn during<T>(&mut self, work: impl std::future::Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            let Some(signal) = self.signal.as_mut() else {
                return work.await;
            };
            tokio::select! {
                out = &mut work => return out,
                r = signal.recv() => match r {
                    Some(()) => self.note(),
                    None => self.signal = None,
                },
            }
        }
    }

    fn note(&mut self) {
        if !self.pending {
            tracing::info!(
                "SIGHUP while starting: the configuration is read again once the daemon runs"
            );
        }
        self.pending = true;
    }

    /// Whether a SIGHUP arrived before now that was not acted on (also one that came before
    /// [`Hangups::during`] was first awaited, e.g. while the configuration was loaded).
    fn take_early(&mut self) -> bool {
        use futures::FutureExt as _;
        while let Some(signal) = self.signal.as_mut() {
            match signal.recv().now_or_never() {
                Some(Some(())) => self.note(),
                Some(None) => self.signal = None,
                None => break,
            }
        }
        std::mem::take(&mut self.pending)
    }
}

/// Reload on every SIGHUP until cancelled; every outcome is logged. A SIGHUP that arrived while
/// the daemon was starting is acted on at once.
pub async fn on_sighup(
    path: std::path::PathBuf,
    live: watch::Sender<Arc<Config>>,
    metrics: crate::metrics::Metrics,
    mut hangups: Hangups,
    cancel: CancellationToken,
) {
    let mut early = hangups.take_early();
    loop {
        if !early {
            let Some(hup) = hangups.signal.as_mut() else {
                // Keep the sender until the end: the tasks watching it take a closed channel
                // for a stop.
                cancel.cancelled().await;
                drop(live);
                return;
            };
            let got = tokio::select! {
                () = cancel.cancelled() => return,
                r = hup.recv() => r,
            };
            if got.is_none() {
                hangups.signal = None;
                continue;
            }
        }
        if early {
            tracing::info!(config = %path.display(), "Running: reloading the configuration for the SIGHUP received while starting");
        } else {
            tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
        }
        early = false;
        // Exactly what `triaged check` runs: `Config::load`, which does its work on a thread
        // with a known stack (see there), never on this worker's 2 MiB. Waiting for it (file
        // I/O, compiling rules) is kept off the async workers.
        let p = path.clone();
        let loaded = match tokio::task::spawn_blocking(move || Config::load(&p)).await {
            Ok(r) => r,
            Err(e) => Err(vec![Diagnostic::file(
                &path,
                format!("reading the configuration failed: {e}"),
            )]),
        };
        let outcome = apply(loaded, &live);
        log(&outcome, &live.borrow());
        metrics.reload(!matches!(outcome, Outcome::Refused(_)));
    }
}

fn log(outcome: &Outcome, now: &Config) {
    match outcome {
        Outcome::Applied { restart } => {
            tracing::info!(
                rules = now.rules.len(),
                digests = now.digests.len(),
                "Configuration reloaded: rules, templates, acknowledgement, SLA, follow-up, digest and alert settings are in force"
            );
            if !restart.is_empty() {
                tracing::warn!(
                    "{} changed: kept for the next restart (connections and the store are set up at start)",
                    restart.join(", ")
                );
            }
        }
        Outcome::Refused(errors) => {
            for e in errors {
                tracing::error!("{e}");
            }
            tracing::error!(
                problems = errors.len(),
                "Reload refused: the running configuration is kept (fix the file; `triaged check` shows the same)"
            );
        }
    }
}
