//! Shared wording for people (a leaf: it imports nothing of this crate, so the pure core may use
//! it): times, ages, waits and the SLA clock as staff read them, the reply time a customer is
//! promised, table cells cut to width, and customer text made safe to show on a terminal or in
//! a plain-text staff email.
//!
//! Customer-controlled text (a subject, a sender's name, an excerpt, the words a rule matched)
//! can carry ESC sequences that recolour, retitle or clear the operator's terminal, BEL, NUL,
//! and bidi overrides that make a line read differently from what it holds. [`one_line`] and
//! [`lines`] show each such character as an escape (`\x1b`, `\u{202e}`) instead.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `2026-11-23 20:54 UTC`, or `-` for 0.
pub fn when(t: i64) -> String {
    if t == 0 {
        return "-".into();
    }
    jiff::Timestamp::from_second(t)
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// `45m`, `3h`, `2d 4h`: how long ago `t` was.
pub fn age(t: i64, now: i64) -> String {
    let s = (now - t).max(0);
    match s {
        0..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `45s`, `12m`, `3h 5m`, `2d 4h`: a wait, roughly.
pub fn span(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{}m", (s + 59) / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A reply time an honest human would write: "within 8 hours", "within 90 minutes".
pub fn within(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s.is_multiple_of(86_400) && s >= 86_400 {
        (s / 86_400, "day")
    } else if s.is_multiple_of(3600) && s >= 3600 {
        (s / 3600, "hour")
    } else {
        (s.div_ceil(60).max(1), "minute")
    };
    format!("within {n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The SLA clock in a sentence (digest, status page): "reply due in 3h", "reply late by 1d 2h".
pub fn reply_due(due: i64, now: i64) -> String {
    if due > now {
        format!("reply due in {}", age(now, due))
    } else {
        format!("reply late by {}", age(due, now))
    }
}

/// The SLA clock in a table cell (`triaged tickets`): `in 3h`, `late 1d 2h`, `-` (nothing due).
pub fn sla_cell(due: Option<i64>, now: i64) -> String {
    match due {
        None => "-".into(),
        Some(d) if d >= now => format!("in {}", age(now, d)),
        Some(d) => format!("late {}", age(d, now)),
    }
}

/// `s` cut to `n` characters, an ellipsis marking the cut.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).chain(['…']).collect()
    }
}

/// A table cell: `s` made safe for one line ([`one_line`]), then cut to `n` characters.
pub fn cell(s: &str, n: usize) -> String {
    clip(&one_line(s), n)
}

/// Characters that must not reach a terminal raw: every C0 control, DEL, every C1 control,
/// and the bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069: the
/// "Trojan Source" set).
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` for one line: every control character escaped, line breaks and tabs too (`\n`, `\t`,
/// `\r`, `\x1b`, `\u{9b}`, `\u{202e}`). Backslashes are left as they are: this is for people to
/// read, not to decode.
pub fn one_line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// `s` for a multi-line text (a plain-text email body): like [`one_line`], but line breaks and
/// tabs stay what they are.
pub fn lines(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn escape(s: &str, keep_lines: bool) -> Cow<'_, str> {
    let kept = |c: char| keep_lines && matches!(c, '\n' | '\t');
    if !s.chars().any(|c| unsafe_char(c) && !kept(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) || kept(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// JSON text from `serde_json` with DEL, the C1 controls and the bidi characters written as
/// `\uXXXX` escapes too (serde_json escapes only the C0 controls). The value is unchanged:
/// these characters can only occur inside JSON strings, where the escape means the same.
pub fn json(s: String) -> String {
    // C0 in the text is the layout of pretty-printed JSON (inside strings serde escaped it).
    let escaped = |c: char| unsafe_char(c) && c >= '\x7f';
    if !s.chars().any(escaped) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escaped(c) {
            // DEL, C1 and bidi: all in the BMP, so one \uXXXX each.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sla_clocks_read_naturally() {
        assert_eq!(sla_cell(None, 0), "-");
        assert_eq!(sla_cell(Some(3 * 3600), 0), "in 3h");
        assert_eq!(sla_cell(Some(0), 26 * 3600), "late 1d 2h");
        assert_eq!(reply_due(3 * 3600, 0), "reply due in 3h");
        assert_eq!(reply_due(0, 26 * 3600), "reply late by 1d 2h");
        assert_eq!(span(45), "45 s");
        assert_eq!(span(3 * 3600 + 300), "3h 5m");
    }

    #[test]
    fn ages_and_times_read_naturally() {
        assert_eq!(age(0, 59), "0m");
        assert_eq!(age(0, 45 * 60), "45m");
        assert_eq!(age(0, 3 * 3600 + 5), "3h");
        assert_eq!(age(0, 2 * 86_400 + 4 * 3600), "2d 4h");
        assert_eq!(age(100, 50), "0m");
        assert_eq!(when(0), "-");
        assert_eq!(when(1_795_465_215), "2026-11-23 20:20 UTC");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        let cases = [
            (
                "plain text, café, 東京",
                "plain text, café, 東京",
                "plain text, café, 東京",
            ),
            (
                "\x1b[31mred\x1b[0m",
                "\\x1b[31mred\\x1b[0m",
                "\\x1b[31mred\\x1b[0m",
            ),
            (
                "bell\x07 nul\0 del\x7f",
                "bell\\x07 nul\\x00 del\\x7f",
                "bell\\x07 nul\\x00 del\\x7f",
            ),
            (
                "title\x1b]0;owned\x07",
                "title\\x1b]0;owned\\x07",
                "title\\x1b]0;owned\\x07",
            ),
            ("csi\u{9b}2J", "csi\\u{9b}2J", "csi\\u{9b}2J"),
            ("a\u{202e}fdp.exe", "a\\u{202e}fdp.exe", "a\\u{202e}fdp.exe"),
            (
                "\u{2066}x\u{2069}",
                "\\u{2066}x\\u{2069}",
                "\\u{2066}x\\u{2069}",
            ),
            (
                "two\nlines\tand\r",
                "two\\nlines\\tand\\r",
                "two\nlines\tand\\r",
            ),
            // Marks that only direct neutral characters (LRM, RLM) are ordinary RTL text.
            ("שלום\u{200f}", "שלום\u{200f}", "שלום\u{200f}"),
        ];
        for (raw, line, text) in cases {
            assert_eq!(one_line(raw), line, "{raw:?}");
            assert_eq!(lines(raw), text, "{raw:?}");
            assert!(!one_line(raw).chars().any(unsafe_char), "{raw:?}");
        }
        assert!(matches!(one_line("clean"), Cow::Borrowed(_)));
        assert_eq!(cell("\x1b[2Jabcdef", 6), "\\x1b[…");
    }

    #[test]
    fn json_keeps_its_value_and_loses_the_raw_characters() {
        let value = serde_json::json!({ "subject": "a\x1b[31m\x7f\u{9b}\u{202e}b\n" });
        let text = json(serde_json::to_string(&value).expect("serialises"));
        assert!(!text.chars().any(unsafe_char), "{text}");
        assert_eq!(
            text, r#"{"subject":"a\u001b[31m\u007f\u009b\u202eb\n"}"#,
            "serde_json escapes C0, the rest is added"
        );
        let back: serde_json::Value = serde_json::from_str(&text).expect("still JSON");
        assert_eq!(back, value);
        // Pretty-printed: its line breaks are layout and stay.
        let pretty = json(serde_json::to_string_pretty(&value).expect("serialises"));
        assert!(pretty.contains("{\n  \"subject\""), "{pretty}");
        let back: serde_json::Value = serde_json::from_str(&pretty).expect("still JSON");
        assert_eq!(back, value);
    }
}
