//! `[[digest]]` and `[alerts]`: what staff are sent, when, and to whom.

use std::time::Duration;

use jiff::tz::TimeZone;
use toml::Spanned;

use super::Validator;
use crate::alerts::{AlertConfig, HealthConfig};
use crate::config::{SupportConfig, raw};
use crate::diag::Diagnostic;
use crate::digest::{DigestConfig, QuietHours, Schedule};
use crate::route::Routing;
use crate::score::Priority;

/// `[[digest]] max_per_section` at most.
const MAX_PER_SECTION: usize = 500;

impl Validator<'_> {
    /// Staff recipients: email addresses, never a support address (a loop), always staff (listed
    /// in `[support] staff` or at a support address's domain), so nothing here reaches a
    /// customer.
    pub(super) fn staff_recipients(
        &mut self,
        section: &str,
        to: &[Spanned<String>],
        support: &SupportConfig,
    ) -> Vec<String> {
        self.staff_addresses(section, "to", to, support)
    }

    /// [`Validator::staff_recipients`] for a list named `key`.
    pub(super) fn staff_addresses(
        &mut self,
        section: &str,
        key: &str,
        to: &[Spanned<String>],
        support: &SupportConfig,
    ) -> Vec<String> {
        if to.is_empty() {
            self.errors.push(Diagnostic::file(
                self.path,
                format!("{section} {key} is empty: list the staff addresses to send it to"),
            ));
        }
        let domains: Vec<&str> = support
            .addresses
            .iter()
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d))
            .collect();
        let mut out = Vec::new();
        for a in to {
            let v = self.address(a);
            if support.addresses.contains(&v) {
                self.err(
                    a,
                    format!("{section} {key} = {v:?} is a support address: triaged would read its own mail; send it to staff"),
                );
            } else if !support.staff.contains(&v)
                && !v
                    .rsplit_once('@')
                    .is_some_and(|(_, d)| domains.contains(&d))
            {
                self.err(
                    a,
                    format!("{section} {key} = {v:?} is not staff: add it to [support] staff (digests and alerts never go to customers)"),
                );
            }
            out.push(v);
        }
        out
    }

    /// A zone for a section: its own `timezone`, else the `[sla]` zone.
    fn zone(
        &mut self,
        section: &str,
        tz: &Option<Spanned<String>>,
        fallback: &TimeZone,
    ) -> TimeZone {
        match tz {
            None => fallback.clone(),
            Some(name) => match crate::sla::time_zone(name.get_ref()) {
                Ok(z) => z,
                Err(e) => {
                    self.err(name, format!("{section} {e}"));
                    fallback.clone()
                }
            },
        }
    }

    fn quiet(
        &mut self,
        section: &str,
        q: &Option<Spanned<String>>,
        tz: &TimeZone,
    ) -> Option<QuietHours> {
        let q = q.as_ref()?;
        match QuietHours::parse(tz.clone(), q.get_ref()) {
            Ok(q) => Some(q),
            Err(e) => {
                self.err(q, format!("{section} quiet_hours: {e}"));
                None
            }
        }
    }

    pub(super) fn digests(
        &mut self,
        raw: Vec<raw::Digest>,
        support: &SupportConfig,
        default_tz: &TimeZone,
        routing: &Routing,
    ) -> Vec<DigestConfig> {
        let mut out: Vec<DigestConfig> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for d in raw {
            let name = self.digest_name(&d.name, &mut names);
            let section = format!("[[digest]] {name:?}");
            let to = self.staff_recipients(&section, &d.to, support);
            let tz = self.zone(&section, &d.timezone, default_tz);
            let schedule = match Schedule::parse(tz.clone(), d.times.get_ref(), &d.days) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.err(&d.times, format!("{section}: {e}"));
                    None
                }
            };
            let quiet = self.quiet(&section, &d.quiet_hours, &tz);
            let priorities = self.priorities(&section, &d.priorities);
            let teams = self.digest_teams(&section, &d.teams, routing);
            let due_soon = self.duration(&d.due_soon, Duration::from_secs(2 * 3600));
            let repeat_window = self.duration(&d.repeat_window, Duration::from_secs(7 * 86_400));
            let period = d
                .period
                .as_ref()
                .map(|p| self.duration(&Some(p.clone()), Duration::from_secs(86_400)));
            if let (Some(p), Some(at)) = (period, &d.period)
                && p.is_zero()
            {
                self.err(at, "period must be longer than zero");
            }
            let Some(schedule) = schedule else { continue };
            // Bounded so that a digest lists at most 8 x 500 tickets, which the templates'
            // fuel covers many times over (see crate::templates::FUEL).
            let max_per_section = match &d.max_per_section {
                None => 20,
                Some(m) => match usize::try_from(*m.get_ref()) {
                    Ok(n) if (1..=MAX_PER_SECTION).contains(&n) => n,
                    _ => {
                        self.err(
                            m,
                            format!("{section}: max_per_section = {} is outside 1 to {MAX_PER_SECTION}: a digest is read by a person; `triaged tickets` lists everything", m.get_ref()),
                        );
                        20
                    }
                },
            };
            out.push(DigestConfig {
                name,
                to,
                schedule,
                quiet,
                send_empty: d.send_empty.unwrap_or(false),
                intents: d.intents,
                priorities,
                teams,
                due_soon,
                repeat_count: d.repeat_count.unwrap_or(3).max(2),
                repeat_window,
                tones: d
                    .tones
                    .unwrap_or_else(|| vec!["angry".into(), "abusive".into()]),
                threats: d
                    .threats
                    .unwrap_or_else(|| vec!["legal-threat".into(), "public-threat".into()]),
                oldest: d.oldest.unwrap_or(5),
                max_per_section,
                period,
            });
        }
        out
    }

    /// A digest's name: letters, digits, '-' and '_', and not one of `names` (those before).
    fn digest_name(&mut self, at: &Spanned<String>, names: &mut Vec<String>) -> String {
        let name = at.get_ref().trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.err(at, "digest name must be letters, digits, '-' or '_' (it names the digest in subjects and on the command line)");
        } else if names.contains(&name) {
            self.err(
                at,
                format!("a digest named {name:?} already exists: give each a different name"),
            );
        }
        names.push(name.clone());
        name
    }

    /// `teams = [...]`: each a `[[team]]`.
    fn digest_teams(
        &mut self,
        section: &str,
        written: &[Spanned<String>],
        routing: &Routing,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for t in written {
            let v = t.get_ref().trim().to_string();
            if routing.team(&v).is_none() {
                let names: Vec<&str> = routing.teams.iter().map(|t| t.name.as_str()).collect();
                self.err(
                    t,
                    format!(
                        "{section}: no [[team]] is named {v:?} (teams: {})",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
            } else if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    }

    fn priorities(&mut self, section: &str, written: &[Spanned<String>]) -> Vec<Priority> {
        let mut priorities = Vec::new();
        for p in written {
            match Priority::ALL.iter().find(|x| x.as_str() == p.get_ref()) {
                Some(x) => priorities.push(*x),
                None => self.err(
                    p,
                    format!(
                        "{section} unknown priority {:?}: use urgent, high, normal or low",
                        p.get_ref()
                    ),
                ),
            }
        }
        priorities
    }

    pub(super) fn alerts(
        &mut self,
        raw: Option<raw::Alerts>,
        support: &SupportConfig,
        default_tz: &TimeZone,
    ) -> Option<AlertConfig> {
        let a = raw?;
        let to = self.staff_recipients("[alerts]", &a.to, support);
        let tz = self.zone("[alerts]", &a.timezone, default_tz);
        let quiet = self.quiet("[alerts]", &a.quiet_hours, &tz);
        let max_per_hour = match &a.max_per_hour {
            Some(m) if *m.get_ref() == 0 => {
                self.err(m, "max_per_hour must be at least 1 (to stop instant alerts, remove their intents and alert = true rules)");
                1
            }
            Some(m) => *m.get_ref(),
            None => 10,
        };
        let h = a.health.unwrap_or_default();
        let health = HealthConfig {
            enabled: h.enabled.unwrap_or(true),
            after: self.duration(&h.after, Duration::from_secs(5 * 60)),
            no_mail_for: h
                .no_mail_for
                .as_ref()
                .map(|v| self.duration(&Some(v.clone()), Duration::ZERO))
                .filter(|d| !d.is_zero()),
            backlog_max: h.backlog_max.unwrap_or(100).max(1),
            backlog_age: self.duration(&h.backlog_age, Duration::from_secs(15 * 60)),
        };
        Some(AlertConfig {
            to,
            intents: a.intents,
            max_per_hour,
            quiet,
            health,
        })
    }
}
