//! `triaged tickets` and `triaged ticket show|close|snooze|reopen|route`: what the store knows
//! about conversations, as readable tables or JSON, and the staff commands from the command
//! line.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::open_store;
use crate::config::Config;
use crate::store::{Applied, TicketFilter, TicketRow};
use crate::tickets::{Command, Reroute, State};

// Re-exported: the CLI, the outbox's queue report and the status page format with these.
pub use crate::wording::{age, clip, when};
use crate::wording::{cell, one_line};

/// Rows `triaged tickets` prints as a table when `--limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;

/// The ticket list, most urgent and oldest first: at most `limit` rows (`None`: all), and in
/// a table a last line that says how many more match. A team column shows when a listed
/// ticket has a team.
pub fn list(
    config: &Config,
    filter: &TicketFilter<'_>,
    limit: Option<usize>,
    json: bool,
    now: i64,
) -> Result<String> {
    let list = open_store(config)?.tickets(filter, limit)?;
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
        return Ok(match filter.team {
            // A name no team has (a typo?) is said; tickets of a team since removed from the
            // configuration are still listed.
            Some(team) if config.routing.team(team).is_none() => {
                let known: Vec<&str> = config
                    .routing
                    .teams
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect();
                format!(
                    "No tickets: {}.\n",
                    crate::tickets::unknown_team(team, &known)
                )
            }
            _ => "No tickets.\n".into(),
        });
    }
    // As wide as the longest team name listed; none when no listed ticket has a team.
    let team_width = rows
        .iter()
        .map(|t| t.team.chars().count())
        .max()
        .unwrap_or(0);
    let team_cell = |team: &str| {
        if team_width == 0 {
            String::new()
        } else {
            format!(
                "{:<w$} ",
                cell(if team.is_empty() { "-" } else { team }, 20),
                w = team_width.clamp(4, 20)
            )
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<12} {:<7} {}{:>7} {:>6} {:>8}  {:<13} {:<30} {:<40} intents",
        "ticket",
        "state",
        "prio",
        team_cell("team"),
        "age",
        "emails",
        "answered",
        "reply due",
        "customer",
        "subject"
    );
    for t in &rows {
        let answered = if t.first_response_at == 0 {
            "-".to_string()
        } else {
            format!("+{}", age(t.created_at, t.first_response_at))
        };
        let _ = writeln!(
            out,
            "{:<8} {:<12} {:<7} {}{:>7} {:>6} {:>8}  {:<13} {:<30} {:<40} {}",
            t.tag,
            t.state.as_str(),
            t.priority.as_str(),
            team_cell(&t.team),
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
    if !t.team.is_empty() {
        let _ = writeln!(out, "team      {}", one_line(&t.team));
        let _ = writeln!(out, "routed    {}", one_line(&t.route_reason));
    }
    out
}

/// One ticket and its history.
pub fn show(config: &Config, tag: &str, json: bool, now: i64) -> Result<String> {
    let store = open_store(config)?;
    let Some((t, events)) = store.ticket(tag)? else {
        anyhow::bail!("No ticket {tag}");
    };
    let questions = store.ticket_questions(tag)?;
    if json {
        let v = serde_json::json!({ "ticket": t, "history": events, "questions": questions });
        return Ok(format!(
            "{}\n",
            crate::wording::json(serde_json::to_string_pretty(&v)?)
        ));
    }
    let mut out = header(&t, due(&config.sla, &t), now);
    if !questions.is_empty() {
        // Each email's clarifying questions ([[ask]] ids), as its acknowledgement asked them.
        let _ = writeln!(out, "\nquestions asked");
        for q in &questions {
            let _ = writeln!(
                out,
                "  {}  {:<43} \"{}\"",
                when(q.received_at),
                one_line(&q.asks.join(", ")),
                cell(&q.subject, 50)
            );
        }
    }
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

/// Close, snooze, reopen or re-route a ticket from the command line. A re-route to a team
/// the configuration does not have is an error; to the ticket's own team, a line that says
/// nothing changed.
pub fn command(config: &Config, tag: &str, cmd: Command, now: i64) -> Result<String> {
    let who = format!(
        "cli ({})",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    let mut store = open_store(config)?;
    let policy = crate::store::Policy::from_config(config);
    let applied = store
        .ticket_command(tag, &cmd, now, &who, &policy)
        .with_context(|| format!("Changing ticket {tag}"))?;
    let tag = crate::tickets::normal_tag(tag);
    match applied {
        None => anyhow::bail!("No ticket {tag}"),
        Some(Applied::State(s)) => Ok(format!("{tag}: {}\n", s.as_str())),
        // `triaged ticket relabel` corrects through its own call (several labels, --undo).
        Some(Applied::Relabeled { corrected }) => Ok(format!(
            "{tag}: {}\n",
            if corrected {
                "corrected"
            } else {
                "nothing to correct"
            }
        )),
        Some(Applied::Team { outcome, team, was }) => match outcome {
            Reroute::Moves => Ok(format!(
                "{tag}: {}\n",
                crate::tickets::rerouted_detail(&team, &was, &who)
            )),
            Reroute::Already => Ok(format!(
                "{tag} is with team {team} already: nothing changed\n"
            )),
            Reroute::Unknown => {
                let known: Vec<&str> = policy.teams.keys().map(String::as_str).collect();
                anyhow::bail!(
                    "{tag} not re-routed: {}",
                    crate::tickets::unknown_team(&team, &known)
                )
            }
        },
    }
}
