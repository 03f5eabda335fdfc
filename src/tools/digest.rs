//! `triaged digest`: preview the next digest from the current store without sending, or send
//! one now.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::open_store;
use crate::config::Config;
use crate::digest::{DigestConfig, themes_period};
use crate::notices::{build_digest, compose_notice, render_digest};
use crate::sla::to_ts;
use crate::smtp::Sender;
use crate::store::{ClaimedNotice, NewNotice};

/// The digests a command is about: the one named, or all of them.
fn chosen<'a>(config: &'a Config, name: Option<&str>) -> Result<Vec<&'a DigestConfig>> {
    if config.digests.is_empty() {
        bail!(
            "{} configures no digest: add a [[digest]] section (see README, \"Digests\")",
            config.path.display()
        );
    }
    match name {
        None => Ok(config.digests.iter().collect()),
        Some(n) => match config.digests.iter().find(|d| d.name == n) {
            Some(d) => Ok(vec![d]),
            None => bail!(
                "no digest named {n:?}; configured: {}",
                config
                    .digests
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// `--at`: "YYYY-MM-DD HH:MM" in the digest's zone, or an RFC 3339 time.
pub fn parse_at(s: &str, tz: &jiff::tz::TimeZone) -> Result<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    let dt: jiff::civil::DateTime = s.trim().replace(' ', "T").parse().with_context(|| {
        format!("--at {s:?}: use \"YYYY-MM-DD HH:MM\" (the digest's time zone) or an RFC 3339 time")
    })?;
    Ok(dt.to_zoned(tz.clone())?.timestamp().as_second())
}

/// Render the next digest (or the one at `at`) from the store as it is now; nothing is sent
/// or recorded. With `html`, the HTML version is written there.
pub fn preview(
    config: &Config,
    name: Option<&str>,
    at: Option<&str>,
    html: Option<&Path>,
    now: i64,
) -> Result<String> {
    let digests = chosen(config, name)?;
    if html.is_some() && digests.len() > 1 {
        bail!("--html writes one digest: choose it with --name");
    }
    let store = open_store(config)?;
    let mut out = String::new();
    for d in digests {
        let at = match at {
            Some(s) => parse_at(s, &d.schedule.tz)?,
            None => d.next_send(now),
        };
        let digest = build_digest(config, &store, d, at, themes_period(d, at).0)?;
        let mail = render_digest(&config.templates, &digest)?;
        let when = to_ts(at).to_zoned(d.schedule.tz.clone());
        let _ = writeln!(
            out,
            "Preview of digest {:?} for {} (not sent){}",
            d.name,
            when.strftime("%a %Y-%m-%d %H:%M %Z"),
            if digest.empty && !d.send_empty {
                "; it is empty and would not be sent (send_empty = false)"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "To: {}", d.to.join(", "));
        let _ = writeln!(out, "Subject: {}\n", mail.subject);
        out.push_str(&mail.text);
        out.push('\n');
        if let Some(path) = html {
            std::fs::write(path, &mail.html)
                .with_context(|| format!("Writing {}", path.display()))?;
            let _ = writeln!(out, "HTML written to {}", path.display());
        }
    }
    Ok(out)
}

/// Build each chosen digest now and send it at once over SMTP (empty ones too: asked for).
pub fn send_now(config: &Config, name: Option<&str>, now: i64) -> Result<String> {
    let digests = chosen(config, name)?;
    let mut store = open_store(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("Starting the async runtime")?;
    // The SMTP transport lives in the runtime (its pool is dropped, before this guard, in it).
    let _runtime = rt.enter();
    let sender = Sender::new(&config.smtp)?;
    rt.block_on(sender.check_credential())?;
    let mut out = String::new();
    for d in digests {
        let digest = build_digest(config, &store, d, now, themes_period(d, now).0)?;
        let mail = render_digest(&config.templates, &digest)?;
        let key = format!("digest:{}:now:{now}", d.name);
        let notice = NewNotice {
            kind: "digest",
            key: key.clone(),
            recipients: &d.to,
            subject: &mail.subject,
            text: &mail.text,
            html: &mail.html,
            due_at: now,
        };
        // Recorded as being sent before the SMTP transaction, so the daemon never picks it up.
        let Some(id) = store.begin_notice(&notice, now)? else {
            bail!("digest {:?} was already sent this second", d.name);
        };
        let claimed = ClaimedNotice {
            ids: vec![id],
            kind: "digest".into(),
            key,
            recipients: d.to.clone(),
            subject: mail.subject.clone(),
            text: mail.text.clone(),
            html: mail.html.clone(),
            alerts: Vec::new(),
            held: false,
            attempts: 1,
            row_attempts: vec![1],
            created_at: now,
        };
        let msg = compose_notice(
            &claimed,
            &config.templates,
            &config.smtp.from,
            &config.support.domain,
            now,
        )?;
        match rt.block_on(sender.send(&msg)) {
            Ok(()) => {
                store.notice_sent(&[id], now * 1000)?;
                let _ = writeln!(
                    out,
                    "Sent digest {:?} to {}: {}",
                    d.name,
                    d.to.join(", "),
                    mail.subject
                );
            }
            Err(e) => {
                store.notice_failed(&[id], &e.to_string(), now)?;
                bail!("sending digest {:?} failed: {e}", d.name);
            }
        }
    }
    Ok(out)
}
