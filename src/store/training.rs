//! What `triaged tune --store` fits to: the customer emails of a period with the verdict, the
//! corrections staff made (priority, tones; where one is in force), the rule hits the verdict came from (rule,
//! occurrence count, weight), and the customer's own words to learn phrases from.
//!
//! The words are kept by the per-email transaction (migration 13, `messages.text`): the body
//! of a triaged customer email as the rules read it (quoted lines and signature left out),
//! white space squeezed, its first [`KEPT_TEXT`] bytes. Staff's and robots' email keep none.
//! Emails stored before that have only their 300-character excerpt, which stands in. With
//! `[store] keep_text = false` none are kept (`store::Policy::keep_text`), and `tune --store
//! --learn` refuses.

use anyhow::{Context, Result};
use rusqlite::params;

use super::Store;
use crate::score::Priority;

/// How much of a customer's own words the store keeps for `triaged tune --store --learn`:
/// 4 KB, what a support email says before it repeats itself (the ticket data set's bodies
/// average 370 characters; one in a hundred real ones runs past 4 KB).
pub const KEPT_TEXT: usize = 4096;

/// At most this many emails (the latest of the period) are read: the fit's memory and time
/// stay bounded whatever the period.
pub const MAX_TRAINING_EMAILS: usize = 50_000;

/// One customer email of the period, as the fit sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingEmail {
    pub row: i64,
    pub tag: Option<String>,
    pub subject: String,
    pub received_at: i64,
    /// The verdict's priority.
    pub priority: Priority,
    /// Staff's priority, where a correction is in force.
    pub staff_priority: Option<Priority>,
    /// The verdict's tones (a tone set: sorted, comma-separated, `""` for none).
    pub tones: String,
    /// Staff's tones, where a tone correction is in force (a tone set).
    pub staff_tones: Option<String>,
    /// The rule hits of the verdict, in rule order.
    pub hits: Vec<StoredHit>,
    /// The subject and the customer's own words (the kept text, else the excerpt).
    pub text: String,
    /// `text` holds the kept words (false: the excerpt, of an email stored before they were
    /// kept).
    pub full_text: bool,
}

/// A rule hit as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHit {
    pub rule: String,
    /// Occurrences counted; 0 in hits stored before the count was (migration 13).
    pub count: u32,
    /// What it added to the score (weight x count, at the time).
    pub weight: f64,
}

/// The body as `messages.text` keeps it: the customer's own words, white space squeezed,
/// cut at a word boundary within [`KEPT_TEXT`] bytes.
pub(super) fn kept_text(body: &str) -> String {
    let own = crate::score::text::own_words(body);
    let mut out = String::new();
    for word in own.split_whitespace() {
        let sep = usize::from(!out.is_empty());
        if out.len() + sep + word.len() > KEPT_TEXT {
            // One word longer than the whole budget (a pasted blob): its start, on a
            // character boundary, so something of it is kept.
            if out.is_empty() {
                let mut end = KEPT_TEXT;
                while !word.is_char_boundary(end) {
                    end -= 1;
                }
                out.push_str(&word[..end]);
            }
            break;
        }
        if sep == 1 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

impl Store {
    /// The triaged emails from customers received since `since` (at most
    /// [`MAX_TRAINING_EMAILS`], the latest), oldest first, with staff's priority corrections in
    /// force, their rule hits and their words. Within a second, in the order they arrived in
    /// their folder (by UID), not in the order they were triaged: the fit's folds follow the
    /// order, and the same mail gives the same fit however the daemon's batches ran.
    pub fn training(&self, since: i64) -> Result<Vec<TrainingEmail>> {
        let mut emails: Vec<TrainingEmail> = self
            .conn
            .prepare(
                "SELECT m.id, t.tag, m.subject, m.received_at, m.priority, c.new_value, m.text, m.excerpt,
                        m.tones, ct.new_value
                 FROM messages m
                 LEFT JOIN tickets t ON t.id = m.ticket_id
                 LEFT JOIN corrections c ON c.message_row = m.id AND c.field = 'priority' AND c.undone_at = 0
                 LEFT JOIN corrections ct ON ct.message_row = m.id AND ct.field = 'tone' AND ct.undone_at = 0
                 WHERE m.received_at >= ?1 AND m.status = 'triaged' AND m.role = 'customer'
                   AND m.priority != ''
                 ORDER BY m.received_at DESC, m.folder DESC, m.uidvalidity DESC, m.uid DESC LIMIT ?2",
            )
            .context("Preparing the emails to tune on")?
            .query_map(
                params![since, super::sql_limit(Some(MAX_TRAINING_EMAILS))],
                |r| {
                    let subject: String = r.get(2)?;
                    let text: String = r.get(6)?;
                    let full_text = !text.is_empty();
                    let words = if full_text { text } else { r.get(7)? };
                    Ok(TrainingEmail {
                        row: r.get(0)?,
                        tag: r.get(1)?,
                        text: format!("{subject}\n{words}"),
                        subject,
                        received_at: r.get(3)?,
                        priority: r.get(4)?,
                        staff_priority: r.get(5)?,
                        tones: crate::corrections::tone_set(r.get::<_, String>(8)?.split(',')),
                        staff_tones: r.get(9)?,
                        hits: Vec::new(),
                        full_text,
                    })
                },
            )
            .and_then(|rows| rows.collect())
            .context("Reading the emails to tune on")?;
        emails.reverse();
        let mut hits = self
            .conn
            .prepare_cached(
                "SELECT rule, count, weight FROM hits WHERE message_row = ?1 ORDER BY rowid",
            )
            .context("Preparing the rule hits")?;
        for e in &mut emails {
            e.hits = hits
                .query_map([e.row], |r| {
                    Ok(StoredHit {
                        rule: r.get(0)?,
                        count: r.get(1)?,
                        weight: r.get(2)?,
                    })
                })
                .and_then(|rows| rows.collect())
                .context("Reading the rule hits")?;
        }
        Ok(emails)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_text_is_the_customers_own_words_within_the_budget() {
        assert_eq!(
            kept_text("Hello,\n\n  the export   failed.\n\n> your earlier reply\n-- \nAda"),
            "Hello, the export failed."
        );
        let long = "word ".repeat(2000);
        let kept = kept_text(&long);
        assert!(kept.len() <= KEPT_TEXT && kept.len() > KEPT_TEXT - 5);
        assert!(kept.ends_with("word"), "cut at a word boundary");
        // One word longer than the budget, of multi-byte characters: its start, whole
        // characters only.
        let blob = "é".repeat(KEPT_TEXT);
        let kept = kept_text(&blob);
        assert_eq!(kept.len(), KEPT_TEXT);
        assert!(kept.chars().all(|c| c == 'é'));
        assert_eq!(kept_text(""), "");
    }
}
