//! The response targets that run on business time: what a ticket's SLA clock reads and what an
//! acknowledgement promises (pure: `now` always comes in).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Calendar, to_ts};
use crate::score::Priority;

/// Business time and the response targets that run on it.
#[derive(Debug, Clone)]
pub struct SlaConfig {
    /// Business hours; open around the clock (UTC) when there is no `[sla]` section.
    pub calendar: Calendar,
    /// `[sla]` is configured: promises name a time ("by Monday 10:00 CET"); otherwise they name
    /// a duration ("within 8 hours").
    pub business_hours: bool,
    /// Target for the first staff reply, per priority, in business time. It is what the
    /// acknowledgement promises, and when a holding note goes out if staff have not replied.
    pub first_response: BTreeMap<Priority, Duration>,
    /// Target for the next staff reply after a customer reopens a ticket.
    pub next_response: BTreeMap<Priority, Duration>,
}

impl Default for SlaConfig {
    /// No `[sla]`: open around the clock in UTC, targets 2h / 8h / 24h / 72h.
    fn default() -> Self {
        SlaConfig {
            calendar: Calendar::always_open(jiff::tz::TimeZone::UTC),
            business_hours: false,
            first_response: default_targets(),
            next_response: default_targets(),
        }
    }
}

/// First-response targets when none are configured.
pub fn default_targets() -> BTreeMap<Priority, Duration> {
    BTreeMap::from([
        (Priority::Urgent, Duration::from_secs(2 * 3600)),
        (Priority::High, Duration::from_secs(8 * 3600)),
        (Priority::Normal, Duration::from_secs(24 * 3600)),
        (Priority::Low, Duration::from_secs(72 * 3600)),
    ])
}

impl SlaConfig {
    /// The first-response target of a priority.
    pub fn first_response(&self, p: Priority) -> Duration {
        self.first_response
            .get(&p)
            .copied()
            .unwrap_or(Duration::from_secs(86_400))
    }

    /// The next-response target of a priority.
    pub fn next_response(&self, p: Priority) -> Duration {
        self.next_response
            .get(&p)
            .copied()
            .unwrap_or_else(|| self.first_response(p))
    }

    /// When `business` time will have passed after `start` (seconds since the epoch).
    pub fn deadline(&self, start: i64, business: Duration) -> i64 {
        self.calendar.add_secs(start, business)
    }

    /// The time a promise written at `now` names, for a wait that began at `start`: `target`
    /// business time after `start`, rounded up to the quarter hour as the words are ("by
    /// Monday 10:15 CET"). A deadline already behind us is renewed from `now` rather than
    /// stated in the past. Without business hours the promise reads "within 8 hours", which a
    /// customer counts from when they read it: `now` + `target`.
    pub fn promised_deadline(&self, start: i64, target: Duration, now: i64) -> i64 {
        if !self.business_hours {
            return self.deadline(now, target);
        }
        let mut deadline = self.deadline(start, target);
        if deadline <= now {
            deadline = self.deadline(now, target);
        }
        if deadline == i64::MAX {
            return deadline;
        }
        self.calendar
            .round_up_to_quarter(to_ts(deadline))
            .as_second()
    }

    /// When staff owe a reply to a ticket in `state` (`None` when it does not wait for them):
    /// the first-response target from its opening, or, once answered and reopened, the
    /// next-response target from the customer's last email. The SLA clock of lists and digests.
    pub fn response_due(
        &self,
        state: crate::tickets::State,
        p: Priority,
        created_at: i64,
        first_response_at: i64,
        last_customer_at: i64,
    ) -> Option<i64> {
        if !state.waits_for_staff() {
            return None;
        }
        Some(if first_response_at == 0 {
            self.deadline(created_at, self.first_response(p))
        } else {
            self.deadline(last_customer_at.max(created_at), self.next_response(p))
        })
    }

    /// The words of that promise: "by Monday 10:00 CET" on business hours, "within 8 hours"
    /// without.
    pub fn promise(&self, start: i64, target: Duration, now: i64) -> String {
        if !self.business_hours {
            return crate::wording::within(target);
        }
        let deadline = self.promised_deadline(start, target, now);
        self.calendar.promise(to_ts(deadline), to_ts(now))
    }
}
