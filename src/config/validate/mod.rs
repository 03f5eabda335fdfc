//! Validation: the raw TOML schema ([`super::raw`]) checked section by section into the typed
//! [`Config`]. Each section has a function of its own (in the file named after it); every
//! problem is collected as a [`Diagnostic`] where it was written, and [`Validator::validate`]
//! returns them all or the configuration.

mod ack;
mod credential;
mod flags;
mod http;
mod mailbox;
mod notify;
mod outbox;
mod routing;
mod scoring;
mod sla;
mod smtp;
mod store;
mod support;
mod templates;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::{Config, Tls, is_loopback, raw};
use crate::diag::Diagnostic;
use crate::score::Priority;
use crate::units::parse_duration;

pub(super) struct Validator<'a> {
    pub(super) path: &'a Path,
    pub(super) source: &'a str,
    pub(super) errors: Vec<Diagnostic>,
}

impl Validator<'_> {
    /// Every section in turn; a section read from others (the mailboxes' addresses from
    /// `[support]`, the outbox's witness from the mailboxes and `[smtp]`, the templates from
    /// what uses them) comes after them.
    pub(super) fn validate(mut self, raw: raw::Root) -> Result<Config, Vec<Diagnostic>> {
        let (mut mailboxes, addresses) = self.mailboxes(raw.mailbox);
        let smtp = self.smtp(raw.smtp);
        let store = self.store(raw.store);
        let mut support = self.support(raw.support);
        self.mailbox_addresses(&mut mailboxes, addresses, &mut support, smtp.as_ref());
        let ack = self.ack(raw.ack.unwrap_or_default());
        let sla = self.sla(raw.sla.as_ref());
        let followups = self.followups(raw.followups.unwrap_or_default(), raw.sla.as_ref(), &sla);
        let staff_tz = sla.calendar.time_zone().clone();
        let scoring = self.scoring(raw.scoring.unwrap_or_default());
        let watched: Vec<&str> = mailboxes
            .iter()
            .flat_map(|m| m.folders.iter().chain(&m.sent_folder))
            .map(String::as_str)
            .collect();
        let routing = self.routing(
            raw.team,
            raw.ask,
            &support,
            scoring.rules.as_ref(),
            &watched,
        );
        let digests = self.digests(raw.digest, &support, &staff_tz, &routing);
        let alerts = self.alerts(raw.alerts, &support, &staff_tz);
        if alerts.is_none()
            && let Some(t) = routing.teams.iter().find(|t| !t.alert_to.is_empty())
        {
            self.err_file(format!(
                "[[team]] {:?} has alert_to, but there is no [alerts] section: instant alerts are off (add [alerts], or remove alert_to)",
                t.name
            ));
        }
        let http = self.http(raw.http);
        let flags = self.flags(raw.flags.unwrap_or_default());
        let outbox = self.outbox(raw.outbox.unwrap_or_default(), &mailboxes, smtp.as_ref());
        let templates = self.templates(
            raw.templates,
            &templates::Users {
                ack: &ack,
                followups: &followups,
                digests: &digests,
                alerts: alerts.as_ref(),
            },
        );
        match (smtp, scoring.rules, templates) {
            // No mailbox is an error (see `mailboxes`); said again so that it cannot slip.
            (Some(smtp), Some(rules), Some(templates))
                if self.errors.is_empty() && !mailboxes.is_empty() =>
            {
                Ok(Config {
                    path: self.path.to_path_buf(),
                    mailboxes,
                    smtp,
                    store,
                    support,
                    ack,
                    sla,
                    followups,
                    flags,
                    outbox,
                    thresholds: scoring.thresholds,
                    rules,
                    rule_files: scoring.rule_files,
                    templates,
                    digests,
                    alerts,
                    http,
                    routing,
                })
            }
            _ => Err(self.errors),
        }
    }

    fn err<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::at(self.path, self.source, at.span(), message));
    }

    /// A problem with no one place in the file (a missing section, a cross-key rule).
    fn err_file(&mut self, message: impl Into<String>) {
        self.errors.push(Diagnostic::file(self.path, message));
    }

    fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir().join(p)
        }
    }

    fn duration(&mut self, value: &Option<Spanned<String>>, default: Duration) -> Duration {
        let Some(v) = value else { return default };
        match parse_duration(v.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                self.err(v, e);
                default
            }
        }
    }

    /// A duration that, when set, must pass `ok`; else `message` is reported where it was set.
    fn duration_where(
        &mut self,
        value: &Option<Spanned<String>>,
        default: Duration,
        ok: impl Fn(Duration) -> bool,
        message: &str,
    ) -> Duration {
        let d = self.duration(value, default);
        if let Some(at) = value
            && !ok(d)
        {
            self.err(at, message);
        }
        d
    }

    fn tls(&mut self, tls: &Spanned<String>, host: &Spanned<String>) -> Tls {
        let t = match tls.get_ref().as_str() {
            "implicit" => Tls::Implicit,
            "starttls" => Tls::Starttls,
            "none" => Tls::None,
            other => {
                self.err(
                    tls,
                    format!(
                        "unknown tls mode {other:?}: use \"implicit\", \"starttls\" or \"none\""
                    ),
                );
                return Tls::Implicit;
            }
        };
        if t == Tls::None && !is_loopback(host.get_ref()) {
            self.err(
                tls,
                format!(
                    "tls = \"none\" is only allowed for a loopback host, not {:?}: use \"implicit\" or \"starttls\"",
                    host.get_ref()
                ),
            );
        }
        t
    }

    fn address(&mut self, a: &Spanned<String>) -> String {
        let v = a.get_ref().trim().to_ascii_lowercase();
        if v.parse::<lettre::Address>().is_err() {
            self.err(a, format!("{:?} is not an email address", a.get_ref()));
        }
        v
    }

    /// Per-priority durations over defaults.
    fn per_priority(
        &mut self,
        raw: Option<&raw::PerPriority>,
        defaults: &BTreeMap<Priority, Duration>,
    ) -> BTreeMap<Priority, Duration> {
        let mut out = defaults.clone();
        for (p, v) in raw.into_iter().flat_map(raw::PerPriority::entries) {
            let d = self.duration(&Some(v.clone()), Duration::ZERO);
            out.insert(p, d);
        }
        out
    }
}
