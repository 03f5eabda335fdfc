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

use std::borrow::Cow;

pub mod html;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// A parsed email: everything later stages need, nothing of `mail_parser`'s types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Top-level header fields in order: (name lower-cased, raw value unfolded and trimmed).
    pub headers: Vec<(String, String)>,
    /// Top-level Content-Type, lower-cased `type/subtype` (e.g. `multipart/report`); `text/plain`
    /// when missing.
    pub content_type: String,
    /// Return-Path: `Some("")` for the null sender `<>`, `None` when the header is absent.
    pub return_path: Option<String>,
    /// Every MIME part's type, lower-cased (`message/delivery-status`, `text/html`, …).
    pub part_types: Vec<String>,
    /// Size of the raw message in bytes.
    pub size: usize,
    /// What the per-email budget left out of this value, one line each (e.g. "MIME structure
    /// ignored: 5,000 nested parts"); empty for ordinary mail.
    pub budget: Vec<String>,
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

/// Longest body text kept for scoring; the rest of a huge email adds nothing to triage.
pub const MAX_BODY_TEXT: usize = 256 * 1024;

/// Parse raw message bytes. Never panics; malformed mail yields a best-effort [`Email`] where that
/// is possible and a [`Skip`] otherwise.
///
/// Unparseable means: empty input, or input in which the parser finds no header at all (not
/// an email). Everything else — broken MIME, bad charsets, truncated parts — is parsed as far as
/// it goes.
pub fn parse(raw: &[u8], limits: &ParseLimits) -> Result<Email, Skip> {
    if raw.len() > limits.max_size {
        return Err(Skip::TooLarge {
            size: raw.len(),
            limit: limits.max_size,
        });
    }
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(Skip::Unparseable("empty message".into()));
    }
    // The MIME walk costs time per part and per level of nesting (a part whose boundary never
    // closes is searched to the end of the message at every level): past the budget the
    // structure is ignored and the email is read as its headers and a plain-text body.
    if let Some(why) = mime_over_budget(raw) {
        let mut email = std::panic::catch_unwind(|| parse_flat(raw))
            .unwrap_or_else(|_| Err(Skip::Unparseable("parser panicked".into())))?;
        email.budget.insert(0, why);
        return Ok(email);
    }
    // mail-parser is robust, but a panic on hostile input must not take the daemon down. When
    // the MIME structure makes it panic, the headers and the body as plain text are still
    // worth triaging.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_inner(raw))).unwrap_or_else(
        |_| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_flat(raw)))
                .unwrap_or_else(|_| Err(Skip::Unparseable("parser panicked".into())))
        },
    )
}

/// The message with its MIME structure ignored: headers as they are, body as plain text.
fn parse_flat(raw: &[u8]) -> Result<Email, Skip> {
    let split = find_body(raw);
    let mut flat = Vec::with_capacity(raw.len() + 64);
    let mut dropping = false;
    for line in raw[..split].split(|&b| b == b'\n') {
        // Drop the MIME framing headers with their continuation lines (which start with space).
        let continued = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continued {
            let starts = |p: &str| {
                line.len() >= p.len() && line[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            };
            dropping = starts("content-type:")
                || starts("content-transfer-encoding:")
                || starts("mime-version:");
        }
        if dropping {
            continue;
        }
        flat.extend_from_slice(line);
        flat.push(b'\n');
    }
    flat.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\n\n");
    flat.extend_from_slice(&raw[split..]);
    let mut email = parse_inner(&flat)?;
    // Identity and size are those of the original bytes.
    if email.message_id_synthesized {
        email.message_id = synthesize_id(raw);
    }
    email.size = raw.len();
    email.content_type = "text/plain".into();
    Ok(email)
}

/// Most MIME delimiter lines (`--boundary`) handed to the MIME walk.
pub const MAX_MIME_PARTS: usize = 2_000;
/// Most containers (`multipart/*`, `message/rfc822`) handed to the MIME walk.
pub const MAX_MIME_CONTAINERS: usize = 64;
/// Most bytes the MIME walk may scan over all levels: containers times the message size.
const MAX_MIME_SCAN: usize = 256 * 1024 * 1024;

/// Why the MIME structure of `raw` is over the budget, if it is. Counts delimiter lines and
/// container types in one linear pass, without parsing: the walk's cost grows with each.
fn mime_over_budget(raw: &[u8]) -> Option<String> {
    use std::sync::LazyLock;
    static MARKS: LazyLock<Option<aho_corasick::AhoCorasick>> = LazyLock::new(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(["\n--", "multipart/", "message/rfc822", "message/global"])
            .ok()
    });
    let marks = MARKS.as_ref()?;
    let (mut parts, mut containers) = (0usize, 0usize);
    for m in marks.find_iter(raw) {
        if m.pattern().as_usize() == 0 {
            parts += 1;
        } else {
            containers += 1;
        }
    }
    if parts > MAX_MIME_PARTS {
        return Some(format!(
            "MIME structure ignored: {parts} part delimiters (budget {MAX_MIME_PARTS})"
        ));
    }
    if containers > MAX_MIME_CONTAINERS || containers.saturating_mul(raw.len()) > MAX_MIME_SCAN {
        return Some(format!(
            "MIME structure ignored: {containers} nested containers in {} bytes",
            raw.len()
        ));
    }
    None
}

/// Most Message-IDs kept from References: the first (the thread's root) and the latest.
pub const MAX_REFERENCES: usize = 50;
/// Most Message-IDs kept from In-Reply-To.
pub const MAX_IN_REPLY_TO: usize = 5;
/// Longest Message-ID kept for threading (RFC 5322's line limit leaves no room for more).
pub const MAX_ID_LEN: usize = 250;

/// `ids` within the threading budget: over-long ids dropped, then the first and the last
/// `max - 1` kept. Returns what was dropped, for the budget notes.
fn trim_ids(ids: &mut Vec<String>, max: usize) -> usize {
    let before = ids.len();
    ids.retain(|i| i.len() <= MAX_ID_LEN);
    if ids.len() > max && max > 0 {
        ids.drain(1..ids.len() - (max - 1));
    }
    before - ids.len()
}

/// Byte offset where the body starts (after the first empty line), or the end.
fn find_body(raw: &[u8]) -> usize {
    for (i, w) in raw.windows(2).enumerate() {
        if w == b"\n\n" {
            return i + 2;
        }
        if i + 4 <= raw.len() && &raw[i..i + 4] == b"\r\n\r\n" {
            return i + 4;
        }
    }
    raw.len()
}

fn parse_inner(original: &[u8]) -> Result<Email, Skip> {
    // Old Mac mail ends lines with a bare CR, which the parser does not split on.
    let normalised = normalise_bare_cr(original);
    let raw = normalised.as_deref().unwrap_or(original);
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| Skip::Unparseable("no message structure".into()))?;
    if msg.headers().is_empty() {
        return Err(Skip::Unparseable("no header fields".into()));
    }
    let (message_id, message_id_synthesized) =
        match msg.message_id().map(clean_id).filter(|m| !m.is_empty()) {
            Some(id) => (id, false),
            None => (synthesize_id(original), true),
        };
    let headers: Vec<(String, String)> = msg
        .headers_raw()
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), unfold(value)))
        .collect();
    let return_path = headers
        .iter()
        .find(|(n, _)| n == "return-path")
        .map(|(_, v)| {
            let v = v.trim();
            v.trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .to_ascii_lowercase()
        });
    let content_type = msg
        .root_part()
        .content_type()
        .map(|ct| mime_type(ct.ctype(), ct.subtype()))
        .unwrap_or_else(|| "text/plain".to_string());
    let part_types = msg
        .parts
        .iter()
        .filter_map(|p| {
            p.content_type()
                .map(|ct| mime_type(ct.ctype(), ct.subtype()))
        })
        .collect();
    let mut references = id_list(msg.references());
    let mut in_reply_to = id_list(msg.in_reply_to());
    let mut budget = Vec::new();
    let dropped =
        trim_ids(&mut references, MAX_REFERENCES) + trim_ids(&mut in_reply_to, MAX_IN_REPLY_TO);
    if dropped > 0 {
        budget.push(format!("{dropped} threading ids left out (over {MAX_ID_LEN} characters, or past the first and the last {MAX_REFERENCES})"));
    }
    Ok(Email {
        message_id,
        message_id_synthesized,
        from: first_address(msg.from()),
        sender: first_address(msg.sender()),
        reply_to: first_address(msg.reply_to()),
        to: all_addresses(msg.to()),
        cc: all_addresses(msg.cc()),
        subject: msg.subject().map(unfold).unwrap_or_default(),
        date: msg.date().map(mail_parser::DateTime::to_timestamp),
        in_reply_to,
        references,
        body_text: body_text(&msg),
        headers,
        content_type,
        return_path,
        part_types,
        size: original.len(),
        budget,
    })
}

/// `Some(copy with bare CRs turned into LF)` when the message has bare CRs, else `None`.
fn normalise_bare_cr(raw: &[u8]) -> Option<Vec<u8>> {
    let bare = |i: usize| raw[i] == b'\r' && raw.get(i + 1) != Some(&b'\n');
    if !(0..raw.len()).any(bare) {
        return None;
    }
    Some(
        (0..raw.len())
            .map(|i| if bare(i) { b'\n' } else { raw[i] })
            .collect(),
    )
}

fn mime_type(ctype: &str, subtype: Option<&str>) -> String {
    format!("{}/{}", ctype, subtype.unwrap_or("")).to_ascii_lowercase()
}

/// Text parts joined; HTML rendered to text when a body part is HTML (HTML-only mail).
fn body_text(msg: &mail_parser::Message<'_>) -> String {
    let mut out = String::new();
    for &id in &msg.text_body {
        let Some(part) = msg.parts.get(id as usize) else {
            continue;
        };
        let text: Cow<'_, str> = match &part.body {
            PartType::Text(t) => Cow::Borrowed(t.as_ref()),
            PartType::Html(h) => Cow::Owned(html_to_text(h)),
            _ => continue,
        };
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&text);
        if out.len() >= MAX_BODY_TEXT {
            break;
        }
    }
    if out.len() > MAX_BODY_TEXT {
        let mut cut = MAX_BODY_TEXT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn html_to_text(html: &str) -> String {
    html::to_text(html, MAX_BODY_TEXT)
}

fn first_address(a: Option<&mail_parser::Address<'_>>) -> Option<Address> {
    a.and_then(|a| a.iter().find_map(convert))
}

fn all_addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<Address> {
    a.map(|a| a.iter().filter_map(convert).collect())
        .unwrap_or_default()
}

fn convert(a: &mail_parser::Addr<'_>) -> Option<Address> {
    let email = a
        .address
        .as_deref()
        .map(|e| e.trim().trim_matches(['<', '>']).to_lowercase())
        .unwrap_or_default();
    let name = a.name.as_deref().map(unfold).filter(|n| !n.is_empty());
    (!email.is_empty() || name.is_some()).then_some(Address { name, email })
}

fn id_list(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    let ids: Vec<String> = match v {
        mail_parser::HeaderValue::Text(t) => vec![clean_id(t)],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| clean_id(t)).collect(),
        _ => Vec::new(),
    };
    ids.into_iter().filter(|i| !i.is_empty()).collect()
}

/// A Message-ID without brackets and whitespace.
fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect()
}

/// Deterministic, so a re-fetch of the same bytes finds the same record.
fn synthesize_id(raw: &[u8]) -> String {
    let digest = Sha256::digest(raw);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("synth-{hex}@triaged.invalid")
}

fn unfold(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParseLimits = ParseLimits {
        max_size: 1_000_000,
    };

    fn p(raw: &str) -> Email {
        parse(raw.as_bytes(), &LIMITS).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn basic_fields() {
        let e = p(
            "From: \"Ada L.\" <Ada@Example.COM>\r\nReply-To: help@example.com\r\nTo: a@x, b@y\r\nCc: c@z\r\n\
                   Subject: =?UTF-8?Q?Caf=C3=A9?= down\r\nMessage-ID: < abc@x >\r\nIn-Reply-To: <p@x>\r\n\
                   References: <r1@x> <r2@x>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n",
        );
        assert_eq!(e.message_id, "abc@x");
        assert!(!e.message_id_synthesized);
        let from = e.from.as_ref().expect("from");
        assert_eq!(
            (from.name.as_deref(), from.email.as_str()),
            (Some("Ada L."), "ada@example.com")
        );
        assert_eq!((from.local_part(), from.domain()), ("ada", "example.com"));
        assert_eq!(
            e.reply_address().map(|a| a.email.as_str()),
            Some("help@example.com")
        );
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.cc[0].email, "c@z");
        assert_eq!(e.subject, "Café down");
        assert_eq!(e.in_reply_to, ["p@x"]);
        assert_eq!(e.references, ["r1@x", "r2@x"]);
        assert_eq!(e.date, Some(1_795_341_600));
        assert_eq!(e.body_text.trim(), "Hello");
        assert_eq!(e.header("MESSAGE-id"), Some("< abc@x >"));
        assert_eq!(e.content_type, "text/plain");
    }

    #[test]
    fn missing_message_id_is_synthesized_deterministically() {
        let raw = "From: a@x\r\nSubject: no id\r\n\r\nbody\r\n";
        let (a, b) = (p(raw), p(raw));
        assert!(a.message_id_synthesized);
        assert_eq!(a.message_id, b.message_id);
        assert!(a.message_id.starts_with("synth-") && a.message_id.ends_with("@triaged.invalid"));
        assert_ne!(
            a.message_id,
            p("From: a@x\r\nSubject: other\r\n\r\nbody\r\n").message_id
        );
    }

    #[test]
    fn html_only_mail_is_rendered_to_text() {
        let e = p(
            "From: a@x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Site is <b>down</b></p><script>x</script></body></html>\r\n",
        );
        assert!(
            e.body_text.contains("Site is") && e.body_text.contains("down"),
            "{:?}",
            e.body_text
        );
        assert!(!e.body_text.contains("<b>"));
    }

    #[test]
    fn alternative_prefers_text_and_lists_parts() {
        let e = p(
            "From: a@x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n\
                   --b\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--b--\r\n",
        );
        assert!(
            e.body_text.contains("plain words") && !e.body_text.contains("html words"),
            "{:?}",
            e.body_text
        );
        assert_eq!(e.content_type, "multipart/alternative");
        assert!(e.part_types.contains(&"text/html".to_string()));
    }

    #[test]
    fn report_parts_and_null_return_path() {
        let e = p(
            "Return-Path: <>\r\nFrom: MAILER-DAEMON@x\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--\r\n",
        );
        assert_eq!(e.return_path.as_deref(), Some(""));
        assert_eq!(e.content_type, "multipart/report");
        assert!(
            e.part_types
                .contains(&"message/delivery-status".to_string()),
            "{:?}",
            e.part_types
        );
    }

    #[test]
    fn line_endings_do_not_matter() {
        for raw in [
            "From: a@x\nSubject: s\n\nbody\n",
            "From: a@x\rSubject: s\r\rbody\r",
            "From: a@x\r\nSubject: s\r\n\r\nbody\r\n",
        ] {
            let e = p(raw);
            assert_eq!(e.subject, "s", "{raw:?}");
            assert_eq!(e.from.map(|a| a.email), Some("a@x".to_string()), "{raw:?}");
        }
    }

    #[test]
    fn skips() {
        let small = ParseLimits { max_size: 10 };
        assert_eq!(
            parse(b"From: a@example.com\r\n\r\nbody", &small),
            Err(Skip::TooLarge {
                size: 27,
                limit: 10
            })
        );
        assert_eq!(
            parse(b"", &LIMITS).map_err(|e| e.code()),
            Err("unparseable")
        );
        assert_eq!(
            parse(b"  \r\n ", &LIMITS).map_err(|e| e.code()),
            Err("unparseable")
        );
    }

    #[test]
    fn binary_junk_never_panics() {
        let mut seed: u32 = 7;
        for len in [1usize, 10, 100, 1000, 5000] {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = parse(&junk, &LIMITS);
        }
        let _ = parse(
            b"Content-Type: multipart/mixed; boundary=\"\r\n\r\n--\r\n--\r\n",
            &LIMITS,
        );
    }
}
