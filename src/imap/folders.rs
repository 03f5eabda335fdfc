//! Folder names as the server spells them.
//!
//! Move targets are configured (`[flags.folders]`, the `Triage/Urgent` fallback) with `/`
//! between levels, in plain Unicode. A server names the same folder with its own hierarchy
//! delimiter, under its personal namespace's prefix, in modified UTF-7 (RFC 3501 5.1.3): on
//! Cyrus with `altnamespace: no` or Courier (NAMESPACE `(("INBOX." "."))`) `Triage/Urgent` is
//! `INBOX.Triage.Urgent`, on a Maildir++ Dovecot (`(("" "."))`) `Triage.Urgent`, on Gmail,
//! Microsoft 365 and a default Dovecot (`(("" "/"))`) `Triage/Urgent` as written.
//!
//! The mapping ([`Hierarchy::server_name`]):
//! 1. a name that is already valid modified UTF-7 (plain ASCII without `&`, or with `&-` and
//!    `&…-` runs as the server writes them) is kept; anything else is encoded (`R&D` ->
//!    `R&-D`, `Entwürfe` -> `Entw&APw-rfe`);
//! 2. each `/` becomes the server's delimiter (a server without hierarchy keeps `/`); so a `.`
//!    in a configured name is a level of its own on a `.` server;
//! 3. the personal namespace's prefix goes in front, unless the name already starts with it
//!    (`INBOX/Triage` and `INBOX.Triage` both give `INBOX.Triage` there) or is INBOX itself.
//!
//! Watched folders (`folder`, `folders`, `sent_folder`) are not mapped: they are the names the
//! server lists, and the store keys its checkpoints by them.

use std::time::Duration;

use anyhow::{Result, bail};
use futures::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ImapSession;

/// The account's personal namespace: where its folders live and how levels are separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The hierarchy delimiter; `None`: the server has no hierarchy (LIST answers NIL).
    pub delimiter: Option<char>,
    /// The personal namespace's prefix (`"INBOX."` on Cyrus and Courier), usually empty.
    pub prefix: String,
}

impl Default for Hierarchy {
    /// What the configuration is written in: `/`, no prefix.
    fn default() -> Self {
        Hierarchy {
            delimiter: Some('/'),
            prefix: String::new(),
        }
    }
}

impl Hierarchy {
    /// The server's name for the configured folder `configured` (see the module overview).
    pub fn server_name(&self, configured: &str) -> String {
        let encoded = encode_mutf7(configured);
        let name = match self.delimiter {
            Some(d) if d != '/' => encoded.replace('/', d.encode_utf8(&mut [0; 4])),
            _ => encoded,
        };
        if self.prefix.is_empty() || self.covers(&name) {
            name
        } else {
            format!("{}{name}", self.prefix)
        }
    }

    /// `name` is already inside the prefix (or is the prefix's own folder, `INBOX`).
    fn covers(&self, name: &str) -> bool {
        let prefix = self.prefix.as_str();
        let bare = self
            .delimiter
            .and_then(|d| prefix.strip_suffix(d))
            .unwrap_or(prefix);
        name.get(..prefix.len())
            .is_some_and(|head| same_prefix(head, prefix))
            || (name.len() == bare.len() && same_prefix(name, bare))
            || name.eq_ignore_ascii_case("INBOX")
    }
}

/// `a == b`, except that a leading `INBOX` is compared without case (RFC 3501 5.1).
fn same_prefix(a: &str, b: &str) -> bool {
    const INBOX: &str = "INBOX";
    match (a.get(..INBOX.len()), b.get(..INBOX.len())) {
        (Some(ha), Some(hb)) if hb.eq_ignore_ascii_case(INBOX) => {
            ha.eq_ignore_ascii_case(INBOX) && a[INBOX.len()..] == b[INBOX.len()..]
        }
        _ => a == b,
    }
}

/// The modified base64 of RFC 3501 5.1.3: `,` for `/`, no padding.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// `name` in modified UTF-7, as IMAP names folders; a name that already is valid modified
/// UTF-7 is returned as it is (so the server's own spelling can be configured too).
pub fn encode_mutf7(name: &str) -> String {
    if decode_mutf7(name).is_some() {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 8);
    let mut wide: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush_base64(&mut out, &mut wide);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            wide.extend_from_slice(c.encode_utf16(&mut [0; 2]));
        }
    }
    flush_base64(&mut out, &mut wide);
    out
}

/// Write `&…-` for the UTF-16 units gathered, if any.
fn flush_base64(out: &mut String, wide: &mut Vec<u16>) {
    if wide.is_empty() {
        return;
    }
    let bytes: Vec<u8> = wide.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        // 1 byte -> 2 characters, 2 -> 3, 3 -> 4.
        for i in 0..=chunk.len() {
            out.push(char::from(B64[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out.push('-');
    wide.clear();
}

/// The Unicode name a modified-UTF-7 name stands for; `None` when `s` is not valid modified
/// UTF-7 (a character outside printable ASCII, an `&` not closed by `-`, a run that is not
/// whole UTF-16 or encodes printable ASCII).
pub fn decode_mutf7(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if !(' '..='~').contains(&c) {
            return None;
        }
        if c != '&' {
            out.push(c);
            rest = &rest[1..];
            continue;
        }
        let end = rest.find('-')?;
        let run = &rest[1..end];
        rest = &rest[end + 1..];
        if run.is_empty() {
            out.push('&');
            continue;
        }
        let (mut bits, mut nbits, mut bytes) = (0u32, 0u32, Vec::new());
        for b in run.bytes() {
            let v = B64.iter().position(|x| *x == b)? as u32;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                bytes.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
        }
        // Leftover bits are padding: fewer than 6, all zero; whole UTF-16 units only.
        if nbits >= 6 || bits != 0 || bytes.len() % 2 != 0 {
            return None;
        }
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
            .collect();
        let text = String::from_utf16(&units).ok()?;
        if text.chars().any(|c| (' '..='~').contains(&c)) {
            return None;
        }
        out.push_str(&text);
    }
    Some(out)
}

/// The personal namespace from the text after `* NAMESPACE ` (RFC 2342): the first
/// descriptor of the first list, `(("INBOX." ".")) NIL NIL` -> prefix `INBOX.`, delimiter `.`.
/// `None` when there is no personal namespace (NIL) or the text cannot be read.
pub fn parse_namespace(text: &str) -> Option<Hierarchy> {
    let mut toks = Tokens { rest: text };
    if toks.next()? != Token::Open {
        return None;
    }
    if toks.next()? != Token::Open {
        return None;
    }
    let Token::Str(prefix) = toks.next()? else {
        return None;
    };
    let delimiter = match toks.next()? {
        Token::Nil => None,
        Token::Str(d) => {
            let mut chars = d.chars();
            let c = chars.next()?;
            if chars.next().is_some() {
                return None;
            }
            Some(c)
        }
        _ => return None,
    };
    Some(Hierarchy { delimiter, prefix })
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Nil,
    Str(String),
    Atom,
}

/// Just enough of IMAP's syntax for NAMESPACE: parentheses, quoted strings, NIL.
struct Tokens<'a> {
    rest: &'a str,
}

impl Tokens<'_> {
    fn next(&mut self) -> Option<Token> {
        self.rest = self.rest.trim_start_matches(' ');
        let c = self.rest.chars().next()?;
        match c {
            '(' | ')' => {
                self.rest = &self.rest[1..];
                Some(if c == '(' { Token::Open } else { Token::Close })
            }
            '"' => {
                let mut out = String::new();
                let mut chars = self.rest[1..].char_indices();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => out.push(chars.next()?.1),
                        '"' => {
                            self.rest = &self.rest[i + 2..];
                            return Some(Token::Str(out));
                        }
                        c => out.push(c),
                    }
                }
                None
            }
            _ => {
                let end = self
                    .rest
                    .find([' ', '(', ')', '"'])
                    .unwrap_or(self.rest.len());
                let atom = &self.rest[..end];
                self.rest = &self.rest[end..];
                Some(if atom.eq_ignore_ascii_case("NIL") {
                    Token::Nil
                } else {
                    Token::Atom
                })
            }
        }
    }
}

/// Most bytes a NAMESPACE answer may take (a handful of namespaces need a few hundred).
const NAMESPACE_MAX: usize = 64 * 1024;

/// The account's hierarchy: NAMESPACE where the server has it (`namespace`), else the
/// delimiter of `LIST "" ""` with no prefix. A server that refuses both gets the default
/// (`/`, no prefix); an I/O failure is an error (the connection is gone).
pub async fn discover(
    session: &mut ImapSession,
    namespace: bool,
    timeout: Duration,
) -> Result<Hierarchy> {
    if namespace {
        match tokio::time::timeout(timeout, namespace_exchange(session)).await {
            Err(_) => bail!("NAMESPACE: no answer from the server in {timeout:?}"),
            Ok(Err(e)) => return Err(anyhow::Error::new(e).context("Asking for NAMESPACE")),
            Ok(Ok(Some(h))) => return Ok(h),
            Ok(Ok(None)) => {}
        }
    }
    let listed = tokio::time::timeout(timeout, async {
        session
            .list(Some(""), None)
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await;
    match listed {
        Err(_) => bail!("LIST \"\" \"\": no answer from the server in {timeout:?}"),
        Ok(Ok(names)) => Ok(Hierarchy {
            delimiter: names
                .first()
                .map(|n| n.delimiter().and_then(|d| d.chars().next()))
                .unwrap_or(Some('/')),
            prefix: String::new(),
        }),
        Ok(Err(async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_))) => {
            Ok(Hierarchy::default())
        }
        Ok(Err(e)) => Err(anyhow::Error::new(e).context("Listing the hierarchy delimiter")),
    }
}

/// `NAMESPACE` (RFC 2342) on the connection's own stream: async-imap cannot parse its answer,
/// and a response it cannot parse would stall its reader. Sent between commands, when the
/// reader holds nothing, and read back byte by byte up to our tagged reply, so not one byte
/// of anything after it is taken from async-imap. `None`: refused, or no personal namespace.
async fn namespace_exchange(session: &mut ImapSession) -> std::io::Result<Option<Hierarchy>> {
    const TAG: &str = "triagedns";
    let stream = session.get_mut();
    stream
        .write_all(format!("{TAG} NAMESPACE\r\n").as_bytes())
        .await?;
    stream.flush().await?;
    let mut found = None;
    let mut budget = NAMESPACE_MAX;
    loop {
        let line = read_response_line(stream, &mut budget).await?;
        if let Some(status) = line.strip_prefix(TAG) {
            let ok = status
                .trim_start()
                .get(..2)
                .is_some_and(|s| s.eq_ignore_ascii_case("OK"));
            return Ok(found.filter(|_| ok));
        }
        let head = "* NAMESPACE ";
        if line
            .get(..head.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(head))
        {
            found = parse_namespace(&line[head.len()..]);
        }
    }
}

/// One response line without its CRLF, with each `{n}` literal read and inlined as a quoted
/// string; at most `budget` bytes (counted down across calls).
async fn read_response_line(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    budget: &mut usize,
) -> std::io::Result<String> {
    let too_long = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "NAMESPACE answer over 64 KiB",
        )
    };
    let mut line: Vec<u8> = Vec::new();
    loop {
        let byte = stream.read_u8().await?;
        *budget = budget.checked_sub(1).ok_or_else(too_long)?;
        if byte != b'\n' {
            line.push(byte);
            continue;
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let literal = std::str::from_utf8(&line)
            .ok()
            .and_then(|l| l.strip_suffix('}'))
            .and_then(|l| l.rsplit_once('{'))
            .map(|(head, n)| (head.len(), n.trim_end_matches('+').parse::<usize>()));
        match literal {
            Some((head, Ok(n))) => {
                *budget = budget.checked_sub(n).ok_or_else(too_long)?;
                let mut text = vec![0; n];
                stream.read_exact(&mut text).await?;
                line.truncate(head);
                line.push(b'"');
                for b in text {
                    if matches!(b, b'"' | b'\\') {
                        line.push(b'\\');
                    }
                    line.push(b);
                }
                line.push(b'"');
            }
            _ => return Ok(String::from_utf8_lossy(&line).into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(delimiter: Option<char>, prefix: &str) -> Hierarchy {
        Hierarchy {
            delimiter,
            prefix: prefix.to_string(),
        }
    }

    #[test]
    fn configured_names_become_the_servers_names() {
        let slash = h(Some('/'), "");
        let dot = h(Some('.'), "");
        let cyrus = h(Some('.'), "INBOX.");
        let flat = h(None, "");
        let courier_slash = h(Some('/'), "INBOX/");
        for (server, configured, expected) in [
            (&slash, "Triage/Urgent", "Triage/Urgent"),
            (&slash, "Escalated", "Escalated"),
            (&dot, "Triage/Urgent", "Triage.Urgent"),
            (&dot, "Triage.Urgent", "Triage.Urgent"),
            (&cyrus, "Triage/Urgent", "INBOX.Triage.Urgent"),
            (&cyrus, "Escalated", "INBOX.Escalated"),
            // Already under the prefix, in either separator, INBOX in any case: kept.
            (&cyrus, "INBOX/Triage/Urgent", "INBOX.Triage.Urgent"),
            (&cyrus, "INBOX.Triage.Urgent", "INBOX.Triage.Urgent"),
            (&cyrus, "inbox.Triage", "inbox.Triage"),
            (&cyrus, "INBOX", "INBOX"),
            // Not the prefix, only alike.
            (&cyrus, "INBOXES/A", "INBOX.INBOXES.A"),
            (&flat, "Triage/Urgent", "Triage/Urgent"),
            (&courier_slash, "Triage/Urgent", "INBOX/Triage/Urgent"),
            // Non-ASCII and '&' in modified UTF-7; a name already in it is kept.
            (&dot, "Triage/Entwürfe", "Triage.Entw&APw-rfe"),
            (&slash, "R&D", "R&-D"),
            (&slash, "Entw&APw-rfe", "Entw&APw-rfe"),
            (&cyrus, "Support/日本語", "INBOX.Support.&ZeVnLIqe-"),
        ] {
            assert_eq!(
                server.server_name(configured),
                expected,
                "{configured:?} on {server:?}"
            );
        }
    }

    #[test]
    fn modified_utf7_round_trips_and_rejects_what_is_not() {
        for (plain, encoded) in [
            ("Entwürfe", "Entw&APw-rfe"),
            ("R&D", "R&-D"),
            ("日本語", "&ZeVnLIqe-"),
            ("Ü", "&ANw-"),
            ("a😀b", "a&2D3eAA-b"),
            ("plain ASCII ~!", "plain ASCII ~!"),
        ] {
            assert_eq!(encode_mutf7(plain), encoded, "{plain}");
            assert_eq!(decode_mutf7(encoded).as_deref(), Some(plain), "{encoded}");
        }
        // Not modified UTF-7: encoded, not kept.
        for bad in [
            "R&D",
            "Q&A-Team",
            "X&AB-",
            "&ABC-",
            "Tom & Jerry",
            "&AGE-",
            "é",
        ] {
            assert_eq!(decode_mutf7(bad), None, "{bad}");
        }
        assert_eq!(encode_mutf7("Q&A-Team"), "Q&-A-Team");
    }

    #[test]
    fn namespace_answers_are_read() {
        for (text, expected) in [
            (r#"(("" "/")) NIL NIL"#, Some(h(Some('/'), ""))),
            (
                r##"(("INBOX." ".")) NIL (("#shared." "."))"##,
                Some(h(Some('.'), "INBOX.")),
            ),
            (
                r##"(("" ".")("#mh/" "/")) NIL NIL"##,
                Some(h(Some('.'), "")),
            ),
            (r#"(("" NIL)) NIL NIL"#, Some(h(None, ""))),
            (r#"(("" "\\")) NIL NIL"#, Some(h(Some('\\'), ""))),
            (
                r#"(("INBOX." "." "X-PARAM" ("a" "b"))) NIL NIL"#,
                Some(h(Some('.'), "INBOX.")),
            ),
            ("NIL NIL NIL", None),
            (r#"(("" "//")) NIL NIL"#, None),
            (r#"(("unterminated"#, None),
            ("", None),
        ] {
            assert_eq!(parse_namespace(text), expected, "{text}");
        }
    }

    #[tokio::test]
    async fn response_lines_inline_literals_and_stop_at_the_line_end() {
        let wire = b"* NAMESPACE (({6}\r\nINBOX. \".\")) NIL NIL\r\nnext\r\n";
        let mut r: &[u8] = wire;
        let mut budget = NAMESPACE_MAX;
        let line = read_response_line(&mut r, &mut budget)
            .await
            .expect("a line");
        assert_eq!(line, r#"* NAMESPACE (("INBOX." ".")) NIL NIL"#);
        assert_eq!(r, b"next\r\n", "nothing after the line is read");
        let mut budget = 10;
        let mut r: &[u8] = b"* NAMESPACE NIL NIL NIL\r\n";
        assert!(read_response_line(&mut r, &mut budget).await.is_err());
    }
}
