//! Operator tools that work without a server, one file per tool: [`check`] (a configuration
//! summed up), [`status`] (what the store holds), [`explain`] (why an email scored as it did),
//! [`eval`] and [`tune`] (the rules against labelled data; `eval --store` and `tune --store`
//! against staff's corrections), [`tickets`] (the ticket list and commands), [`relabel`] (staff's correction
//! of a verdict), [`digest`] (preview or send a digest now), [`init`] (a starter
//! configuration).
//! Orchestration only: reading files and the store, calling the pure core, formatting; each
//! returns its text and `main.rs` prints it.

pub mod check;
pub mod digest;
pub mod eval;
pub mod explain;
pub mod init;
pub mod relabel;
pub mod status;
pub mod tickets;
pub mod tune;

use anyhow::Result;

use crate::config::Config;
use crate::score;
use crate::store::Store;

/// The store the configuration names, which the daemon has made: a tool never makes one.
pub(crate) fn open_store(config: &Config) -> Result<Store> {
    if !config.store.path.exists() {
        anyhow::bail!(
            "No store at {} yet: the daemon has not run with this config",
            config.store.path.display()
        );
    }
    Store::open(&config.store.path)
}

/// The text of a row as an email: the first text column is the subject, the rest the body
/// (one column: the body alone).
pub fn row_email(texts: &[String]) -> crate::parse::Email {
    match texts {
        [] => score::text_email("", ""),
        [body] => score::text_email("", body),
        [subject, rest @ ..] => score::text_email(subject, &rest.join("\n\n")),
    }
}
