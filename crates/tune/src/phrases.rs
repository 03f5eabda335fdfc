//! Candidate keywords the rules are missing, ranked by evidence.
//!
//! For one class A (say urgent) against all other mail, every unigram and bigram gets the
//! weighted log-odds ratio with an informative Dirichlet prior of Monroe, Colaresi & Quinn
//! (2008), "Fightin' Words", §3.5:
//!
//! ```text
//! δ_w = ln((y_wA + α_w) / (n_A + α_0 − y_wA − α_w)) − ln((y_wB + α_w) / (n_B + α_0 − y_wB − α_w))
//! σ²_w ≈ 1/(y_wA + α_w) + 1/(y_wB + α_w)          z_w = δ_w / σ_w
//! ```
//!
//! with `α_w = prior_scale · (y_wA + y_wB)`, i.e. the prior is the whole corpus's own term
//! distribution. The z-score shrinks rare terms (three urgent mails saying "kitten" prove
//! nothing) without the hand-tuned frequency cut-offs that plain log-odds needs.
//!
//! Counting unit: the number of *emails* containing the term (at most one per email), not raw
//! occurrences, so one long angry thread repeating a word cannot dominate and because a rule
//! fires once per email however often its keyword appears. `n_A`, `n_B` are the sums of those
//! counts over all terms.

use std::collections::{HashMap, HashSet};

use anyhow::{Result, ensure};

use super::tfidf::terms;

/// Function words that are never suggested on their own and that disqualify a bigram they
/// start or end. Deliberately *not* here: negations (`not`, `no`, `can't`, `won't`, …) and
/// particles such as `down`, `out`, `off`, `up`, `now`, `again`, which carry much of the meaning
/// in support mail ("not working", "down", "locked out", "again").
#[rustfmt::skip]
pub const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "between", "both", "but", "by", "could", "did",
    "do", "does", "doing", "during", "each", "for", "from", "further", "had", "has", "have",
    "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "i'm",
    "i've", "if", "in", "into", "is", "it", "it's", "its", "itself", "just", "me", "more", "most",
    "my", "myself", "of", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "over",
    "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs",
    "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
    "under", "until", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who",
    "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves",
];

pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

#[derive(Debug, Clone, PartialEq)]
pub struct PhraseOptions {
    /// Longest n-gram considered (2 = words and word pairs).
    pub max_n: usize,
    /// Least number of class-A emails a term must appear in to be suggested.
    pub min_count: usize,
    /// Prior pseudo-counts per observed email-occurrence (`α_w = prior_scale · count_w`);
    /// larger values shrink more. 0.1 lets a term seen in ~10 emails reach z ≈ 3 when it
    /// never occurs outside the class.
    pub prior_scale: f64,
    /// Keep terms with `z` above this; 1.96 is a two-sided 5 % test for one term (with
    /// thousands of terms, expect some false leads near the cut: read the list, top first).
    pub min_z: f64,
    /// Drop stop words, and bigrams that start or end with one.
    pub stop_words: bool,
    /// Return at most this many candidates; `None` returns all that pass.
    pub limit: Option<usize>,
}

impl Default for PhraseOptions {
    fn default() -> Self {
        Self {
            max_n: 2,
            min_count: 5,
            prior_scale: 0.1,
            min_z: 1.96,
            stop_words: true,
            limit: Some(50),
        }
    }
}

/// A term that is over-represented in the class.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub phrase: String,
    pub z: f64,
    /// Emails of the class containing the phrase.
    pub count_in_class: usize,
    /// Other emails containing it.
    pub count_other: usize,
}

/// Ranks the unigrams and bigrams of `docs` by how strongly they mark the emails with
/// `in_class[i]` true, highest z first (ties by phrase). `is_covered` says which phrases the
/// rules already catch; those are skipped. It sees each candidate phrase, so a caller that wants
/// to skip `major outage` when `outage` is a keyword can test for containment there.
pub fn fightin_words<S: AsRef<str>>(
    docs: &[S],
    in_class: &[bool],
    is_covered: &dyn Fn(&str) -> bool,
    opts: &PhraseOptions,
) -> Result<Vec<Candidate>> {
    ensure!(
        docs.len() == in_class.len(),
        "{} documents but {} labels",
        docs.len(),
        in_class.len()
    );
    ensure!(opts.max_n >= 1, "max_n must be at least 1");
    ensure!(
        opts.prior_scale.is_finite() && opts.prior_scale > 0.0,
        "prior_scale must be > 0, got {}",
        opts.prior_scale
    );
    // term -> (emails in class, other emails)
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    let (mut n_a, mut n_b) = (0.0f64, 0.0f64);
    for (doc, &a) in docs.iter().zip(in_class) {
        let distinct: HashSet<String> = terms(doc.as_ref(), opts.max_n).into_iter().collect();
        for term in distinct {
            let entry = counts.entry(term).or_default();
            if a {
                entry.0 += 1;
                n_a += 1.0;
            } else {
                entry.1 += 1;
                n_b += 1.0;
            }
        }
    }
    let alpha_0 = opts.prior_scale * (n_a + n_b);
    let mut out: Vec<Candidate> = counts
        .into_iter()
        .filter(|(term, (ya, _))| {
            *ya >= opts.min_count
                && !(opts.stop_words && has_stop_word_edge(term))
                && !is_covered(term)
        })
        .map(|(phrase, (ya, yb))| {
            let z = z_score(ya as f64, yb as f64, n_a, n_b, opts.prior_scale, alpha_0);
            Candidate {
                phrase,
                z,
                count_in_class: ya,
                count_other: yb,
            }
        })
        .filter(|c| c.z > opts.min_z)
        .collect();
    out.sort_by(|a, b| b.z.total_cmp(&a.z).then_with(|| a.phrase.cmp(&b.phrase)));
    if let Some(limit) = opts.limit {
        out.truncate(limit);
    }
    Ok(out)
}

/// True for a stop word, or an n-gram whose first or last word is one ("is down", "of the").
fn has_stop_word_edge(term: &str) -> bool {
    let mut words = term.split(' ');
    let first = words.next().unwrap_or(term);
    let last = words.next_back().unwrap_or(first);
    is_stop_word(first) || is_stop_word(last)
}

fn z_score(ya: f64, yb: f64, n_a: f64, n_b: f64, prior_scale: f64, alpha_0: f64) -> f64 {
    let alpha = prior_scale * (ya + yb);
    let log_odds_a = ((ya + alpha) / (n_a + alpha_0 - ya - alpha)).ln();
    let log_odds_b = ((yb + alpha) / (n_b + alpha_0 - yb - alpha)).ln();
    let variance = 1.0 / (ya + alpha) + 1.0 / (yb + alpha);
    (log_odds_a - log_odds_b) / variance.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> PhraseOptions {
        PhraseOptions {
            min_count: 3,
            limit: None,
            ..PhraseOptions::default()
        }
    }

    /// 20 urgent and 80 other emails; "server down" only in urgent ones, "invoice" only in
    /// others, "hello" in every email, "kitten" in 3 urgent ones.
    fn corpus() -> (Vec<String>, Vec<bool>) {
        let mut docs = Vec::new();
        let mut urgent = Vec::new();
        for i in 0..100 {
            let a = i < 20;
            let mut text = String::from("Hello team, ");
            if a {
                text.push_str("the server down since this morning. ");
                if i < 3 {
                    text.push_str("My kitten says hi. ");
                }
            } else {
                text.push_str("question about the invoice for the account. ");
            }
            text.push_str(&format!("ticket{i}"));
            docs.push(text);
            urgent.push(a);
        }
        (docs, urgent)
    }

    #[test]
    fn stop_word_list_is_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_stop_word("the") && !is_stop_word("not") && !is_stop_word("down"));
    }

    #[test]
    fn finds_the_class_marker_and_skips_noise() {
        let (docs, urgent) = corpus();
        let out = fightin_words(&docs, &urgent, &|_| false, &opts()).unwrap();
        let phrases: Vec<&str> = out.iter().map(|c| c.phrase.as_str()).collect();
        // "hello" is everywhere (z ≈ 0), "invoice" marks the other class, "kitten" is too rare
        // to be evidence (z ≈ 1.8), and "the server" / "this morning" have stop-word edges.
        assert!(phrases.contains(&"server down"), "{phrases:?}");
        for absent in [
            "hello",
            "invoice",
            "the",
            "kitten",
            "the server",
            "this morning",
        ] {
            assert!(!phrases.contains(&absent), "{absent} in {phrases:?}");
        }
        let sd = out.iter().find(|c| c.phrase == "server down").unwrap();
        assert_eq!((sd.count_in_class, sd.count_other), (20, 0));
        assert!(out.windows(2).all(|w| w[0].z >= w[1].z), "sorted by z");
    }

    #[test]
    fn covered_phrases_min_count_and_limit_are_honoured() {
        let (docs, urgent) = corpus();
        let covered = |p: &str| p.split(' ').any(|w| w == "server");
        let out = fightin_words(&docs, &urgent, &covered, &opts()).unwrap();
        assert!(out.iter().all(|c| !c.phrase.contains("server")), "{out:?}");
        assert!(out.iter().any(|c| c.phrase == "down"));
        let strict = PhraseOptions {
            min_count: 21,
            ..opts()
        };
        assert!(
            fightin_words(&docs, &urgent, &|_| false, &strict)
                .unwrap()
                .is_empty()
        );
        let top = PhraseOptions {
            limit: Some(2),
            ..opts()
        };
        assert_eq!(
            fightin_words(&docs, &urgent, &|_| false, &top)
                .unwrap()
                .len(),
            2
        );
        let with_stop = PhraseOptions {
            stop_words: false,
            ..opts()
        };
        let out = fightin_words(&docs, &urgent, &|_| false, &with_stop).unwrap();
        assert!(out.iter().any(|c| c.phrase == "the server"), "{out:?}");
    }

    #[test]
    fn z_matches_the_formula_by_hand() {
        // Class A: "x y", "x", "z"; other: "y", "z", "z w". Email counts per term:
        // x (2, 0), y (1, 1), z (1, 2), w (0, 1), "x y" (1, 0), "z w" (0, 1).
        let docs = ["x y", "x", "z", "y", "z", "z w"];
        let a = [true, true, true, false, false, false];
        let o = PhraseOptions {
            min_count: 1,
            min_z: f64::NEG_INFINITY,
            stop_words: false,
            limit: None,
            prior_scale: 0.5,
            ..PhraseOptions::default()
        };
        let out = fightin_words(&docs, &a, &|_| false, &o).unwrap();
        let (n_a, n_b) = (5.0f64, 5.0f64);
        let alpha_0 = 0.5 * (n_a + n_b);
        let alpha = 0.5 * 2.0;
        let delta = ((2.0 + alpha) / (n_a + alpha_0 - 2.0 - alpha)).ln()
            - (alpha / (n_b + alpha_0 - alpha)).ln();
        let want = delta / (1.0 / (2.0 + alpha) + 1.0 / alpha).sqrt();
        let x = out.iter().find(|c| c.phrase == "x").unwrap();
        assert!((x.z - want).abs() < 1e-12, "{} vs {want}", x.z);
        let y = out.iter().find(|c| c.phrase == "y").unwrap();
        assert!(
            y.z.abs() < 1e-12,
            "equal counts, equal totals: z = 0, got {}",
            y.z
        );
        assert_eq!(out[0].phrase, "x");
        // w and "z w" only occur outside the class; with min_count 1 they are filtered.
        assert!(out.iter().all(|c| c.count_in_class >= 1));
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        let err = fightin_words(&["a"], &[], &|_| false, &opts()).unwrap_err();
        assert!(err.to_string().contains("1 documents but 0 labels"));
    }
}
