//! `[sla]` (business hours and response targets) and `[followups]` (which run on them).

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::config::{FollowupConfig, raw};
use crate::sla::{Calendar, CalendarField, RawCalendar};
use crate::sla::{SlaConfig, default_targets};
use crate::tickets::FollowupSwitches;

fn utc() -> Calendar {
    Calendar::always_open(jiff::tz::TimeZone::UTC)
}

impl Validator<'_> {
    /// Without `[sla]`: open around the clock in UTC, the default targets.
    pub(super) fn sla(&mut self, sla: Option<&raw::Sla>) -> SlaConfig {
        let Some(s) = sla else {
            return SlaConfig::default();
        };
        let calendar = self
            .calendar("sla", &s.timezone, &s.hours, &s.holidays)
            .unwrap_or_else(utc);
        let first_response = self.per_priority(s.first_response.as_ref(), &default_targets());
        let next_response = self.per_priority(s.next_response.as_ref(), &first_response);
        for (table, targets) in [
            ("first_response", &first_response),
            ("next_response", &next_response),
        ] {
            for (p, d) in targets {
                if d.is_zero() {
                    self.err_file(format!(
                        "[sla.{table}] {} must be longer than zero",
                        p.as_str()
                    ));
                }
            }
        }
        SlaConfig {
            calendar,
            business_hours: true,
            first_response,
            next_response,
        }
    }

    /// `sla`: the section as written (its zone and holidays are those of `[followups.hours]`),
    /// and as read.
    pub(super) fn followups(
        &mut self,
        f: raw::Followups,
        sla: Option<&raw::Sla>,
        read: &SlaConfig,
    ) -> FollowupConfig {
        let send_hours = match (&f.hours, sla) {
            (None, _) => read.calendar.clone(),
            (Some(hours), Some(s)) => self
                .calendar("followups", &s.timezone, hours, &s.holidays)
                .unwrap_or_else(|| read.calendar.clone()),
            (Some(_), None) => {
                self.err_file(
                    "[followups.hours] needs [sla] for its time zone: add [sla] timezone = \"Europe/Berlin\" (say)",
                );
                read.calendar.clone()
            }
        };
        let verify_after = self.duration_where(
            &f.verify_after,
            Duration::from_secs(16 * 3600),
            |d| !d.is_zero(),
            "verify_after must be longer than zero: give the customer time to try the answer",
        );
        let survey_after = self.duration(&f.survey_after, Duration::from_secs(3600));
        let survey_url = match &f.survey_url {
            Some(u) => {
                let v = u.get_ref().trim().to_string();
                if !(v.starts_with("https://") || v.starts_with("http://")) {
                    self.err(u, "survey_url must be an http(s) link; leave it out to ask for a reply with a number");
                }
                v
            }
            None => String::new(),
        };
        FollowupConfig {
            switches: FollowupSwitches {
                holding: f.holding.unwrap_or(true),
                verify: f.verify.unwrap_or(true),
                survey: f.survey.unwrap_or(false),
            },
            verify_after,
            survey_after,
            survey_url,
            send_hours,
        }
    }

    /// A calendar from spanned TOML, each problem reported where it was written.
    fn calendar(
        &mut self,
        section: &str,
        timezone: &Spanned<String>,
        hours: &BTreeMap<String, Spanned<String>>,
        holidays: &[Spanned<String>],
    ) -> Option<Calendar> {
        let raw = RawCalendar {
            timezone: timezone.get_ref().clone(),
            hours: hours
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                .collect(),
            holidays: holidays.iter().map(|h| h.get_ref().clone()).collect(),
        };
        let errors = match Calendar::from_raw(&raw) {
            Ok(c) => return Some(c),
            Err(errors) => errors,
        };
        for e in errors {
            let at = match &e.field {
                CalendarField::TimeZone => Some(timezone),
                CalendarField::Day(key) => hours.get(key),
                CalendarField::Holiday(i) => holidays.get(*i),
                CalendarField::Hours => None,
            };
            match at {
                Some(at) => self.err(at, format!("[{section}] {e}")),
                None => self.err_file(format!("[{section}] {e}")),
            }
        }
        None
    }
}
