//! `triaged tickets` and `triaged ticket show|close|snooze|reopen`: what the store knows about
//! conversations, as readable tables or JSON, and the staff commands from the command line.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::score::Priority;
use crate::store::{Store, TicketRow};
use crate::tickets::{Command, State};

// Re-exported: the CLI, the outbox's queue report and the status page format with these.
pub use crate::wording::{age, clip, when};
use crate::wording::{cell, one_line};

pub(super) fn open_store(config: &Config) -> Result<Store> {
    if !config.store.path.exists() {
        anyhow::bail!(
            "No store at {} yet: the daemon has not run with this config",
            config.store.path.display()
        );
    }
    Store::open(&config.store.path)
}

/// Rows `triaged tickets` prints as a table when `--limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;

/// The ticket list, most urgent and oldest first: at most `limit` rows (`None`: all), and in
/// a table a last line that says how many more match.
pub fn list(
    config: &Config,
    states: &[State],
    priority: Option<Priority>,
    limit: Option<usize>,
    json: bool,
    now: i64,
) -> Result<String> {
    let list = open_store(config)?.tickets(states, priority, limit)?;
    let rows = list.rows;
    if json {
        #[derive(serde::Serialize)]
        struct Listed<'a> {
            #[serde(flatten)]
            ticket: &'a TicketRow,
            /// When staff owe a reply (seconds since the epoch), if the ticket waits for them.
            sla_due_at: Option<i64>,
        }
        let listed: Vec<Listed<'_>> = rows
            .iter()
            .map(|t| Listed {
                ticket: t,
                sla_due_at: due(&config.sla, t),
            })
            .collect();
        return Ok(format!(
            "{}\n",
            crate::wording::json(serde_json::to_string_pretty(&listed)?)
        ));
    }
    if rows.is_empty() {
        return Ok("No tickets.\n".into());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<12} {:<7} {:>7} {:>6} {:>8}  {:<13} {:<30} {:<40} intents",
        "ticket", "state", "prio", "age", "emails", "answered", "reply due", "customer", "subject"
    );
    for t in &rows {
        let answered = if t.first_response_at == 0 {
            "-".to_string()
        } else {
            format!("+{}", age(t.created_at, t.first_response_at))
        };
        let _ = writeln!(
            out,
            "{:<8} {:<12} {:<7} {:>7} {:>6} {:>8}  {:<13} {:<30} {:<40} {}",
            t.tag,
            t.state.as_str(),
            t.priority.as_str(),
            age(t.created_at, now),
            t.messages,
            answered,
            crate::wording::sla_cell(due(&config.sla, t), now),
            cell(&t.customer, 30),
            cell(&t.subject, 40),
            one_line(&t.intents)
        );
    }
    let more = usize::try_from(list.total)
        .unwrap_or(0)
        .saturating_sub(rows.len());
    if more > 0 {
        let _ = writeln!(
            out,
            "{} ticket(s) listed and {more} more (--limit N lists more, --limit 0 all)",
            rows.len()
        );
    } else {
        let _ = writeln!(out, "{} ticket(s)", rows.len());
    }
    Ok(out)
}

/// When staff owe `t` a reply on the SLA clock (`None`: it does not wait for them).
pub fn due(sla: &crate::sla::SlaConfig, t: &TicketRow) -> Option<i64> {
    sla.response_due(
        t.state,
        t.priority,
        t.created_at,
        t.first_response_at,
        t.last_customer_at,
    )
    .filter(|d| *d != i64::MAX)
}

fn header(t: &TicketRow, due: Option<i64>, now: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ticket    {}", t.tag);
    let _ = writeln!(out, "state     {}", t.state.as_str());
    if t.state == State::Snoozed {
        let _ = writeln!(out, "until     {}", when(t.snoozed_until));
    }
    let _ = writeln!(out, "priority  {}", t.priority.as_str());
    let _ = writeln!(out, "customer  {}", one_line(&t.customer));
    let _ = writeln!(out, "subject   {}", one_line(&t.subject));
    let _ = writeln!(
        out,
        "opened    {} ({} ago)",
        when(t.created_at),
        age(t.created_at, now)
    );
    let _ = writeln!(
        out,
        "answered  {}",
        if t.first_response_at == 0 {
            "not yet".to_string()
        } else {
            format!(
                "{} (first response after {})",
                when(t.first_response_at),
                age(t.created_at, t.first_response_at)
            )
        }
    );
    if let Some(d) = due {
        let _ = writeln!(
            out,
            "reply due {} ({})",
            when(d),
            crate::wording::sla_cell(Some(d), now)
        );
    }
    let _ = writeln!(out, "emails    {}", t.messages);
    if !t.intents.is_empty() {
        let _ = writeln!(out, "intents   {}", one_line(&t.intents));
    }
    out
}

/// One ticket and its history.
pub fn show(config: &Config, tag: &str, json: bool, now: i64) -> Result<String> {
    let Some((t, events)) = open_store(config)?.ticket(tag)? else {
        anyhow::bail!("No ticket {tag}");
    };
    if json {
        let v = serde_json::json!({ "ticket": t, "history": events });
        return Ok(format!(
            "{}\n",
            crate::wording::json(serde_json::to_string_pretty(&v)?)
        ));
    }
    let mut out = header(&t, due(&config.sla, &t), now);
    let _ = writeln!(out, "\nhistory");
    for e in &events {
        let change = match e.from_state {
            Some(from) if from != e.to_state => {
                format!("{} -> {}", from.as_str(), e.to_state.as_str())
            }
            _ => e.to_state.as_str().to_string(),
        };
        let about = if e.subject.is_empty() {
            String::new()
        } else {
            format!("  \"{}\"", cell(&e.subject, 50))
        };
        let _ = writeln!(
            out,
            "  {}  {:<17} {:<26} {}{}",
            when(e.at),
            one_line(&e.event),
            one_line(&change),
            one_line(&e.detail),
            about
        );
    }
    Ok(out)
}

/// Close, snooze or reopen a ticket from the command line.
pub fn command(config: &Config, tag: &str, cmd: Command, now: i64) -> Result<String> {
    let who = format!(
        "cli ({})",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    let mut store = open_store(config)?;
    let state = store
        .ticket_command(
            tag,
            cmd,
            now,
            &who,
            &crate::store::Policy::from_config(config),
        )
        .with_context(|| format!("Changing ticket {tag}"))?;
    match state {
        Some(s) => Ok(format!(
            "{}: {}\n",
            crate::tickets::normal_tag(tag),
            s.as_str()
        )),
        None => anyhow::bail!("No ticket {tag}"),
    }
}
