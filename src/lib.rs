#![forbid(unsafe_code)]
//! # triaged — architecture in two minutes
//!
//! A daemon for a support mailbox. Data flows one way; each stage owns one thing
//! (ARCHITECTURE.md has the layers and what may depend on what; a test keeps both true):
//!
//! ```text
//! IMAP folder ─> imap::Watcher ─> pipeline: parse ─> guard ─> score ─> store (one transaction) ─> flag in IMAP
//!   (IDLE / poll, UID checkpoint)            tickets: ticket, ack or hold ┘  └─> outbox rows (ack, follow-ups)
//! outbox::Outbox ─> templates (minijinja) ─> smtp (lettre) ─> sent / retry / failed
//! notices: digest scheduler, health monitor ─> digest / alerts ─> notices::render ─> outbox
//! ```
//!
//! **Leaves**, shared by everyone:
//! - [`parse`]: the only user of `mail_parser`; raw bytes -> [`parse::Email`], within a budget
//!   (MIME parts and nesting, threading ids, body text; HTML to text in one linear pass).
//! - [`wording`]: times, ages, waits, the SLA clock and reply-time promises as people read
//!   them, and customer text made safe for a terminal or a plain-text staff email.
//!   [`units`]: durations (`1h30m`) and sizes (`25MB`) as written in config and commands.
//!   [`diag`]: problems as `file:line:col`.
//! - [`headers`]: the header fields we write (the robot headers too), folded and encoded so a
//!   hostile subject, name or Message-ID cannot make a line a server refuses.
//! - [`metrics`]: counters, Prometheus text. [`logs`]: the filter that keeps the IMAP/SMTP/TLS
//!   crates' wire logging (passwords, tokens, customer email) out of the log at any `RUST_LOG`.
//!   [`tls`]: the TLS client configuration IMAP and SMTP share.
//!
//! **The pure core** (values and `now` in, values out; no I/O, no wiring, no clock reads):
//! - [`guard`]: may an automatic reply go out at all? (a reason code for every "no")
//! - [`score`]: keyword/regex rules from TOML -> priority, tones, intents, hits.
//! - [`route`]: the team a customer's email goes to and why (`[[team]]`), and the clarifying
//!   questions its acknowledgement asks (`[[ask]]`).
//! - [`corrections`]: staff corrections of a verdict: what triage keywords changed in a mail
//!   client say (a correction, an undo, or the daemon's own keywords), what an email moved into
//!   another priority's folder says (never the daemon's own filing), and the `#priority` /
//!   `#tone` commands; recorded by the store, read by `triaged eval --store` and `triaged
//!   tune --store` (and counted in digests).
//! - [`tickets`]: ticket tags, states and what moves them, roles, staff commands, the
//!   acknowledgement decision (with the loop breaker: what looks like a loop is held for staff,
//!   not refused) and the follow-up policy.
//! - [`sla`]: business hours in a time zone with holidays, DST-correct, and the response
//!   targets that run on them ([`sla::SlaConfig`]): promises, follow-up due times, SLA clocks.
//! - [`digest`]: what a digest lists, in which order, and why; when digests fall due.
//!   [`alerts`]: which emails raise an instant alert, and when a health incident opens, repeats
//!   or closes.
//!
//! **Configuration**: [`config`] (the TOML schema, validated section by section into typed
//! values, every problem as `file:line:col`, secret sources), [`templates`] (minijinja, with
//! fuel and output limits), [`reload`] (SIGHUP re-reads the config; tasks take the new one
//! between units of work). `triaged check`, start-up and reload all load through
//! [`config::Config::load`] (on a thread with an 8 MiB stack), and rule packs and templates have
//! limits, so no config can hang or crash the daemon.
//!
//! **I/O and wiring**:
//! - [`imap`]: connection (TLS, STARTTLS, LOGIN/XOAUTH2, TCP keepalive), the watch loop
//!   (checkpoint, batches, IDLE or poll with a liveness check, reconnect with backoff), flagging,
//!   and moves into folders (a priority's, a team's: moved or copied) spelled as the server
//!   names them; failures typed
//!   ([`imap::ImapError`]).
//! - [`pipeline`]: one email through parse -> guard -> score -> store; in the daemon parsing
//!   (and scoring of a long text) runs on the blocking pool under a deadline (`too_costly`), and
//!   each batch's start is noted first so an email that kills the process twice is skipped
//!   (`crashed_during_triage`).
//! - [`store`]: SQLite (WAL, STRICT tables, versioned migrations); the per-email transaction,
//!   which also queues and cancels follow-ups as the ticket moves. Every statement run per
//!   email or per timer reads through an index and the counts shown are kept by triggers, so
//!   cost does not grow with the history (a test traces them: plans and VM steps). A store
//!   that is locked elsewhere, full or failing ([`store::Unavailable`]) is waited out by every
//!   task ([`notices::StoreWait`]), never an exit.
//! - [`outbox`]: worker that renders and sends due rows, a few SMTP transactions in flight
//!   (`[outbox] concurrency`, rate limits counting those in flight), retrying 4xx, failing
//!   5xx; exactly once where a witness copy of each email can be seen (`[outbox] witness`), at
//!   most once where none can. [`smtp`]: lettre's SMTP client on our own pooled connections
//!   (TCP_NODELAY, a deadline on every step and transaction), errors classified by reply code.
//! - [`notices`]: the staff-mail side: the digest scheduler, the health monitor, rendering
//!   digests, alerts and health notes through the templates, queuing each exactly once.
//!   [`health`]: what is failing now, reported by every task, read by the monitor and
//!   `/healthz`.
//! - [`http`]: `/healthz`, `/metrics` and the status page, read-only, on loopback.
//! - [`daemon`]: wires the tasks under one cancellation token: a watcher per folder of each
//!   mailbox (`[[mailbox]]`; all share the store and the outbox, and each mailbox's folders
//!   after the first's are keyed `NAME:FOLDER`). [`clock`]: the only clock read, and the one
//!   backoff.
//!
//! **Operator tools**: [`tools`], a file per command that needs no server (`check`,
//! `status`, `explain`, `eval`, `tune`, `tickets`, `relabel`, `digest`, `init`; `main.rs`
//! parses and dispatches), over [`tune`] (keyword rules learned from labelled text, `tune --learn`). The
//! offline numerics (labelled data and metrics, logistic regression, TF-IDF, cross-validation,
//! phrase evidence) are the `triaged-tune` crate (`crates/tune`), which knows nothing of the
//! daemon.
//!
//! Crash safety: the checkpoint moves in the same transaction that records the email, so a
//! crash re-fetches at most what was not recorded; Message-IDs are unique, so nothing is
//! triaged twice; outbox rows are unique per (ticket, kind, sequence) and are claimed before
//! sending, so no acknowledgement or follow-up is sent twice; a send a crash interrupted is
//! settled by its witness copy, or sent again when none came (without a witness: never).

pub mod alerts;
pub mod clock;
pub mod config;
pub mod corrections;
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
pub mod route;
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
