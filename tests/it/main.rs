//! The integration tests, in one binary (as ripgrep's `tests/tests.rs`): one link instead of one
//! per file, and one process whose test threads share the machine's cores across every area.
//!
//! - `common`: the real mail stack on loopback (Dovecot, the SMTP server, the OAuth endpoint),
//!   an IMAP client to look into it, the shared evaluation corpus, generated hostile emails.
//! - `daemon`: the real `triaged` binary (or the daemon in this process) against that stack,
//!   with its config built by name (`DaemonConfig::of(&stack).sent_folder("Sent").write()`).
//! - one module per area below. Run one area with `cargo test --test it sending::`.

mod common;
mod daemon;

mod acks_golden;
mod cli;
mod corpus;
mod corpus_e2e;
mod corrections;
mod crash;
mod digests;
mod e2e;
mod explain_golden;
mod faults;
mod folder_corrections;
mod followups;
mod hostile;
mod hostile_config;
mod http;
mod imap_liveness;
mod init;
mod loops;
mod mailboxes;
mod mutate;
mod oauth;
mod operate;
mod sending;
mod servers;
mod smtp_connections;
mod smtp_tls;
mod stack_smoke;
mod staff_teams;
mod team_folders;
mod teams;
mod tune_store;
