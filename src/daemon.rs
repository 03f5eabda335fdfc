//! Wiring: the watcher and the outbox worker as tasks under one cancellation token.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::{Config, Credential, Login};
use crate::http;
use crate::imap::{self, Watcher};
use crate::notices::{self, HealthBoard};
use crate::outbox::Outbox;
use crate::pipeline::Pipeline;
use crate::smtp::Sender;
use crate::store::{Policy, Store};

/// How long a stop waits for a send in progress before abandoning it (it is then recorded as
/// uncertain at the next start, never sent twice).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Run the daemon until `shutdown` resolves.
pub async fn run(config: Config, clock: Clock, shutdown: impl Future<Output = ()>) -> Result<()> {
    // Open the stores first: a bad path or a newer schema is reported before any connection.
    let outbox_store = Store::open(&config.store.path)?;
    // Each mailbox's TLS roots (its own ca_file): a bad file is reported before anything runs.
    let tls = config
        .mailboxes
        .iter()
        .map(|m| imap::tls_config(m.ca_file.as_deref()))
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
    if let Err(e) = sender.check_credential().await {
        match &config.smtp.credential {
            Some(Credential::Token { .. }) => tracing::error!("{e}; sending waits until it works"),
            _ => return Err(e),
        }
    }
    let wake = Arc::new(Notify::new());
    let health = HealthBoard::default();
    let metrics = crate::metrics::Metrics::default();
    // The configuration in force; SIGHUP publishes a new one (crate::reload).
    let (live_tx, live) = tokio::sync::watch::channel(Arc::new(config.clone()));
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();

    // One watcher (own connection, own store handle) per folder of each mailbox, and one for
    // the mailbox's Sent folder when configured, whose mail is staff's and is never flagged.
    // A mailbox's watchers share its Login (one token cache per account).
    let mut watchers = Vec::new();
    let synced = crate::outbox::SyncMarks::default();
    for (mailbox, tls) in config.mailboxes.iter().zip(tls) {
        let mut folders: Vec<(String, bool)> =
            mailbox.folders.iter().map(|f| (f.clone(), false)).collect();
        if let Some(sent) = &mailbox.sent_folder {
            folders.push((sent.clone(), true));
        }
        let login = Login::new(mailbox.credential.clone());
        for (folder, staff_folder) in folders {
            let mut pipeline = Pipeline::new(
                &config,
                clock.clone(),
                Store::open(&config.store.path)?,
                staff_folder,
            );
            pipeline.limits.max_size = mailbox.max_message_size;
            pipeline.deadline = mailbox.triage_timeout;
            pipeline.live = Some(live.clone());
            pipeline.metrics = metrics.clone();
            let mut flags = config.flags.clone();
            if staff_folder {
                flags.enabled = false;
            }
            synced.watch(&mailbox.key(&folder));
            watchers.push(Watcher {
                synced: synced.clone(),
                folder,
                mailbox: mailbox.clone(),
                flags,
                tls: tls.clone(),
                login: login.clone(),
                pipeline,
                outbox_wake: wake.clone(),
                health: health.clone(),
                resolved: None,
                told_fallback: false,
                moves: Default::default(),
                metrics: metrics.clone(),
            });
        }
    }
    let outbox = Outbox {
        wake: wake.clone(),
        health: health.clone(),
        live: Some(live.clone()),
        metrics: metrics.clone(),
        synced,
        ..Outbox::new(&config, sender, clock.clone())
    };
    for watcher in watchers {
        tracker.spawn(watcher.run(cancel.child_token()));
    }
    tracker.spawn(wake_snoozed(
        Store::open(&config.store.path)?,
        live.clone(),
        clock.clone(),
        cancel.child_token(),
    ));
    tracker.spawn(notices::digest_scheduler(
        live.clone(),
        Store::open(&config.store.path)?,
        clock.clone(),
        wake.clone(),
        cancel.child_token(),
    ));
    tracker.spawn(notices::health_monitor(
        live.clone(),
        Store::open(&config.store.path)?,
        health,
        clock.clone(),
        wake,
        cancel.child_token(),
    ));
    tracker.spawn(crate::reload::on_sighup(
        config.path.clone(),
        live_tx,
        metrics.clone(),
        cancel.child_token(),
    ));
    if let (Some(h), Some(listener)) = (&config.http, http_listener) {
        let source = Arc::new(http::StoreSource::open(
            &config.store.path,
            config.sla.clone(),
        )?);
        let health: http::HealthCheck = {
            let (s, m) = (source.clone(), metrics.clone());
            Box::new(move || s.health(&m))
        };
        let app = Arc::new(http::App::new(
            metrics.clone(),
            source.clone(),
            health,
            clock.clone(),
        ));
        tracing::info!(listen = %h.listen, "HTTP: /healthz, /metrics and the status page");
        tracker.spawn(http::serve(listener, app, cancel.child_token()));
        // The status page's SLA clocks follow a reload.
        let mut live = live.clone();
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
    }
    let mut outbox_task = tracker.spawn(outbox.run(outbox_store, cancel.child_token()));
    tracker.close();
    tracing::info!(config = %config.path.display(), store = %config.store.path.display(), "triaged running");

    // The watcher never gives up (it reconnects); the outbox ends early only when the store
    // fails under it, which is not something to limp on with.
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

/// How often snoozed tickets are looked at: a snooze ends at most this late.
const SNOOZE_CHECK: Duration = Duration::from_secs(60);

/// Bring snoozed tickets back when their time is up. A store error is logged and retried at
/// the next check: a late wake-up is better than a stopped daemon.
async fn wake_snoozed(
    mut store: Store,
    live: crate::reload::Live,
    clock: Clock,
    cancel: CancellationToken,
) {
    let mut moved = clock.watch();
    loop {
        // The follow-up and SLA settings in force now (a reload may have changed them).
        let policy = Policy::from_config(&live.borrow());
        match store.wake_snoozed(clock.now(), &policy) {
            Ok(tags) => {
                for tag in tags {
                    tracing::info!(ticket = %tag, "Snooze ended; the ticket waits for staff again");
                }
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "Waking snoozed tickets failed"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(SNOOZE_CHECK) => {}
            () = moved.moved() => {}
        }
    }
}
