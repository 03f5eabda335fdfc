//! `triaged explain`: why an email scores as it does.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::guard;
use crate::parse::{self, ParseLimits};
use crate::score::{self, History};
use crate::store::Store;
use crate::wording;

/// Parse `path` (an RFC 5322 message), score it with the configured rules and say why: the
/// verdict, every hit, and whether the guard would let an acknowledgement go out. History
/// signals (earlier contacts) come from the store when it exists; it is only read.
pub fn explain(config: &Config, path: &Path, json: bool, now: i64) -> Result<String> {
    let raw = std::fs::read(path).with_context(|| format!("Reading {}", path.display()))?;
    let limits = ParseLimits {
        max_size: config.mailbox().max_message_size,
    };
    let email = match parse::parse(&raw, &limits) {
        Ok(e) => e,
        Err(skip) => anyhow::bail!(
            "{}: the daemon would record this email as skipped ({}): {skip}",
            path.display(),
            skip.code()
        ),
    };
    let (history, history_note) = if config.store.path.exists() {
        let store = Store::open(&config.store.path)?;
        let h = store.history(&email, now, config.rules.history_window_secs())?;
        let note = format!(
            "{} earlier email(s) from this sender in the store",
            h.earlier_contacts.len()
        );
        (h, note)
    } else {
        (
            History::default(),
            "no store yet: no earlier contacts".to_string(),
        )
    };
    let verdict = score::score(&email, &config.rules, &config.thresholds, &history, now);
    let guard = guard::check(&email, &config.guard_config());
    let ack = match guard {
        Ok(()) => "may be acknowledged (subject to the per-sender limit and max_age)".to_string(),
        Err(r) => format!("no acknowledgement: {}", r.code()),
    };
    let from = email
        .from
        .as_ref()
        .map(|a| a.email.clone())
        .unwrap_or_default();
    if json {
        let mut v = score::explain_json(&verdict, &config.rules, &config.thresholds);
        v["file"] = path.display().to_string().into();
        v["from"] = from.into();
        v["subject"] = email.subject.clone().into();
        v["guard"] = match guard {
            Ok(()) => "ok".into(),
            Err(r) => r.code().into(),
        };
        v["history"] = history_note.into();
        v["budget"] = email.budget.clone().into();
        return Ok(format!(
            "{}\n",
            crate::wording::json(serde_json::to_string_pretty(&v)?)
        ));
    }
    // The sender, the subject and the matched words are the customer's: shown escaped. The
    // report is a table of lines, so only its line breaks and tabs stay.
    let budget: String = email
        .budget
        .iter()
        .map(|note| format!("budget   {}\n", wording::one_line(note)))
        .collect();
    Ok(format!(
        "{}\nfrom     {}\nsubject  {}\nguard    {ack}\nhistory  {history_note}\n{budget}{}",
        wording::one_line(&path.display().to_string()),
        wording::one_line(&from),
        wording::one_line(&email.subject),
        wording::lines(&score::explain_text(
            &verdict,
            &config.rules,
            &config.thresholds
        ))
    ))
}
