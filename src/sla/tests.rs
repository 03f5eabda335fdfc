//! Table-driven tests for business time. Instants are written with their UTC offset
//! ("2026-03-30T10:00+02:00") so every DST case says which side of the change it means.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::DateTime;

use super::*;

fn raw(tz: &str, hours: &[(&str, &str)], holidays: &[&str]) -> RawCalendar {
    RawCalendar {
        timezone: tz.to_string(),
        hours: hours
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        holidays: holidays.iter().map(|h| h.to_string()).collect(),
    }
}

fn cal(tz: &str, hours: &[(&str, &str)], holidays: &[&str]) -> Calendar {
    Calendar::from_raw(&raw(tz, hours, holidays)).unwrap_or_else(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("calendar refused: {errors:#?}")
    })
}

/// An instant with an explicit offset, e.g. "2026-03-27T16:00+01:00".
fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s:?} in test: {e}"))
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

/// Shows an instant on the calendar's wall clock, so a failure reads like the table.
fn show(cal: &Calendar, t: Timestamp) -> String {
    t.to_zoned(cal.time_zone().clone())
        .strftime("%a %Y-%m-%d %H:%M:%S%.f %Z")
        .to_string()
}

/// A calendar open only on Sundays (Saturday is closed by default): puts a DST change, which
/// happens on a Sunday night in Europe and North America, inside opening hours.
fn sundays_only(tz: &str, sunday: &str) -> Calendar {
    let closed = [
        ("mon", ""),
        ("tue", ""),
        ("wed", ""),
        ("thu", ""),
        ("fri", ""),
    ];
    let mut hours = closed.to_vec();
    hours.push(("sun", sunday));
    cal(tz, &hours, &[])
}

const MON_FRI_LUNCH: &[(&str, &str)] = &[
    ("mon", "09:00-12:00,13:00-17:00"),
    ("tue", "09:00-12:00,13:00-17:00"),
    ("wed", "09:00-12:00,13:00-17:00"),
    ("thu", "09:00-12:00,13:00-17:00"),
    ("fri", "09:00-12:00,13:00-17:00"),
];

/// Checks `add` against the expected deadline and `between` against the duration back.
fn check_add_table(cal: &Calendar, cases: &[(&str, &str, Duration, &str)]) {
    for (name, start, business, expected) in cases {
        let (start, expected) = (ts(start), ts(expected));
        let got = cal.add(start, *business);
        assert_eq!(
            got,
            expected,
            "{name}: add({}, {business:?}) = {}, want {}",
            show(cal, start),
            show(cal, got),
            show(cal, expected)
        );
        assert_eq!(
            cal.between(start, got),
            *business,
            "{name}: between(start, add(start, d)) != d"
        );
    }
}

#[test]
#[rustfmt::skip]
fn add_skips_evenings_weekends_and_holidays() {
    // 2026-12-25 and 2027-01-01 are Fridays: the weekend follows straight on.
    let berlin = cal("Europe/Berlin", &[], &["2026-12-25", "2027-01-01"]);
    check_add_table(
        &berlin,
        &[
            ("weekend", "2026-03-20T16:00+01:00", hours(2), "2026-03-23T10:00+01:00"),
            ("start on saturday", "2026-03-21T12:00+01:00", hours(1), "2026-03-23T10:00+01:00"),
            ("evening start", "2026-03-18T18:30+01:00", hours(1), "2026-03-19T10:00+01:00"),
            ("before opening", "2026-03-18T07:00+01:00", minutes(30), "2026-03-18T09:30+01:00"),
            ("fills the day exactly", "2026-03-23T09:00+01:00", hours(8), "2026-03-23T17:00+01:00"),
            ("zero while closed", "2026-03-21T12:00+01:00", Duration::ZERO, "2026-03-23T09:00+01:00"),
            ("zero while open", "2026-03-18T11:11+01:00", Duration::ZERO, "2026-03-18T11:11+01:00"),
            ("three days", "2026-03-23T10:00+01:00", hours(24), "2026-03-26T10:00+01:00"),
            ("whole week", "2026-03-23T09:00+01:00", hours(40), "2026-03-27T17:00+01:00"),
            ("week and an hour", "2026-03-23T09:00+01:00", hours(41), "2026-03-30T10:00+02:00"),
            ("seconds carry over", "2026-03-23T16:59:30+01:00", Duration::from_secs(45), "2026-03-24T09:00:15+01:00"),
            ("holiday friday", "2026-12-24T16:00+01:00", hours(2), "2026-12-28T10:00+01:00"),
            ("new year friday", "2026-12-31T16:00+01:00", hours(2), "2027-01-04T10:00+01:00"),
            ("start on holiday", "2026-12-25T10:00+01:00", hours(1), "2026-12-28T10:00+01:00"),
        ],
    );
}

#[test]
fn sla_clock_does_not_fire_at_midnight() {
    // The complaint this module exists for: 4 hours from Wednesday 16:00 is Thursday noon.
    let berlin = cal("Europe/Berlin", &[], &[]);
    let due = berlin.add(ts("2026-03-18T16:00+01:00"), hours(4));
    assert_eq!(due, ts("2026-03-19T12:00+01:00"), "{}", show(&berlin, due));
}

#[test]
#[rustfmt::skip]
fn add_respects_lunch_breaks() {
    let lunch = cal("Europe/Berlin", MON_FRI_LUNCH, &[]);
    check_add_table(
        &lunch,
        &[
            ("across lunch", "2026-03-23T11:30+01:00", hours(1), "2026-03-23T13:30+01:00"),
            ("start at lunch", "2026-03-23T12:15+01:00", minutes(15), "2026-03-23T13:15+01:00"),
            ("morning ends exactly", "2026-03-23T11:00+01:00", hours(1), "2026-03-23T12:00+01:00"),
            ("whole day", "2026-03-23T09:00+01:00", hours(7), "2026-03-23T17:00+01:00"),
            ("overnight", "2026-03-23T16:00+01:00", hours(4), "2026-03-24T12:00+01:00"),
            ("overnight past lunch", "2026-03-23T16:00+01:00", hours(5), "2026-03-24T14:00+01:00"),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn between_counts_only_open_time() {
    let berlin = cal("Europe/Berlin", &[], &["2026-12-25"]);
    let lunch = cal("Europe/Berlin", MON_FRI_LUNCH, &[]);
    let cases: &[(&str, &Calendar, &str, &str, Duration)] = &[
        ("reversed", &berlin, "2026-03-23T12:00+01:00", "2026-03-23T10:00+01:00", Duration::ZERO),
        ("empty", &berlin, "2026-03-23T12:00+01:00", "2026-03-23T12:00+01:00", Duration::ZERO),
        ("inside a day", &berlin, "2026-03-23T10:00+01:00", "2026-03-23T12:30+01:00", minutes(150)),
        ("night only", &berlin, "2026-03-23T17:00+01:00", "2026-03-24T09:00+01:00", Duration::ZERO),
        ("weekend only", &berlin, "2026-03-21T00:00+01:00", "2026-03-23T09:00+01:00", Duration::ZERO),
        ("friday to monday", &berlin, "2026-03-20T16:00+01:00", "2026-03-23T10:00+01:00", hours(2)),
        ("a full week", &berlin, "2026-03-16T00:00+01:00", "2026-03-23T00:00+01:00", hours(40)),
        ("christmas week", &berlin, "2026-12-21T00:00+01:00", "2026-12-28T00:00+01:00", hours(32)),
        ("lunch excluded", &lunch, "2026-03-23T11:00+01:00", "2026-03-23T14:00+01:00", hours(2)),
        ("lunch day", &lunch, "2026-03-23T00:00+01:00", "2026-03-24T00:00+01:00", hours(7)),
    ];
    for (name, cal, a, b, expected) in cases {
        assert_eq!(cal.between(ts(a), ts(b)), *expected, "{name}");
    }
}

#[test]
#[rustfmt::skip]
fn is_open_and_next_open() {
    let lunch = cal("Europe/Berlin", MON_FRI_LUNCH, &["2026-03-24"]);
    // (name, instant, open?, next opening)
    let cases: &[(&str, &str, bool, &str)] = &[
        ("opening instant", "2026-03-23T09:00+01:00", true, "2026-03-23T09:00+01:00"),
        ("just before", "2026-03-23T08:59:59+01:00", false, "2026-03-23T09:00+01:00"),
        ("morning", "2026-03-23T11:59:59+01:00", true, "2026-03-23T11:59:59+01:00"),
        ("lunch starts", "2026-03-23T12:00+01:00", false, "2026-03-23T13:00+01:00"),
        ("closing instant", "2026-03-23T17:00+01:00", false, "2026-03-25T09:00+01:00"),
        ("holiday", "2026-03-24T10:00+01:00", false, "2026-03-25T09:00+01:00"),
        ("sunday", "2026-03-22T10:00+01:00", false, "2026-03-23T09:00+01:00"),
    ];
    for (name, t, open, next) in cases {
        assert_eq!(lunch.is_open(ts(t)), *open, "{name}: is_open");
        assert_eq!(lunch.next_open(ts(t)), ts(next), "{name}: next_open");
    }
}

#[test]
#[rustfmt::skip]
fn unmentioned_weekdays_keep_their_defaults() {
    let defaults = cal("Europe/Berlin", &[], &[]);
    let with_saturday = cal("Europe/Berlin", &[("sat", "10:00-14:00")], &[]);
    let cases: &[(&str, &Calendar, &str, bool)] = &[
        ("monday 09:00", &defaults, "2026-03-23T09:00+01:00", true),
        ("friday 16:59", &defaults, "2026-03-27T16:59+01:00", true),
        ("friday 17:00", &defaults, "2026-03-27T17:00+01:00", false),
        ("saturday", &defaults, "2026-03-28T11:00+01:00", false),
        ("sunday", &defaults, "2026-03-29T11:00+02:00", false),
        ("saturday added", &with_saturday, "2026-03-28T11:00+01:00", true),
        ("monday still open", &with_saturday, "2026-03-23T09:00+01:00", true),
    ];
    for (name, cal, t, open) in cases {
        assert_eq!(cal.is_open(ts(t)), *open, "{name}");
    }
}

#[test]
#[rustfmt::skip]
fn always_open_counts_wall_clock_time() {
    let berlin = Calendar::always_open(time_zone("Europe/Berlin").unwrap());
    let cases: &[(&str, &str, &str, Duration)] = &[
        ("a week", "2026-03-02T00:00+01:00", "2026-03-09T00:00+01:00", hours(168)),
        ("spring-forward day", "2026-03-29T00:00+01:00", "2026-03-30T00:00+02:00", hours(23)),
        ("fall-back day", "2026-10-25T00:00+02:00", "2026-10-26T00:00+01:00", hours(25)),
    ];
    for (name, a, b, expected) in cases {
        assert_eq!(berlin.between(ts(a), ts(b)), *expected, "{name}");
    }
    let start = ts("2026-03-28T18:00+01:00");
    assert_eq!(berlin.add(start, hours(24)), ts("2026-03-29T19:00+02:00"));
    assert!(berlin.is_open(ts("2026-03-29T03:00+02:00")));
}

/// Calendars open only on Sunday nights around the DST change, so the change is inside hours.
#[test]
#[rustfmt::skip]
fn dst_inside_opening_hours_counts_real_elapsed_time() {
    let berlin = sundays_only("Europe/Berlin", "02:00-04:00");
    let berlin_inner = sundays_only("Europe/Berlin", "02:15-02:45,10:00-11:00");
    let berlin_straddle = sundays_only("Europe/Berlin", "02:30-03:30");
    let new_york = sundays_only("America/New_York", "01:00-03:00");
    // (name, calendar, from, to, open time in between)
    let cases: &[(&str, &Calendar, &str, &str, Duration)] = &[
        ("berlin ordinary sunday", &berlin, "2026-03-22T00:00+01:00", "2026-03-23T00:00+01:00", hours(2)),
        ("berlin spring forward: 02:00 never happens", &berlin, "2026-03-29T00:00+01:00", "2026-03-30T00:00+02:00", hours(1)),
        ("berlin fall back: 02:00-03:00 runs twice", &berlin, "2026-10-25T00:00+02:00", "2026-10-26T00:00+01:00", hours(3)),
        ("berlin window inside the skipped hour is empty", &berlin_inner, "2026-03-29T00:00+01:00", "2026-03-30T00:00+02:00", hours(1)),
        ("berlin window inside the fold counts once", &berlin_inner, "2026-10-25T00:00+02:00", "2026-10-26T00:00+01:00", minutes(90)),
        ("berlin window opening in the skipped hour opens at the jump", &berlin_straddle, "2026-03-29T00:00+01:00", "2026-03-30T00:00+02:00", minutes(30)),
        ("new york ordinary sunday", &new_york, "2026-03-01T00:00-05:00", "2026-03-02T00:00-05:00", hours(2)),
        ("new york spring forward", &new_york, "2026-03-08T00:00-05:00", "2026-03-09T00:00-04:00", hours(1)),
        ("new york fall back", &new_york, "2026-11-01T00:00-04:00", "2026-11-02T00:00-05:00", hours(3)),
    ];
    for (name, cal, a, b, expected) in cases {
        assert_eq!(cal.between(ts(a), ts(b)), *expected, "{name}");
    }

    check_add_table(
        &berlin,
        &[
            ("opens at the jump", "2026-03-28T12:00+01:00", minutes(30), "2026-03-29T03:30+02:00"),
            ("spring window is one hour", "2026-03-28T12:00+01:00", hours(1), "2026-03-29T04:00+02:00"),
            ("spring window overflows a week", "2026-03-28T12:00+01:00", minutes(90), "2026-04-05T02:30+02:00"),
            ("second 02:30 of the fold", "2026-10-24T12:00+02:00", minutes(90), "2026-10-25T02:30+01:00"),
            ("fall window is three hours", "2026-10-24T12:00+02:00", hours(3), "2026-10-25T04:00+01:00"),
        ],
    );
    check_add_table(
        &new_york,
        &[
            ("new york spring", "2026-03-07T12:00-05:00", hours(1), "2026-03-08T03:00-04:00"),
            ("new york second 01:30", "2026-10-31T12:00-04:00", minutes(90), "2026-11-01T01:30-05:00"),
            ("new york fall window is three hours", "2026-10-31T12:00-04:00", hours(3), "2026-11-01T03:00-05:00"),
        ],
    );
    let cases: &[(&str, &Calendar, &str, bool)] = &[
        ("berlin before the jump", &berlin, "2026-03-29T01:59:59+01:00", false),
        ("berlin the jump itself", &berlin, "2026-03-29T03:00+02:00", true),
        ("berlin first 02:00", &berlin, "2026-10-25T02:00+02:00", true),
        ("berlin second 02:00", &berlin, "2026-10-25T02:00+01:00", true),
        ("berlin 04:00 after the fold", &berlin, "2026-10-25T04:00+01:00", false),
        ("inner window skipped", &berlin_inner, "2026-03-29T03:30+02:00", false),
        ("inner window first pass", &berlin_inner, "2026-10-25T02:30+02:00", true),
        ("inner window second pass is closed", &berlin_inner, "2026-10-25T02:30+01:00", false),
    ];
    for (name, cal, t, open) in cases {
        assert_eq!(cal.is_open(ts(t)), *open, "{name}");
    }
}

#[test]
#[rustfmt::skip]
fn office_hours_across_a_dst_weekend() {
    let berlin = cal("Europe/Berlin", &[], &[]);
    let new_york = cal("America/New_York", &[], &[]);
    check_add_table(
        &berlin,
        &[
            ("berlin spring", "2026-03-27T16:00+01:00", hours(2), "2026-03-30T10:00+02:00"),
            ("berlin fall", "2026-10-23T16:00+02:00", hours(2), "2026-10-26T10:00+01:00"),
        ],
    );
    check_add_table(
        &new_york,
        &[
            ("new york spring", "2026-03-06T16:00-05:00", hours(2), "2026-03-09T10:00-04:00"),
            ("new york fall", "2026-10-30T16:00-04:00", hours(2), "2026-11-02T10:00-05:00"),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn midnight_skipped_by_dst() {
    // Chile starts DST at midnight: Sunday 2026-09-06 begins at 01:00.
    let santiago = cal(
        "America/Santiago",
        &[("sat", "00:00-24:00"), ("sun", "00:00-02:00")],
        &[],
    );
    let t = ts("2026-09-06T01:00-03:00");
    assert!(santiago.is_open(t), "{}", show(&santiago, t));
    let cases: &[(&str, &str, &str, Duration)] = &[
        ("saturday is whole", "2026-09-05T00:00-04:00", "2026-09-06T01:00-03:00", hours(24)),
        ("sunday loses its first hour", "2026-09-06T01:00-03:00", "2026-09-07T00:00-03:00", hours(1)),
    ];
    for (name, a, b, expected) in cases {
        assert_eq!(santiago.between(ts(a), ts(b)), *expected, "{name}");
    }
}

#[test]
#[rustfmt::skip]
fn zones_far_from_utc() {
    let tokyo = cal("Asia/Tokyo", &[], &[]);
    let auckland = cal("Pacific/Auckland", &[], &[]);
    check_add_table(
        &tokyo,
        &[
            ("tokyo morning is utc night", "2026-01-05T23:30Z", hours(1), "2026-01-06T01:00Z"),
            ("tokyo friday to monday", "2026-01-09T07:30Z", hours(1), "2026-01-12T00:30Z"),
        ],
    );
    check_add_table(
        &auckland,
        &[
            ("auckland friday to monday", "2026-01-09T16:30+13:00", hours(1), "2026-01-12T09:30+13:00"),
            ("auckland dst ends on the weekend", "2026-04-03T16:00+13:00", hours(2), "2026-04-06T10:00+12:00"),
        ],
    );
    // A UTC Sunday that is already Monday morning there.
    let cases: &[(&str, &Calendar, &str, bool, &str)] = &[
        ("tokyo monday 08:00", &tokyo, "2026-01-04T23:00Z", false, "2026-01-05T00:00Z"),
        ("auckland monday 09:00", &auckland, "2026-01-04T20:00Z", true, "2026-01-04T20:00Z"),
        ("auckland saturday is utc friday", &auckland, "2026-01-09T23:00Z", false, "2026-01-11T20:00Z"),
    ];
    for (name, cal, t, open, next) in cases {
        assert_eq!(cal.is_open(ts(t)), *open, "{name}: is_open");
        assert_eq!(cal.next_open(ts(t)), ts(next), "{name}: next_open");
    }
}

/// Property: for many seeded random starts and durations, `between` undoes `add`, the deadline
/// closes an open stretch, splitting the span anywhere adds up, and the promised quarter hour is
/// never before the deadline.
#[test]
fn between_undoes_add_for_random_starts() {
    let calendars = [
        cal(
            "Europe/Berlin",
            MON_FRI_LUNCH,
            &["2026-12-24", "2026-12-25", "2027-01-01"],
        ),
        cal(
            "America/New_York",
            &[("sat", "10:00-14:00")],
            &["2026-07-03", "2026-11-26"],
        ),
        cal("Asia/Tokyo", &[], &[]),
        cal("Pacific/Auckland", &[], &["2026-12-25"]),
        sundays_only("Europe/Berlin", "02:15-02:45,02:50-04:00,23:00-24:00"),
        cal(
            "America/Santiago",
            &[("sat", "00:00-24:00"), ("sun", "00:00-02:00")],
            &[],
        ),
        Calendar::always_open(time_zone("Europe/Berlin").unwrap()),
    ];
    let mut rng = fastrand::Rng::with_seed(0x5eed_c10c);
    let from = ts("2026-01-01T00:00Z").as_nanosecond();
    let to = ts("2028-01-01T00:00Z").as_nanosecond();
    let max_business = hours(120).as_nanos() as u64;
    for (index, cal) in calendars.iter().enumerate() {
        for _ in 0..1000 {
            let start = Timestamp::from_nanosecond(rng.i128(from..to)).unwrap();
            // Half whole minutes (the usual SLA), half arbitrary nanoseconds.
            let business = if rng.bool() {
                minutes(rng.u64(0..=120 * 60))
            } else {
                Duration::from_nanos(rng.u64(0..=max_business))
            };
            let due = cal.add(start, business);
            let context = format!("calendar {index}, start {}, {business:?}", show(cal, start));
            assert!(due >= start && due < Timestamp::MAX, "{context}: due {due}");
            assert_eq!(
                cal.between(start, due),
                business,
                "{context}: due {}",
                show(cal, due)
            );
            if business > Duration::ZERO {
                let just_before = due - jiff::SignedDuration::from_nanos(1);
                assert!(
                    cal.is_open(just_before),
                    "{context}: closed just before due"
                );
            }
            let opens = cal.next_open(start);
            assert!(
                opens >= start && opens <= due && cal.is_open(opens),
                "{context}"
            );
            assert_eq!(cal.between(start, opens), Duration::ZERO, "{context}");

            let split =
                Timestamp::from_nanosecond(rng.i128(start.as_nanosecond()..=due.as_nanosecond()))
                    .unwrap();
            assert_eq!(
                cal.between(start, split) + cal.between(split, due),
                business,
                "{context}"
            );

            let promised = cal.round_up_to_quarter(due);
            let local = cal.time_zone().to_datetime(promised);
            assert!(
                promised >= due
                    && promised.duration_since(due) < jiff::SignedDuration::from_mins(15),
                "{context}"
            );
            assert_eq!(
                (
                    local.minute() % 15,
                    local.second(),
                    local.subsec_nanosecond()
                ),
                (0, 0, 0),
                "{context}"
            );
        }
    }
}

#[test]
#[rustfmt::skip]
fn promise_wording() {
    let berlin = cal("Europe/Berlin", &[], &[]);
    // (name, now, deadline, promise)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("rounds up", "2026-03-23T10:00+01:00", "2026-03-23T14:53+01:00", "today by 15:00 CET"),
        ("already a quarter", "2026-03-23T10:00+01:00", "2026-03-23T15:00+01:00", "today by 15:00 CET"),
        ("a nanosecond past", "2026-03-23T10:00+01:00", "2026-03-23T15:00:00.000000001+01:00", "today by 15:15 CET"),
        ("a second past the quarter", "2026-03-23T10:00+01:00", "2026-03-23T14:45:01+01:00", "today by 15:00 CET"),
        ("tomorrow", "2026-03-23T16:30+01:00", "2026-03-24T10:00+01:00", "tomorrow by 10:00 CET"),
        ("friday evening to monday", "2026-03-27T18:00+01:00", "2026-03-30T10:00+02:00", "by Monday 10:00 CEST"),
        ("six days ahead", "2026-03-23T10:00+01:00", "2026-03-29T10:00+02:00", "by Sunday 10:00 CEST"),
        ("seven days ahead", "2026-03-23T10:00+01:00", "2026-03-30T10:00+02:00", "by Monday 30 March 10:00 CEST"),
        ("two weeks ahead", "2026-12-08T10:00+01:00", "2026-12-22T10:00+01:00", "by Tuesday 22 December 10:00 CET"),
        ("over new year, within a week", "2026-12-30T16:00+01:00", "2027-01-04T10:00+01:00", "by Monday 10:00 CET"),
        ("tomorrow is next year", "2026-12-31T16:00+01:00", "2027-01-01T09:10+01:00", "tomorrow by 09:15 CET"),
        ("next year, far", "2026-12-23T16:00+01:00", "2027-01-05T10:00+01:00", "by Tuesday 5 January 2027 10:00 CET"),
        ("rounds up to midnight", "2026-03-25T20:00+01:00", "2026-03-25T23:50+01:00", "today by 24:00 CET"),
        ("midnight is the day before", "2026-03-25T20:00+01:00", "2026-03-26T00:00+01:00", "today by 24:00 CET"),
        ("rounds into the skipped hour", "2026-03-29T00:30+01:00", "2026-03-29T01:55+01:00", "today by 03:00 CEST"),
        ("deadline already past", "2026-03-24T10:00+01:00", "2026-03-23T10:00+01:00", "by Monday 23 March 10:00 CET"),
    ];
    for (name, now, deadline, expected) in cases {
        assert_eq!(berlin.promise(ts(deadline), ts(now)), *expected, "{name}");
    }

    let zone_cases: &[(&str, &str, &str, &str)] = &[
        ("Asia/Tokyo", "2026-01-05T00:00Z", "2026-01-05T01:07Z", "today by 10:15 JST"),
        ("America/New_York", "2026-01-05T14:00Z", "2026-01-06T15:00Z", "tomorrow by 10:00 EST"),
        ("Pacific/Auckland", "2026-01-05T00:00Z", "2026-01-05T01:00Z", "today by 14:00 NZDT"),
        ("Asia/Kathmandu", "2026-01-05T03:00Z", "2026-01-05T04:10Z", "today by 10:00 UTC+5:45"),
        ("America/Sao_Paulo", "2026-01-05T12:00Z", "2026-01-05T13:59Z", "today by 11:00 UTC-3"),
    ];
    for (zone, now, deadline, expected) in zone_cases {
        let cal = Calendar::always_open(time_zone(zone).unwrap());
        assert_eq!(cal.promise(ts(deadline), ts(now)), *expected, "{zone}");
    }
}

#[test]
fn friday_evening_promise_is_monday_not_24_hours() {
    let berlin = cal("Europe/Berlin", &[], &[]);
    let now = ts("2026-03-27T18:05+01:00");
    assert_eq!(
        berlin.promise(berlin.add(now, hours(8)), now),
        "by Monday 17:00 CEST"
    );
    assert_eq!(
        berlin.promise(berlin.add(now, minutes(50)), now),
        "by Monday 10:00 CEST"
    );
}

#[test]
#[rustfmt::skip]
fn accepted_hours() {
    // (hours text, open at 2026-03-23 (a Monday) hh:mm) -> expected open time that day
    let cases: &[(&str, Duration)] = &[
        ("00:00-24:00", hours(24)),
        ("9:00-17:00", hours(8)),
        (" 09:00 - 12:00 , 13:00-17:00 ", hours(7)),
        ("13:00-17:00,09:00-12:00", hours(7)),
        ("09:00-12:00,12:00-17:00", hours(8)),
        ("20:00-24:00", hours(4)),
        ("", Duration::ZERO),
        ("closed", Duration::ZERO),
        ("Closed", Duration::ZERO),
    ];
    for (text, expected) in cases {
        let cal = cal("Europe/Berlin", &[("mon", text)], &[]);
        let got = cal.between(ts("2026-03-23T00:00+01:00"), ts("2026-03-24T00:00+01:00"));
        assert_eq!(got, *expected, "{text:?}");
    }
    // Touching intervals merge: 12:00 is open, not a boundary.
    let merged = cal("Europe/Berlin", &[("mon", "09:00-12:00,12:00-17:00")], &[]);
    assert!(merged.is_open(ts("2026-03-23T12:00+01:00")));
    // A 24:00 close followed by a 00:00 open runs through midnight.
    let night = cal(
        "Europe/Berlin",
        &[("mon", "20:00-24:00"), ("tue", "00:00-06:00,09:00-17:00")],
        &[],
    );
    assert_eq!(
        night.add(ts("2026-03-23T23:00+01:00"), hours(2)),
        ts("2026-03-24T01:00+01:00")
    );
}

#[test]
#[rustfmt::skip]
fn refusals_say_what_and_how() {
    let hint = "write hours as HH:MM-HH:MM on a 24-hour clock, several separated by commas, \
                e.g. \"09:00-12:00,13:00-17:00\", or \"\" for closed";
    let closed_week: &[(&str, &str)] = &[
        ("mon", ""),
        ("tue", ""),
        ("wed", ""),
        ("thu", ""),
        ("fri", "closed"),
    ];
    let cases: Vec<(&str, RawCalendar, Vec<String>)> = vec![
        ("misspelt zone", raw("Europe/Berln", &[], &[]), vec![
            "timezone: unknown time zone \"Europe/Berln\"; did you mean Europe/Berlin?".into(),
        ]),
        ("made-up zone", raw("Mars/Olympus_Mons", &[], &[]), vec![
            "timezone: unknown time zone \"Mars/Olympus_Mons\"; use an IANA name such as Europe/Berlin".into(),
        ]),
        ("abbreviation gets no guess", raw("PST", &[], &[]), vec![
            "timezone: unknown time zone \"PST\"; use an IANA name such as Europe/Berlin".into(),
        ]),
        ("no zone", raw(" ", &[], &[]), vec![
            "timezone: no time zone given; use an IANA name such as Europe/Berlin".into(),
        ]),
        ("unknown weekday", raw("UTC", &[("thurs", "09:00-17:00")], &[]), vec![
            "hours.thurs: unknown weekday \"thurs\"; use one of mon, tue, wed, thu, fri, sat, sun".into(),
        ]),
        ("am/pm", raw("UTC", &[("mon", "9am-5pm")], &[]), vec![
            format!("hours.mon: \"9am\" is not a time; {hint}"),
        ]),
        ("hour 25", raw("UTC", &[("tue", "09:00-25:00")], &[]), vec![
            format!("hours.tue: \"25:00\" is not a time; {hint}"),
        ]),
        ("minute 60", raw("UTC", &[("tue", "09:60-17:00")], &[]), vec![
            format!("hours.tue: \"09:60\" is not a time; {hint}"),
        ]),
        ("seconds", raw("UTC", &[("tue", "09:00:00-17:00")], &[]), vec![
            format!("hours.tue: \"09:00:00\" is not a time; {hint}"),
        ]),
        ("not an interval", raw("UTC", &[("wed", "09:00")], &[]), vec![
            format!("hours.wed: \"09:00\" is not an interval; {hint}"),
        ]),
        ("trailing comma", raw("UTC", &[("wed", "09:00-12:00,")], &[]), vec![
            format!("hours.wed: \"\" is not an interval; {hint}"),
        ]),
        ("backwards", raw("UTC", &[("thu", "17:00-09:00")], &[]), vec![
            "hours.thu: \"17:00-09:00\" ends before it starts; an interval cannot run past midnight, so end it at 24:00 and continue at 00:00 on the next day".into(),
        ]),
        ("empty interval", raw("UTC", &[("thu", "09:00-09:00")], &[]), vec![
            "hours.thu: \"09:00-09:00\" is empty; remove it, or write \"\" to close the day".into(),
        ]),
        ("starts at 24:00", raw("UTC", &[("thu", "24:00-24:00")], &[]), vec![
            "hours.thu: \"24:00-24:00\" starts at 24:00, which only ends a day; start at 00:00 instead".into(),
        ]),
        ("overlap", raw("UTC", &[("fri", "09:00-12:00,11:00-17:00")], &[]), vec![
            "hours.fri: \"09:00-12:00\" and \"11:00-17:00\" overlap; let one end before the other starts, e.g. \"09:00-12:00,13:00-17:00\"".into(),
        ]),
        ("overlaps the long interval twice", raw("UTC", &[("fri", "09:00-17:00,10:00-11:00,12:00-13:00")], &[]), vec![
            "hours.fri: \"09:00-17:00\" and \"10:00-11:00\" overlap; let one end before the other starts, e.g. \"09:00-12:00,13:00-17:00\"".into(),
            "hours.fri: \"09:00-17:00\" and \"12:00-13:00\" overlap; let one end before the other starts, e.g. \"09:00-12:00,13:00-17:00\"".into(),
        ]),
        ("no open time", raw("UTC", closed_week, &[]), vec![
            "hours: no opening hours on any day, so the SLA clock would never advance; open at least one day, e.g. mon = \"09:00-17:00\"".into(),
        ]),
        ("bad month", raw("UTC", &[], &["2026-13-01"]), vec![
            "holidays[0]: \"2026-13-01\" is not a day of the calendar; write holidays as YYYY-MM-DD, e.g. \"2026-12-25\"".into(),
        ]),
        ("february 30", raw("UTC", &[], &["2026-12-25", "2026-02-30"]), vec![
            "holidays[1]: \"2026-02-30\" is not a day of the calendar; write holidays as YYYY-MM-DD, e.g. \"2026-12-25\"".into(),
        ]),
        ("german date", raw("UTC", &[], &["25.12.2026"]), vec![
            "holidays[0]: \"25.12.2026\" is not a date; write holidays as YYYY-MM-DD, e.g. \"2026-12-25\"".into(),
        ]),
        ("short date", raw("UTC", &[], &["2026-1-6"]), vec![
            "holidays[0]: \"2026-1-6\" is not a date; write holidays as YYYY-MM-DD, e.g. \"2026-12-25\"".into(),
        ]),
        ("duplicate holiday", raw("UTC", &[], &["2026-12-25", "2026-12-26", "2026-12-25"]), vec![
            "holidays[2]: holiday 2026-12-25 is listed twice (also at holidays[0]); remove one".into(),
        ]),
        ("everything at once", raw("Europe/Berln", &[("mon", "9-17"), ("fri", "10:00-09:00"), ("sunday", "")], &["2026-12-25", "xmas"]), vec![
            "timezone: unknown time zone \"Europe/Berln\"; did you mean Europe/Berlin?".into(),
            "hours.sunday: unknown weekday \"sunday\"; use one of mon, tue, wed, thu, fri, sat, sun".into(),
            format!("hours.mon: \"9\" is not a time; {hint}"),
            "hours.fri: \"10:00-09:00\" ends before it starts; an interval cannot run past midnight, so end it at 24:00 and continue at 00:00 on the next day".into(),
            "holidays[1]: \"xmas\" is not a date; write holidays as YYYY-MM-DD, e.g. \"2026-12-25\"".into(),
        ]),
    ];
    for (name, raw, expected) in cases {
        match Calendar::from_raw(&raw) {
            Ok(_) => panic!("{name}: accepted"),
            Err(errors) => {
                let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
                assert_eq!(got, expected, "{name}");
            }
        }
    }
}

#[test]
fn errors_name_their_field() {
    let errors = Calendar::from_raw(&raw("Nowhere/City", &[("xyz", "")], &["bad"]))
        .err()
        .unwrap();
    let fields: Vec<CalendarField> = errors.into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        vec![
            CalendarField::TimeZone,
            CalendarField::Day("xyz".into()),
            CalendarField::Holiday(0),
        ]
    );
}

#[test]
fn raw_calendar_from_toml() {
    let raw: RawCalendar = toml::from_str(
        "timezone = \"Europe/Berlin\"\nholidays = [\"2026-12-25\"]\n[hours]\nsat = \"10:00-14:00\"\n",
    )
    .unwrap();
    let cal = Calendar::from_raw(&raw).unwrap();
    assert!(cal.is_open(ts("2026-03-28T11:00+01:00")));
    assert!(!cal.is_open(ts("2026-12-25T11:00+01:00")));
    let typo = toml::from_str::<RawCalendar>("timezone = \"UTC\"\nholiday = []\n");
    assert!(typo.is_err(), "unknown keys must be refused");
}

#[test]
fn searches_stop_at_the_horizon() {
    // Open one hour on Sundays, and every Sunday for eleven years is a holiday.
    let mut sundays = Vec::new();
    let mut day = jiff::civil::date(2026, 1, 4);
    while day.year() < 2037 {
        sundays.push(day.to_string());
        day = day.checked_add(jiff::Span::new().days(7)).unwrap();
    }
    let sundays: Vec<&str> = sundays.iter().map(String::as_str).collect();
    let closed_weekdays: &[(&str, &str)] = &[
        ("mon", ""),
        ("tue", ""),
        ("wed", ""),
        ("thu", ""),
        ("fri", ""),
        ("sun", "10:00-11:00"),
    ];
    let never = cal("UTC", closed_weekdays, &sundays);
    let start = ts("2026-01-01T00:00Z");
    let started = std::time::Instant::now();
    assert_eq!(never.add(start, hours(1)), Timestamp::MAX);
    assert_eq!(never.next_open(start), Timestamp::MAX);
    assert_eq!(never.between(start, Timestamp::MAX), Duration::ZERO);
    assert!(!never.is_open(start));
    // After the holidays run out the Sundays count again.
    assert_eq!(
        never.next_open(ts("2037-01-01T00:00Z")),
        ts("2037-01-04T10:00Z")
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "horizon walk too slow"
    );

    let berlin = cal("Europe/Berlin", &[], &[]);
    assert_eq!(berlin.add(start, Duration::MAX), Timestamp::MAX);
    // Near the end of jiff's range: an answer, not a panic.
    let late = Timestamp::MAX - jiff::SignedDuration::from_hours(24 * 10);
    assert!(berlin.add(late, hours(1)) >= late);
    assert!(!berlin.promise(Timestamp::MAX, start).is_empty());
    assert!(berlin.round_up_to_quarter(Timestamp::MAX) == Timestamp::MAX);
}

#[test]
fn bundled_tzdb_is_used() {
    // Lookups are case-insensitive and canonicalised by the bundled database.
    let tz = time_zone("europe/berlin").unwrap();
    assert_eq!(tz.iana_name(), Some("Europe/Berlin"));
    let dt: DateTime = "2026-07-01T12:00".parse().unwrap();
    assert_eq!(
        tz.to_ambiguous_timestamp(dt).unambiguous().unwrap(),
        ts("2026-07-01T12:00+02:00")
    );
}
