//! Scoring: operator-written rules from TOML, compiled once, applied to every email by a pure
//! function of (email, rules, thresholds, customer history, now).
//!
//! A rule looks for keywords (all phrases of one text source found together, word by word:
//! `words`), a regex (pre-filtered with one `RegexSet` per source), sender addresses, a
//! structural signal (share of capitals, `!!!` runs, length, earlier contacts, a reply to an
//! answered ticket), or combines other rules (`meta`: and/or/not, `2 of [...]`). A rule that fires
//! adds `weight` once, or once per occurrence up to `max_hits`; groups cap what their rules add
//! together; the sum maps to a priority through thresholds. Rules also attach tone labels and
//! intents. Every hit carries the rule, where it matched, the matched text and its weight, so a
//! verdict can always be explained. See docs/rules.md for the language.

mod explain;
pub mod forms;
mod load;
pub mod meta;
pub mod text;
mod weights;
mod words;

use std::sync::Arc;

use regex::{Regex, RegexSet};
use smol_str::SmolStr;

use crate::parse::Email;

pub use explain::{explain_json, explain_text};
pub use load::load_rules;
pub use text::normalise;
pub use weights::{load_weights, weights_file};

/// Urgency class, most urgent first (so `Ord` sorts urgent first).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Urgent,
    High,
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Urgent,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// Minimum score for each class; below `normal` is `low`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub urgent: f64,
    pub high: f64,
    pub normal: f64,
    /// The priority of an email no weighted rule fired on (`[scoring] no_evidence`): a plain
    /// report that matches nothing is not "can wait"; `low` takes evidence.
    pub no_evidence: Priority,
}

impl Thresholds {
    /// The default thresholds: urgent >= 8, high >= 4, normal >= 1, no evidence = normal.
    pub const DEFAULT: Thresholds = Thresholds {
        urgent: 8.0,
        high: 4.0,
        normal: 1.0,
        no_evidence: Priority::Normal,
    };

    /// The priority of a score (for an email some weighted rule fired on).
    pub fn priority(&self, score: f64) -> Priority {
        if score >= self.urgent {
            Priority::Urgent
        } else if score >= self.high {
            Priority::High
        } else if score >= self.normal {
            Priority::Normal
        } else {
            Priority::Low
        }
    }
}

/// A text of the email that rules read, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Subject,
    /// The body in the customer's own words: quoted lines and the signature left out.
    Body,
    /// The sender's display name and address, as `name <address>`.
    From,
    FromAddress,
    FromDomain,
    /// A header by (lower-case) name; several occurrences are joined.
    Header(String),
}

impl Source {
    pub fn name(&self) -> String {
        match self {
            Source::Subject => "subject".into(),
            Source::Body => "body".into(),
            Source::From => "from".into(),
            Source::FromAddress => "from.address".into(),
            Source::FromDomain => "from.domain".into(),
            Source::Header(h) => format!("header:{h}"),
        }
    }
}

/// A structural property of the email or of its sender's history.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Share of upper-case letters among the letters of subject and body (0 when fewer than
    /// `min_letters`: a short "OK" is not shouting).
    CapsRatio { min_letters: usize },
    /// The longest run of `!`/`?` in subject and body.
    PunctuationRun,
    /// Words in the body (own words only).
    Words,
    /// Earlier emails from the same sender within the window (the "chronic" customer).
    EarlierContacts { within_secs: i64 },
    /// 1 when the email replies to a ticket staff already answered, else 0.
    ReplyToAnswered,
}

impl Signal {
    /// Where a hit of a rule reading this signal matched: `signal:NAME`.
    fn target(&self) -> &'static str {
        match self {
            Signal::CapsRatio { .. } => "signal:caps_ratio",
            Signal::PunctuationRun => "signal:punctuation_run",
            Signal::Words => "signal:words",
            Signal::EarlierContacts { .. } => "signal:earlier_contacts",
            Signal::ReplyToAnswered => "signal:reply_to_answered",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Signal::CapsRatio { .. } => "caps_ratio",
            Signal::PunctuationRun => "punctuation_run",
            Signal::Words => "words",
            Signal::EarlierContacts { .. } => "earlier_contacts",
            Signal::ReplyToAnswered => "reply_to_answered",
        }
    }
}

/// How a rule decides that it fired.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Phrases on word boundaries; they live in the rule set's keyword matchers.
    Keywords(Vec<String>),
    Regex(Regex),
    /// Sender addresses (`ceo@example.com`) or domains (`example.com`, which also covers its
    /// subdomains).
    Senders(Vec<String>),
    Signal {
        signal: Signal,
        at_least: Option<f64>,
        at_most: Option<f64>,
    },
    /// Other rules combined; indices into the rule list.
    Meta(meta::Expr<usize>),
}

/// Negation guard: a match is ignored when one of these phrases stands among the `window`
/// words before it in the same clause ("not urgent", "no rush").
#[derive(Debug, Clone, PartialEq)]
pub struct Negation {
    pub phrases: Vec<Vec<String>>,
    pub window: usize,
}

/// A group of rules whose summed contribution is clamped.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub description: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    /// Where the rule looks (keywords, regex). Empty for senders, signals and meta rules.
    pub sources: Vec<Source>,
    pub matcher: Matcher,
    pub weight: f64,
    /// 1: counts once however often it matches; N: each distinct occurrence counts, up to N.
    pub max_hits: u32,
    pub negation: Option<Arc<Negation>>,
    pub tone: Option<String>,
    pub intent: Option<String>,
    /// A hit raises an instant alert to staff (`[alerts]`), once per ticket.
    pub alert: bool,
    /// Index into the rule set's groups.
    pub group: Option<usize>,
    /// `file:line` where it is defined, for explanations.
    pub origin: String,
    /// With a label: each counted occurrence adds this to the label's evidence instead of
    /// attaching the label; the label is attached when its evidence reaches
    /// [`EVIDENCE_BAR`] (learned rules: a linear model, readable rule by rule).
    pub evidence: Option<f64>,
    /// Keyword phrases with gaps (`locked ~2 out`), each a regex tried, anchored, where the
    /// keyword matcher finds its first word (and the text has the words the rest needs).
    pub gaps: Vec<regex_automata::meta::Regex>,
}

/// A label whose rules carry `evidence` is attached when their evidence adds up to this.
pub const EVIDENCE_BAR: f64 = 1.0;

/// The evidence summed for one label (rules with `evidence`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LabelEvidence {
    /// `tone` or `intent`.
    pub kind: &'static str,
    pub label: SmolStr,
    pub sum: f64,
    /// `sum >= EVIDENCE_BAR`: the label is on the verdict.
    pub given: bool,
}

/// Where the keywords of one source are found: every phrase of every rule, matched word by word.
#[derive(Debug, Clone)]
struct Scan {
    source: Source,
    phrases: Arc<words::Phrases>,
    /// Per pattern: the rules it serves.
    patterns: Vec<Pattern>,
    /// Per gap phrase: per word after its first, the token ids one of which a text must have
    /// for the phrase's regex to match (see [`forms::later_words`]).
    gap_needs: Vec<Vec<Vec<u32>>>,
}

#[derive(Debug, Clone)]
struct Pattern {
    rules: Vec<usize>,
    /// (rule, index into its `gaps`, index into the scan's `gap_needs`): gap phrases starting
    /// with this word.
    gaps: Vec<(usize, usize, usize)>,
}

/// The regex rules reading one source, pre-filtered together.
#[derive(Debug, Clone)]
struct RegexScan {
    source: Source,
    set: RegexSet,
    rules: Vec<usize>,
}

#[derive(Debug, Clone, Default)]
struct Inner {
    rules: Vec<Rule>,
    groups: Vec<Group>,
    scans: Vec<Scan>,
    regex_scans: Vec<RegexScan>,
    /// Meta rules, each after the meta rules it uses.
    meta_order: Vec<usize>,
    /// Sender and signal rules, in rule order.
    sender_and_signal_rules: Vec<usize>,
    /// Header names some rule reads.
    headers: Vec<String>,
    /// The longest `earlier_contacts` window, so the store knows how far back to look.
    history_window_secs: i64,
    /// Per rule: its id, shared by every hit of it.
    ids: Vec<SmolStr>,
    /// The texts occurrences name by their place here: the keyword scans' sources, then the
    /// regex scans', each with its name.
    sources: Vec<(Source, SmolStr)>,
    /// The labels rules with `evidence` speak for, sorted by kind, then label.
    evidence_labels: Vec<(&'static str, SmolStr)>,
    /// Per rule: its label's place in `evidence_labels` (rules with `evidence`).
    evidence_slot: Vec<Option<usize>>,
    /// Per meta rule (in `meta_order`'s order): the rules its expression names, in rule order.
    meta_names: Vec<Vec<usize>>,
}

/// A compiled rule set. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    inner: Arc<Inner>,
}

/// What the store knows about the sender, for the history signals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Arrival times (seconds) of earlier emails from the same sender.
    pub earlier_contacts: Vec<i64>,
    /// The email replies to a ticket that staff already answered.
    pub reply_to_answered: bool,
}

/// One rule that fired. Its texts are [`SmolStr`]s: a large pack's hundred hits per email
/// share the rule's id and hold short matched words in place, not a hundred strings each.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    pub rule: SmolStr,
    /// Where it matched: a source name, `sender`, `signal:NAME` or `meta`.
    pub target: SmolStr,
    /// The first matched text (normalised, at most 80 characters), the signal's value, or the
    /// meta expression's rules that fired.
    pub matched: SmolStr,
    /// Occurrences counted (at most the rule's `max_hits`).
    pub count: u32,
    /// What the rule adds before group caps: weight x count.
    pub weight: f64,
}

/// A group cap that changed the score.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CapApplied {
    pub group: String,
    /// What the group's rules added together.
    pub raw: f64,
    /// What it was clamped to.
    pub capped: f64,
}

/// The outcome of scoring one email.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub score: f64,
    pub priority: Priority,
    /// Tone labels, sorted, deduplicated.
    pub tones: Vec<String>,
    /// Intents (cancel, refund, legal-threat, ...), sorted, deduplicated.
    pub intents: Vec<String>,
    /// In rule order.
    pub hits: Vec<Hit>,
    pub caps: Vec<CapApplied>,
    /// Labels that rules with `evidence` spoke for, given or not, sorted.
    pub evidence: Vec<LabelEvidence>,
}

impl RuleSet {
    /// Load and compile every rule file and run the rules' inline examples; all problems at
    /// once, each with file:line:col.
    pub fn load(files: &[&std::path::Path]) -> Result<RuleSet, Vec<crate::diag::Diagnostic>> {
        load_rules(files)
    }

    pub fn len(&self) -> usize {
        self.inner.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.rules.is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.inner.rules
    }

    pub fn groups(&self) -> &[Group] {
        &self.inner.groups
    }

    /// How far back the store must look for [`History::earlier_contacts`] (0: no rule asks).
    pub fn history_window_secs(&self) -> i64 {
        self.inner.history_window_secs
    }

    /// The same rules with some weights replaced (from `triaged tune`); unknown ids are
    /// returned as an error.
    pub fn with_weights(
        &self,
        weights: &std::collections::BTreeMap<String, f64>,
    ) -> Result<RuleSet, Vec<String>> {
        let mut inner = (*self.inner).clone();
        let mut unknown = Vec::new();
        for (id, w) in weights {
            match inner.rules.iter_mut().find(|r| &r.id == id) {
                Some(r) => r.weight = *w,
                None => unknown.push(id.clone()),
            }
        }
        if unknown.is_empty() {
            Ok(RuleSet {
                inner: Arc::new(inner),
            })
        } else {
            Err(unknown)
        }
    }
}

/// The normalised texts of one email that the rule set reads.
struct Texts<'e> {
    subject: &'e str,
    body: &'e str,
    from: String,
    from_address: String,
    from_domain: String,
    headers: Vec<(String, String)>,
    /// Subject and body (own words only) as written, for the signals that read them so.
    raw: (&'e str, &'e str),
    /// Upper-case letters and letters in subject and body as written, counted when a rule
    /// first asks.
    caps: std::cell::OnceCell<(usize, usize)>,
    /// The longest run of `!`/`?` in subject or body, measured when a rule first asks.
    punctuation_run: std::cell::OnceCell<usize>,
    /// Words in the body, counted when a rule first asks.
    words: std::cell::OnceCell<usize>,
}

/// Where an email's normalised subject and body (and its own words, when a quote or a
/// signature is left out) are written: kept per thread, so four kilobytes of mail are not
/// allocated and freed again for every email.
#[derive(Default)]
struct TextBuffers {
    subject: String,
    body: String,
    own: String,
}

impl<'e> Texts<'e> {
    fn new(email: &'e Email, rules: &Inner, buffers: &'e mut TextBuffers) -> Texts<'e> {
        let TextBuffers { subject, body, own } = buffers;
        let own = text::own_words_into(&email.body_text, own);
        text::normalise_into(&email.subject, subject);
        text::normalise_into(own, body);
        let (from, from_address, from_domain) = match email.from.as_ref() {
            Some(a) => (
                normalise(&format!(
                    "{} <{}>",
                    a.name.as_deref().unwrap_or(""),
                    a.email
                )),
                a.email.to_ascii_lowercase(),
                a.domain().to_ascii_lowercase(),
            ),
            None => Default::default(),
        };
        let headers = rules
            .headers
            .iter()
            .map(|h| {
                let joined: Vec<&str> = email
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(h))
                    .map(|(_, v)| v.as_str())
                    .collect();
                (h.clone(), normalise(&joined.join(" | ")))
            })
            .collect();
        Texts {
            subject,
            body,
            from,
            from_address,
            from_domain,
            headers,
            raw: (&email.subject, own),
            caps: std::cell::OnceCell::new(),
            punctuation_run: std::cell::OnceCell::new(),
            words: std::cell::OnceCell::new(),
        }
    }

    fn get(&self, s: &Source) -> &str {
        match s {
            Source::Subject => self.subject,
            Source::Body => self.body,
            Source::From => &self.from,
            Source::FromAddress => &self.from_address,
            Source::FromDomain => &self.from_domain,
            Source::Header(h) => self
                .headers
                .iter()
                .find(|(n, _)| n == h)
                .map_or("", |(_, v)| v.as_str()),
        }
    }
}

/// One counted occurrence of a rule.
#[derive(Debug, Clone, Copy)]
struct Occurrence {
    source: usize,
    start: usize,
    end: usize,
}

/// A rule's counted occurrences. Most rules count once (`max_hits = 1`), so the first is held
/// in place and only further ones take the heap: a hundred hits are not a hundred allocations.
#[derive(Debug, Clone, Default)]
struct Occurrences {
    first: Option<Occurrence>,
    more: Vec<Occurrence>,
}

impl Occurrences {
    const NONE: Occurrences = Occurrences {
        first: None,
        more: Vec::new(),
    };

    fn first(&self) -> Option<&Occurrence> {
        self.first.as_ref()
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn iter(&self) -> impl Iterator<Item = &Occurrence> {
        self.first.iter().chain(&self.more)
    }

    fn push(&mut self, o: Occurrence) {
        if self.first.is_none() {
            self.first = Some(o);
        } else {
            self.more.push(o);
        }
    }
}

/// Per rule: what was found.
#[derive(Debug, Clone, Default)]
struct Found {
    occurrences: Occurrences,
    /// Occurrences looked at, counted or not (negated, overlapping): bounded by
    /// [`examine_budget`], so a flood of negated matches costs no more than a full rule.
    examined: u32,
    /// For senders, signals and meta rules: fired, and what to show.
    fired: Option<SmolStr>,
}

/// What was found, for the few rules that found anything: an email touches a handful of a
/// thousand rules, so a slot per rule is an index, not a [`Found`] to allocate and drop.
#[derive(Default)]
struct Founds {
    /// Per rule: its place in `list`, or `u32::MAX`.
    slot: Vec<u32>,
    list: Vec<Found>,
    /// A bit per rule, set for the rules in `list`: read in rule order without sorting.
    touched: Vec<u64>,
}

/// What scoring one email needs besides its texts and its verdict, kept per thread for the
/// next email: with a pack of a thousand rules, growing these afresh for every email cost
/// more than the work they hold.
#[derive(Default)]
struct Scratch {
    found: Founds,
    /// (pattern, start, end) of the keywords found in one text.
    matches: Vec<(usize, usize, usize)>,
    room: words::Room,
    texts: TextBuffers,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::default();
}

/// What an untouched rule found: nothing.
static NOTHING: Found = Found {
    occurrences: Occurrences::NONE,
    examined: 0,
    fired: None,
};

impl Founds {
    /// Nothing found yet, for `rules` rules.
    fn reset(&mut self, rules: usize) {
        if self.slot.len() == rules {
            // Only the touched slots were set.
            for r in set_bits(&self.touched) {
                self.slot[r] = u32::MAX;
            }
        } else {
            self.slot.clear();
            self.slot.resize(rules, u32::MAX);
        }
        self.list.clear();
        self.touched.clear();
        self.touched.resize(rules.div_ceil(64), 0);
    }

    /// The rules that found something (or looked), in rule order: the others have nothing to
    /// add, and a large pack has many.
    fn touched(&self) -> impl Iterator<Item = usize> + '_ {
        set_bits(&self.touched)
    }

    fn get(&self, r: usize) -> &Found {
        match self.slot[r] {
            u32::MAX => &NOTHING,
            i => &self.list[i as usize],
        }
    }

    fn entry(&mut self, r: usize) -> &mut Found {
        if self.slot[r] == u32::MAX {
            // Fewer rules than u32::MAX: the loader holds them in memory.
            self.slot[r] = self.list.len() as u32;
            self.list.push(Found::default());
            self.touched[r / 64] |= 1 << (r % 64);
        }
        &mut self.list[self.slot[r] as usize]
    }
}

/// The places of the set bits of a bit set, in order.
fn set_bits(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(i, &word)| {
        let mut bits = word;
        std::iter::from_fn(move || {
            let bit = (bits != 0).then(|| bits.trailing_zeros() as usize)?;
            bits &= bits - 1;
            Some(64 * i + bit)
        })
    })
}

fn negated(neg: &Negation, text: &str, start: usize) -> bool {
    let mut words = [""; text::MAX_WINDOW];
    let k = text::words_before_into(text, start, neg.window, &mut words);
    neg.phrases
        .iter()
        .any(|p| text::contains_words(&words[..k], p))
}

/// Most occurrences of one rule looked at in one email: its `max_hits`, and as many again
/// (at least 16) for negated or overlapping ones.
fn examine_budget(rule: &Rule) -> u32 {
    rule.max_hits.saturating_mul(2).max(rule.max_hits + 16)
}

/// Whether the rule can take no more occurrences: full, or its look-at budget spent.
fn done(found: &Found, rule: &Rule) -> bool {
    found.occurrences.len() >= rule.max_hits as usize || found.examined >= examine_budget(rule)
}

/// Record an occurrence unless the rule is done, the match is negated, or it overlaps one
/// already counted (two phrases of one rule matching the same words count once).
fn add(found: &mut Found, rule: &Rule, text: &str, source: usize, start: usize, end: usize) {
    if done(found, rule) {
        return;
    }
    found.examined += 1;
    if found
        .occurrences
        .iter()
        .any(|o| o.source == source && o.start < end && start < o.end)
    {
        return;
    }
    if let Some(neg) = &rule.negation
        && negated(neg, text, start)
    {
        return;
    }
    found.occurrences.push(Occurrence { source, start, end });
}

fn signal_value(signal: &Signal, t: &Texts, history: &History, now: i64) -> f64 {
    match signal {
        Signal::CapsRatio { min_letters } => {
            let (upper, letters) = *t.caps.get_or_init(|| {
                let (a, b) = (text::caps_counts(t.raw.0), text::caps_counts(t.raw.1));
                (a.0 + b.0, a.1 + b.1)
            });
            if letters < *min_letters.max(&1) {
                0.0
            } else {
                upper as f64 / letters as f64
            }
        }
        Signal::PunctuationRun => *t
            .punctuation_run
            .get_or_init(|| text::punctuation_run(t.raw.0).max(text::punctuation_run(t.raw.1)))
            as f64,
        Signal::Words => *t.words.get_or_init(|| text::word_count(t.body)) as f64,
        Signal::EarlierContacts { within_secs } => history
            .earlier_contacts
            .iter()
            .filter(|&&at| at <= now && at >= now - within_secs)
            .count() as f64,
        Signal::ReplyToAnswered => f64::from(u8::from(history.reply_to_answered)),
    }
}

fn sender_matches<'p>(patterns: &'p [String], address: &str, domain: &str) -> Option<&'p str> {
    if address.is_empty() {
        return None;
    }
    patterns
        .iter()
        .find(|p| {
            if p.contains('@') {
                p.as_str() == address
            } else {
                domain == p.as_str()
                    || domain
                        .strip_suffix(p.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            }
        })
        .map(String::as_str)
}

/// At most 80 characters of a matched text: short ones (most) held in place.
fn snippet(text: &str) -> SmolStr {
    // No more bytes than 80 is no more characters than 80.
    if text.len() <= 80 || text.chars().count() <= 80 {
        SmolStr::new(text)
    } else {
        text.chars().take(79).chain(['…']).collect()
    }
}

/// A signal's value as shown: whole numbers as such, others with two decimals.
struct Number(f64);

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() < 1e9 {
            write!(f, "{}", v as i64)
        } else {
            write!(f, "{v:.2}")
        }
    }
}

/// Score an email. Pure: no I/O, no clock; `now` and the sender's history come in.
pub fn score(
    email: &Email,
    rules: &RuleSet,
    thresholds: &Thresholds,
    history: &History,
    now: i64,
) -> Verdict {
    let inner = &*rules.inner;
    // Taken, not borrowed: a panic while scoring leaves the thread a fresh one.
    let mut scratch = SCRATCH.with(std::cell::Cell::take);
    let Scratch {
        found,
        matches,
        room,
        texts,
    } = &mut scratch;
    let texts = Texts::new(email, inner, texts);
    found.reset(inner.rules.len());
    find_keywords(inner, &texts, found, matches, room);
    find_regexes(inner, &texts, found);
    fire_senders_and_signals(inner, &texts, history, now, found);
    fire_meta(inner, found);
    let mut tally = weigh(inner, &texts, found);
    drop(texts);
    SCRATCH.with(|s| s.set(scratch));
    let evidence = give_evidence(inner, &tally.evidence, &mut tally.tones, &mut tally.intents);
    let weighed = tally.hits.iter().any(|h| h.weight != 0.0);
    let (score, caps) = apply_caps(inner, &tally.hits, &tally.group_sums);
    Verdict {
        score,
        priority: if weighed {
            thresholds.priority(score)
        } else {
            thresholds.no_evidence
        },
        tones: tally.tones,
        intents: tally.intents,
        hits: tally.hits,
        caps,
        evidence,
    }
}

/// Keywords: each source's text cut into words once, its phrases followed word by word; a gap
/// phrase's regex is tried, anchored, where its first word is found, unless the text lacks
/// a word the rest of the phrase needs.
fn find_keywords(
    inner: &Inner,
    texts: &Texts,
    found: &mut Founds,
    matches: &mut Vec<(usize, usize, usize)>,
    room: &mut words::Room,
) {
    for (si, scan) in inner.scans.iter().enumerate() {
        let text = texts.get(&scan.source);
        if text.is_empty() {
            continue;
        }
        matches.clear();
        let words = scan
            .phrases
            .find(text, room, |p, start, end| matches.push((p, start, end)));
        if let (Source::Body, Some(n)) = (&scan.source, words) {
            // The body's words, counted on the way (the `words` signal reads them).
            let _ = texts.words.set(n);
        }
        for &(pattern, start, end) in matches.iter() {
            let p = &scan.patterns[pattern];
            for &r in &p.rules {
                add(found.entry(r), &inner.rules[r], text, si, start, end);
            }
            for &(r, g, need) in &p.gaps {
                let rule = &inner.rules[r];
                if done(found.get(r), rule)
                    || !scan.gap_needs[need].iter().all(|ids| room.present.any(ids))
                {
                    continue;
                }
                let input = regex_automata::Input::new(text)
                    .range(start..)
                    .anchored(regex_automata::Anchored::Yes);
                if let Some(hit) = rule.gaps[g].search(&input) {
                    add(found.entry(r), rule, text, si, hit.start(), hit.end());
                }
            }
        }
    }
}

/// Regexes: the set says which can match; only those are run. A source read by one regex
/// (the default pack's case) runs it at once: the set would read the text for nothing.
fn find_regexes(inner: &Inner, texts: &Texts, found: &mut Founds) {
    for (ri, scan) in inner.regex_scans.iter().enumerate() {
        let text = texts.get(&scan.source);
        if text.is_empty() {
            continue;
        }
        // Regex sources follow the keyword sources in `Inner::sources`.
        let si = inner.scans.len() + ri;
        let set = (scan.rules.len() > 1).then(|| scan.set.matches(text));
        for i in (0..scan.rules.len()).filter(|&i| set.as_ref().is_none_or(|m| m.matched(i))) {
            let r = scan.rules[i];
            let rule = &inner.rules[r];
            if let Matcher::Regex(re) = &rule.matcher {
                for m in re.find_iter(text) {
                    if done(found.get(r), rule) {
                        break;
                    }
                    add(found.entry(r), rule, text, si, m.start(), m.end());
                }
            }
        }
    }
}

fn fire_senders_and_signals(
    inner: &Inner,
    texts: &Texts,
    history: &History,
    now: i64,
    found: &mut Founds,
) {
    for &r in &inner.sender_and_signal_rules {
        match &inner.rules[r].matcher {
            Matcher::Senders(list) => {
                if let Some(who) = sender_matches(list, &texts.from_address, &texts.from_domain) {
                    found.entry(r).fired = Some(snippet(who));
                }
            }
            Matcher::Signal {
                signal,
                at_least,
                at_most,
            } => {
                let v = signal_value(signal, texts, history, now);
                if at_least.is_none_or(|min| v >= min) && at_most.is_none_or(|max| v <= max) {
                    let shown = smol_str::format_smolstr!("{}={}", signal.name(), Number(v));
                    found.entry(r).fired = Some(snippet(&shown));
                }
            }
            _ => {}
        }
    }
}

/// Meta rules, each after the ones it uses.
fn fire_meta(inner: &Inner, found: &mut Founds) {
    for (&r, names) in inner.meta_order.iter().zip(&inner.meta_names) {
        if let Matcher::Meta(expr) = &inner.rules[r].matcher {
            let fired = |i: &usize| {
                let f = found.get(*i);
                f.fired.is_some() || !f.occurrences.is_empty()
            };
            if expr.eval(&fired) {
                let mut which = names.iter().filter(|i| fired(i));
                let shown = match (which.next(), which.next()) {
                    // One rule (most learned meta rules): its id, shared.
                    (Some(&i), None) => inner.ids[i].clone(),
                    (first, second) => {
                        let mut joined = smol_str::SmolStrBuilder::new();
                        for (k, &i) in first.into_iter().chain(second).chain(which).enumerate() {
                            if k > 0 {
                                joined.push_str(" + ");
                            }
                            joined.push_str(&inner.rules[i].id);
                        }
                        joined.finish()
                    }
                };
                found.entry(r).fired = Some(if shown.len() <= 80 {
                    shown
                } else {
                    snippet(&shown)
                });
            }
        }
    }
}

/// What the rules that fired add up to, before group caps and the evidence bar.
struct Tally {
    hits: Vec<Hit>,
    /// Per group: what its rules added.
    group_sums: Vec<f64>,
    /// Sorted, deduplicated (a handful: a vector, not a tree).
    tones: Vec<String>,
    intents: Vec<String>,
    /// Per label of `Inner::evidence_labels`: the evidence summed, if a rule spoke for it.
    evidence: Vec<Option<f64>>,
}

/// Weights and labels of every rule that fired, in rule order.
fn weigh(inner: &Inner, texts: &Texts, found: &Founds) -> Tally {
    let mut t = Tally {
        hits: Vec::with_capacity(found.list.len()),
        group_sums: vec![0.0f64; inner.groups.len()],
        tones: Vec::new(),
        intents: Vec::new(),
        evidence: vec![None; inner.evidence_labels.len()],
    };
    for r in found.touched() {
        let (rule, f) = (&inner.rules[r], found.get(r));
        let (target, matched, count) = if let Some(first) = f.occurrences.first() {
            let (src, name) = &inner.sources[first.source];
            let text = texts.get(src);
            (
                name.clone(),
                snippet(&text[first.start..first.end]),
                f.occurrences.len() as u32,
            )
        } else if let Some(what) = &f.fired {
            let target = match &rule.matcher {
                Matcher::Senders(_) => SmolStr::new_static("sender"),
                Matcher::Signal { signal, .. } => SmolStr::new_static(signal.target()),
                _ => SmolStr::new_static("meta"),
            };
            (target, what.clone(), 1)
        } else {
            continue;
        };
        let weight = rule.weight * f64::from(count);
        if let Some(g) = rule.group {
            t.group_sums[g] += weight;
        }
        match (rule.evidence, inner.evidence_slot[r]) {
            (Some(e), Some(slot)) => {
                *t.evidence[slot].get_or_insert(0.0) += e * f64::from(count);
            }
            _ => {
                if let Some(l) = &rule.tone {
                    add_label(&mut t.tones, l);
                }
                if let Some(l) = &rule.intent {
                    add_label(&mut t.intents, l);
                }
            }
        }
        t.hits.push(Hit {
            rule: inner.ids[r].clone(),
            target,
            matched,
            count,
            weight,
        });
    }
    t
}

/// Add a label to a sorted list of labels unless it is there.
fn add_label(labels: &mut Vec<String>, label: &str) {
    if let Err(at) = labels.binary_search_by(|l| l.as_str().cmp(label)) {
        labels.insert(at, label.to_string());
    }
}

/// Labels whose evidence reaches the bar join the tones or intents; every label spoken for is
/// listed with its sum.
fn give_evidence(
    inner: &Inner,
    evidence: &[Option<f64>],
    tones: &mut Vec<String>,
    intents: &mut Vec<String>,
) -> Vec<LabelEvidence> {
    inner
        .evidence_labels
        .iter()
        .zip(evidence)
        .filter_map(|((kind, label), sum)| {
            let sum = (*sum)?;
            // Sums of a few learned weights: a hair under the bar by rounding is at the bar.
            let given = sum >= EVIDENCE_BAR - 1e-9;
            if given {
                match *kind {
                    "tone" => add_label(tones, label),
                    _ => add_label(intents, label),
                };
            }
            Some(LabelEvidence {
                kind,
                label: label.clone(),
                sum,
                given,
            })
        })
        .collect()
}

/// The score: the hits' weights with each group's sum clamped, and the caps that changed it.
fn apply_caps(inner: &Inner, hits: &[Hit], group_sums: &[f64]) -> (f64, Vec<CapApplied>) {
    let mut score: f64 = hits.iter().map(|h| h.weight).sum();
    let mut caps = Vec::new();
    for (g, group) in inner.groups.iter().enumerate() {
        let raw = group_sums[g];
        let capped = raw
            .min(group.max.unwrap_or(f64::INFINITY))
            .max(group.min.unwrap_or(f64::NEG_INFINITY));
        if capped != raw {
            score += capped - raw;
            caps.push(CapApplied {
                group: group.id.clone(),
                raw,
                capped,
            });
        }
    }
    // -0.0 reads oddly in logs and tables.
    let score = if score == 0.0 { 0.0 } else { score };
    (score, caps)
}

/// An email holding only `subject` and `body` (for `triaged eval`, `tune`, and rule examples).
pub fn text_email(subject: &str, body: &str) -> Email {
    Email {
        message_id: String::new(),
        message_id_synthesized: true,
        from: None,
        sender: None,
        reply_to: None,
        to: Vec::new(),
        cc: Vec::new(),
        subject: subject.to_string(),
        date: None,
        in_reply_to: Vec::new(),
        references: Vec::new(),
        body_text: body.to_string(),
        headers: Vec::new(),
        content_type: "text/plain".into(),
        return_path: None,
        part_types: Vec::new(),
        size: subject.len() + body.len(),
        budget: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
