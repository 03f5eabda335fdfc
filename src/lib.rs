#![forbid(unsafe_code)]
//! # triaged — architecture in two minutes
//!
//! A daemon for a support mailbox. Data flows one way; each stage owns one thing:
//!
//! ```text
//! IMAP folder ─> imap::Watcher ─> pipeline: parse ─> guard ─> score ─> store (one transaction) ─> flag in IMAP
//!   (IDLE / poll, UID checkpoint)                                        └─> outbox rows (ack, follow-ups)
//! outbox::Outbox ─> templates (minijinja) ─> smtp (lettre) ─> sent / retry / failed
//! ```
//!
//! - [`config`]: TOML schema, validation with `file:line:col`, secret sources.
//! - [`imap`]: connection (TLS, STARTTLS, LOGIN, TCP keepalive), the watch loop (checkpoint,
//!   batches, IDLE or poll with a liveness check every few minutes, reconnect with backoff),
//!   flagging, and moves into folders spelled as the server names them.
//! - [`parse`]: the only user of `mail_parser`; raw bytes -> [`parse::Email`], within a budget
//!   (MIME parts and nesting, threading ids, body text; HTML to text in one linear pass).
//! - [`guard`]: may an automatic reply go out at all? (pure; a reason code for every "no")
//! - [`score`]: keyword/regex rules from TOML -> priority, tones, hits (pure).
//! - [`tickets`]: ticket tags, states and what moves them, roles, staff commands, the
//!   acknowledgement decision (with the loop breaker: what looks like a loop is held for staff,
//!   not refused) and the follow-up policy (pure). [`sla`]: business hours in a
//!   time zone with holidays, DST-correct (pure): promises, follow-up due times and
//!   customer-facing hours are computed on it.
//! - [`store`]: SQLite (WAL, STRICT tables, versioned migrations); the per-email transaction,
//!   which also queues and cancels follow-ups as the ticket moves. Every statement run per
//!   email or per timer reads through an index and the counts shown are kept by triggers, so
//!   cost does not grow with the history (a test traces them: plans and VM steps). A store
//!   that is locked elsewhere, full or failing ([`store::Unavailable`]) is waited out by every
//!   task ([`notices::StoreWait`]), never an exit.
//! - [`pipeline`]: one email through parse -> guard -> score -> store; in the daemon parsing
//!   (and scoring of a long text) runs on the blocking pool under a deadline (`too_costly`), and
//!   each batch's start is noted first so an email that kills the process twice is skipped
//!   (`crashed_during_triage`).
//! - [`outbox`]: worker that renders and sends due rows, a few SMTP transactions in flight
//!   (`[outbox] concurrency`, rate limits counting those in flight), retrying 4xx, failing
//!   5xx; exactly once where a witness copy of each email can be seen (`[outbox] witness`), at
//!   most once where none can.
//! - [`smtp`]: lettre's SMTP client on our own pooled connections (TCP_NODELAY, a deadline on
//!   every step and transaction) and errors classified by reply code. [`headers`]: the header
//!   fields we write, folded and encoded so a hostile subject, name or Message-ID cannot make a
//!   line a server refuses. [`templates`]: minijinja templates.
//! - [`tools`]: operator tools without a server, a file each (`check`, `status`, `explain`,
//!   `eval`, `tune`, `tickets`, `digest`, `init`; `main.rs` parses and dispatches). [`tune`]:
//!   keyword rules learned from labelled text (`tune --learn`). The offline numerics (labelled
//!   data and metrics, logistic regression, TF-IDF, cross-validation, phrase evidence) are the
//!   `triaged-tune` crate (`crates/tune`), which knows nothing of the daemon.
//! - [`daemon`]: wires the tasks under one cancellation token: a watcher per folder of each
//!   mailbox (`[[mailbox]]`; all share the store and the outbox, and each mailbox's folders
//!   after the first's are keyed `NAME:FOLDER`). [`clock`]: the only clock read.
//! - [`wording`]: times, ages and table cells as people read them, and customer text made safe
//!   for a terminal or a plain-text staff email (a leaf: the core and the CLI both use it).
//! - [`units`]: durations (`1h30m`) and sizes (`25MB`) as written in config files and staff
//!   commands (a leaf).
//! - [`logs`]: the filter that keeps the IMAP/SMTP/TLS crates' wire logging (passwords, tokens,
//!   customer email) out of the log at any `RUST_LOG`.
//! - [`reload`]: SIGHUP re-reads the config; tasks take the new one between units of work.
//!   `triaged check`, start-up and reload all load through [`config::Config::load`] (on a
//!   thread with an 8 MiB stack), and rule packs and templates have limits (rules, keywords,
//!   meta nesting, template fuel and output size), so no config can hang or crash the daemon.
//! - [`http`]: `/healthz`, `/metrics` ([`metrics`]: counters, Prometheus text) and the status
//!   page, read-only, on loopback.
//!
//! Crash safety: the checkpoint moves in the same transaction that records the email, so a
//! crash re-fetches at most what was not recorded; Message-IDs are unique, so nothing is
//! triaged twice; outbox rows are unique per (ticket, kind, sequence) and are claimed before
//! sending, so no acknowledgement or follow-up is sent twice; a send a crash interrupted is
//! settled by its witness copy, or sent again when none came (without a witness: never).

pub mod alerts;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod digest;
pub mod guard;
pub mod headers;
pub mod health;
pub mod http;
pub mod imap;
pub mod logs;
pub mod metrics;
pub mod notices;
pub mod outbox;
pub mod parse;
pub mod pipeline;
pub mod reload;
pub mod score;
pub mod sla;
pub mod smtp;
pub mod store;
pub mod templates;
pub mod tickets;
pub mod tls;
pub mod tools;
pub mod tune;
pub mod units;
pub mod wording;

#[cfg(test)]
mod architecture;
