//! `[ack]`: the acknowledgement, and the limits that keep it from feeding a loop.

use std::time::Duration;

use super::Validator;
use crate::config::{AckConfig, raw};

/// `[ack] max_unanswered_auto`: the default, and the most the store reads per email.
const DEFAULT_UNANSWERED_AUTO: u32 = 3;
const MAX_UNANSWERED_AUTO: u32 = 20;

impl Validator<'_> {
    pub(super) fn ack(&mut self, ack: raw::Ack) -> AckConfig {
        if let Some(rt) = &ack.reply_time
            && let Some((_, at)) = rt.entries().next()
        {
            self.err(
                at,
                "[ack.reply_time] is now [sla.first_response] (the same keys, counted in business time when [sla] gives hours)",
            );
        }
        let hours = |h: u64| Duration::from_secs(h * 3600);
        let per_sender_window = self.duration(&ack.per_sender_window, hours(24));
        let max_age = self.duration(&ack.max_age, hours(2 * 24));
        let max_unanswered_auto = self.max_unanswered_auto(&ack);
        let auto_answer_within = self.auto_answer_within(&ack);
        let loop_window = self.duration_where(
            &ack.loop_window,
            Duration::from_secs(10 * 60),
            |d| !d.is_zero() && d <= hours(24),
            "loop_window must be longer than 0s and at most 24h (to switch the burst check off, set loop_burst = 0)",
        );
        AckConfig {
            enabled: ack.enabled.unwrap_or(true),
            template: ack.template.unwrap_or_else(|| "ack".into()),
            per_sender_limit: ack.per_sender_limit.unwrap_or(3),
            per_sender_window,
            max_age,
            circuit_breaker_per_minute: ack.circuit_breaker_per_minute.unwrap_or(0),
            loop_burst: ack.loop_burst.unwrap_or(4),
            loop_window,
            max_unanswered_auto,
            auto_answer_within,
        }
    }

    fn max_unanswered_auto(&mut self, ack: &raw::Ack) -> u32 {
        match &ack.max_unanswered_auto {
            // The store reads this many of the address's sent emails for every email it records.
            Some(m) if *m.get_ref() > MAX_UNANSWERED_AUTO => {
                self.err(
                    m,
                    format!(
                        "max_unanswered_auto is at most {MAX_UNANSWERED_AUTO} (0 switches the loop check off)"
                    ),
                );
                DEFAULT_UNANSWERED_AUTO
            }
            Some(m) => *m.get_ref(),
            None => DEFAULT_UNANSWERED_AUTO,
        }
    }

    fn auto_answer_within(&mut self, ack: &raw::Ack) -> Duration {
        let within = self.duration(&ack.auto_answer_within, Duration::from_secs(15 * 60));
        if let Some(w) = &ack.auto_answer_within {
            if within.is_zero() {
                self.err(
                    w,
                    "auto_answer_within must be longer than 0s (to switch the loop check off, set max_unanswered_auto = 0)",
                );
            } else if within > Duration::from_secs(24 * 3600) {
                self.err(
                    w,
                    "auto_answer_within is at most 24h: a customer who writes back the next day is not a robot",
                );
            }
        }
        within
    }
}
