//! Keyword phrases found word by word. A text is cut once into tokens — runs of word
//! characters, and every other character but the space on its own — each looked up in a table
//! of the tokens the phrases are made of; phrases are then followed token by token through a
//! trie, backwards from each token that ends one. The work per email grows with its length,
//! not with the number of phrases, and the tables stay small enough for the cache (a byte
//! automaton of all phrases with their forms is megabytes, and scanning it waited on memory).
//!
//! It finds exactly what a byte-wise search with word-boundary checks finds: a phrase (in
//! normal form: single spaces, none at either end) occurs at `text[s..e]` with no word
//! character next to a word character at either end exactly when its tokens are the text's
//! tokens from `s` to `e` with the same spaces between them, since a word-character run
//! bounded by non-word characters is a whole token. Matches come in the order an overlapping
//! Aho-Corasick search reports them: by where they end, and of those ending at one place the
//! longest first (a test compares the two on random text).

use std::collections::HashMap;

use super::load::MAX_KEYWORD_CHARS;
use super::text::is_word_char;

/// No node, no pattern, no token id.
const NONE: u32 = u32::MAX;
/// Token ids below this are ASCII characters that are neither word characters nor spaces, each
/// its own id; the other tokens are numbered from here.
const FIRST_WORD: u32 = 128;

/// What stands between a token and the one before it: nothing, one space, or more (which no
/// phrase in normal form has).
const JOINED: u8 = 0;
const SPACED: u8 = 1;
const APART: u8 = 2;

/// Tokens the matcher remembers: more than the longest phrase can have (a keyword is at most
/// [`MAX_KEYWORD_CHARS`] characters, and forms only lengthen words), so a walk back never
/// leaves them.
const RING: usize = 256;
const _: () = assert!(MAX_KEYWORD_CHARS < RING);

/// Multipliers for the tables' hashes (odd, with well-spread bits).
const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

fn ascii_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Cut `text` into tokens character by character: `each(start, end, is_word, join)` for
/// every one, in order. [`tokenize_ascii`] does the same faster for ASCII text.
fn tokenize_chars(text: &str, mut each: impl FnMut(usize, usize, bool, u8)) {
    let b = text.as_bytes();
    let mut i = 0;
    let mut spaces = 0usize;
    while i < b.len() {
        let c = b[i];
        if c == b' ' {
            spaces += 1;
            i += 1;
            continue;
        }
        let join = match spaces {
            0 => JOINED,
            1 => SPACED,
            _ => APART,
        };
        spaces = 0;
        let start = i;
        let word = if c < 0x80 {
            i += 1;
            ascii_word(c)
        } else {
            // Text is a str: a byte >= 0x80 here starts a character.
            let ch = text[i..].chars().next().unwrap_or(' ');
            i += ch.len_utf8();
            is_word_char(ch)
        };
        if word {
            // The rest of the run of word characters.
            while i < b.len() {
                if b[i] < 0x80 {
                    if !ascii_word(b[i]) {
                        break;
                    }
                    i += 1;
                } else {
                    let ch = text[i..].chars().next().unwrap_or(' ');
                    if !is_word_char(ch) {
                        break;
                    }
                    i += ch.len_utf8();
                }
            }
        }
        each(start, i, word, join);
    }
}

/// Bytes classified at once by [`masks`].
const CHUNK: usize = 64;

/// Eight copies of a byte.
const fn splat(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

const HIGH: u64 = splat(0x80);

/// Per byte of `x` (ASCII: each below 0x80), its high bit set when the byte is at least `lo`.
/// No byte carries into the next: a byte plus `0x80 - lo` stays below 0x100.
#[inline(always)]
fn at_least(x: u64, lo: u8) -> u64 {
    x.wrapping_add(splat(0x80 - lo)) & HIGH
}

/// Per byte of `x` (ASCII), its high bit set when the byte is at most `hi`.
#[inline(always)]
fn at_most(x: u64, hi: u8) -> u64 {
    !x.wrapping_add(splat(0x7f - hi)) & HIGH
}

/// The high bits of the eight bytes as the low eight bits of a number, byte 0 first.
#[inline(always)]
fn gather(high: u64) -> u64 {
    ((high >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// Which of 64 bytes are word characters, tokens of their own (neither word characters nor
/// spaces), and spaces: bit i for byte i.
#[derive(Clone, Copy)]
struct Masks {
    word: u64,
    other: u64,
    space: u64,
}

/// [`Masks`] of the 64 bytes from `at` (spaces past the end). ASCII only; eight bytes at a
/// time in one register.
#[inline(always)]
fn masks(b: &[u8], at: usize) -> Masks {
    match b.get(at..at + CHUNK) {
        Some(block) => masks_of(block),
        None => {
            let mut block = [b' '; CHUNK];
            let rest = b.get(at..).unwrap_or_default();
            block[..rest.len()].copy_from_slice(rest);
            masks_of(&block)
        }
    }
}

#[inline(always)]
fn masks_of(block: &[u8]) -> Masks {
    let mut m = Masks {
        word: 0,
        other: 0,
        space: 0,
    };
    for (i, eight) in block.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(eight.try_into().unwrap_or_default());
        let lower = x | splat(0x20);
        let alpha = at_least(lower, b'a') & at_most(lower, b'z');
        let digit = at_least(x, b'0') & at_most(x, b'9');
        let underscore = at_most(x ^ splat(b'_'), 0);
        let space = at_most(x ^ splat(b' '), 0);
        let word = alpha | digit | underscore;
        m.word |= gather(word) << (8 * i);
        m.other |= gather(!word & !space & HIGH) << (8 * i);
        m.space |= gather(space) << (8 * i);
    }
    m
}

/// [`tokenize_chars`] for ASCII text: 64 bytes classified at a time, tokens and how they are
/// joined read off the masks.
#[inline(always)]
fn tokenize_ascii(b: &[u8], mut each: impl FnMut(usize, usize, bool, u8)) {
    // Whether the byte before the block is a word character; the spaces of the block before.
    let (mut carry, mut spaces_before) = (0u64, 0u64);
    // The next block's masks, when a word running into it had them computed.
    let mut next: Option<Masks> = None;
    let mut at = 0;
    while at < b.len() {
        let m = next.take().unwrap_or_else(|| masks(b, at));
        let mut starts = (m.word & !((m.word << 1) | carry)) | m.other;
        carry = m.word >> 63;
        // Bit i: the byte one (two) before byte `at + i` is a space.
        let one = (m.space << 1) | (spaces_before >> 63);
        let two = (m.space << 2) | (spaces_before >> 62);
        let (spaced, apart) = (one & !two, one & two);
        spaces_before = m.space;
        while starts != 0 {
            let bit = starts.trailing_zeros() as usize;
            starts &= starts - 1;
            let start = at + bit;
            let join = (spaced >> bit & 1) as u8 * SPACED + (apart >> bit & 1) as u8 * APART;
            if m.other >> bit & 1 == 1 {
                each(start, start + 1, false, join);
                continue;
            }
            // The run of word characters ends at the first other byte after it (the padding
            // past the end is spaces).
            let mut rest = !m.word & (!0u64 << bit);
            let mut block = at;
            while rest == 0 {
                block += CHUNK;
                let later = match next {
                    Some(n) if block == at + CHUNK => n,
                    _ => masks(b, block),
                };
                if block == at + CHUNK {
                    next = Some(later);
                }
                rest = !later.word;
            }
            let end = (block + rest.trailing_zeros() as usize).min(b.len());
            each(start, end, true, join);
        }
        at += CHUNK;
    }
}

/// A token of 1 to 8 bytes as one number (little-endian, zero above), read from `b` at `start`:
/// distinct tokens give distinct numbers, none zero, as no token holds a NUL byte.
#[inline(always)]
fn pack8(b: &[u8], start: usize, len: usize) -> u64 {
    let v = match b.get(start..start + 8) {
        // The eight bytes at once, then only the token's kept.
        Some(eight) => u64::from_le_bytes(eight.try_into().unwrap_or_default()),
        None => {
            let mut w = [0u8; 8];
            w[..len].copy_from_slice(&b[start..start + len]);
            u64::from_le_bytes(w)
        }
    };
    v & (u64::MAX >> (64 - 8 * len))
}

/// [`pack8`] for tokens of 9 to 16 bytes.
#[inline(always)]
fn pack16(b: &[u8], start: usize, len: usize) -> u128 {
    let v = match b.get(start..start + 16) {
        Some(sixteen) => u128::from_le_bytes(sixteen.try_into().unwrap_or_default()),
        None => {
            let mut w = [0u8; 16];
            w[..len].copy_from_slice(&b[start..start + len]);
            u128::from_le_bytes(w)
        }
    };
    v & (u128::MAX >> (128 - 8 * len))
}

/// An open-addressing table, for the lookups made per token of every email: the keys are a
/// few thousand tokens and edges from the rule files, so a multiply-shift hash is enough,
/// probing compares whole numbers (no string compare), and a key sits beside its value (one
/// cache line per lookup).
#[derive(Debug, Clone)]
struct Table<K, V> {
    slots: Vec<(K, V)>,
    /// log2 of the number of slots.
    bits: u32,
    len: usize,
    /// The value of a missing key (every empty slot holds it).
    missing: V,
}

trait Key: Copy + Eq {
    /// The key of an empty slot (never a real key).
    const EMPTY: Self;
    fn hash(self) -> u64;
}

impl Key for u128 {
    const EMPTY: u128 = 0;
    #[inline(always)]
    fn hash(self) -> u64 {
        ((self as u64) ^ ((self >> 64) as u64).wrapping_mul(K2)).wrapping_mul(K1)
    }
}

impl Key for u64 {
    const EMPTY: u64 = u64::MAX;
    #[inline(always)]
    fn hash(self) -> u64 {
        self.wrapping_mul(K1)
    }
}

impl<K: Key, V: Copy> Table<K, V> {
    fn new(missing: V) -> Table<K, V> {
        Table {
            slots: vec![(K::EMPTY, missing); 16],
            bits: 4,
            len: 0,
            missing,
        }
    }

    /// The key's slot, or the empty slot where it would go.
    #[inline(always)]
    fn slot(&self, key: K) -> usize {
        let mask = (1usize << self.bits) - 1;
        let mut i = (key.hash() >> (64 - self.bits)) as usize;
        while self.slots[i].0 != key && self.slots[i].0 != K::EMPTY {
            i = (i + 1) & mask;
        }
        i
    }

    /// The key's value; an empty slot holds the value of a missing key.
    #[inline(always)]
    fn get(&self, key: K) -> V {
        self.slots[self.slot(key)].1
    }

    /// The key's value, or `value` inserted for it.
    fn get_or_insert(&mut self, key: K, value: V) -> &mut V {
        // At most half full, so a probe meets an empty slot soon: most tokens of a text are
        // in no phrase, and a lookup that misses probes until it meets one.
        if 2 * (self.len + 1) > self.slots.len() {
            let bigger = Table {
                slots: vec![(K::EMPTY, self.missing); self.slots.len() * 2],
                bits: self.bits + 1,
                len: 0,
                missing: self.missing,
            };
            for (k, v) in std::mem::replace(self, bigger).slots {
                if k != K::EMPTY {
                    *self.get_or_insert(k, v) = v;
                }
            }
        }
        let i = self.slot(key);
        if self.slots[i].0 == K::EMPTY {
            self.slots[i] = (key, value);
            self.len += 1;
        }
        &mut self.slots[i].1
    }
}

/// What the tables say of a token: its id (or [`NONE`]: no phrase has it) and the trie node of
/// the phrases that end with it (or [`NONE`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    id: u32,
    end: u32,
}

const MISSING: Entry = Entry {
    id: NONE,
    end: NONE,
};

/// Every phrase of one text source's rules, ready to be found in a text.
#[derive(Debug, Clone)]
pub(super) struct Phrases {
    /// Per ASCII character that is neither a word character nor a space: its entry (the id is
    /// the character).
    signs: [Entry; 128],
    /// Words, and characters beyond ASCII that are not word characters, numbered from
    /// [`FIRST_WORD`]: of up to 8 bytes (most words), up to 16, longer (rare in phrases).
    short: Table<u64, Entry>,
    middle: Table<u128, Entry>,
    long: HashMap<Box<[u8]>, Entry>,
    /// Tokens numbered so far.
    tokens: u32,
    /// The longest token of any phrase in bytes: a longer word is in no phrase.
    longest: usize,
    /// (node, token before, how the later token is joined to it) -> node. The trie follows
    /// phrases backwards, from their last token.
    edges: Table<u64, u32>,
    nodes: Vec<Node>,
}

/// A node of the trie.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The pattern whose tokens are the path to this node, or [`NONE`].
    pattern: u32,
    /// Bit `id % 32` set for the token id of every edge leaving it: most walks end at a token
    /// no phrase has before this one, and this says so without a lookup.
    before: u32,
}

#[inline(always)]
fn edge(node: u32, token: u32, join: u8) -> u64 {
    (u64::from(node) << 34) | (u64::from(token) << 2) | u64::from(join)
}

/// A token of a phrase: its id, how it is joined to the one before, and where it is.
struct PhraseToken {
    id: u32,
    join: u8,
    start: usize,
    end: usize,
    word: bool,
}

impl Phrases {
    /// Compile phrases in normal form (pattern `i` is `phrases[i]`; each distinct), and give
    /// the tokens of `words` ids too (for [`Phrases::last_token`]). `Err` names a phrase that
    /// is not in normal form or is empty.
    pub(super) fn new(phrases: &[String], words: &[String]) -> Result<Phrases, String> {
        let mut p = Phrases {
            signs: std::array::from_fn(|c| Entry {
                id: c as u32,
                end: NONE,
            }),
            short: Table::new(MISSING),
            middle: Table::new(MISSING),
            long: HashMap::new(),
            tokens: 0,
            longest: 0,
            edges: Table::new(NONE),
            nodes: Vec::new(),
        };
        for (i, phrase) in phrases.iter().enumerate() {
            let tokens = p.phrase_tokens(phrase)?;
            p.insert(phrase.as_bytes(), &tokens, i as u32);
        }
        for word in words {
            tokenize_chars(word, |start, end, is_word, _| {
                p.entry_mut(word.as_bytes(), start, end, is_word);
            });
        }
        Ok(p)
    }

    /// The id of the last token of `word` (its words known from [`Phrases::new`]), or NONE.
    pub(super) fn last_token(&self, word: &str) -> u32 {
        let b = word.as_bytes();
        let mut id = NONE;
        tokenize_chars(word, |start, end, is_word, _| {
            id = if !is_word && b[start] < 0x80 {
                self.signs[usize::from(b[start])].id
            } else {
                self.word_entry(b, start, end).id
            };
        });
        id
    }

    /// A phrase's tokens, adding its words to the vocabulary.
    fn phrase_tokens(&mut self, phrase: &str) -> Result<Vec<PhraseToken>, String> {
        let mut tokens = Vec::new();
        let mut odd = phrase.is_empty() || phrase.starts_with(' ') || phrase.ends_with(' ');
        tokenize_chars(phrase, |start, end, word, join| {
            odd |= join == APART;
            let id = self.entry_mut(phrase.as_bytes(), start, end, word).id;
            tokens.push(PhraseToken {
                id,
                join,
                start,
                end,
                word,
            });
        });
        if odd {
            return Err(format!("phrase {phrase:?} is not in normal form"));
        }
        if tokens.len() >= RING {
            return Err(format!(
                "phrase {phrase:?} has more than {RING} words and signs"
            ));
        }
        Ok(tokens)
    }

    /// The entry of the token `b[start..end]`, numbered if it is new.
    fn entry_mut(&mut self, b: &[u8], start: usize, end: usize, word: bool) -> &mut Entry {
        let len = end - start;
        if !word && b[start] < 0x80 {
            return &mut self.signs[usize::from(b[start])];
        }
        self.longest = self.longest.max(len);
        let new = Entry {
            id: FIRST_WORD + self.tokens,
            end: NONE,
        };
        let entry = match len {
            0..=8 => self.short.get_or_insert(pack8(b, start, len), new),
            9..=16 => self.middle.get_or_insert(pack16(b, start, len), new),
            _ => self.long.entry(b[start..end].into()).or_insert(new),
        };
        if entry.id == new.id {
            self.tokens += 1;
        }
        entry
    }

    /// Add pattern `pattern`, the phrase `b` cut into `tokens`.
    fn insert(&mut self, b: &[u8], tokens: &[PhraseToken], pattern: u32) {
        let Some(last) = tokens.last() else {
            return;
        };
        let fresh = self.nodes.len() as u32;
        let end = &mut self.entry_mut(b, last.start, last.end, last.word).end;
        if *end == NONE {
            *end = fresh;
        }
        let mut node = *end;
        if node == fresh {
            self.new_node();
        }
        // Backwards: the join of each token ties it to the one before.
        for k in (1..tokens.len()).rev() {
            let fresh = self.nodes.len() as u32;
            let before = tokens[k - 1].id;
            let child = *self
                .edges
                .get_or_insert(edge(node, before, tokens[k].join), fresh);
            if child == fresh {
                self.new_node();
                self.nodes[node as usize].before |= 1 << (before % 32);
            }
            node = child;
        }
        self.nodes[node as usize].pattern = pattern;
    }

    fn new_node(&mut self) {
        self.nodes.push(Node {
            pattern: NONE,
            before: 0,
        });
    }

    /// The entry of the token `b[start..end]` that is a word or a character beyond ASCII.
    #[inline(always)]
    fn word_entry(&self, b: &[u8], start: usize, end: usize) -> Entry {
        let len = end - start;
        if len > self.longest {
            MISSING
        } else if len <= 8 {
            self.short.get(pack8(b, start, len))
        } else if len <= 16 {
            self.middle.get(pack16(b, start, len))
        } else {
            self.long.get(&b[start..end]).copied().unwrap_or(MISSING)
        }
    }

    /// Every occurrence of every phrase in `text`: `each(pattern, start, end)`, by end, and
    /// at one end the longest first. `room.present` learns which tokens the text has. Returns the
    /// number of words (runs of word characters) in the text, as [`text::word_count`] counts
    /// them, or `None` when there are no phrases and so no reading.
    ///
    /// [`text::word_count`]: super::text::word_count
    pub(super) fn find(
        &self,
        text: &str,
        room: &mut Room,
        mut each: impl FnMut(usize, usize, usize),
    ) -> Option<usize> {
        let ascii = text.is_ascii();
        let Room { present, ring } = room;
        present.reset(FIRST_WORD + self.tokens, ascii);
        if self.nodes.is_empty() {
            return None;
        }
        let b = text.as_bytes();
        let mut walk = Walk::new(self, ring);
        let mut words = 0;
        if ascii {
            tokenize_ascii(b, |start, end, word, join| {
                let entry = if word {
                    words += 1;
                    self.word_entry(b, start, end)
                } else {
                    self.signs[usize::from(b[start])]
                };
                present.add(entry.id);
                walk.step(entry, join, start, end, &mut each);
            });
        } else {
            tokenize_chars(text, |start, end, word, join| {
                words += usize::from(word);
                let entry = if !word && b[start] < 0x80 {
                    self.signs[usize::from(b[start])]
                } else {
                    self.word_entry(b, start, end)
                };
                walk.step(entry, join, start, end, &mut each);
            });
        }
        Some(words)
    }
}

/// Which tokens a text has, for the gap phrases' cheap test. Known for ASCII text only: beyond
/// ASCII a regex's word boundary (ASCII) and a token's end (Unicode) may differ.
#[derive(Debug, Default)]
pub(super) struct Present {
    /// Bit per token id.
    bits: Vec<u64>,
    known: bool,
}

impl Present {
    fn reset(&mut self, ids: u32, known: bool) {
        self.bits.clear();
        if known {
            self.bits.resize((ids as usize).div_ceil(64), 0);
        }
        self.known = known;
    }

    #[inline(always)]
    fn add(&mut self, id: u32) {
        if let Some(w) = self.bits.get_mut(id as usize / 64) {
            *w |= 1 << (id % 64);
        }
    }

    /// Whether the text may have one of the tokens `ids`: it has, or it is not known.
    pub(super) fn any(&self, ids: &[u32]) -> bool {
        !self.known
            || ids.iter().any(|&id| {
                self.bits
                    .get(id as usize / 64)
                    .is_some_and(|w| w >> (id % 64) & 1 == 1)
            })
    }
}

/// The last [`RING`] tokens of a text, and the matches ending at one. A walk reads only what
/// this text wrote (no further back than its first token, nor than a phrase is long), so the
/// arrays are never cleared, and are kept from text to text.
struct Ring {
    ids: [u32; RING],
    joins: [u8; RING],
    starts: [usize; RING],
    /// (pattern, token number) of the matches ending at one token, shortest first.
    here: [(u32, usize); RING],
}

impl Default for Ring {
    fn default() -> Ring {
        Ring {
            ids: [NONE; RING],
            joins: [APART; RING],
            starts: [0; RING],
            here: [(NONE, 0); RING],
        }
    }
}

/// Room for reading texts, kept by the caller from text to text: which tokens the last text
/// has, and the ring of tokens (kilobytes that are not set up afresh for every text).
#[derive(Default)]
pub(super) struct Room {
    pub(super) present: Present,
    ring: Box<Ring>,
}

/// The walks back from the tokens of one text.
struct Walk<'a> {
    phrases: &'a Phrases,
    ring: &'a mut Ring,
    /// Tokens seen so far.
    seen: usize,
}

impl<'a> Walk<'a> {
    fn new(phrases: &'a Phrases, ring: &'a mut Ring) -> Walk<'a> {
        Walk {
            phrases,
            ring,
            seen: 0,
        }
    }

    /// Take the next token; report the phrases ending with it, longest first.
    #[inline(always)]
    fn step(
        &mut self,
        entry: Entry,
        join: u8,
        start: usize,
        end: usize,
        each: &mut impl FnMut(usize, usize, usize),
    ) {
        let r = &mut *self.ring;
        let at = self.seen % RING;
        r.ids[at] = entry.id;
        r.joins[at] = join;
        r.starts[at] = start;
        self.seen += 1;
        if entry.end == NONE {
            return;
        }
        let p = self.phrases;
        // Back from this token; `k` is a token's number, `n` the matches found.
        let (mut node, mut k, mut n) = (entry.end, self.seen - 1, 0);
        loop {
            let Node { pattern, before } = p.nodes[node as usize];
            if pattern != NONE {
                r.here[n] = (pattern, k);
                n += 1;
            }
            if k == 0 {
                break;
            }
            let prev = r.ids[(k - 1) % RING];
            if before >> (prev % 32) & 1 == 0 {
                break;
            }
            node = p.edges.get(edge(node, prev, r.joins[k % RING]));
            if node == NONE {
                break;
            }
            k -= 1;
        }
        for &(pattern, k) in r.here[..n].iter().rev() {
            each(pattern as usize, r.starts[k % RING], end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::text::on_boundaries;
    use aho_corasick::{AhoCorasickBuilder, MatchKind};

    /// What the byte automaton with boundary checks reports, as the scorer used to read it.
    fn by_automaton(phrases: &[String], text: &str) -> Vec<(usize, usize, usize)> {
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(phrases)
            .expect("builds");
        ac.find_overlapping_iter(text)
            .filter(|m| {
                let p = &phrases[m.pattern().as_usize()];
                let left = p.chars().next().is_some_and(is_word_char);
                let right = p.chars().last().is_some_and(is_word_char);
                on_boundaries(text, m.start(), m.end(), left, right)
            })
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect()
    }

    /// What the word matcher reports, reading with `room` (kept from text to text, as
    /// scoring keeps it).
    fn by_words(p: &Phrases, room: &mut Room, text: &str) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let words = p.find(text, room, |i, s, e| out.push((i, s, e)));
        assert_eq!(
            words,
            Some(crate::score::text::word_count(text)),
            "{text:?}"
        );
        out
    }

    #[test]
    fn finds_what_the_byte_automaton_finds_in_the_same_order() {
        let phrases: Vec<String> = [
            "refund",
            "refunds",
            "no refund",
            "a",
            "a a",
            "a a a",
            "!!",
            "!",
            "?!",
            "c++",
            "c",
            "++",
            "+c",
            "don't",
            "don",
            "t",
            "e-mail",
            "mail",
            "straße",
            "é",
            "—",
            "x — y",
            "log in",
            "log-in",
            "in",
            "_",
            "1",
            "12",
            "a_b",
            "ab",
            "'s",
            "it's",
            "a'",
            "\u{b}",
            "not working",
            "working",
            "is not working",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopqrstuvwxyz0123456789 mail",
            "straßestraßestraße",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let words = [
            "refund",
            "refunds",
            "no",
            "a",
            "!",
            "?",
            "c",
            "+",
            "don",
            "'",
            "t",
            "e",
            "-",
            "mail",
            "straße",
            "é",
            "\u{301}",
            "—",
            "x",
            "y",
            "log",
            "in",
            "_",
            "1",
            "2",
            "b",
            "s",
            "it",
            "\u{b}",
            "not",
            "working",
            "is",
            " ",
            "  ",
            "\t",
            "ab",
            "🙂",
            "ｒ",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "abcdefghijklmno",
            "straßestraßestraße",
            "straßestraße",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let compiled = Phrases::new(&phrases, &[]).expect("compiles");
        let mut room = Room::default();
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..next(25) {
                text.push_str(words[next(words.len())]);
                if next(3) > 0 {
                    text.push(' ');
                }
            }
            assert_eq!(
                by_words(&compiled, &mut room, &text),
                by_automaton(&phrases, &text),
                "{text:?}"
            );
        }
    }

    /// The ASCII path cuts every text as the character-wise one does, across block edges.
    #[test]
    fn ascii_tokens_are_the_character_wise_ones() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let alphabet: Vec<u8> = (0u8..128).collect();
        for round in 0..4000 {
            let len = next(300);
            let text: String = (0..len)
                .map(|_| match next(4) {
                    // Mostly words and spaces, with any ASCII byte among them.
                    0 => b' ',
                    1 => alphabet[next(128)],
                    _ => b"az_09QZ"[next(7)],
                } as char)
                .collect();
            let text = if round % 2 == 0 {
                text
            } else {
                text.replace(' ', "  ")
            };
            let mut fast = Vec::new();
            tokenize_ascii(text.as_bytes(), |s, e, w, j| fast.push((s, e, w, j)));
            let mut slow = Vec::new();
            tokenize_chars(&text, |s, e, w, j| slow.push((s, e, w, j)));
            assert_eq!(fast, slow, "{text:?}");
        }
    }

    #[test]
    fn phrases_out_of_normal_form_are_refused() {
        for bad in ["", " a", "a ", "a  b"] {
            assert!(Phrases::new(&[bad.to_string()], &[]).is_err(), "{bad:?}");
        }
    }
}
