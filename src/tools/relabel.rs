//! `triaged ticket relabel`: staff's correction of a verdict from the command line — the
//! priority (the ticket's follows) or tones of the ticket's latest email from its customer —
//! or, with `--undo`, every correction in force on the ticket's emails undone.

use std::fmt::Write as _;

use anyhow::{Result, anyhow};

use super::open_store;
use crate::config::Config;
use crate::corrections::{Field, Relabel};
use crate::score::Priority;
use crate::store::label;
use crate::wording::one_line;

/// The changes `--priority` and `--tone` ask for (`angry`: the email has the tone, `-angry`:
/// it has not).
pub fn changes(priority: Option<Priority>, tones: &[String]) -> Result<Vec<Relabel>> {
    let mut out: Vec<Relabel> = priority.map(Relabel::Priority).into_iter().collect();
    for t in tones {
        out.push(Relabel::tone(t).ok_or_else(|| {
            anyhow!(
                "{t:?} is not a tone: write it as the rules name it (lower-case letters, digits, - or _), or -NAME for \"not NAME\""
            )
        })?);
    }
    Ok(out)
}

/// Correct ticket `tag` as `changes` say, or undo its corrections; says what changed.
pub fn relabel(
    config: &Config,
    tag: &str,
    changes: &[Relabel],
    undo: bool,
    now: i64,
) -> Result<String> {
    let who = format!(
        "cli ({})",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    let mut store = open_store(config)?;
    let done = if undo {
        store.undo_relabel(tag, &who, now)?
    } else {
        store.relabel(tag, changes, &who, now)?
    };
    let Some(done) = done else {
        anyhow::bail!("No ticket {tag}");
    };
    let Some((sender, subject)) = &done.email else {
        if undo {
            return Ok(format!("{}: no correction in force\n", done.tag));
        }
        anyhow::bail!(
            "{}: the ticket has no triaged email from its customer to correct",
            done.tag
        );
    };
    let mut out = format!(
        "{}: the email from {} \"{}\"\n",
        done.tag,
        one_line(sender),
        crate::wording::cell(subject, 60)
    );
    if done.changes.is_empty() {
        let _ = writeln!(out, "  nothing changed: that is the label in force already");
    }
    for n in &done.changes {
        let what = if n.undone {
            "the verdict's again"
        } else {
            "corrected"
        };
        let _ = writeln!(
            out,
            "  {:<8} {} -> {} ({what}){}",
            n.field.as_str(),
            label(&n.before),
            label(&n.after),
            if n.field == Field::Priority {
                "; the ticket's priority too"
            } else {
                ""
            }
        );
    }
    Ok(out)
}
