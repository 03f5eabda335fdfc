//! Raw RFC 5322 bytes -> the project's own [`Email`]. The only module that touches `mail_parser`.

/// A mailbox address as written in a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Display name, decoded (RFC 2047), if any.
    pub name: Option<String>,
    /// The addr-spec, trimmed and lower-cased (`local@domain`). May be empty for a group or junk.
    pub email: String,
}

impl Address {
    /// The local part (before the last `@`), lower-cased.
    pub fn local_part(&self) -> &str {
        self.email
            .rsplit_once('@')
            .map_or(self.email.as_str(), |(l, _)| l)
    }
    /// The domain (after the last `@`), lower-cased; empty when there is none.
    pub fn domain(&self) -> &str {
        self.email.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// A parsed email: everything later stages need, nothing of `mail_parser`'s types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Message-ID without angle brackets. Synthesized (deterministically from the raw bytes, so a
    /// re-fetch yields the same value) when the header is missing or empty.
    pub message_id: String,
    pub message_id_synthesized: bool,
    pub from: Option<Address>,
    pub sender: Option<Address>,
    pub reply_to: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    /// Decoded subject; empty when missing.
    pub subject: String,
    /// The Date header as seconds since the Unix epoch, if present and parseable.
    pub date: Option<i64>,
    /// Message-IDs from In-Reply-To, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// Message-IDs from References, without angle brackets, oldest first.
    pub references: Vec<String>,
    /// Readable text of the body: the text/plain part(s), or HTML rendered to text when the mail has
    /// no text part. Attachments are not included.
    pub body_text: String,
    /// Top-level header fields in order: (name lower-cased, value decoded and unfolded).
    pub headers: Vec<(String, String)>,
    /// Top-level Content-Type, lower-cased `type/subtype` (e.g. `multipart/report`); `text/plain`
    /// when missing.
    pub content_type: String,
    /// Return-Path: `Some("")` for the null sender `<>`, `None` when the header is absent.
    pub return_path: Option<String>,
    /// Size of the raw message in bytes.
    pub size: usize,
}

impl Email {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Where a reply goes: Reply-To, else From.
    pub fn reply_address(&self) -> Option<&Address> {
        self.reply_to
            .as_ref()
            .filter(|a| !a.email.is_empty())
            .or(self.from.as_ref())
    }
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Messages larger than this many bytes are skipped, not parsed.
    pub max_size: usize,
}

/// Why a message could not become an [`Email`]; recorded as the skip reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("message is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("message cannot be parsed: {0}")]
    Unparseable(String),
}

impl Skip {
    /// Stable reason code stored in the database.
    pub fn code(&self) -> &'static str {
        match self {
            Skip::TooLarge { .. } => "too_large",
            Skip::Unparseable(_) => "unparseable",
        }
    }
}

/// Parse raw message bytes. Never panics; malformed mail yields a best-effort [`Email`] where that
/// is possible and a [`Skip`] otherwise.
pub fn parse(raw: &[u8], limits: &ParseLimits) -> Result<Email, Skip> {
    let _ = (raw, limits);
    todo!("parse")
}
