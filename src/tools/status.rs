//! `triaged status`: what the store holds, counted.

use std::fmt::Write as _;

use anyhow::Result;

use crate::store::Store;
use crate::wording;

/// Messages by priority or skip reason, acknowledgement decisions and outbox states, a table
/// each.
pub fn report(store: &Store) -> Result<String> {
    let (messages, acks, outbox) = store.summary()?;
    Ok(tables(&[
        ("messages", messages),
        ("acknowledgement decisions", acks),
        ("outbox", outbox),
    ]))
}

/// A title and its counts per table, `(none)` for an empty one. The keys come from the store
/// (a skip reason may quote an email): shown on one line, escaped.
fn tables(tables: &[(&str, Vec<(String, i64)>)]) -> String {
    let mut out = String::new();
    for (title, rows) in tables {
        let _ = writeln!(out, "{title}:");
        if rows.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for (k, n) in rows {
            let _ = writeln!(out, "  {:<28} {n:>7}", wording::one_line(k));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_store_says_none_under_each_title() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.sqlite")).expect("open");
        assert_eq!(
            report(&store).expect("report"),
            "messages:\n  (none)\nacknowledgement decisions:\n  (none)\noutbox:\n  (none)\n"
        );
    }

    #[test]
    fn counts_are_aligned_and_keys_kept_on_one_line() {
        let out = tables(&[
            (
                "messages",
                vec![("high".into(), 12), ("skipped: a\nb".into(), 3)],
            ),
            ("outbox", vec![]),
        ]);
        assert_eq!(
            out,
            "messages:\n  high                              12\n  skipped: a\\nb                      3\noutbox:\n  (none)\n"
        );
    }
}
