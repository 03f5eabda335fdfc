//! Ticket policy, pure: ticket tags, threading by subject tag, and whether a new email gets an
//! acknowledgement. The store gathers the facts inside its transaction and calls these.

use crate::guard::Refusal;

/// The tag of ticket `id` (`T-1042` for id 42).
pub fn tag_for(id: i64) -> String {
    format!("T-{}", id + 1000)
}

/// The ticket tag in a subject (`[#T-1042]`), if any; the last one wins (replies prepend).
pub fn tag_in_subject(subject: &str) -> Option<String> {
    let mut found = None;
    let mut rest = subject;
    while let Some(i) = rest.find("[#T-") {
        let after = &rest[i + 4..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with(']') {
            found = Some(format!("T-{digits}"));
        }
        rest = after;
    }
    found
}

/// The subject of a reply: one `Re: `, the original subject without our tags or reply prefixes,
/// and the ticket tag. Control characters are replaced so no header can be injected.
pub fn reply_subject(original: &str, tag: &str) -> String {
    let mut s = original.replace(|c: char| c.is_control(), " ");
    loop {
        let t = s.trim_start();
        let lower = t.to_ascii_lowercase();
        let stripped = ["re:", "aw:", "fw:", "fwd:", "sv:"]
            .iter()
            .find_map(|p| lower.starts_with(p).then(|| t[p.len()..].to_string()));
        match stripped {
            Some(rest) => s = rest,
            None => break,
        }
    }
    let tag_text = format!("[#{tag}]");
    let s = s.replace(&tag_text, "");
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        format!("Re: {tag_text}")
    } else {
        format!("Re: {s} {tag_text}")
    }
}

/// Facts the ack decision needs, gathered by the store inside its transaction.
#[derive(Debug, Clone, Copy)]
pub struct AckFacts {
    pub acks_enabled: bool,
    /// The guard's verdict on the email.
    pub guard: Result<(), Refusal>,
    /// The email joined an existing ticket.
    pub joins_ticket: bool,
    /// Seconds between arrival and now.
    pub age_secs: i64,
    pub max_age_secs: i64,
    /// Acknowledgements already queued to this recipient within the per-sender window.
    pub recent_to_sender: u32,
    pub per_sender_limit: u32,
    /// Acknowledgements queued in the last minute, all recipients.
    pub last_minute: u32,
    pub circuit_breaker_per_minute: u32,
}

/// Why an email got no acknowledgement, or that one is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckDecision {
    Queue,
    Skip(&'static str),
}

impl AckDecision {
    pub fn code(self) -> &'static str {
        match self {
            AckDecision::Queue => "queued",
            AckDecision::Skip(code) => code,
        }
    }
}

/// One acknowledgement per new conversation, and only when every safety check passes.
pub fn ack_decision(f: &AckFacts) -> AckDecision {
    if let Err(refusal) = f.guard {
        return AckDecision::Skip(refusal.code());
    }
    if f.joins_ticket {
        return AckDecision::Skip("reply_in_ticket");
    }
    if !f.acks_enabled {
        return AckDecision::Skip("acks_disabled");
    }
    if f.age_secs > f.max_age_secs {
        return AckDecision::Skip("stale");
    }
    if f.recent_to_sender >= f.per_sender_limit {
        return AckDecision::Skip("sender_limit");
    }
    if f.last_minute >= f.circuit_breaker_per_minute {
        return AckDecision::Skip("circuit_open");
    }
    AckDecision::Queue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_in_subjects() {
        let cases = [
            ("Re: help [#T-1042]", Some("T-1042")),
            ("[#T-1] Undeliverable: [#T-1042] x", Some("T-1042")),
            ("no tag", None),
            ("[#T-] broken [#T-12x]", None),
            ("[#T-7]", Some("T-7")),
        ];
        for (s, want) in cases {
            assert_eq!(tag_in_subject(s).as_deref(), want, "{s}");
        }
        assert_eq!(tag_for(42), "T-1042");
    }

    #[test]
    fn reply_subjects() {
        let cases = [
            ("Help", "Re: Help [#T-1001]"),
            ("Re: RE: Fwd: Help", "Re: Help [#T-1001]"),
            ("Re: Help [#T-1001]", "Re: Help [#T-1001]"),
            ("Evil\r\nBcc: x@y", "Re: Evil Bcc: x@y [#T-1001]"),
            ("", "Re: [#T-1001]"),
        ];
        for (s, want) in cases {
            assert_eq!(reply_subject(s, "T-1001"), want, "{s:?}");
        }
    }

    fn facts() -> AckFacts {
        AckFacts {
            acks_enabled: true,
            guard: Ok(()),
            joins_ticket: false,
            age_secs: 5,
            max_age_secs: 172_800,
            recent_to_sender: 0,
            per_sender_limit: 3,
            last_minute: 0,
            circuit_breaker_per_minute: 60,
        }
    }

    #[test]
    fn ack_decisions() {
        let cases: Vec<(&str, AckFacts, &str)> = vec![
            ("fresh new email", facts(), "queued"),
            (
                "reply inside ticket",
                AckFacts {
                    joins_ticket: true,
                    ..facts()
                },
                "reply_in_ticket",
            ),
            (
                "disabled",
                AckFacts {
                    acks_enabled: false,
                    ..facts()
                },
                "acks_disabled",
            ),
            (
                "stale",
                AckFacts {
                    age_secs: 172_801,
                    ..facts()
                },
                "stale",
            ),
            (
                "exactly max age",
                AckFacts {
                    age_secs: 172_800,
                    ..facts()
                },
                "queued",
            ),
            (
                "sender limit",
                AckFacts {
                    recent_to_sender: 3,
                    ..facts()
                },
                "sender_limit",
            ),
            (
                "under sender limit",
                AckFacts {
                    recent_to_sender: 2,
                    ..facts()
                },
                "queued",
            ),
            (
                "breaker",
                AckFacts {
                    last_minute: 60,
                    ..facts()
                },
                "circuit_open",
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(ack_decision(&f).code(), want, "{name}");
        }
    }
}
