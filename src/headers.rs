//! The header fields of the mail we write, kept sendable whatever the customer wrote.
//!
//! RFC 5322 caps a line at 998 octets (strict servers answer `500 Line too long` past it) and
//! asks for 78. lettre folds only at spaces and writes a printable-ASCII word as it is, so a long
//! unbroken run in a subject or a display name would become one long line. Such a value is
//! written as RFC 2047 encoded-words instead: they fold anywhere and decode to the same text.
//! Message-IDs cannot be folded at all: one that is absurdly long or not a msg-id is left out of
//! our threading headers, and `References` keeps the first and the last ten.

use lettre::message::header::{Header, HeaderName, HeaderValue, Headers};
use lettre::message::{Mailbox, Mailboxes};

use crate::guard::LOOP_HEADER;

/// RFC 5322 2.1.1: lines SHOULD be no longer than this (without the CRLF).
pub const FOLD_AT: usize = 78;
/// RFC 5322 2.1.1: lines MUST be no longer than this.
pub const LINE_MAX: usize = 998;
/// RFC 2047 2: a line holding an encoded-word is at most 76 characters.
const ENCODED_LINE: usize = 76;
/// Longest `<msg-id>` we repeat (brackets included): far above any real one, far below
/// [`LINE_MAX`].
pub const MSG_ID_MAX: usize = 250;
/// `References` keeps the first id (the thread's root) and this many of the last.
pub const REFERENCES_LAST: usize = 10;

/// An unstructured header (`Subject`): lettre's encoding when every line of it fits
/// [`FOLD_AT`], else encoded-words that do.
pub fn text(name: &'static str, value: &str) -> HeaderValue {
    let name = HeaderName::new_from_ascii_str(name);
    let plain = HeaderValue::new(name.clone(), value.to_string());
    if fits(&plain) {
        return plain;
    }
    let encoded = encode_unstructured(name.len() + 2, value);
    HeaderValue::dangerous_new_pre_encoded(name, value.to_string(), encoded)
}

/// A one-mailbox address header (`To`, `From`): lettre's encoding when it fits, else the
/// display name as encoded-words followed by the address.
pub fn mailbox<H: Header + From<Mailboxes>>(mailbox: &Mailbox) -> HeaderValue {
    let plain = H::from(Mailboxes::from(mailbox.clone())).display();
    let Some(display) = mailbox.name.as_deref().filter(|_| !fits(&plain)) else {
        return plain;
    };
    let name = H::name();
    let encoded = encode_mailbox(name.len() + 2, display, mailbox.email.as_ref());
    // lettre parses the raw value back (the envelope is made from it), so it is the bare
    // address: always parseable, and the name is in the encoded value the server sees.
    HeaderValue::dangerous_new_pre_encoded(name, mailbox.email.to_string(), encoded)
}

/// Whether every line of the header as lettre writes it is within [`FOLD_AT`].
fn fits(value: &HeaderValue) -> bool {
    let mut h = Headers::new();
    h.insert_raw(value.clone());
    h.to_string().split("\r\n").all(|l| l.len() <= FOLD_AT)
}

/// `value` as an unstructured header body for a line already `start` long (the name and
/// ": "). Words that fit a line and cannot be mistaken for an encoded-word stay as they are;
/// runs of other words (non-ASCII, too long, `=?`) become encoded-words, with the spaces
/// between them inside, since a decoder drops the whitespace between two encoded-words.
/// Whitespace around the value is not kept.
pub fn encode_unstructured(start: usize, value: &str) -> String {
    let tokens = tokens(value.trim_matches(' '));
    let mut w = Writer::new(start);
    let mut i = 0;
    while i < tokens.len() {
        let (spaces, word) = tokens[i];
        let room = if i == 0 { start } else { spaces };
        if is_plain(word, room, spaces) {
            w.plain(spaces, word);
            i += 1;
            continue;
        }
        let mut run = " ".repeat(spaces.saturating_sub(1));
        run.push_str(word);
        i += 1;
        while let Some(&(spaces, word)) = tokens.get(i) {
            if is_plain(word, spaces, spaces) {
                break;
            }
            run.push_str(&" ".repeat(spaces));
            run.push_str(word);
            i += 1;
        }
        w.encoded(spaces > 0, &run);
    }
    w.out
}

/// A display name (all of it encoded: a phrase cannot mix atoms and encoded text freely)
/// and the address.
fn encode_mailbox(start: usize, display: &str, address: &str) -> String {
    let mut w = Writer::new(start);
    w.encoded(false, display);
    w.plain(1, &format!("<{address}>"));
    w.out
}

/// The words of `s` with the number of spaces before each.
fn tokens(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut spaces = 0;
    for word in s.split(' ') {
        if word.is_empty() {
            spaces += 1;
        } else {
            out.push((spaces, word));
            spaces = 1;
        }
    }
    out
}

/// A word that can be written as it is, after `spaces` spaces, on a line beginning `room`
/// long. Not after several spaces: parsers unfold a fold there into one.
fn is_plain(word: &str, room: usize, spaces: usize) -> bool {
    spaces <= 1
        && room + word.len() <= FOLD_AT
        && word.bytes().all(|b| b.is_ascii_graphic())
        && !word.contains("=?")
}

/// Writes folded header text, knowing the length of the current line.
struct Writer {
    out: String,
    line: usize,
    empty: bool,
}

impl Writer {
    fn new(start: usize) -> Writer {
        Writer {
            out: String::new(),
            line: start,
            empty: true,
        }
    }

    /// A word after `spaces` spaces; the first of them is where the line may fold.
    fn plain(&mut self, spaces: usize, word: &str) {
        if !self.empty && self.line + spaces + word.len() > FOLD_AT {
            self.out.push_str("\r\n");
            self.line = 0;
        }
        let spaces = if self.empty { 0 } else { spaces.max(1) };
        self.out.push_str(&" ".repeat(spaces));
        self.out.push_str(word);
        self.line += spaces + word.len();
        self.empty = false;
    }

    /// `text` as encoded-words of whole characters, each fitting its line; `space`: one
    /// visible space before the first.
    fn encoded(&mut self, space: bool, text: &str) {
        const OPEN: &str = "=?utf-8?b?";
        const CLOSE: &str = "?=";
        let mut rest = text;
        let mut sep = space && !self.empty;
        while !rest.is_empty() {
            let room = ENCODED_LINE.saturating_sub(self.line + usize::from(sep));
            // Base64 turns 3 bytes into 4 characters; 45 bytes keep a word within 75.
            let max = (room.saturating_sub(OPEN.len() + CLOSE.len()) / 4 * 3).min(45);
            let take = prefix_within(rest, max);
            if take.is_empty() {
                // Nothing fits here: go on at a new line (never before anything was written,
                // where the line is short enough by construction).
                self.out.push_str("\r\n");
                self.line = 0;
                self.empty = false;
                sep = true;
                continue;
            }
            if sep {
                self.out.push(' ');
                self.line += 1;
            }
            let word = format!("{OPEN}{}{CLOSE}", base64(take.as_bytes()));
            self.line += word.len();
            self.out.push_str(&word);
            self.empty = false;
            rest = &rest[take.len()..];
            sep = true;
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix_within(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What our reply carries to thread under a customer's email, and what it leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Threading {
    /// The customer email's own id, when it can be repeated.
    pub in_reply_to: Option<String>,
    /// Ids (without brackets), oldest first: the first and the last [`REFERENCES_LAST`].
    pub references: Vec<String>,
    /// What was left out and why, for one log line.
    pub dropped: Vec<String>,
}

/// Threading for a reply to the email `message_id` (without brackets) whose reply references
/// would be `refs` (space-separated, bracketed or not, the email's own id last).
pub fn threading(message_id: &str, refs: &str) -> Threading {
    let mut dropped = Vec::new();
    let in_reply_to = match msg_id_problem(message_id) {
        None => Some(message_id.to_string()),
        Some(why) => {
            dropped.push(format!("its Message-ID ({why})"));
            None
        }
    };
    let mut references: Vec<String> = Vec::new();
    let mut bad = Vec::new();
    for r in refs.split_whitespace() {
        let id = r.strip_prefix('<').unwrap_or(r);
        let id = id.strip_suffix('>').unwrap_or(id);
        if id == message_id && in_reply_to.is_none() {
            continue; // said once above
        }
        match msg_id_problem(id) {
            Some(why) => bad.push(why),
            None if references.iter().any(|k| k == id) => {}
            None => references.push(id.to_string()),
        }
    }
    if !bad.is_empty() {
        dropped.push(format!(
            "{} References {} ({})",
            bad.len(),
            if bad.len() == 1 { "entry" } else { "entries" },
            bad.join(", ")
        ));
    }
    if references.len() > 1 + REFERENCES_LAST {
        let middle = references.len() - 1 - REFERENCES_LAST;
        references.drain(1..1 + middle);
        dropped.push(format!(
            "{middle} References from the middle (the first and the last {REFERENCES_LAST} are kept)"
        ));
    }
    Threading {
        in_reply_to,
        references,
        dropped,
    }
}

/// Why `id` (without brackets) cannot go into a header we write, or `None` when it can: an
/// RFC 5322 msg-id of printable ASCII, `left@right` (a dot-atom or a `[literal]` on the right),
/// at most [`MSG_ID_MAX`] octets with its brackets.
pub fn msg_id_problem(id: &str) -> Option<String> {
    if id.len() + 2 > MSG_ID_MAX {
        return Some(format!("{} octets, over {MSG_ID_MAX}", id.len() + 2));
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let valid = id.rsplit_once('@').is_some_and(|(left, right)| {
        let literal = right
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(|d| {
                d.chars()
                    .all(|c| c.is_ascii_graphic() && !"[]\\".contains(c))
            });
        !left.is_empty()
            && !right.is_empty()
            && left.chars().all(atext)
            && (literal || right.chars().all(atext))
    });
    (!valid).then(|| {
        let shown: String = id.chars().take(40).collect();
        format!("not a msg-id: {shown:?}")
    })
}

/// The headers every email we write carries, so no auto-responder answers it and our own
/// watcher knows it when it comes back: `Auto-Submitted` (`auto-replied` for customers,
/// `auto-generated` for staff mail), `X-Auto-Response-Suppress`, `Precedence` and the loop
/// marker (`marker`: the ticket tag, or the kind of staff mail).
pub fn robot_headers(
    b: lettre::message::MessageBuilder,
    auto_submitted: &str,
    precedence: &str,
    marker: &str,
) -> lettre::message::MessageBuilder {
    b.header(raw_header("Auto-Submitted", auto_submitted))
        .header(raw_header("X-Auto-Response-Suppress", "All"))
        .header(raw_header("Precedence", precedence))
        .header(raw_header(LOOP_HEADER, marker))
}

/// A header whose name is a constant and whose value is ours (encoded by lettre if needed).
#[derive(Clone)]
struct Raw(HeaderValue);

fn raw_header(name: &'static str, value: &str) -> Raw {
    Raw(HeaderValue::new(
        HeaderName::new_from_ascii_str(name),
        value.to_string(),
    ))
}

impl lettre::message::header::Header for Raw {
    fn name() -> HeaderName {
        // Not used for insertion: `display` carries the real name. lettre calls `name()` only
        // to look headers up by type, which we never do for these.
        HeaderName::new_from_ascii_str("X-Triaged-Raw")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(raw_header("X-Triaged-Raw", s))
    }
    fn display(&self) -> HeaderValue {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::message::header::{From as FromHeader, To};

    /// The header as it goes on the wire.
    fn wire(v: &HeaderValue) -> String {
        let mut h = Headers::new();
        h.insert_raw(v.clone());
        h.to_string()
    }

    fn longest_line(s: &str) -> usize {
        s.split("\r\n").map(str::len).max().unwrap_or(0)
    }

    /// The header read back by mail-parser (unfolded and decoded), with its longest line.
    fn read_back(v: &HeaderValue) -> (mail_parser::Message<'static>, usize) {
        let head = wire(v);
        let raw = format!("{head}X-End: 1\r\n\r\nbody\r\n").into_bytes();
        let msg = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("parseable")
            .into_owned();
        (msg, longest_line(&head))
    }

    #[test]
    fn long_subjects_fold_and_decode_to_the_same_text() {
        let run = "x".repeat(2000);
        let words = "=?utf-8?b?w6k=?=".repeat(80);
        let cases = [
            format!("Re: {run} [#T-1001]"),
            run.clone(),
            // What adjacent encoded-words decode to: one unbroken run of non-ASCII.
            format!("Re: {} [#T-1002]", "é".repeat(1200)),
            format!("Re: {} [#T-1003]", "日本語".repeat(400)),
            format!("Re: {} [#T-1004]", "😀".repeat(300)),
            // Text that looks like encoded-words, kept literally.
            format!("Re: {words} [#T-1005]"),
            format!("Re: a{}b  c   {run}  d [#T-1006]", "é".repeat(5)),
            format!("{} tail", "y".repeat(70)),
            format!("Re: {}", "word ".repeat(300).trim_end()),
        ];
        for subject in cases {
            let (msg, longest) = read_back(&text("Subject", &subject));
            assert!(longest <= FOLD_AT, "{longest}: {subject:.80}");
            assert_eq!(msg.subject(), Some(subject.as_str()), "{subject:.80}");
        }
    }

    #[test]
    fn ordinary_subjects_are_left_to_lettre() {
        for s in [
            "Re: Site down [#T-1001]",
            "Re: Rückerstattung für März [#T-1002]",
        ] {
            let ours = text("Subject", s);
            let lettres = HeaderValue::new(HeaderName::new_from_ascii_str("Subject"), s.into());
            assert_eq!(wire(&ours), wire(&lettres));
        }
    }

    #[test]
    fn long_display_names_fold_and_decode() {
        let addr: lettre::Address = "customer@example.test".parse().expect("address");
        for name in [
            "A".repeat(1500),
            format!("Ada {} Lovelace", "é".repeat(900)),
            "Ada Lovelace".to_string(),
            format!("\"Quoted\" {}", "q".repeat(300)),
        ] {
            let mb = Mailbox::new(Some(name.clone()), addr.clone());
            for v in [mailbox::<To>(&mb), mailbox::<FromHeader>(&mb)] {
                let (msg, longest) = read_back(&v);
                assert!(longest <= FOLD_AT, "{longest}: {name:.60}");
                let got = msg
                    .to()
                    .or(msg.from())
                    .and_then(|a| a.first())
                    .expect("an address");
                assert_eq!(got.name(), Some(name.as_str()));
                assert_eq!(got.address(), Some("customer@example.test"));
            }
        }
    }

    #[test]
    fn a_long_display_name_still_makes_the_envelope() {
        let to = Mailbox::new(
            Some("N".repeat(2000)),
            "customer@example.test".parse().expect("address"),
        );
        let msg = lettre::Message::builder()
            .from("Support <support@example.test>".parse().expect("from"))
            .to(to.clone())
            .raw_header(mailbox::<To>(&to))
            .raw_header(text("Subject", &"s".repeat(3000)))
            .body(String::from("hi"))
            .expect("builds");
        assert_eq!(msg.envelope().to(), [to.email]);
        let raw = String::from_utf8(msg.formatted()).expect("ascii");
        assert!(longest_line(&raw) <= FOLD_AT, "{raw}");
    }

    #[test]
    fn encoded_words_stay_within_rfc_2047() {
        let out = format!("Subject: {}", encode_unstructured(9, &"z".repeat(500)));
        for line in out.split("\r\n") {
            assert!(line.len() <= ENCODED_LINE, "{line}");
            for w in line.split_whitespace() {
                assert!(w.len() <= 75, "{w}");
            }
        }
        assert_eq!(base64(b"abcdef"), "YWJjZGVm");
        assert_eq!(base64(b"abcd"), "YWJjZA==");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn threading_drops_what_cannot_be_repeated() {
        let long = format!("{}@c", "a".repeat(300));
        let chain: Vec<String> = (0..30).map(|i| format!("<r{i}@c>")).collect();
        // A normal email: everything kept.
        let t = threading("m@c", "<r0@c> <r1@c> <m@c>");
        assert_eq!(t.in_reply_to.as_deref(), Some("m@c"));
        assert_eq!(t.references, ["r0@c", "r1@c", "m@c"]);
        assert!(t.dropped.is_empty());
        // An absurd Message-ID and a long chain: the id is left out, the chain bounded.
        let t = threading(&long, &format!("{} <{long}>", chain.join(" ")));
        assert_eq!(t.in_reply_to, None);
        assert_eq!(t.references.len(), 1 + REFERENCES_LAST);
        assert_eq!(t.references[0], "r0@c");
        assert_eq!(t.references.last().map(String::as_str), Some("r29@c"));
        assert_eq!(t.dropped.len(), 2, "{:?}", t.dropped);
        assert!(t.dropped[0].contains("304 octets"), "{:?}", t.dropped);
        assert!(t.dropped[1].contains("19 References from the middle"));
        // Not msg-ids: dropped with what they were.
        let t = threading("m@c", "<no-at-sign> <a\"b@c> <x@y@> <ok@[10.0.0.1]> <m@c>");
        assert_eq!(t.references, ["ok@[10.0.0.1]", "m@c"]);
        assert!(
            t.dropped[0].starts_with("3 References entries"),
            "{:?}",
            t.dropped
        );
    }

    #[test]
    fn msg_ids_are_checked() {
        for ok in [
            "abc@x",
            "CAKx=abc+def/g@mail.gmail.com",
            "20261122.1234$x@host",
            "a@[127.0.0.1]",
            &format!("{}@c", "a".repeat(246)),
        ] {
            assert_eq!(msg_id_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "abc",
            "@x",
            "a@",
            "a b@x",
            "a@x\r\nBcc: evil@y",
            "a\"q\"@x",
            "a@x,y",
            &format!("{}@c", "a".repeat(247)),
        ] {
            assert!(msg_id_problem(bad).is_some(), "{bad}");
        }
    }
}
