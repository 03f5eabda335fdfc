//! Word families and gap phrases for keyword rules, expanded when the rules are loaded so that
//! matching stays one pass of the keyword matcher (and a regex for gap phrases).
//!
//! - `forms = true`: every content word of a keyword also matches its regular English
//!   inflections — `refund` → refunds, refunded, refunding; `charge` → charges, charged,
//!   charging; `cancel` → cancels, canceled, cancelled, canceling, cancelling; `reply` →
//!   replies, replied, replying — and, for a short list of common irregular verbs, their
//!   irregular forms (`steal` → stole, stolen). Function words (`my`, `out`, `not`, ...) and
//!   words that already look inflected (`locked`, `charges`) stay as written, so `lock out`
//!   matches "locked out" and "locking out", and no word turns into another one ("fee" does
//!   not become "feed"). The expansion is generated, not guessed at match time: `triaged
//!   explain` shows the inflected word that matched.
//! - A gap `~N` (1 to [`MAX_GAP`]) stands for up to N words: `locked ~2 out` matches "locked
//!   out", "locked myself out" and "locked my wife out", but not across punctuation ("locked,
//!   out") — a gap stays inside one clause.

/// Longest gap in words.
pub const MAX_GAP: usize = 8;

/// Most forms one keyword expands to in the keyword matcher; a phrase with more combinations (three
/// or more inflectable words) is matched by a regex with one alternation per word instead.
pub const MAX_FORMS: usize = 128;

/// Words that are never inflected: articles, pronouns, prepositions, particles, negations,
/// auxiliaries. Inflecting them makes nonsense or other words ("not" → "noted").
const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at",
    "back", "be", "been", "before", "but", "by", "can", "cannot", "could", "did", "do", "does",
    "down", "each", "ever", "every", "for", "from", "had", "has", "have", "he", "her", "here",
    "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "more", "most",
    "must", "my", "never", "no", "nor", "not", "now", "of", "off", "on", "one", "onto", "or",
    "our", "out", "over", "own", "she", "should", "so", "some", "still", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too",
    "under", "up", "us", "very", "was", "we", "were", "what", "when", "where", "which", "while",
    "who", "why", "will", "with", "would", "yet", "you", "your",
];

/// Common irregular verbs: the base form and its other forms.
const IRREGULAR: &[(&str, &[&str])] = &[
    ("be", &["is", "are", "was", "were", "been", "being"]),
    ("begin", &["begins", "began", "begun", "beginning"]),
    ("break", &["breaks", "broke", "broken", "breaking"]),
    ("bring", &["brings", "brought", "bringing"]),
    ("buy", &["buys", "bought", "buying"]),
    ("catch", &["catches", "caught", "catching"]),
    ("choose", &["chooses", "chose", "chosen", "choosing"]),
    ("come", &["comes", "came", "coming"]),
    ("cut", &["cuts", "cutting"]),
    ("do", &["does", "did", "done", "doing"]),
    ("drive", &["drives", "drove", "driven", "driving"]),
    ("fall", &["falls", "fell", "fallen", "falling"]),
    ("feel", &["feels", "felt", "feeling"]),
    ("find", &["finds", "found", "finding"]),
    ("fly", &["flies", "flew", "flown", "flying"]),
    ("forget", &["forgets", "forgot", "forgotten", "forgetting"]),
    ("freeze", &["freezes", "froze", "frozen", "freezing"]),
    ("get", &["gets", "got", "gotten", "getting"]),
    ("give", &["gives", "gave", "given", "giving"]),
    ("go", &["goes", "went", "gone", "going"]),
    ("hang", &["hangs", "hung", "hanging"]),
    ("have", &["has", "had", "having"]),
    ("hear", &["hears", "heard", "hearing"]),
    ("hide", &["hides", "hid", "hidden", "hiding"]),
    ("hold", &["holds", "held", "holding"]),
    ("keep", &["keeps", "kept", "keeping"]),
    ("know", &["knows", "knew", "known", "knowing"]),
    ("leave", &["leaves", "left", "leaving"]),
    ("lose", &["loses", "lost", "losing"]),
    ("make", &["makes", "made", "making"]),
    ("mean", &["means", "meant", "meaning"]),
    ("pay", &["pays", "paid", "paying"]),
    ("put", &["puts", "putting"]),
    ("read", &["reads", "reading"]),
    ("run", &["runs", "ran", "running"]),
    ("say", &["says", "said", "saying"]),
    ("see", &["sees", "saw", "seen", "seeing"]),
    ("sell", &["sells", "sold", "selling"]),
    ("send", &["sends", "sent", "sending"]),
    ("set", &["sets", "setting"]),
    ("shut", &["shuts", "shutting"]),
    ("speak", &["speaks", "spoke", "spoken", "speaking"]),
    ("spend", &["spends", "spent", "spending"]),
    ("steal", &["steals", "stole", "stolen", "stealing"]),
    ("take", &["takes", "took", "taken", "taking"]),
    ("tell", &["tells", "told", "telling"]),
    ("think", &["thinks", "thought", "thinking"]),
    ("throw", &["throws", "threw", "thrown", "throwing"]),
    (
        "understand",
        &["understands", "understood", "understanding"],
    ),
    ("wake", &["wakes", "woke", "woken", "waking"]),
    ("win", &["wins", "won", "winning"]),
    ("write", &["writes", "wrote", "written", "writing"]),
];

/// Whether a word is a function word (article, pronoun, preposition, auxiliary, ...).
pub fn is_function_word(w: &str) -> bool {
    FUNCTION_WORDS.contains(&w)
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u')
}

/// Whether a word looks inflected already (`locked`, `charging`, `charges`): it is then
/// matched as written.
fn looks_inflected(w: &str) -> bool {
    let n = w.len();
    (n > 4 && (w.ends_with("ed") || w.ends_with("ing")))
        || (n > 3
            && w.ends_with('s')
            && !w.ends_with("ss")
            && !w.ends_with("us")
            && !w.ends_with("is")
            && !w.ends_with("ous"))
}

/// The word and its inflections (the word first). Only lower-case ASCII words of three letters
/// or more are inflected; anything else is returned as it is.
pub fn word_forms(w: &str) -> Vec<String> {
    let mut out = vec![w.to_string()];
    if let Some((_, forms)) = IRREGULAR.iter().find(|(base, _)| *base == w) {
        out.extend(forms.iter().map(|f| f.to_string()));
        return out;
    }
    let b = w.as_bytes();
    let n = b.len();
    if n < 3
        || !b.iter().all(u8::is_ascii_lowercase)
        || FUNCTION_WORDS.contains(&w)
        || looks_inflected(w)
    {
        return out;
    }
    let last = b[n - 1];
    let before = b[n - 2];
    let stem = &w[..n - 1];
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    if last == b'e' {
        push(format!("{w}s"));
        if w.ends_with("ie") {
            push(format!("{w}d"));
            push(format!("{}ying", &w[..n - 2]));
        } else if before == b'e' || before == b'o' || before == b'y' {
            // agree → agreed, agreeing; but a three-letter noun (fee, tee) has no -d form
            // worth the risk ("feed").
            if n > 3 {
                push(format!("{w}d"));
            }
            push(format!("{w}ing"));
        } else {
            push(format!("{w}d"));
            push(format!("{stem}ing"));
        }
    } else if last == b'y' && !is_vowel(before) {
        push(format!("{stem}ies"));
        push(format!("{stem}ied"));
        push(format!("{w}ing"));
    } else if matches!(last, b's' | b'x' | b'z') || w.ends_with("ch") || w.ends_with("sh") {
        push(format!("{w}es"));
        push(format!("{w}ed"));
        push(format!("{w}ing"));
    } else {
        push(format!("{w}s"));
        // Consonant-vowel-consonant at the end doubles in a short word (stop → stopped,
        // log → logged) and may in a longer one (cancel → canceled and cancelled).
        let cvc = !is_vowel(last)
            && !matches!(last, b'w' | b'x' | b'y')
            && is_vowel(before)
            && !is_vowel(b[n - 3]);
        let short = n <= 4;
        if !(cvc && short) {
            push(format!("{w}ed"));
            push(format!("{w}ing"));
        }
        if cvc {
            let c = last as char;
            push(format!("{w}{c}ed"));
            push(format!("{w}{c}ing"));
        }
    }
    out
}

/// One part of a keyword: a word, or a gap of up to N words.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Word(String),
    Gap(usize),
}

/// Split a normalised keyword into words and gaps. `Ok(None)`: no gap (an ordinary phrase).
pub fn parse_gaps(keyword: &str) -> Result<Option<Vec<Part>>, String> {
    if !keyword.split(' ').any(|t| t.starts_with('~')) {
        return Ok(None);
    }
    let mut parts = Vec::new();
    for token in keyword.split(' ') {
        match token.strip_prefix('~') {
            Some(n) => {
                let n: usize = n.parse().map_err(|_| {
                    format!("{token:?} is not a gap; write ~N with N from 1 to {MAX_GAP}, e.g. \"locked ~2 out\"")
                })?;
                if !(1..=MAX_GAP).contains(&n) {
                    return Err(format!("a gap is 1 to {MAX_GAP} words, not {n}"));
                }
                if !matches!(parts.last(), Some(Part::Word(_))) {
                    return Err("a gap stands between two words".into());
                }
                parts.push(Part::Gap(n));
            }
            None => parts.push(Part::Word(token.to_string())),
        }
    }
    if !matches!(parts.last(), Some(Part::Word(_))) {
        return Err("a gap stands between two words".into());
    }
    Ok(Some(parts))
}

/// Every form of a phrase (words separated by single spaces), the phrase itself first; `Err`
/// past [`MAX_FORMS`].
pub fn phrase_forms(phrase: &str) -> Result<Vec<String>, String> {
    let mut out = vec![String::new()];
    for (i, word) in phrase.split(' ').enumerate() {
        let forms = word_forms(word);
        if out.len() * forms.len() > MAX_FORMS {
            return Err(format!(
                "expands to more than {MAX_FORMS} forms: list the inflections you need, or set forms = false"
            ));
        }
        out = out
            .iter()
            .flat_map(|head| {
                forms.iter().map(move |f| {
                    if i == 0 {
                        f.clone()
                    } else {
                        format!("{head} {f}")
                    }
                })
            })
            .collect();
    }
    Ok(out)
}

/// The forms of a gap phrase's first word: where the keyword matcher finds the places to try
/// the phrase's regex (anchored there), so gap phrases cost nothing on text without them.
pub fn anchor_words(parts: &[Part], forms: bool) -> Vec<String> {
    match parts.first() {
        Some(Part::Word(w)) if forms => word_forms(w),
        Some(Part::Word(w)) => vec![w.clone()],
        _ => Vec::new(),
    }
}

/// Per word of a gap phrase after the first, the texts its regex accepts there (its forms when
/// `forms`). Each is preceded by a space and followed by a space or a word boundary, so in
/// ASCII text one of them stands as whole words wherever the regex matches: a text without any
/// of them needs no regex search.
pub fn later_words(parts: &[Part], forms: bool) -> Vec<Vec<String>> {
    parts
        .iter()
        .skip(1)
        .filter_map(|p| match p {
            Part::Word(w) if forms => Some(word_forms(w)),
            Part::Word(w) => Some(vec![w.clone()]),
            Part::Gap(_) => None,
        })
        .collect()
}

/// The regex for a gap phrase: its words (with their forms when `forms`), and up to N words
/// (runs of anything but spaces and clause punctuation) in each gap, on word boundaries. The text is
/// normalised, so words are separated by single spaces; punctuation ends a gap.
pub fn gap_regex(parts: &[Part], forms: bool) -> String {
    let mut re = String::from(r"(?-u:\b)");
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Word(w) => {
                if i > 0 && matches!(parts[i - 1], Part::Word(_)) {
                    re.push(' ');
                }
                let alts: Vec<String> = if forms {
                    word_forms(w).iter().map(|f| regex::escape(f)).collect()
                } else {
                    vec![regex::escape(w)]
                };
                if alts.len() == 1 {
                    re.push_str(&alts[0]);
                } else {
                    re.push_str(&format!("(?:{})", alts.join("|")));
                }
            }
            // A gap word is anything but a space or clause punctuation: a small class (a
            // Unicode \w repeated N times would compile to megabytes).
            Part::Gap(n) => re.push_str(&format!(r#"(?: [^ .,;:!?()\[\]"\n]+){{0,{n}}} "#)),
        }
    }
    re.push_str(r"(?-u:\b)");
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(w: &str) -> Vec<String> {
        word_forms(w)
    }

    #[test]
    fn regular_inflections() {
        let has = |w: &str, f: &[&str]| {
            let got = forms(w);
            for x in f {
                assert!(
                    got.contains(&x.to_string()),
                    "{w}: {x} missing from {got:?}"
                );
            }
        };
        has("refund", &["refunds", "refunded", "refunding"]);
        has("crash", &["crashes", "crashed", "crashing"]);
        has("charge", &["charges", "charged", "charging"]);
        has(
            "cancel",
            &[
                "cancels",
                "canceled",
                "cancelled",
                "canceling",
                "cancelling",
            ],
        );
        has("reply", &["replies", "replied", "replying"]);
        has("delay", &["delays", "delayed", "delaying"]);
        has("bill", &["bills", "billed", "billing"]);
        has("invoice", &["invoices", "invoiced", "invoicing"]);
        has("fee", &["fees"]);
        has("stop", &["stops", "stopped", "stopping"]);
        has("log", &["logs", "logged", "logging"]);
        has("agree", &["agreed", "agreeing"]);
        has("tie", &["ties", "tied", "tying"]);
        has("fix", &["fixes", "fixed", "fixing"]);
        has("steal", &["stole", "stolen"]);
        has("lose", &["lost", "losing"]);
        has("pay", &["paid"]);
    }

    #[test]
    fn no_word_turns_into_another() {
        // The forms that would be other words, or nonsense from function words.
        assert!(!forms("fee").contains(&"feed".to_string()));
        assert!(!forms("pin").contains(&"pined".to_string()));
        assert_eq!(forms("not"), ["not"]);
        assert_eq!(forms("out"), ["out"]);
        assert_eq!(forms("my"), ["my"]);
        // Already inflected, or not an English word in ASCII: as written.
        assert_eq!(forms("locked"), ["locked"]);
        assert_eq!(forms("charges"), ["charges"]);
        assert_eq!(forms("straße"), ["straße"]);
        assert_eq!(forms("2fa"), ["2fa"]);
        // Base forms ending in s are still inflected.
        assert!(forms("access").contains(&"accessed".to_string()));
    }

    #[test]
    fn phrases_expand_their_content_words() {
        let f = phrase_forms("lock out").expect("forms");
        assert!(f.contains(&"locked out".to_string()));
        assert!(f.contains(&"locking out".to_string()));
        assert_eq!(f[0], "lock out");
        let f = phrase_forms("double charge").expect("forms");
        assert!(f.contains(&"double charges".to_string()));
        let long = "charge refund invoice payment crash";
        assert!(phrase_forms(long).is_err());
    }

    #[test]
    fn gaps_parse_and_compile() {
        assert_eq!(parse_gaps("locked out"), Ok(None));
        let parts = parse_gaps("locked ~2 out")
            .expect("parses")
            .expect("has a gap");
        assert_eq!(
            parts,
            vec![
                Part::Word("locked".into()),
                Part::Gap(2),
                Part::Word("out".into())
            ]
        );
        for bad in [
            "~2 out",
            "locked ~2",
            "locked ~0 out",
            "locked ~9 out",
            "a ~x b",
            "a ~1 ~1 b",
        ] {
            assert!(parse_gaps(bad).is_err(), "{bad}");
        }
        let re = regex::Regex::new(&gap_regex(&parts, false)).expect("compiles");
        assert!(re.is_match("i locked out"));
        assert!(re.is_match("i locked myself out of it"));
        assert!(re.is_match("locked my wife out"));
        assert!(!re.is_match("locked my wife and kids out"));
        assert!(!re.is_match("locked myself, out"));
        assert!(!re.is_match("unlocked myself outside"));
        let parts = parse_gaps("lock ~2 out").expect("parses").expect("gap");
        let re = regex::Regex::new(&gap_regex(&parts, true)).expect("compiles");
        assert!(re.is_match("i've been locked myself out"));
        assert!(re.is_match("keeps locking me out"));
    }
}
