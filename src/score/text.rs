//! Text normalisation and the word-level helpers matching needs. Rules and email text are
//! compared in one normal form, computed once per email: Unicode NFKC, lower case, typographic
//! quotes as ASCII, and every run of whitespace as one space.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The normal form rules and text are compared in. ASCII text (the common case) takes a fast
/// byte-wise path, and text that is already in NFKC skips the normaliser.
pub fn normalise(text: &str) -> String {
    let mut out = String::new();
    normalise_into(text, &mut out);
    out
}

/// [`normalise`] into `out` (cleared first), whose memory scoring reuses from email to email.
pub fn normalise_into(text: &str, out: &mut String) {
    out.clear();
    if text.is_ascii() {
        let mut bytes = std::mem::take(out).into_bytes();
        normalise_ascii(text.as_bytes(), &mut bytes);
        // Every byte written is ASCII, so this cannot fail; the fallback keeps it safe code.
        *out = String::from_utf8(bytes).unwrap_or_default();
        return;
    }
    out.reserve(text.len());
    let mut space = false;
    let mut push = |c: char, out: &mut String| {
        if c.is_whitespace() {
            space = true;
            return;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        match c {
            '\u{2018}' | '\u{2019}' | '\u{02bc}' | '`' => out.push('\''),
            '\u{201c}' | '\u{201d}' => out.push('"'),
            c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
            c => out.extend(c.to_lowercase()),
        }
    };
    if unicode_normalization::is_nfkc_quick(text.chars())
        == unicode_normalization::IsNormalized::Yes
    {
        for c in text.chars() {
            push(c, out);
        }
    } else {
        for c in text.nfkc() {
            push(c, out);
        }
    }
}

/// Bytes [`normalise_ascii`] reads at once.
const BLOCK: usize = 32;

/// Whether a block of ASCII text is in normal form as it stands, but for upper case: its only
/// whitespace single spaces, no backtick, no space right after a space (`prev_space`: the
/// byte before the block is one; `doubles`: the text has two spaces in a row somewhere).
/// Loops of fixed length without early exits, so the compiler compares the block at once.
#[inline(always)]
fn plain_block(block: &[u8; BLOCK], prev_space: bool, doubles: bool) -> bool {
    let mut odd = u8::from(prev_space & (block[0] == b' '));
    for &b in block {
        odd |= u8::from(b == b'\t')
            | u8::from(b == b'\n')
            | u8::from(b == b'\x0c')
            | u8::from(b == b'\r')
            | u8::from(b == b'`');
    }
    if doubles {
        for (&b, &before) in block[1..].iter().zip(&block[..BLOCK - 1]) {
            odd |= u8::from(b == b' ') & u8::from(before == b' ');
        }
    }
    odd == 0
}

/// One byte of ASCII text in normal form, written at `out[*w]`: whitespace runs as one space
/// (none at the start, hence `prev_space` true there), lower case, a backtick as a quote.
#[inline(always)]
fn normalise_byte(b: u8, prev_space: &mut bool, out: &mut [u8], w: &mut usize) {
    let space = b.is_ascii_whitespace();
    if !space || !*prev_space {
        out[*w] = match b {
            b'`' => b'\'',
            _ if space => b' ',
            b => b.to_ascii_lowercase(),
        };
        *w += 1;
    }
    *prev_space = space;
}

/// [`normalise`] of ASCII text, a block at a time: a block in normal form but for upper case
/// is written lower-cased at once; any other goes byte by byte. The normal form is never
/// longer than the text, so `out` is made the text's length, written from the start, then cut.
fn normalise_ascii(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.resize(text.len(), 0);
    // Most text has no two spaces in a row: then no block is searched for them.
    let doubles = memchr::memmem::find(text, b"  ").is_some();
    // At the start, as after a space: leading whitespace is dropped.
    let (mut prev_space, mut w) = (true, 0);
    let (blocks, rest) = text.as_chunks::<BLOCK>();
    for block in blocks {
        if plain_block(block, prev_space, doubles) {
            // Lower-cased in a copy of fixed size, which the compiler does at once.
            let mut lower = *block;
            for b in &mut lower {
                *b |= u8::from(b.wrapping_sub(b'A') < 26) << 5;
            }
            out[w..w + BLOCK].copy_from_slice(&lower);
            w += BLOCK;
            prev_space = block[BLOCK - 1] == b' ';
            continue;
        }
        for &b in block {
            normalise_byte(b, &mut prev_space, out, &mut w);
        }
    }
    for &b in rest {
        normalise_byte(b, &mut prev_space, out, &mut w);
    }
    if w > 0 && out[w - 1] == b' ' {
        w -= 1;
    }
    out.truncate(w);
}

/// The body as rules see it: quoted lines (`> ...`) and the signature (after a `-- ` line) are
/// left out, so a reply is scored on what the customer wrote now, not on the thread it quotes
/// (which may hold our own acknowledgement).
pub fn own_words(body: &str) -> std::borrow::Cow<'_, str> {
    if !quotes_or_signs(body) {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = String::with_capacity(body.len());
    cut_into(body, &mut out);
    std::borrow::Cow::Owned(out)
}

/// [`own_words`], what is left written into `out` when something is left out (its memory
/// reused by scoring from email to email).
pub fn own_words_into<'a>(body: &'a str, out: &'a mut String) -> &'a str {
    if !quotes_or_signs(body) {
        return body;
    }
    out.clear();
    cut_into(body, out);
    out
}

/// Whether the body may have a quoted line or a signature (a byte search, no line by line).
fn quotes_or_signs(body: &str) -> bool {
    let b = body.as_bytes();
    memchr::memchr(b'>', b).is_some()
        || memchr::memmem::find(b, b"\n--").is_some()
        || body.starts_with("--")
}

/// The body's lines up to the signature, quoted ones left out, each ended by a newline.
fn cut_into(body: &str, out: &mut String) {
    for line in body.lines() {
        if line == "-- " || line == "--" {
            break;
        }
        if line.trim_start().starts_with('>') {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
}

/// A word character for boundaries: letters, digits, marks and `_` (as regex's `\b`).
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        // No ASCII character is a combining mark; this is the common case at every match.
        return c.is_ascii_alphanumeric() || c == '_';
    }
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Whether `text[start..end]` stands on word boundaries where the phrase needs them.
pub fn on_boundaries(text: &str, start: usize, end: usize, left: bool, right: bool) -> bool {
    (!left || !text[..start].chars().next_back().is_some_and(is_word_char))
        && (!right || !text[end..].chars().next().is_some_and(is_word_char))
}

/// Characters that end a clause: a negation does not reach across them.
fn ends_clause(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | ';' | ':' | ',' | '\n' | '(' | ')')
}

/// How far back, in bytes per word wanted, [`words_before`] looks: longer "words" are not
/// words a negation is made of, and a bounded look-back keeps a flood of matches in one long
/// clause linear.
pub const LOOKBACK_PER_WORD: usize = 32;

/// The last `n` words before byte `start`, within its clause, oldest first. A word is a run of
/// word characters and apostrophes (`don't`). Looks back at most `n * LOOKBACK_PER_WORD`
/// bytes; a word cut there is left out.
pub fn words_before(text: &str, start: usize, n: usize) -> Vec<&str> {
    let mut out = [""; MAX_WINDOW];
    let k = words_before_into(text, start, n, &mut out);
    out[..k].to_vec()
}

/// Most words [`words_before_into`] returns (a negation window is 1 to 10 words).
pub const MAX_WINDOW: usize = 10;

/// [`words_before`] without allocating: the words go into `out`, oldest first; returns how
/// many (at most `n` and [`MAX_WINDOW`]). Scoring calls this for every match of a rule with
/// negation, so it must cost no heap.
pub fn words_before_into<'a>(
    text: &'a str,
    start: usize,
    n: usize,
    out: &mut [&'a str; MAX_WINDOW],
) -> usize {
    let n = n.min(MAX_WINDOW);
    let mut from = start.saturating_sub(n.saturating_mul(LOOKBACK_PER_WORD));
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let mut head = &text[from..start];
    if from > 0 && text[..from].chars().next_back().is_some_and(is_word_char) {
        // Starts inside a word: drop its tail.
        let cut = head
            .char_indices()
            .find(|&(_, c)| !(is_word_char(c) || c == '\''))
            .map_or(head.len(), |(i, _)| i);
        head = &head[cut..];
    }
    let clause_start = head
        .char_indices()
        .rev()
        .find(|&(_, c)| ends_clause(c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let clause = &head[clause_start..];
    // The last n words, newest first, then reversed in place.
    let mut k = 0;
    for w in clause
        .rsplit(|c: char| !(is_word_char(c) || c == '\''))
        .filter(|w| !w.is_empty() && *w != "'")
    {
        if k == n {
            break;
        }
        out[k] = w;
        k += 1;
    }
    out[..k].reverse();
    k
}

/// Whether the word sequence `phrase` (already split) occurs contiguously in `words`.
pub fn contains_words(words: &[&str], phrase: &[String]) -> bool {
    !phrase.is_empty()
        && words
            .windows(phrase.len())
            .any(|w| w.iter().zip(phrase).all(|(a, b)| *a == b))
}

/// Split a normalised phrase into words the way [`words_before`] does.
pub fn split_words(phrase: &str) -> Vec<String> {
    phrase
        .split(|c: char| !(is_word_char(c) || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Share of upper-case letters among letters, and the number of letters.
pub fn caps_ratio(text: &str) -> (f64, usize) {
    let (upper, letters) = caps_counts(text);
    if letters == 0 {
        (0.0, 0)
    } else {
        (upper as f64 / letters as f64, letters)
    }
}

/// Bytes counted together in a byte-wide counter: fewer than 256, so it cannot wrap.
const CHUNK: usize = 128;

/// Upper-case letters and letters in a text.
pub fn caps_counts(text: &str) -> (usize, usize) {
    let (mut upper, mut letters) = (0usize, 0usize);
    if text.is_ascii() {
        // Branch-free with byte-wide counts per chunk, so the compiler can vectorise it.
        for chunk in text.as_bytes().chunks(CHUNK) {
            let (u, l) = chunk.iter().fold((0u8, 0u8), |(u, l), &b| {
                (
                    u.wrapping_add(u8::from(b.wrapping_sub(b'A') < 26)),
                    l.wrapping_add(u8::from((b | 0x20).wrapping_sub(b'a') < 26)),
                )
            });
            upper += usize::from(u);
            letters += usize::from(l);
        }
        return (upper, letters);
    }
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        upper += usize::from(c.is_uppercase());
    }
    (upper, letters)
}

/// The longest run of `!` and `?` (`!!!`, `?!?`).
pub fn punctuation_run(text: &str) -> usize {
    // Byte-wise: `!` and `?` are ASCII, their full-width forms (U+FF01, U+FF1F) are the
    // sequences EF BC 81 and EF BC 9F, and every byte of any other character ends a run. Most
    // text holds few: the next byte that can start a run is looked for, not every byte.
    let b = text.as_bytes();
    let (mut best, mut i) = (0, 0);
    while let Some(at) = memchr::memchr3(b'!', b'?', 0xef, &b[i..]) {
        i += at;
        let mut run = 0;
        loop {
            if b.get(i).is_some_and(|&c| c == b'!' || c == b'?') {
                i += 1;
            } else if b.get(i) == Some(&0xef)
                && b.get(i + 1) == Some(&0xbc)
                && matches!(b.get(i + 2), Some(0x81 | 0x9f))
            {
                i += 3;
            } else {
                break;
            }
            run += 1;
        }
        best = best.max(run);
        if run == 0 {
            // A 0xEF byte that starts another character.
            i += 1;
        }
    }
    best
}

/// Words in a text.
pub fn word_count(text: &str) -> usize {
    if text.is_ascii() {
        // A word starts where a word byte follows a non-word byte (or the text's start):
        // each byte compared with the one before, counted byte-wide per chunk, so the
        // compiler can vectorise it.
        let word = |b: u8| {
            ((b | 0x20).wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10) | (b == b'_')
        };
        let b = text.as_bytes();
        let Some(&first) = b.first() else {
            return 0;
        };
        let mut n = usize::from(word(first));
        for (cur, prev) in b[1..].chunks(CHUNK).zip(b.chunks(CHUNK)) {
            let k = cur.iter().zip(prev).fold(0u8, |k, (&c, &p)| {
                k.wrapping_add(u8::from(word(c) & !word(p)))
            });
            n += usize::from(k);
        }
        return n;
    }
    text.split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_form() {
        let cases = [
            ("Hello  World", "hello world"),
            ("ＵＲＧＥＮＴ\r\n\tnow", "urgent now"),
            ("Can’t log in", "can't log in"),
            ("  leading", "leading"),
            ("Straße", "straße"),
            ("ÉCHEC", "échec"),
            ("“quoted”", "\"quoted\""),
            ("", ""),
            (" \t\r\n ", ""),
            ("Don`t\x0c\x0cSTOP  ", "don't stop"),
            ("a\x0bB", "a\x0bb"),
            ("[A-Z] @Z", "[a-z] @z"),
        ];
        for (input, want) in cases {
            assert_eq!(normalise(input), want, "{input:?}");
        }
    }

    /// The ASCII path, a block at a time, writes what the plain byte-wise rule does, on random
    /// text that is mostly words and single spaces with whitespace of every kind among them.
    #[test]
    fn ascii_normal_form_is_the_byte_wise_one() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (plain_bytes, odd_bytes) = (b"  aZ_9@[", b"\t\n\x0b\x0c\r`");
        let mut fast = b"left over".to_vec();
        for round in 0..5000 {
            let len = next(200);
            let mut text: Vec<u8> = (0..len)
                .map(|_| match next(16) {
                    0 => odd_bytes[next(odd_bytes.len())],
                    _ => plain_bytes[next(plain_bytes.len())],
                })
                .collect();
            if round % 2 == 1 {
                // No two spaces in a row anywhere: the blocks are not searched for them.
                text.dedup_by(|b, a| *a == b' ' && *b == b' ');
            }
            // The rule, byte by byte.
            let mut plain = Vec::new();
            let mut prev_space = true;
            for &b in &text {
                let space = b.is_ascii_whitespace();
                if !space {
                    plain.push(if b == b'`' {
                        b'\''
                    } else {
                        b.to_ascii_lowercase()
                    });
                } else if !prev_space {
                    plain.push(b' ');
                }
                prev_space = space;
            }
            if plain.last() == Some(&b' ') {
                plain.pop();
            }
            normalise_ascii(&text, &mut fast);
            assert_eq!(fast, plain, "{:?}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn quoted_lines_and_signatures_are_not_own_words() {
        let body =
            "New problem here\n> old angry text\n  > more\nOn Monday you wrote:\n-- \nAda\nCEO";
        assert_eq!(own_words(body), "New problem here\nOn Monday you wrote:\n");
    }

    #[test]
    fn words_before_stop_at_clauses() {
        let t = "it is not very urgent";
        let start = t.find("urgent").expect("in text");
        assert_eq!(words_before(t, start, 3), vec!["is", "not", "very"]);
        assert_eq!(words_before(t, start, 1), vec!["very"]);
        let t = "i'm not sure. this is urgent";
        let start = t.find("urgent").expect("in text");
        assert_eq!(words_before(t, start, 5), vec!["this", "is"]);
        let t = "we don't need it urgently";
        let start = t.find("urgently").expect("in text");
        assert!(contains_words(
            &words_before(t, start, 3),
            &split_words("don't")
        ));
        assert!(!contains_words(
            &words_before(t, start, 2),
            &split_words("don't")
        ));
    }

    #[test]
    fn words_before_look_back_a_bounded_way() {
        // A clause of a million bytes: only the last few words are read.
        let t = format!("not {}urgent", "word ".repeat(200_000));
        let start = t.len() - "urgent".len();
        assert_eq!(words_before(&t, start, 3), vec!["word", "word", "word"]);
        // A cut word is left out rather than read as a shorter one.
        let t = format!("{} urgent", "x".repeat(100));
        assert_eq!(words_before(&t, 101, 2), Vec::<&str>::new());
        let t = "not urgent";
        assert_eq!(words_before(t, 4, 1), vec!["not"]);
    }

    #[test]
    fn boundaries() {
        let t = "downgrade is down";
        assert!(!on_boundaries(t, 0, 4, true, true));
        assert!(on_boundaries(t, 13, 17, true, true));
        assert!(on_boundaries("c++ rocks", 0, 3, true, false));
    }

    /// The byte-wise ASCII measures agree with plain character-wise ones, across chunk edges.
    #[test]
    fn ascii_measures_match_the_plain_definitions() {
        let words = [
            "Ab", "c_d", "9", "it's", "!!", "X-Y", "  ", "\n\n", "é?", "`q`",
        ];
        for len in [0, 1, 5, 127, 128, 129, 255, 256, 300] {
            let mut t = String::new();
            let mut i = len;
            while t.len() < len {
                t.push_str(words[i % words.len()]);
                t.push(' ');
                i = (i * 7 + 3) % 9973;
            }
            for t in [t.replace('é', "e"), t] {
                let upper = t.chars().filter(|c| c.is_uppercase()).count();
                let letters = t.chars().filter(|c| c.is_alphabetic()).count();
                assert_eq!(caps_counts(&t), (upper, letters), "{t:?}");
                let plain = t
                    .split(|c: char| !is_word_char(c))
                    .filter(|w| !w.is_empty());
                assert_eq!(word_count(&t), plain.count(), "{t:?}");
                let mut run = (0, 0);
                for c in t.chars() {
                    run.1 = if matches!(c, '!' | '?') { run.1 + 1 } else { 0 };
                    run.0 = run.0.max(run.1);
                }
                assert_eq!(punctuation_run(&t), run.0, "{t:?}");
                let joined: Vec<&str> = t.split_whitespace().collect();
                let want = joined.join(" ").to_lowercase().replace('`', "'");
                assert_eq!(normalise(&t), want, "{t:?}");
            }
        }
    }

    #[test]
    fn structural_measures() {
        assert_eq!(caps_ratio("ABC def"), (0.5, 6));
        assert_eq!(caps_ratio("123"), (0.0, 0));
        assert_eq!(punctuation_run("why?!?! ok!"), 4);
        assert_eq!(punctuation_run("none"), 0);
        assert_eq!(punctuation_run("ok！？! then ?"), 3);
        assert_eq!(punctuation_run("é!!é！"), 2);
        assert_eq!(punctuation_run("！x！"), 1);
        assert_eq!(punctuation_run("\u{ff02}!\u{ef}"), 1);
        assert_eq!(word_count("it's down, again!"), 4);
    }
}
