//! Operator input for a [`Calendar`] and its validation: every problem reported at once, each
//! naming its field and saying how to fix it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jiff::civil::Date;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use serde::Deserialize;

use super::{Calendar, DAY_MINUTES, Interval};

/// The weekday keys of [`RawCalendar::hours`], Monday first (the index into `Calendar::week`).
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Hours for a weekday the operator did not mention: a Monday-to-Friday office day.
const DEFAULT_HOURS: [&str; 7] = [
    "09:00-17:00",
    "09:00-17:00",
    "09:00-17:00",
    "09:00-17:00",
    "09:00-17:00",
    "",
    "",
];

/// Business hours as the operator writes them, before validation.
///
/// ```toml
/// timezone = "Europe/Berlin"
/// holidays = ["2026-12-24", "2026-12-25"]
/// [hours]
/// mon = "09:00-12:00,13:00-17:00"
/// sat = "10:00-14:00"
/// sun = ""            # closed
/// ```
///
/// Each weekday key left out keeps its default (Monday to Friday 09:00-17:00, weekend closed), so
/// changing one day never silently closes the others.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalendar {
    /// IANA name, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// `mon`..`sun` -> `"HH:MM-HH:MM"` intervals separated by commas; `""` or `"closed"` for a
    /// closed day; an interval may end at `24:00`.
    #[serde(default)]
    pub hours: BTreeMap<String, String>,
    /// Whole days closed, as `YYYY-MM-DD` in the calendar's zone.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// One problem in a [`RawCalendar`]: where it is and a sentence on what is wrong and how to fix
/// it. The config layer turns [`CalendarError::field`] into `file:line:col`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarError {
    pub field: CalendarField,
    pub message: String,
}

/// Which part of a [`RawCalendar`] a [`CalendarError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarField {
    /// `timezone`.
    TimeZone,
    /// The `hours` table as a whole (e.g. no open time in the week).
    Hours,
    /// One entry of `hours`, by its key as written (which may be an unknown key).
    Day(String),
    /// One entry of `holidays`, by its index.
    Holiday(usize),
}

impl fmt::Display for CalendarField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalendarField::TimeZone => f.write_str("timezone"),
            CalendarField::Hours => f.write_str("hours"),
            CalendarField::Day(key) => write!(f, "hours.{key}"),
            CalendarField::Holiday(index) => write!(f, "holidays[{index}]"),
        }
    }
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for CalendarError {}

impl CalendarError {
    fn new(field: CalendarField, message: impl Into<String>) -> CalendarError {
        CalendarError {
            field,
            message: message.into(),
        }
    }
}

/// Looks up an IANA zone in the bundled tz database (never the host's, see the module docs).
pub fn time_zone(name: &str) -> Result<TimeZone, CalendarError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CalendarError::new(
            CalendarField::TimeZone,
            "no time zone given; use an IANA name such as Europe/Berlin",
        ));
    }
    let db = TimeZoneDatabase::bundled();
    db.get(name).map_err(|_| {
        let message = match nearest_zone(&db, name) {
            Some(near) => format!("unknown time zone {name:?}; did you mean {near}?"),
            None => {
                format!("unknown time zone {name:?}; use an IANA name such as Europe/Berlin")
            }
        };
        CalendarError::new(CalendarField::TimeZone, message)
    })
}

/// A zone name within two edits of a mistyped `Region/City` name. Bare names ("PST") get no
/// guess: the nearest abbreviation is usually a different zone.
fn nearest_zone(db: &TimeZoneDatabase, name: &str) -> Option<String> {
    if !name.contains('/') {
        return None;
    }
    let wanted = name.to_ascii_lowercase();
    db.available()
        .filter(|candidate| candidate.as_str().contains('/'))
        .map(|candidate| {
            let distance = edit_distance(&wanted, &candidate.as_str().to_ascii_lowercase());
            (distance, candidate.as_str().to_string())
        })
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars; zone names are short, so the quadratic table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

impl Calendar {
    /// Validates operator input, reporting every problem at once (see [`CalendarError`]).
    ///
    /// Refused: unknown or empty time zones, unknown weekday keys, malformed times, intervals
    /// that are empty, run backwards or overlap, a week without open time (the SLA clock would
    /// never advance), malformed or duplicate holidays. Touching intervals
    /// (`"09:00-12:00,12:00-17:00"`) are fine and merged.
    pub fn from_raw(raw: &RawCalendar) -> Result<Calendar, Vec<CalendarError>> {
        let mut errors = Vec::new();

        let tz = time_zone(&raw.timezone).map_err(|e| errors.push(e)).ok();

        for key in raw.hours.keys() {
            if !WEEKDAYS.contains(&key.as_str()) {
                errors.push(CalendarError::new(
                    CalendarField::Day(key.clone()),
                    format!(
                        "unknown weekday {key:?}; use one of {}",
                        WEEKDAYS.join(", ")
                    ),
                ));
            }
        }
        let before_hours = errors.len();
        let week: [Vec<Interval>; 7] = std::array::from_fn(|day| {
            let key = WEEKDAYS[day];
            let text = raw
                .hours
                .get(key)
                .map_or(DEFAULT_HOURS[day], String::as_str);
            parse_day(text).unwrap_or_else(|messages| {
                errors.extend(
                    messages
                        .into_iter()
                        .map(|m| CalendarError::new(CalendarField::Day(key.to_string()), m)),
                );
                Vec::new()
            })
        });
        // Only a week that parsed cleanly can be judged empty; otherwise it is noise.
        if errors.len() == before_hours && week.iter().all(Vec::is_empty) {
            errors.push(CalendarError::new(
                CalendarField::Hours,
                "no opening hours on any day, so the SLA clock would never advance; \
                 open at least one day, e.g. mon = \"09:00-17:00\"",
            ));
        }

        let mut holidays = BTreeSet::new();
        let mut first_seen: BTreeMap<Date, usize> = BTreeMap::new();
        for (index, text) in raw.holidays.iter().enumerate() {
            match parse_date(text) {
                Ok(date) => {
                    if let Some(first) = first_seen.get(&date) {
                        errors.push(CalendarError::new(
                            CalendarField::Holiday(index),
                            format!(
                                "holiday {date} is listed twice (also at holidays[{first}]); \
                                 remove one"
                            ),
                        ));
                    } else {
                        first_seen.insert(date, index);
                        holidays.insert(date);
                    }
                }
                Err(message) => {
                    errors.push(CalendarError::new(CalendarField::Holiday(index), message))
                }
            }
        }

        match tz {
            Some(tz) if errors.is_empty() => Ok(Calendar { tz, week, holidays }),
            _ => Err(errors),
        }
    }
}

/// The fix-it hint shared by every malformed-hours message.
const HOURS_HINT: &str = "write hours as HH:MM-HH:MM on a 24-hour clock, several separated by \
                          commas, e.g. \"09:00-12:00,13:00-17:00\", or \"\" for closed";

/// One weekday's hours -> sorted, disjoint intervals (touching ones merged), or every problem.
fn parse_day(text: &str) -> Result<Vec<Interval>, Vec<String>> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("closed") {
        return Ok(Vec::new());
    }
    let mut problems = Vec::new();
    let mut intervals: Vec<(Interval, &str)> = Vec::new();
    for piece in text.split(',').map(str::trim) {
        match parse_interval(piece) {
            Ok(interval) => intervals.push((interval, piece)),
            Err(problem) => problems.push(problem),
        }
    }
    intervals.sort();
    // Compare each interval with the one reaching furthest so far, so that "09:00-17:00,
    // 10:00-11:00,12:00-13:00" reports both overlaps, not only the first.
    let mut furthest: Option<(Interval, &str)> = None;
    for &(interval, text) in &intervals {
        if let Some((before, before_text)) = furthest {
            if before.end > interval.start {
                problems.push(format!(
                    "{before_text:?} and {text:?} overlap; \
                     let one end before the other starts, e.g. \"09:00-12:00,13:00-17:00\""
                ));
            }
            if interval.end <= before.end {
                continue;
            }
        }
        furthest = Some((interval, text));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut merged: Vec<Interval> = Vec::new();
    for (interval, _) in intervals {
        match merged.last_mut() {
            Some(last) if last.end == interval.start => last.end = interval.end,
            _ => merged.push(interval),
        }
    }
    Ok(merged)
}

fn parse_interval(piece: &str) -> Result<Interval, String> {
    let Some((start_text, end_text)) = piece.split_once('-') else {
        return Err(format!("{piece:?} is not an interval; {HOURS_HINT}"));
    };
    let (start_text, end_text) = (start_text.trim(), end_text.trim());
    let start = parse_time(start_text).ok_or_else(|| bad_time(start_text))?;
    let end = parse_time(end_text).ok_or_else(|| bad_time(end_text))?;
    if start == DAY_MINUTES {
        return Err(format!(
            "{piece:?} starts at 24:00, which only ends a day; start at 00:00 instead"
        ));
    }
    if end == start {
        return Err(format!(
            "{piece:?} is empty; remove it, or write \"\" to close the day"
        ));
    }
    if end < start {
        return Err(format!(
            "{piece:?} ends before it starts; an interval cannot run past midnight, \
             so end it at 24:00 and continue at 00:00 on the next day"
        ));
    }
    Ok(Interval { start, end })
}

fn bad_time(text: &str) -> String {
    format!("{text:?} is not a time; {HOURS_HINT}")
}

/// `H:MM` or `HH:MM` (00:00-23:59), or `24:00`, as minutes after midnight.
fn parse_time(text: &str) -> Option<u16> {
    let (hour, minute) = text.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(hour) && hour.len() <= 2 && digits(minute) && minute.len() == 2) {
        return None;
    }
    let hour: u16 = hour.parse().ok()?;
    let minute: u16 = minute.parse().ok()?;
    match (hour, minute) {
        (24, 0) => Some(DAY_MINUTES),
        (0..=23, 0..=59) => Some(hour * 60 + minute),
        _ => None,
    }
}

/// Strictly `YYYY-MM-DD`: jiff alone would also take other ISO 8601 spellings, and holidays in
/// one file should look alike.
fn parse_date(text: &str) -> Result<Date, String> {
    const HINT: &str = "write holidays as YYYY-MM-DD, e.g. \"2026-12-25\"";
    let text = text.trim();
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return Err(format!("{text:?} is not a date; {HINT}"));
    }
    text.parse::<Date>()
        .map_err(|_| format!("{text:?} is not a day of the calendar; {HINT}"))
}
