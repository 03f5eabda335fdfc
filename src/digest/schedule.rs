//! When staff mail goes out: digest times of day on chosen weekdays, and quiet hours in which
//! nothing is sent to staff. Pure functions of their arguments; times are seconds since the epoch.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::sla::to_ts;

/// How far a search walks, in local days, before it answers "never".
const SEARCH_DAYS: i64 = 15;

/// Weekday keys, Monday first, as `[sla.hours]` spells them.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Times of day on some weekdays, in one zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub tz: TimeZone,
    /// Sorted, deduplicated.
    pub times: Vec<Time>,
    /// Monday = 0 .. Sunday = 6.
    pub days: [bool; 7],
}

impl Schedule {
    /// Parse `times` ("09:00") and `days` ("mon".."sun"; empty: every day). Errors name the
    /// offending value.
    pub fn parse(tz: TimeZone, times: &[String], days: &[String]) -> Result<Schedule, String> {
        let mut parsed = Vec::new();
        for t in times {
            parsed.push(parse_time(t)?);
        }
        if parsed.is_empty() {
            return Err("times is empty: give at least one time of day such as \"09:00\"".into());
        }
        parsed.sort();
        parsed.dedup();
        let mut on = [days.is_empty(); 7];
        for d in days {
            let key = d.trim().to_ascii_lowercase();
            match WEEKDAYS.iter().position(|w| key.starts_with(w)) {
                Some(i) if key.len() == 3 || WEEKDAY_NAMES[i] == key => on[i] = true,
                _ => {
                    return Err(format!(
                        "unknown weekday {d:?}: use one of {}",
                        WEEKDAYS.join(", ")
                    ));
                }
            }
        }
        Ok(Schedule {
            tz,
            times: parsed,
            days: on,
        })
    }

    /// The first scheduled instant strictly after `t` (`i64::MAX`: never).
    pub fn next_after(&self, t: i64) -> i64 {
        let start = to_ts(t).to_zoned(self.tz.clone()).date();
        (0..SEARCH_DAYS)
            .filter_map(|i| start.checked_add(jiff::Span::new().days(i)).ok())
            .flat_map(|d| self.slots_on(d))
            .find(|s| *s > t)
            .unwrap_or(i64::MAX)
    }

    /// The last scheduled instant at or before `t`, if one lies within the search window.
    pub fn last_at_or_before(&self, t: i64) -> Option<i64> {
        let start = to_ts(t).to_zoned(self.tz.clone()).date();
        (0..SEARCH_DAYS)
            .filter_map(|i| start.checked_sub(jiff::Span::new().days(i)).ok())
            .flat_map(|d| self.slots_on(d).into_iter().rev())
            .find(|s| *s <= t)
    }

    /// The scheduled instants of one local date, in order (a time skipped by a DST change
    /// happens at the first instant after the gap).
    fn slots_on(&self, d: Date) -> Vec<i64> {
        let weekday = d.weekday().to_monday_zero_offset() as usize;
        if !self.days[weekday] {
            return Vec::new();
        }
        self.times
            .iter()
            .filter_map(|t| {
                self.tz
                    .to_ambiguous_zoned(d.to_datetime(*t))
                    .compatible()
                    .ok()
            })
            .map(|z| z.timestamp().as_second())
            .collect()
    }
}

const WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// "HH:MM" as a time of day.
pub fn parse_time(s: &str) -> Result<Time, String> {
    let bad = || format!("{s:?} is not a time of day: use \"HH:MM\" such as \"09:00\"");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

/// A daily window in which staff are not emailed ("20:00-07:00" runs over midnight). What
/// falls due inside it waits for its end.
#[derive(Debug, Clone)]
pub struct QuietHours {
    pub tz: TimeZone,
    pub start: Time,
    pub end: Time,
}

impl QuietHours {
    /// Parse "HH:MM-HH:MM".
    pub fn parse(tz: TimeZone, s: &str) -> Result<QuietHours, String> {
        let (a, b) = s.split_once('-').ok_or_else(|| {
            format!(
                "{s:?} is not a window of quiet hours: use \"HH:MM-HH:MM\" such as \"20:00-07:00\""
            )
        })?;
        let (start, end) = (parse_time(a)?, parse_time(b)?);
        if start == end {
            return Err(format!(
                "{s:?} is empty: give quiet hours that start and end at different times"
            ));
        }
        Ok(QuietHours { tz, start, end })
    }

    /// When the quiet hours around `t` end, or `None` if `t` is not in quiet hours.
    pub fn until(&self, t: i64) -> Option<i64> {
        let z = to_ts(t).to_zoned(self.tz.clone());
        let now = z.time();
        let date = z.date();
        let end_on = |d: Date| {
            self.tz
                .to_ambiguous_zoned(d.to_datetime(self.end))
                .compatible()
                .ok()
                .map(|z| z.timestamp().as_second())
        };
        if self.start < self.end {
            (now >= self.start && now < self.end).then(|| end_on(date))?
        } else if now >= self.start {
            end_on(date.tomorrow().ok()?)
        } else if now < self.end {
            end_on(date)
        } else {
            None
        }
    }

    /// `t`, or the end of the quiet hours it falls in.
    pub fn defer(&self, t: i64) -> i64 {
        self.until(t).unwrap_or(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        crate::sla::time_zone("Europe/Berlin").unwrap()
    }

    fn at(s: &str) -> i64 {
        s.parse::<jiff::Zoned>().unwrap().timestamp().as_second()
    }

    fn show(t: i64) -> String {
        to_ts(t)
            .to_zoned(berlin())
            .strftime("%a %Y-%m-%d %H:%M")
            .to_string()
    }

    #[test]
    fn next_and_last_slots_on_weekdays() {
        let s = Schedule::parse(
            berlin(),
            &["15:00".into(), "09:00".into()],
            &[
                "mon".into(),
                "tue".into(),
                "wed".into(),
                "thu".into(),
                "fri".into(),
            ],
        )
        .unwrap();
        // Friday 16:00 -> Monday 09:00; exactly at a slot -> the next one.
        let fri = at("2026-11-20T16:00:00+01:00[Europe/Berlin]");
        assert_eq!(show(s.next_after(fri)), "Mon 2026-11-23 09:00");
        let mon9 = at("2026-11-23T09:00:00+01:00[Europe/Berlin]");
        assert_eq!(show(s.next_after(mon9)), "Mon 2026-11-23 15:00");
        assert_eq!(
            show(s.last_at_or_before(mon9).unwrap()),
            "Mon 2026-11-23 09:00"
        );
        let sun = at("2026-11-22T12:00:00+01:00[Europe/Berlin]");
        assert_eq!(
            show(s.last_at_or_before(sun).unwrap()),
            "Fri 2026-11-20 15:00"
        );
    }

    #[test]
    fn schedule_errors_name_the_value() {
        let e = Schedule::parse(berlin(), &["9am".into()], &[]).unwrap_err();
        assert!(e.contains("\"9am\""), "{e}");
        let e = Schedule::parse(berlin(), &["09:00".into()], &["funday".into()]).unwrap_err();
        assert!(e.contains("funday"), "{e}");
        assert!(Schedule::parse(berlin(), &[], &[]).is_err());
        assert!(Schedule::parse(berlin(), &["09:00".into()], &["Monday".into()]).is_ok());
    }

    #[test]
    fn a_slot_in_a_dst_gap_happens_after_it() {
        let s = Schedule::parse(berlin(), &["02:30".into()], &[]).unwrap();
        let before = at("2026-03-29T00:00:00+01:00[Europe/Berlin]");
        // 02:30 does not exist that night; the slot is at 03:30 CEST (= 01:30 UTC).
        assert_eq!(
            to_ts(s.next_after(before)).to_string(),
            "2026-03-29T01:30:00Z"
        );
    }

    #[test]
    fn quiet_hours_over_midnight() {
        let q = QuietHours::parse(berlin(), "20:00-07:00").unwrap();
        let evening = at("2026-11-23T21:15:00+01:00[Europe/Berlin]");
        assert_eq!(show(q.defer(evening)), "Tue 2026-11-24 07:00");
        let early = at("2026-11-24T06:59:00+01:00[Europe/Berlin]");
        assert_eq!(show(q.defer(early)), "Tue 2026-11-24 07:00");
        let day = at("2026-11-24T07:00:00+01:00[Europe/Berlin]");
        assert_eq!(q.until(day), None);
        let q = QuietHours::parse(berlin(), "12:00-13:00").unwrap();
        assert_eq!(
            show(q.defer(at("2026-11-24T12:30:00+01:00[Europe/Berlin]"))),
            "Tue 2026-11-24 13:00"
        );
        assert_eq!(
            q.until(at("2026-11-24T13:30:00+01:00[Europe/Berlin]")),
            None
        );
        assert!(QuietHours::parse(berlin(), "20:00").is_err());
        assert!(QuietHours::parse(berlin(), "20:00-20:00").is_err());
    }
}
