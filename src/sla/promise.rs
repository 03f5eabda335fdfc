//! Deadlines as words a customer can hold us to: never earlier than the real deadline, in the
//! calendar's zone, relative to the day the customer reads it.

use jiff::Timestamp;
use jiff::civil::Time;

use super::Calendar;

/// Promised times are whole quarter hours: "by 15:00", not "by 14:53".
const QUARTER_NS: i128 = 15 * 60 * 1_000_000_000;

impl Calendar {
    /// Honest wording of `deadline` as seen at `now`, in the calendar's zone:
    ///
    /// - `today by 15:00 CET`, `tomorrow by 10:00 CET` (local dates of `now` and the deadline),
    /// - `by Monday 10:00 CET` up to six days ahead,
    /// - `by Tuesday 22 December 10:00 CET` beyond, with the year when it differs from now's
    ///   (`by Tuesday 5 January 2027 10:00 CET`), and for a deadline on an earlier day.
    ///
    /// The deadline is rounded *up* to a whole quarter hour of local time, so the promise is
    /// never earlier than the deadline. Midnight reads as `24:00` of the day before ("today by
    /// 24:00"), because "tomorrow by 00:00" is easily read a day late. Zones whose abbreviation
    /// is numeric are shown as `UTC-3`, `UTC+5:45`.
    pub fn promise(&self, deadline: Timestamp, now: Timestamp) -> String {
        let at = self.round_up_to_quarter(deadline);
        let local = self.tz.to_datetime(at);
        let (date, clock) = if local.time() == Time::midnight() {
            match local.date().yesterday() {
                Ok(day_before) => (day_before, "24:00".to_string()),
                Err(_) => (local.date(), "00:00".to_string()),
            }
        } else {
            (local.date(), local.strftime("%H:%M").to_string())
        };
        let zone = self.zone_label(at);
        let today = self.tz.to_datetime(now).date();
        let days_ahead = today.until(date).map_or(i32::MAX, |span| span.get_days());
        match days_ahead {
            0 => format!("today by {clock} {zone}"),
            1 => format!("tomorrow by {clock} {zone}"),
            2..=6 => format!("by {} {clock} {zone}", date.strftime("%A")),
            _ if date.year() == today.year() => {
                format!("by {} {clock} {zone}", date.strftime("%A %-d %B"))
            }
            _ => format!("by {} {clock} {zone}", date.strftime("%A %-d %B %Y")),
        }
    }

    /// The first instant at or after `t` whose local time is a whole quarter hour, under the
    /// offset in force at `t`. Every offset in use today is a multiple of 15 minutes, so this is
    /// also a quarter hour on the clock after a transition. Left as `t` at the end of jiff's
    /// range, where no later instant exists.
    pub fn round_up_to_quarter(&self, t: Timestamp) -> Timestamp {
        let offset_ns = i128::from(self.tz.to_offset(t).seconds()) * 1_000_000_000;
        let past = (t.as_nanosecond() + offset_ns).rem_euclid(QUARTER_NS);
        if past == 0 {
            return t;
        }
        Timestamp::from_nanosecond(t.as_nanosecond() + QUARTER_NS - past).unwrap_or(t)
    }

    /// "CET", "JST"; for zones whose tz abbreviation is only an offset ("-03", "+0545") a
    /// readable `UTC-3` / `UTC+5:45` instead.
    fn zone_label(&self, t: Timestamp) -> String {
        let info = self.tz.to_offset_info(t);
        let abbreviation = info.abbreviation();
        if !abbreviation.is_empty() && abbreviation.bytes().all(|b| b.is_ascii_alphabetic()) {
            return abbreviation.to_string();
        }
        let seconds = info.offset().seconds();
        let sign = if seconds < 0 { '-' } else { '+' };
        let (hours, minutes) = (
            seconds.unsigned_abs() / 3600,
            seconds.unsigned_abs() % 3600 / 60,
        );
        if minutes == 0 {
            format!("UTC{sign}{hours}")
        } else {
            format!("UTC{sign}{hours}:{minutes:02}")
        }
    }
}
