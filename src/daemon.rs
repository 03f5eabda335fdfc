//! Wiring: the watcher and the outbox worker as tasks under one cancellation token.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_rustls::rustls::ClientConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::{Config, Credential, Login, MailboxConfig, StoreConfig};
use crate::health::HealthBoard;
use crate::http;
use crate::imap::{Account, Watcher};
use crate::notices::{self, StoreWait};
use crate::outbox::{Outbox, Shared};
use crate::pipeline::Pipeline;
use crate::reload::Hangups;
use crate::smtp::Sender;
use crate::store::{Policy, Store};

/// How long a stop waits for a send in progress before abandoning it (it is then recorded as
/// uncertain at the next start, never sent twice).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Run the daemon until `shutdown` resolves, listening for SIGHUP from now on.
pub async fn run(config: Config, clock: Clock, shutdown: impl Future<Output = ()>) -> Result<()> {
    run_with(config, clock, shutdown, Hangups::listen()).await
}

/// [`run`] with SIGHUP already listened to (`triaged run` listens before it loads the
/// configuration): one that arrived while starting is acted on once the daemon runs.
///
/// Start-up waits for what may come later (an unavailable store, a slow token command) and
/// ends early, cleanly, when `shutdown` resolves meanwhile.
pub async fn run_with(
    config: Config,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
    mut hangups: Hangups,
) -> Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    let health = HealthBoard::default();
    // Start-up steps: each ends early on a stop; a SIGHUP meanwhile waits for the end.
    macro_rules! starting {
        ($work:expr) => {
            match hangups
                .during(async {
                    tokio::select! {
                        out = $work => Some(out),
                        () = &mut shutdown => None,
                    }
                })
                .await
            {
                Some(out) => out,
                None => {
                    tracing::info!("Stopped while starting");
                    return Ok(());
                }
            }
        };
    }
    // Open the stores first: a bad path or a newer schema is reported before any connection;
    // a store that is locked or on a full disk is waited for.
    let outbox_store = starting!(open_store(&config.store, &health, "start"))?;
    // Each mailbox's TLS roots (its own ca_file): a bad file is reported before anything runs.
    let tls = config
        .mailboxes
        .iter()
        .map(|m| crate::tls::tls_config(m.ca_file.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    // A port in use is a set-up mistake: said before anything runs.
    let http_listener = match &config.http {
        Some(h) => Some(
            tokio::net::TcpListener::bind(h.listen)
                .await
                .with_context(|| format!("Listening for [http] on {}", h.listen))?,
        ),
        None => None,
    };
    let sender = Sender::new(&config.smtp)?;
    // A password that cannot be read is a set-up mistake: say so before starting. A token
    // command may fail for a while (the provider is down); the outbox then waits and alerts.
    if let Err(e) = starting!(sender.check_credential()) {
        match &config.smtp.credential {
            Some(Credential::Token { .. }) => tracing::error!("{e}; sending waits until it works"),
            _ => return Err(e),
        }
    }
    // The configuration in force; SIGHUP publishes a new one (crate::reload).
    let (live_tx, live) = tokio::sync::watch::channel(Arc::new(config.clone()));
    let shared = Shared {
        health: health.clone(),
        live: Some(live.clone()),
        ..Shared::default()
    };
    // A store handle per watcher (one per folder of each mailbox, and one for its Sent
    // folder), for the snooze, digest and health tasks, and for the status page.
    let folders: usize = config
        .mailboxes
        .iter()
        .map(|m| watched_folders(m).len())
        .sum();
    let wanted = folders + 3 + usize::from(config.http.is_some());
    let mut stores = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        stores.push(starting!(open_store(&config.store, &health, "start"))?);
    }
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    for watcher in watchers(&config, tls, &mut stores, &clock, &shared) {
        tracker.spawn(watcher.run(cancel.child_token()));
    }
    spawn_timers(
        &tracker,
        &config,
        &live,
        &mut stores,
        &clock,
        &shared,
        &cancel,
    );
    tracker.spawn(crate::reload::on_sighup(
        config.path.clone(),
        live_tx,
        shared.metrics.clone(),
        hangups,
        cancel.child_token(),
    ));
    if let (Some(h), Some(listener)) = (&config.http, http_listener) {
        let store = stores
            .pop()
            .expect("a store was opened for the status page");
        let source = Arc::new(http::StoreSource::new(store, config.sla.clone()));
        tracing::info!(listen = %h.listen, "HTTP: /healthz, /metrics and the status page");
        serve_http(&tracker, listener, source, &shared, &clock, &cancel)?;
    }
    let outbox = OutboxTask {
        config: config.clone(),
        sender,
        clock: clock.clone(),
        shared,
    };
    let outbox_task = tracker.spawn(outbox.run(outbox_store, cancel.child_token()));
    tracker.close();
    tracing::info!(config = %config.path.display(), store = %config.store.path.display(), "triaged running");
    until_stopped(shutdown, outbox_task, cancel, tracker).await
}

/// The tasks that run on timers, each with its own store handle from `stores`: snoozed
/// tickets woken, digests sent on schedule, health watched.
fn spawn_timers(
    tracker: &TaskTracker,
    config: &Config,
    live: &crate::reload::Live,
    stores: &mut Vec<Store>,
    clock: &Clock,
    shared: &Shared,
    cancel: &CancellationToken,
) {
    let mut store = || stores.pop().expect("a store was opened for each task");
    tracker.spawn(wake_snoozed(
        store(),
        live.clone(),
        StoreWait::new(&shared.health, "snooze", &config.store),
        clock.clone(),
        cancel.child_token(),
    ));
    tracker.spawn(notices::digest_scheduler(
        live.clone(),
        store(),
        shared.health.clone(),
        clock.clone(),
        shared.wake.clone(),
        cancel.child_token(),
    ));
    tracker.spawn(notices::health_monitor(
        live.clone(),
        store(),
        shared.health.clone(),
        clock.clone(),
        shared.wake.clone(),
        cancel.child_token(),
    ));
}

/// Run until `shutdown` resolves or the outbox ends, then stop every task (waiting at most
/// [`SHUTDOWN_GRACE`]). The watchers never give up (they reconnect, and wait for the store);
/// the outbox waits for an unavailable store too, and ends early only on any other store
/// error, which is not something to limp on with.
async fn until_stopped(
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    mut outbox_task: tokio::task::JoinHandle<Result<()>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) -> Result<()> {
    let outcome = tokio::select! {
        () = shutdown => {
            tracing::info!("Stopping");
            Ok(())
        }
        r = &mut outbox_task => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.context("The outbox stopped")),
            Err(e) => Err(anyhow::anyhow!("The outbox task failed: {e}")),
        },
    };
    cancel.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "Tasks did not stop within {}s; abandoning them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    tracing::info!("Stopped");
    outcome
}

/// The folders one mailbox is watched in: its folders, and its Sent folder when set.
fn watched_folders(mailbox: &MailboxConfig) -> Vec<(String, bool)> {
    let mut folders: Vec<(String, bool)> =
        mailbox.folders.iter().map(|f| (f.clone(), false)).collect();
    if let Some(sent) = &mailbox.sent_folder {
        folders.push((sent.clone(), true));
    }
    folders
}

/// One watcher (own connection, own store handle from `stores`) per folder of each mailbox,
/// and one for the mailbox's Sent folder when configured, whose mail is staff's and is never
/// flagged. A mailbox's watchers share its account (one token cache per account).
fn watchers(
    config: &Config,
    tls: Vec<Arc<ClientConfig>>,
    stores: &mut Vec<Store>,
    clock: &Clock,
    shared: &Shared,
) -> Vec<Watcher> {
    let mut out = Vec::new();
    for (mailbox, tls) in config.mailboxes.iter().zip(tls) {
        let account = Account {
            mailbox: mailbox.clone(),
            tls,
            login: Login::new(mailbox.credential.clone()),
        };
        for (folder, staff_folder) in watched_folders(mailbox) {
            let store = stores.pop().expect("a store was opened for each watcher");
            let mut pipeline = Pipeline::new(config, clock.clone(), store, staff_folder);
            pipeline.limits.max_size = mailbox.max_message_size;
            pipeline.deadline = mailbox.triage_timeout;
            pipeline.live = shared.live.clone();
            pipeline.metrics = shared.metrics.clone();
            out.push(Watcher::new(
                config,
                &account,
                folder,
                staff_folder,
                pipeline,
                shared,
            ));
        }
    }
    out
}

/// Serve `/healthz`, `/metrics` and the status page on a thread and runtime of their own:
/// store calls block this runtime's workers (up to the busy timeout each), and `/healthz` must
/// answer whatever the store does. The status page's SLA clocks follow a reload.
fn serve_http(
    tracker: &TaskTracker,
    listener: tokio::net::TcpListener,
    source: Arc<http::StoreSource>,
    shared: &Shared,
    clock: &Clock,
    cancel: &CancellationToken,
) -> Result<()> {
    // /healthz reads only what the tasks report (in memory).
    let health_check: http::HealthCheck = {
        let (b, m) = (shared.health.clone(), shared.metrics.clone());
        Box::new(move || http::health(&b, &m))
    };
    let app = Arc::new(http::App::new(
        shared.metrics.clone(),
        source.clone(),
        health_check,
        clock.clone(),
    ));
    let listener = listener
        .into_std()
        .context("Handing the [http] listener to its own runtime")?;
    let cancel_http = cancel.child_token();
    tracker.spawn(async move {
        let served =
            tokio::task::spawn_blocking(move || http::serve_apart(listener, app, cancel_http));
        match served.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "HTTP server stopped"),
            Err(e) => tracing::error!(error = %e, "HTTP server failed"),
        }
    });
    let Some(mut live) = shared.live.clone() else {
        return Ok(());
    };
    let cancel = cancel.child_token();
    tracker.spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                r = live.changed() => if r.is_err() { return },
            }
            source.set_sla(live.borrow_and_update().sla.clone());
        }
    });
    Ok(())
}

/// Open the store (on the blocking pool: it may wait up to the busy timeout), waiting out an
/// [`crate::store::Unavailable`] store; any other error is returned.
async fn open_store(store: &StoreConfig, board: &HealthBoard, task: &str) -> Result<Store> {
    let mut waits = StoreWait::new(board, task, store);
    open_waiting(store, &mut waits, None).await
}

/// Open the store, and with `probe_at` commit a small write at that time too (a store that
/// takes writes again), waiting out an unavailable store on `waits`; any other error is
/// returned.
async fn open_waiting(
    store: &StoreConfig,
    waits: &mut StoreWait,
    probe_at: Option<i64>,
) -> Result<Store> {
    loop {
        let (path, busy) = (store.path.clone(), store.busy_timeout);
        let opened = tokio::task::spawn_blocking(move || {
            let s = Store::open_with(&path, busy)?;
            if let Some(now) = probe_at {
                s.probe(now)?;
            }
            Ok::<_, anyhow::Error>(s)
        })
        .await
        .context("Opening the store")?;
        match opened {
            Ok(s) => {
                waits.worked();
                return Ok(s);
            }
            Err(e) => match waits.failed(&e) {
                Some(retry) => tokio::time::sleep(retry).await,
                None => return Err(e),
            },
        }
    }
}

/// The outbox worker, started again (with a store opened again) after the store was
/// unavailable under it; any other error ends it.
struct OutboxTask {
    /// The configuration at start: connections and limits are not reloaded.
    config: Config,
    sender: Sender,
    clock: Clock,
    /// The daemon's wake-up, health board, reload channel, counters and read marks.
    shared: Shared,
}

impl OutboxTask {
    async fn run(self, store: Store, cancel: CancellationToken) -> Result<()> {
        let mut waits = StoreWait::new(&self.shared.health, "outbox", &self.config.store);
        let mut store = Some(store);
        loop {
            let store = match store.take() {
                Some(s) => s,
                None => tokio::select! {
                    r = self.reopen(&mut waits) => r?,
                    () = cancel.cancelled() => return Ok(()),
                },
            };
            // A fresh receiver sees a configuration reloaded meanwhile as news.
            let outbox = Outbox::new(
                &self.config,
                self.sender.clone(),
                self.clock.clone(),
                &self.shared,
            );
            let e = match outbox.run(store, cancel.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let Some(retry) = waits.failed(&e) else {
                return Err(e);
            };
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                () = cancel.cancelled() => return Ok(()),
            }
        }
    }

    /// A store that takes writes again: opened, and a write committed.
    async fn reopen(&self, waits: &mut StoreWait) -> Result<Store> {
        open_waiting(&self.config.store, waits, Some(self.clock.now())).await
    }
}

/// How often snoozed tickets are looked at: a snooze ends at most this late.
const SNOOZE_CHECK: Duration = Duration::from_secs(60);

/// Bring snoozed tickets back when their time is up. A store error is logged and retried at
/// the next check (sooner while the store is unavailable): a late wake-up is better than a
/// stopped daemon.
async fn wake_snoozed(
    mut store: Store,
    live: crate::reload::Live,
    mut waits: StoreWait,
    clock: Clock,
    cancel: CancellationToken,
) {
    let mut moved = clock.watch();
    loop {
        // The follow-up and SLA settings in force now (a reload may have changed them).
        let policy = Policy::from_config(&live.borrow());
        let mut next = SNOOZE_CHECK;
        match store.wake_snoozed(clock.now(), &policy) {
            Ok(tags) => {
                waits.worked();
                for tag in tags {
                    tracing::info!(ticket = %tag, "Snooze ended; the ticket waits for staff again");
                }
            }
            Err(e) => match waits.failed(&e) {
                Some(retry) => next = retry,
                None => {
                    tracing::error!(error = %format!("{e:#}"), "Waking snoozed tickets failed")
                }
            },
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(next) => {}
            () = moved.moved() => {}
        }
    }
}
