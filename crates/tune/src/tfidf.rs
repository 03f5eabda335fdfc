//! Tokenizer and TF-IDF features for the text-classifier yardstick.
//!
//! Tokens follow the rule engine's matching (see `docs/rules.md`) so that a phrase found here
//! can be pasted into a rule and match the same mail:
//!
//! - text is normalised like the scorer does: Unicode NFKC, then lower case; the typographic
//!   apostrophe `’` becomes `'`;
//! - a word is a maximal run of alphanumeric characters or `_` (the regex `\w` class, minus
//!   combining marks, which NFKC has mostly composed away); an apostrophe between two word
//!   characters stays inside the word, so `can't` is one token, not `can` + `t`;
//! - n-grams (words joined by one space) never span anything but whitespace: `server. down`
//!   yields no `server down`, because a rule keyword `server down` would not match it either.
//!
//! Features are scikit-learn's `TfidfVectorizer(ngram_range=(1, max_n), sublinear_tf=True)`:
//! `tf' = 1 + ln tf`, `idf = ln((1 + n) / (1 + df)) + 1`, rows scaled to unit length.

use std::collections::{HashMap, HashSet};

use anyhow::{Result, ensure};
use unicode_normalization::UnicodeNormalization;

use super::sparse::{Matrix, SparseVec};

/// Words of `text` in runs: consecutive words separated only by whitespace share a run.
pub fn word_runs(text: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = text
        .nfkc()
        .flat_map(char::to_lowercase)
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut runs = Vec::new();
    let mut run: Vec<String> = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let inner_apostrophe =
            c == '\'' && !word.is_empty() && chars.get(i + 1).is_some_and(|&next| is_word(next));
        if is_word(c) || inner_apostrophe {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            run.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() && !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !word.is_empty() {
        run.push(word);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// All words of `text`, in order.
pub fn tokenize(text: &str) -> Vec<String> {
    word_runs(text).into_iter().flatten().collect()
}

/// Unigrams, then 2-grams up to `max_n`-grams within runs, in text order (repeats kept).
pub fn terms(text: &str, max_n: usize) -> Vec<String> {
    let runs = word_runs(text);
    let mut out: Vec<String> = runs.iter().flatten().cloned().collect();
    for n in 2..=max_n {
        for run in &runs {
            out.extend(run.windows(n).map(|w| w.join(" ")));
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct TfidfOptions {
    /// Longest n-gram (1 = words only, 2 = words and word pairs).
    pub max_n: usize,
    /// Drop terms seen in fewer training documents than this: a term in one email cannot
    /// generalise and only costs memory.
    pub min_df: usize,
    /// Drop terms in more than this fraction of documents (1.0 keeps all).
    pub max_df: f64,
    /// Keep only the most frequent terms (by total count, ties by term); `None` keeps all.
    pub max_features: Option<usize>,
    /// `1 + ln tf` instead of raw counts, so a word repeated ten times is not ten times the
    /// evidence.
    pub sublinear_tf: bool,
}

impl Default for TfidfOptions {
    fn default() -> Self {
        Self {
            max_n: 2,
            min_df: 2,
            max_df: 1.0,
            max_features: Some(50_000),
            sublinear_tf: true,
        }
    }
}

/// A fitted vocabulary with its inverse document frequencies.
#[derive(Debug, Clone, PartialEq)]
pub struct Tfidf {
    /// Sorted, so column numbers do not depend on hash order or document order.
    vocabulary: Vec<String>,
    index: HashMap<String, usize>,
    idf: Vec<f64>,
    max_n: usize,
    sublinear_tf: bool,
}

impl Tfidf {
    /// Learns the vocabulary and idf from training texts only (fitting on test texts would leak
    /// their vocabulary into the evaluation).
    pub fn fit<S: AsRef<str>>(texts: &[S], opts: &TfidfOptions) -> Result<Self> {
        ensure!(opts.max_n >= 1, "max_n must be at least 1");
        ensure!(opts.min_df >= 1, "min_df must be at least 1");
        ensure!(
            opts.max_df > 0.0 && opts.max_df <= 1.0,
            "max_df is a fraction in (0, 1], got {}",
            opts.max_df
        );
        // term -> (documents containing it, total occurrences)
        let mut stats: HashMap<String, (usize, usize)> = HashMap::new();
        for text in texts {
            let mut seen: HashSet<String> = HashSet::new();
            for term in terms(text.as_ref(), opts.max_n) {
                let entry = stats.entry(term.clone()).or_default();
                entry.1 += 1;
                if seen.insert(term) {
                    entry.0 += 1;
                }
            }
        }
        let n = texts.len();
        let max_df = opts.max_df * n as f64;
        let mut kept: Vec<(String, usize, usize)> = stats
            .into_iter()
            .filter(|&(_, (df, _))| df >= opts.min_df && df as f64 <= max_df)
            .map(|(term, (df, tf))| (term, df, tf))
            .collect();
        if let Some(limit) = opts.max_features {
            kept.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
            kept.truncate(limit);
        }
        kept.sort_by(|a, b| a.0.cmp(&b.0));
        let idf = kept
            .iter()
            .map(|&(_, df, _)| ((1 + n) as f64 / (1 + df) as f64).ln() + 1.0)
            .collect();
        let vocabulary: Vec<String> = kept.into_iter().map(|(term, _, _)| term).collect();
        let index = vocabulary
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        Ok(Self {
            vocabulary,
            index,
            idf,
            max_n: opts.max_n,
            sublinear_tf: opts.sublinear_tf,
        })
    }

    /// Column `j` is `vocabulary()[j]`.
    pub fn vocabulary(&self) -> &[String] {
        &self.vocabulary
    }

    pub fn idf(&self) -> &[f64] {
        &self.idf
    }

    pub fn n_features(&self) -> usize {
        self.vocabulary.len()
    }

    /// The column of `term`, if it is in the vocabulary.
    pub fn column(&self, term: &str) -> Option<usize> {
        self.index.get(term).copied()
    }

    /// One unit-length TF-IDF row; terms outside the vocabulary are ignored, and a text with
    /// none in it gives the empty row.
    pub fn transform(&self, text: &str) -> SparseVec {
        let mut columns: Vec<usize> = terms(text, self.max_n)
            .iter()
            .filter_map(|t| self.column(t))
            .collect();
        columns.sort_unstable();
        let mut pairs: Vec<(usize, f64)> = Vec::new();
        for column in columns {
            match pairs.last_mut() {
                Some(last) if last.0 == column => last.1 += 1.0,
                _ => pairs.push((column, 1.0)),
            }
        }
        for (column, value) in &mut pairs {
            let tf = if self.sublinear_tf {
                1.0 + value.ln()
            } else {
                *value
            };
            *value = tf * self.idf[*column];
        }
        let mut row = SparseVec::from_pairs(pairs);
        let norm = row.norm();
        if norm > 0.0 {
            row.scale(1.0 / norm);
        }
        row
    }

    pub fn transform_all<S: AsRef<str>>(&self, texts: &[S]) -> Result<Matrix> {
        let rows = texts.iter().map(|t| self.transform(t.as_ref())).collect();
        Matrix::new(rows, self.n_features())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_table() {
        let cases: &[(&str, &[&[&str]])] = &[
            ("Server DOWN", &[&["server", "down"]]),
            ("server.  down", &[&["server"], &["down"]]),
            ("Can’t log-in", &[&["can't", "log"], &["in"]]),
            ("ＵＲＧＥＮＴ: foo_bar", &[&["urgent"], &["foo_bar"]]),
            (
                "users' data 'quoted'",
                &[&["users"], &["data"], &["quoted"]],
            ),
            ("Straße\nist\tgesperrt", &[&["straße", "ist", "gesperrt"]]),
            ("error 500!!! now", &[&["error", "500"], &["now"]]),
            ("  ...  ", &[]),
        ];
        for (text, want) in cases {
            let got = word_runs(text);
            let want: Vec<Vec<String>> = want
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(got, want, "text {text:?}");
        }
        assert_eq!(tokenize("a. b c"), vec!["a", "b", "c"]);
    }

    #[test]
    fn bigrams_stay_within_runs() {
        assert_eq!(
            terms("Server is down. Help", 2),
            vec!["server", "is", "down", "help", "server is", "is down"]
        );
        assert_eq!(terms("a b c", 1), vec!["a", "b", "c"]);
    }

    #[test]
    fn fit_keeps_frequent_terms_in_sorted_order_with_smooth_idf() {
        let texts = [
            "server down",
            "server down now",
            "billing question",
            "server ok",
        ];
        let opts = TfidfOptions {
            min_df: 2,
            ..TfidfOptions::default()
        };
        let t = Tfidf::fit(&texts, &opts).unwrap();
        assert_eq!(t.vocabulary(), &["down", "server", "server down"]);
        // df(server) = 3 of 4 documents; df(down) = 2.
        let idf_server = (5.0f64 / 4.0).ln() + 1.0;
        let idf_down = (5.0f64 / 3.0).ln() + 1.0;
        assert!((t.idf()[1] - idf_server).abs() < 1e-12);
        assert!((t.idf()[0] - idf_down).abs() < 1e-12);
        assert_eq!(t.column("server down"), Some(2));
        assert_eq!(t.column("billing"), None);
    }

    #[test]
    fn rows_are_unit_length_sublinear_and_ignore_unknown_terms() {
        let texts = ["down down down server", "server", "down"];
        let opts = TfidfOptions {
            min_df: 1,
            max_n: 1,
            ..TfidfOptions::default()
        };
        let t = Tfidf::fit(&texts, &opts).unwrap();
        let row = t.transform("down down down server unheard");
        assert!((row.norm() - 1.0).abs() < 1e-12);
        // Both words have df 2 of 3, so equal idf: the ratio is the tf ratio, 1 + ln 3 : 1.
        let (down, server) = (t.column("down").unwrap(), t.column("server").unwrap());
        assert!((row.get(down) / row.get(server) - (1.0 + 3f64.ln())).abs() < 1e-12);
        assert_eq!(row.nnz(), 2);
        assert!(t.transform("nothing known here").is_empty());
        let raw = Tfidf::fit(
            &texts,
            &TfidfOptions {
                sublinear_tf: false,
                ..opts
            },
        )
        .unwrap();
        let row = raw.transform("down down down server");
        assert!((row.get(down) / row.get(server) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn max_features_and_max_df_prune_deterministically() {
        let texts = ["a b c", "a b", "a c", "a d", "b d"];
        let opts = TfidfOptions {
            min_df: 1,
            max_n: 1,
            max_features: Some(3),
            ..TfidfOptions::default()
        };
        // Counts a 4, b 3, c 2, d 2: the tie between c and d goes to c.
        let t = Tfidf::fit(&texts, &opts).unwrap();
        assert_eq!(t.vocabulary(), &["a", "b", "c"]);
        assert_eq!(t, Tfidf::fit(&texts, &opts).unwrap());
        let t = Tfidf::fit(
            &texts,
            &TfidfOptions {
                max_df: 0.7,
                max_features: None,
                ..opts
            },
        )
        .unwrap();
        assert_eq!(t.vocabulary(), &["b", "c", "d"], "a is in 80% of documents");
        let m = t.transform_all(&texts).unwrap();
        assert_eq!((m.n_rows(), m.n_features()), (5, 3));
    }

    #[test]
    fn bad_options_are_refused() {
        let texts = ["x"];
        for opts in [
            TfidfOptions {
                max_n: 0,
                ..TfidfOptions::default()
            },
            TfidfOptions {
                min_df: 0,
                ..TfidfOptions::default()
            },
            TfidfOptions {
                max_df: 0.0,
                ..TfidfOptions::default()
            },
        ] {
            assert!(Tfidf::fit(&texts, &opts).is_err(), "{opts:?}");
        }
    }
}
