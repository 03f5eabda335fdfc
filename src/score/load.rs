//! Rule files: TOML -> a compiled [`RuleSet`], with lint and the rules' inline examples. Every
//! problem is located at file:line:col and all are reported at once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use regex::{Regex, RegexBuilder, RegexSetBuilder};
use serde::Deserialize;
use smol_str::SmolStr;
use toml::Spanned;

use super::forms;
use super::meta::{self, Expr};
use super::text::{normalise, split_words};
use super::words::Phrases;
use super::{
    Group, History, Inner, Matcher, Negation, Pattern, RegexScan, Rule, RuleSet, Scan, Signal,
    Source, Thresholds, score, text_email,
};
use crate::diag::Diagnostic;
use crate::parse::Address;
use crate::units::parse_duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    negation: Option<Spanned<RawNegation>>,
    #[serde(default)]
    group: Vec<Spanned<RawGroup>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNegation {
    phrases: Vec<Spanned<String>>,
    window: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    min: Option<Spanned<f64>>,
    max: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(rename = "in")]
    targets: Option<Spanned<Vec<Spanned<String>>>>,
    keywords: Option<Spanned<Vec<Spanned<String>>>>,
    regex: Option<Spanned<String>>,
    senders: Option<Spanned<Vec<Spanned<String>>>>,
    signal: Option<Spanned<String>>,
    meta: Option<Spanned<String>>,
    at_least: Option<Spanned<f64>>,
    at_most: Option<Spanned<f64>>,
    within: Option<Spanned<String>>,
    min_letters: Option<Spanned<i64>>,
    weight: Option<Spanned<f64>>,
    max_hits: Option<Spanned<i64>>,
    negation: Option<Spanned<bool>>,
    forms: Option<Spanned<bool>>,
    evidence: Option<Spanned<f64>>,
    tone: Option<Spanned<String>>,
    intent: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    alert: Option<bool>,
    examples: Option<RawExamples>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExamples {
    #[serde(rename = "match", default)]
    matches: Vec<Spanned<String>>,
    #[serde(default)]
    no_match: Vec<Spanned<String>>,
}

/// Compiled regexes larger than this are refused (a runaway pattern is a mistake).
const REGEX_SIZE_LIMIT: usize = 4 << 20;
/// The regexes of all rules together may compile to this much, counting what the refused ones
/// used before they were stopped: compiling (and holding) regexes is bounded by it, however
/// many regex rules there are.
const REGEX_TOTAL_SIZE: usize = 16 << 20;
/// The regexes reading one text are compiled together into one set; they fit the total above,
/// so this has room for the set's own few states.
const REGEX_SET_SIZE_LIMIT: usize = REGEX_TOTAL_SIZE + REGEX_SIZE_LIMIT;
/// Default negation window in words.
const NEGATION_WINDOW: usize = 3;

// Limits that keep loading (and so `triaged check` and a reload) well under a second on any
// input, far above what a real pack uses: the shipped pack has 36 rules, 534 keywords (the
// longest 29 characters), meta rules one parenthesis deep. Measured at the limits: see
// docs/rules.md.

/// Rules in all rule files together.
pub const MAX_RULES: usize = 5_000;
/// Keywords, senders and regexes in all rule files together.
pub const MAX_KEYWORDS: usize = 50_000;
/// Characters in one keyword (after normalisation).
pub const MAX_KEYWORD_CHARS: usize = 200;
/// Characters in one meta expression.
pub const MAX_META_CHARS: usize = 10_000;
/// `[[group]]`s in all rule files together.
pub const MAX_GROUPS: usize = 1_000;
/// Inline examples in all rule files together (each is scored by the whole set).
pub const MAX_EXAMPLES: usize = 10_000;
/// `[negation] phrases` in one file.
pub const MAX_NEGATION_PHRASES: usize = 100;
/// Bytes in one rule file.
pub const MAX_RULE_FILE_BYTES: u64 = 16 << 20;

/// Where a diagnostic points: a file's text and a span in it.
#[derive(Clone)]
struct Loc {
    file: usize,
    span: Range<usize>,
}

/// A gap phrase of a rule: where the keyword matcher finds the places to try its regex.
struct GapAnchor {
    /// The forms of its first word.
    anchors: Vec<String>,
    /// Its index in the rule's `gaps`.
    gap: usize,
    /// [`forms::later_words`]: per later word, what the regex accepts there.
    later: Vec<Vec<String>>,
}

/// A rule between parsing and compiling.
struct Pending {
    rule: Rule,
    loc: Loc,
    id_loc: Loc,
    /// The `keywords`, `regex`, `senders`, `signal` or `meta` value.
    matcher_loc: Loc,
    keywords: Vec<String>,
    gap_anchors: Vec<GapAnchor>,
    meta: Option<(Expr<String>, Loc)>,
    group: Option<(String, Loc)>,
    examples: Vec<(String, bool, Loc)>,
}

struct Loader<'a> {
    files: &'a [&'a Path],
    sources: Vec<String>,
    /// Line starts of each source, to locate thousands of rules without rescanning.
    lines: Vec<crate::diag::Lines>,
    errors: Vec<Diagnostic>,
    /// Keywords, senders and regexes read so far, against [`MAX_KEYWORDS`].
    phrases: usize,
    /// What is left of [`REGEX_TOTAL_SIZE`] for the regexes still to compile.
    regex_budget: usize,
    /// The budget ran out and that was said (once).
    regex_budget_said: bool,
    /// Inline examples read so far, against [`MAX_EXAMPLES`].
    examples: usize,
}

impl Loader<'_> {
    fn err(&mut self, at: &Loc, msg: impl Into<String>) {
        let (line, col) = self.line_col(at);
        self.errors.push(Diagnostic {
            file: self.files[at.file].to_path_buf(),
            line,
            col,
            message: msg.into(),
        });
    }

    fn line_col(&self, at: &Loc) -> (usize, usize) {
        self.lines[at.file].line_col(&self.sources[at.file], at.span.start)
    }

    /// Count one keyword, sender or regex against [`MAX_KEYWORDS`]; false (said once, at the
    /// first one over) when the limit is passed.
    fn count_phrase(&mut self, at: &Loc) -> bool {
        self.phrases += 1;
        if self.phrases == MAX_KEYWORDS + 1 {
            self.err(
                at,
                format!("more than {MAX_KEYWORDS} keywords, senders and regexes in all rule files (the limit; this is number {}): a pack that large is a word list, not rules — keep the phrases that decide", MAX_KEYWORDS + 1),
            );
        }
        self.phrases <= MAX_KEYWORDS
    }
}

fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
        && !matches!(id, "and" | "or" | "not" | "of")
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn parse_source(s: &str) -> Result<Vec<Source>, String> {
    Ok(match s {
        "subject" => vec![Source::Subject],
        "body" => vec![Source::Body],
        "text" => vec![Source::Subject, Source::Body],
        "from" => vec![Source::From],
        "from.address" => vec![Source::FromAddress],
        "from.domain" => vec![Source::FromDomain],
        h if h.starts_with("header:") && h.len() > 7 => {
            let name = &h[7..];
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "header name {name:?} has characters a header cannot"
                ));
            }
            vec![Source::Header(name.to_ascii_lowercase())]
        }
        _ => {
            return Err(format!(
                "unknown target {s:?}; use text, subject, body, from, from.address, from.domain or header:NAME"
            ));
        }
    })
}

/// A regex that does not compile: what is wrong, and where in the pattern (a byte offset)
/// when the syntax is at fault.
struct RegexError {
    message: String,
    offset: Option<usize>,
}

fn over_total() -> String {
    format!(
        "the regexes of all rules up to this one compile to more than {} MiB together, counting any refused above (the limit); {SHRINK_REGEX}, or turn some into keyword rules",
        REGEX_TOTAL_SIZE >> 20
    )
}

/// Where a syntax error is in `pattern` (a byte offset), if it has one.
fn syntax_error(pattern: &str) -> Option<(usize, String)> {
    let message = |e: &dyn std::fmt::Display| {
        e.to_string()
            .lines()
            .last()
            .unwrap_or("invalid regex")
            .trim()
            .to_string()
    };
    match regex_syntax::Parser::new().parse(pattern) {
        Err(regex_syntax::Error::Parse(e)) => Some((e.span().start.offset, message(&e))),
        Err(regex_syntax::Error::Translate(e)) => Some((e.span().start.offset, message(&e))),
        Err(e) => Some((0, message(&e))),
        Ok(_) => None,
    }
}

impl Loader<'_> {
    /// Compile a rule's regex within what is left of [`REGEX_TOTAL_SIZE`]. `Err(None)`: the
    /// budget was spent by earlier regexes and that was said; the regex is not compiled.
    fn compile_regex(&mut self, pattern: &str) -> Result<Regex, Option<RegexError>> {
        use regex_automata::nfa::thompson;
        if let Some((offset, message)) = syntax_error(pattern) {
            return Err(Some(RegexError {
                message,
                offset: Some(offset),
            }));
        }
        if self.regex_budget == 0 {
            if self.regex_budget_said {
                return Err(None);
            }
            self.regex_budget_said = true;
            return Err(Some(RegexError {
                message: over_total(),
                offset: None,
            }));
        }
        // Measured with the NFA compiler the regex crate uses and its size limit, which stops
        // as soon as the NFA passes it: the work done is at most the limit.
        let limit = REGEX_SIZE_LIMIT.min(self.regex_budget);
        let measured = thompson::Compiler::new()
            .configure(thompson::Config::new().nfa_size_limit(Some(limit)))
            .build(pattern);
        let used = match measured {
            Ok(nfa) => nfa.memory_usage(),
            Err(e) if e.size_limit().is_some() => {
                let alone = limit == REGEX_SIZE_LIMIT;
                self.regex_budget = self.regex_budget.saturating_sub(limit);
                let message = if alone {
                    format!(
                        "regex compiles to more than {} MiB (the limit); {SHRINK_REGEX}",
                        REGEX_SIZE_LIMIT >> 20
                    )
                } else {
                    self.regex_budget = 0;
                    self.regex_budget_said = true;
                    over_total()
                };
                return Err(Some(RegexError {
                    message,
                    offset: None,
                }));
            }
            Err(e) => {
                return Err(Some(RegexError {
                    message: e.to_string(),
                    offset: None,
                }));
            }
        };
        self.regex_budget = self.regex_budget.saturating_sub(used);
        RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                Some(RegexError {
                    message: e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .to_string(),
                    offset: None,
                })
            })
    }
}

/// How to make a regex smaller, for size-limit errors.
const SHRINK_REGEX: &str = "Unicode classes (\\w, \\d, .) repeated with {n} are what grows: \
     use a smaller count, ASCII classes ([a-z0-9_] or (?-u:\\w)), or keywords";

/// Where byte `offset` of a string value lies in the file: inside the quotes when the value is
/// written without escapes (the text between the quotes is the value), else at the value.
fn offset_in_value(source: &str, span: &Range<usize>, value: &str, offset: usize) -> Range<usize> {
    let inner = span.start + 1..span.end.saturating_sub(1);
    if source.get(inner.clone()) == Some(value) && offset <= value.len() {
        let at = inner.start + offset;
        at..at + 1
    } else {
        span.clone()
    }
}

/// An upper-case letter the regex must match literally: text is matched in lower case, so that
/// part can never match.
fn uppercase_literal(pattern: &str) -> Option<char> {
    use regex_syntax::hir::{Hir, HirKind};
    fn walk(h: &Hir) -> Option<char> {
        match h.kind() {
            HirKind::Literal(lit) => String::from_utf8_lossy(&lit.0)
                .chars()
                .find(|c| c.is_uppercase()),
            HirKind::Repetition(r) => walk(&r.sub),
            HirKind::Capture(c) => walk(&c.sub),
            HirKind::Concat(hs) | HirKind::Alternation(hs) => hs.iter().find_map(walk),
            _ => None,
        }
    }
    regex_syntax::Parser::new()
        .parse(pattern)
        .ok()
        .and_then(|h| walk(&h))
}

/// Load every file in order. Returns the compiled set, or every problem found.
pub fn load_rules(files: &[&Path]) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut l = Loader {
        files,
        sources: Vec::new(),
        lines: Vec::new(),
        errors: Vec::new(),
        phrases: 0,
        regex_budget: REGEX_TOTAL_SIZE,
        regex_budget_said: false,
        examples: 0,
    };
    let mut read = Read::default();
    for (fi, &file) in files.iter().enumerate() {
        let Some(raw) = read_file(&mut l, fi, file) else {
            continue;
        };
        let negation = raw.negation.map(|n| file_negation(&mut l, fi, n));
        read_groups(&mut l, fi, raw.group, &mut read);
        read_rules(&mut l, fi, raw.rule, negation.as_ref(), &mut read);
    }
    let Read {
        mut pending,
        groups,
        group_index,
        ..
    } = read;
    drop_duplicate_ids(&mut l, &mut pending);
    resolve_groups(&mut l, &mut pending, &group_index);
    let deps = resolve_meta(&mut l, &mut pending);
    let meta_order = order_meta(&mut l, &pending, &deps);
    check_useful(&mut l, &pending, &deps);
    if !l.errors.is_empty() {
        return Err(l.errors);
    }
    let set = match build(
        &pending,
        groups.iter().map(|(g, _)| g.clone()).collect(),
        meta_order,
    ) {
        Ok(s) => s,
        Err((at, msg)) => {
            let loc = pending[at].matcher_loc.clone();
            l.err(&loc, msg);
            return Err(l.errors);
        }
    };
    check_examples(&mut l, &pending, &set);
    if l.errors.is_empty() {
        Ok(set)
    } else {
        Err(l.errors)
    }
}

/// What the rule files held, read so far.
#[derive(Default)]
struct Read {
    pending: Vec<Pending>,
    groups: Vec<(Group, Loc)>,
    /// Group id -> its place in `groups`.
    group_index: HashMap<String, usize>,
    /// Rules and groups seen, kept or not, against [`MAX_RULES`] and [`MAX_GROUPS`].
    rules_read: usize,
    groups_read: usize,
}

/// Read and parse rule file `fi`; `None` (said) when it cannot be read or is not TOML.
fn read_file(l: &mut Loader<'_>, fi: usize, file: &Path) -> Option<RawFile> {
    let source = match crate::diag::read_limited(file, "rule file", MAX_RULE_FILE_BYTES) {
        Ok(s) => s,
        Err(d) => {
            l.errors.push(d);
            l.sources.push(String::new());
            l.lines.push(crate::diag::Lines::default());
            return None;
        }
    };
    let parsed: Result<RawFile, _> = toml::from_str(&source);
    l.lines.push(crate::diag::Lines::new(&source));
    l.sources.push(source);
    match parsed {
        Ok(r) => Some(r),
        Err(e) => {
            let d = Diagnostic::from_toml(file, &l.sources[fi], &e);
            l.errors.push(d);
            None
        }
    }
}

/// A file's `[negation]` section.
fn file_negation(l: &mut Loader<'_>, fi: usize, n: Spanned<RawNegation>) -> Arc<Negation> {
    let at = |span: Range<usize>| Loc { file: fi, span };
    let span = n.span();
    let n = n.into_inner();
    let mut phrases = Vec::new();
    if let Some(p) = n.phrases.get(MAX_NEGATION_PHRASES) {
        l.err(
            &at(p.span()),
            format!("[negation] lists more than {MAX_NEGATION_PHRASES} phrases (the limit; each is checked before every match): keep the few that negate"),
        );
    }
    for p in n.phrases.iter().take(MAX_NEGATION_PHRASES) {
        let norm = normalise(p.get_ref());
        if norm.chars().count() > MAX_KEYWORD_CHARS {
            l.err(
                &at(p.span()),
                format!("a negation phrase is longer than {MAX_KEYWORD_CHARS} characters (the limit): use a few words"),
            );
            continue;
        }
        let words = split_words(&norm);
        if words.is_empty() {
            l.err(&at(p.span()), "a negation phrase needs at least one word");
        } else {
            phrases.push(words);
        }
    }
    if phrases.is_empty() {
        l.err(
            &at(span),
            "[negation] phrases is empty: list words such as \"not\", \"no\"",
        );
    }
    let window = match n.window {
        Some(w) if !(1..=10).contains(w.get_ref()) => {
            l.err(&at(w.span()), "negation window must be 1 to 10 words");
            NEGATION_WINDOW
        }
        Some(w) => *w.get_ref() as usize,
        None => NEGATION_WINDOW,
    };
    Arc::new(Negation { phrases, window })
}

/// A file's `[[group]]`s, within [`MAX_GROUPS`]; ids are unique across files.
fn read_groups(l: &mut Loader<'_>, fi: usize, raw: Vec<Spanned<RawGroup>>, read: &mut Read) {
    let at = |span: Range<usize>| Loc { file: fi, span };
    for g in raw {
        if read.groups_read == MAX_GROUPS {
            l.err(
                &at(g.get_ref().id.span()),
                format!("more than {MAX_GROUPS} groups in all rule files (the limit; this is group {}): a group caps a few related rules", MAX_GROUPS + 1),
            );
        }
        read.groups_read += 1;
        if read.groups_read > MAX_GROUPS {
            continue;
        }
        let g = g.into_inner();
        let id = g.id.get_ref().clone();
        if !is_id(&id) {
            l.err(
                &at(g.id.span()),
                format!("group id {id:?} must be lower-case letters, digits, '_', '.', '-'"),
            );
        }
        if g.min.is_none() && g.max.is_none() {
            l.err(
                &at(g.id.span()),
                format!("group {id:?} needs min or max (what is it capping?)"),
            );
        }
        if let (Some(min), Some(max)) = (&g.min, &g.max)
            && min.get_ref() > max.get_ref()
        {
            l.err(&at(min.span()), format!("group {id:?}: min is above max"));
        }
        if let Some((_, first)) = read.group_index.get(&id).map(|&i| &read.groups[i]) {
            let (line, _) = l.line_col(first);
            let msg = format!(
                "duplicate group id {id:?} (first defined at {}:{line})",
                l.files[first.file].display()
            );
            l.err(&at(g.id.span()), msg);
            continue;
        }
        read.group_index.insert(id.clone(), read.groups.len());
        read.groups.push((
            Group {
                id,
                description: g.description,
                min: g.min.map(|v| *v.get_ref()),
                max: g.max.map(|v| *v.get_ref()),
            },
            at(g.id.span()),
        ));
    }
}

/// A file's `[[rule]]`s, within [`MAX_RULES`], each parsed and checked on its own.
fn read_rules(
    l: &mut Loader<'_>,
    fi: usize,
    raw: Vec<Spanned<RawRule>>,
    negation: Option<&Arc<Negation>>,
    read: &mut Read,
) {
    let at = |span: Range<usize>| Loc { file: fi, span };
    for spanned in raw {
        if read.rules_read == MAX_RULES {
            l.err(
                &at(spanned.get_ref().id.span()),
                format!("more than {MAX_RULES} rules in all rule files (the limit; this is rule {}): merge rules that share a weight and labels into one with several keywords", MAX_RULES + 1),
            );
        }
        read.rules_read += 1;
        if read.rules_read > MAX_RULES {
            // Said once, above; the rest is not compiled.
            continue;
        }
        let rule_loc = at(spanned.span());
        let r = spanned.into_inner();
        if let Some(p) = compile_rule(l, fi, rule_loc, r, negation) {
            read.pending.push(p);
        }
    }
}

/// Ids are unique across files: a repeat is said and dropped.
fn drop_duplicate_ids(l: &mut Loader<'_>, pending: &mut Vec<Pending>) {
    let mut first_at: HashMap<String, usize> = HashMap::new();
    let mut keep = vec![true; pending.len()];
    for (i, p) in pending.iter().enumerate() {
        match first_at.get(&p.rule.id) {
            Some(&j) => {
                let first = &pending[j].id_loc;
                let (line, _) = l.line_col(first);
                let msg = format!(
                    "duplicate rule id {:?} (first defined at {}:{line})",
                    p.rule.id,
                    l.files[first.file].display()
                );
                let loc = p.id_loc.clone();
                l.err(&loc, msg);
                keep[i] = false;
            }
            None => {
                first_at.insert(p.rule.id.clone(), i);
            }
        }
    }
    let mut it = keep.iter();
    pending.retain(|_| *it.next().unwrap_or(&false));
}

/// Each rule's group, by id.
fn resolve_groups(
    l: &mut Loader<'_>,
    pending: &mut [Pending],
    group_index: &HashMap<String, usize>,
) {
    for p in pending.iter_mut() {
        if let Some((name, loc)) = p.group.clone() {
            match group_index.get(&name).copied() {
                Some(g) => p.rule.group = Some(g),
                None => l.err(
                    &loc,
                    format!(
                        "rule {:?}: unknown group {name:?}; define it with [[group]] id = {name:?}",
                        p.rule.id
                    ),
                ),
            }
        }
    }
}

/// Meta references resolve to rules, refer not to their own rule, and can be true. Returns per
/// rule the rules its meta expression uses.
fn resolve_meta(l: &mut Loader<'_>, pending: &mut [Pending]) -> Vec<Vec<usize>> {
    let index: HashMap<String, usize> = pending
        .iter()
        .enumerate()
        .map(|(i, p)| (p.rule.id.clone(), i))
        .collect();
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); pending.len()];
    for i in 0..pending.len() {
        let Some((expr, loc)) = pending[i].meta.clone() else {
            continue;
        };
        let id = pending[i].rule.id.clone();
        let resolved =
            expr.resolve(&mut |name: &String| index.get(name).copied().ok_or_else(|| name.clone()));
        match resolved {
            Ok(e) => {
                if e.names().contains(&i) {
                    l.err(&loc, format!("meta rule {id:?} refers to itself"));
                    continue;
                }
                if !e.satisfiable() {
                    l.err(
                        &loc,
                        format!("meta rule {id:?} can never fire: no combination of its rules makes it true"),
                    );
                }
                deps[i] = e.names().into_iter().collect();
                pending[i].rule.matcher = Matcher::Meta(e);
            }
            Err(name) => l.err(
                &loc,
                format!("meta rule {id:?} refers to unknown rule {name:?}"),
            ),
        }
    }
    deps
}

/// Meta rules in an order that evaluates each after the ones it uses; a cycle is said.
fn order_meta(l: &mut Loader<'_>, pending: &[Pending], deps: &[Vec<usize>]) -> Vec<usize> {
    match topo_order(pending, deps) {
        Ok(order) => order,
        Err(cycle) => {
            let names: Vec<&str> = cycle.iter().map(|&i| pending[i].rule.id.as_str()).collect();
            let loc = pending[cycle[0]].loc.clone();
            l.err(
                &loc,
                format!(
                    "meta rules form a cycle: {} -> {}",
                    names.join(" -> "),
                    names[0]
                ),
            );
            Vec::new()
        }
    }
}

/// A rule must be able to change something: a weight, a label, or a meta rule using it.
fn check_useful(l: &mut Loader<'_>, pending: &[Pending], deps: &[Vec<usize>]) {
    let mut used = vec![false; pending.len()];
    for &d in deps.iter().flatten() {
        used[d] = true;
    }
    for (i, p) in pending.iter().enumerate() {
        let r = &p.rule;
        if r.weight == 0.0 && r.tone.is_none() && r.intent.is_none() && !used[i] {
            let loc = p.id_loc.clone();
            l.err(
                &loc,
                format!(
                    "rule {:?} has no weight, tone or intent and no meta rule uses it: it can never change a verdict",
                    r.id
                ),
            );
        }
    }
}

/// Inline examples, scored by the whole set (meta rules see the rules they combine).
fn check_examples(l: &mut Loader<'_>, pending: &[Pending], set: &RuleSet) {
    let th = Thresholds {
        urgent: f64::INFINITY,
        high: f64::INFINITY,
        normal: f64::INFINITY,
        no_evidence: super::Priority::Low,
    };
    for p in pending {
        for (example, should, loc) in &p.examples {
            let email = example_email(&p.rule, example);
            let v = score(&email, set, &th, &History::default(), 0);
            let fired = v.hits.iter().any(|h| h.rule == p.rule.id);
            if fired != *should {
                let msg = if *should {
                    format!(
                        "rule {:?} does not match its example {example:?}",
                        p.rule.id
                    )
                } else {
                    format!(
                        "rule {:?} matches its no_match example {example:?}",
                        p.rule.id
                    )
                };
                l.err(loc, msg);
            }
        }
    }
}

/// An email that shows `text` to every source the rule reads (subject and body by default; a
/// sender rule gets it as the sender's address).
fn example_email(rule: &Rule, text: &str) -> crate::parse::Email {
    let mut email = text_email(text, text);
    let address = |s: &str| Address {
        name: None,
        email: if s.contains('@') {
            s.to_ascii_lowercase()
        } else {
            format!("someone@{}", s.to_ascii_lowercase())
        },
    };
    if matches!(rule.matcher, Matcher::Senders(_)) {
        email.from = Some(address(text));
    }
    for s in &rule.sources {
        match s {
            Source::From => {
                email.from = Some(Address {
                    name: Some(text.to_string()),
                    email: "someone@example.invalid".into(),
                })
            }
            Source::FromAddress | Source::FromDomain => email.from = Some(address(text)),
            Source::Header(h) => email.headers.push((h.clone(), text.to_string())),
            _ => {}
        }
    }
    email
}

/// Meta rules ordered so each comes after the meta rules it uses; a cycle is returned as such.
///
/// Depth-first with a stack of its own rather than recursion: a chain of thousands of meta
/// rules (`r2 = "r1"`, `r3 = "r2"`, ...) is as deep as it is long.
fn topo_order(pending: &[Pending], deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; pending.len()];
    let mut out = Vec::new();
    // (rule, how many of its dependencies have been visited)
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..pending.len() {
        if mark[root] != Mark::New {
            continue;
        }
        mark[root] = Mark::Active;
        stack.push((root, 0));
        while let Some((i, next)) = stack.last_mut() {
            let i = *i;
            if let Some(&d) = deps[i].get(*next) {
                *next += 1;
                match mark[d] {
                    Mark::Done => {}
                    Mark::Active => {
                        let from = stack.iter().position(|&(x, _)| x == d).unwrap_or(0);
                        return Err(stack[from..].iter().map(|&(x, _)| x).collect());
                    }
                    Mark::New => {
                        mark[d] = Mark::Active;
                        stack.push((d, 0));
                    }
                }
            } else {
                stack.pop();
                mark[i] = Mark::Done;
                if matches!(pending[i].rule.matcher, Matcher::Meta(_)) {
                    out.push(i);
                }
            }
        }
    }
    Ok(out)
}

/// The rule being compiled: its file (for locations) and its id (for messages).
struct RuleAt<'a> {
    fi: usize,
    id: &'a str,
}

impl RuleAt<'_> {
    fn at(&self, span: Range<usize>) -> Loc {
        Loc {
            file: self.fi,
            span,
        }
    }
}

/// A gap phrase before its regex is compiled: the regex, the forms of its first word, and
/// what each later word may be.
type GapPattern = (String, Vec<String>, Vec<Vec<String>>);

/// Parse and check one rule. `None` when it has errors (already reported).
fn compile_rule(
    l: &mut Loader<'_>,
    fi: usize,
    rule_loc: Loc,
    r: RawRule,
    negation: Option<&Arc<Negation>>,
) -> Option<Pending> {
    let errors_before = l.errors.len();
    let id = r.id.get_ref().clone();
    let ra = RuleAt { fi, id: &id };
    if !is_id(&id) {
        l.err(
            &ra.at(r.id.span()),
            format!("rule id {id:?} must be lower-case letters, digits, '_', '.', '-' (and not and/or/not/of)"),
        );
    }
    let weight = rule_weight(l, &ra, &r);
    let max_hits = rule_max_hits(l, &ra, &r);
    let tone = rule_label(l, &ra, "tone", &r.tone);
    let intent = rule_label(l, &ra, "intent", &r.intent);
    let (kind, matcher_loc) = matcher_kind(l, &ra, &rule_loc, &r)?;
    let sources = rule_sources(l, &ra, &r, kind);
    check_applies(l, &ra, &r, kind);
    let negation = rule_negation(l, &ra, &r, kind, intent.is_some(), negation);
    let evidence = rule_evidence(l, &ra, &r, tone.is_some(), intent.is_some());
    let forms = r.forms.as_ref().is_some_and(|f| *f.get_ref());

    let mut keywords = Vec::new();
    let mut gap_patterns: Vec<GapPattern> = Vec::new();
    let mut meta_expr = None;
    let matcher = match kind {
        "keywords" => keywords_matcher(l, &ra, &r, forms, &mut keywords, &mut gap_patterns)?,
        "regex" => regex_matcher(l, &ra, &r)?,
        "senders" => senders_matcher(l, &ra, &r)?,
        "signal" => signal_matcher(l, &ra, &r)?,
        _ => {
            meta_expr = Some(meta_matcher(l, &ra, &r)?);
            // Resolved once every file is read.
            Matcher::Meta(Expr::And(Vec::new()))
        }
    };
    let examples = rule_examples(l, &ra, &r);
    let (gaps, gap_anchors) = compile_gaps(l, &ra, &matcher_loc, gap_patterns);
    if l.errors.len() > errors_before {
        return None;
    }
    let (line, _) = l.line_col(&ra.at(r.id.span()));
    Some(Pending {
        rule: Rule {
            id: id.clone(),
            description: r.description,
            sources,
            matcher,
            weight,
            max_hits,
            negation,
            tone,
            intent,
            alert: r.alert.unwrap_or(false),
            group: None,
            origin: format!("{}:{line}", l.files[fi].display()),
            evidence,
            gaps,
        },
        gap_anchors,
        loc: rule_loc,
        id_loc: ra.at(r.id.span()),
        matcher_loc,
        keywords,
        meta: meta_expr,
        group: r
            .group
            .as_ref()
            .map(|g| (g.get_ref().clone(), ra.at(g.span()))),
        examples,
    })
}

fn rule_weight(l: &mut Loader<'_>, ra: &RuleAt<'_>, r: &RawRule) -> f64 {
    let id = ra.id;
    match &r.weight {
        Some(w) if !w.get_ref().is_finite() => {
            l.err(
                &ra.at(w.span()),
                format!("rule {id:?}: weight must be a finite number"),
            );
            0.0
        }
        Some(w) => *w.get_ref(),
        None => 0.0,
    }
}

fn rule_max_hits(l: &mut Loader<'_>, ra: &RuleAt<'_>, r: &RawRule) -> u32 {
    let id = ra.id;
    match &r.max_hits {
        Some(m) if !(1..=1000).contains(m.get_ref()) => {
            l.err(
                &ra.at(m.span()),
                format!("rule {id:?}: max_hits must be 1 to 1000"),
            );
            1
        }
        Some(m) => *m.get_ref() as u32,
        None => 1,
    }
}

/// A tone or intent, if it is a valid label.
fn rule_label(
    l: &mut Loader<'_>,
    ra: &RuleAt<'_>,
    what: &str,
    v: &Option<Spanned<String>>,
) -> Option<String> {
    let id = ra.id;
    let v = v.as_ref()?;
    if is_label(v.get_ref()) {
        Some(v.get_ref().clone())
    } else {
        l.err(
            &ra.at(v.span()),
            format!(
                "rule {id:?}: {what} {:?} must be lower-case letters, digits, '-' or '_'",
                v.get_ref()
            ),
        );
        None
    }
}

/// How the rule matches (exactly one of keywords, regex, senders, signal, meta) and where
/// that is written.
fn matcher_kind(
    l: &mut Loader<'_>,
    ra: &RuleAt<'_>,
    rule_loc: &Loc,
    r: &RawRule,
) -> Option<(&'static str, Loc)> {
    let id = ra.id;
    let kinds: Vec<(&'static str, Range<usize>)> = [
        r.keywords.as_ref().map(|k| ("keywords", k.span())),
        r.regex.as_ref().map(|k| ("regex", k.span())),
        r.senders.as_ref().map(|k| ("senders", k.span())),
        r.signal.as_ref().map(|k| ("signal", k.span())),
        r.meta.as_ref().map(|k| ("meta", k.span())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if kinds.is_empty() {
        l.err(
            rule_loc,
            format!("rule {id:?} needs one of keywords, regex, senders, signal or meta"),
        );
        return None;
    }
    if kinds.len() > 1 {
        let names: Vec<&str> = kinds.iter().map(|k| k.0).collect();
        l.err(
            &ra.at(kinds[1].1.clone()),
            format!("rule {id:?} has {}; use exactly one", names.join(" and ")),
        );
        return None;
    }
    Some((kinds[0].0, ra.at(kinds[0].1.clone())))
}

/// Where it looks: only keywords and regex read text.
fn rule_sources(l: &mut Loader<'_>, ra: &RuleAt<'_>, r: &RawRule, kind: &str) -> Vec<Source> {
    let id = ra.id;
    let mut sources: Vec<Source> = Vec::new();
    if matches!(kind, "keywords" | "regex") {
        match &r.targets {
            None => sources.extend([Source::Subject, Source::Body]),
            Some(list) if list.get_ref().is_empty() => l.err(
                &ra.at(list.span()),
                format!("rule {id:?}: `in` is empty; use e.g. [\"text\"] or [\"subject\"]"),
            ),
            Some(list) => {
                for t in list.get_ref() {
                    match parse_source(t.get_ref()) {
                        Ok(ss) => {
                            for s in ss {
                                if !sources.contains(&s) {
                                    sources.push(s);
                                }
                            }
                        }
                        Err(msg) => l.err(&ra.at(t.span()), format!("rule {id:?}: {msg}")),
                    }
                }
            }
        }
    } else if let Some(t) = &r.targets {
        l.err(
            &ra.at(t.span()),
            format!("rule {id:?}: `in` applies to keywords and regex rules only"),
        );
    }
    sources
}

/// Settings written for a kind of rule they do not apply to.
fn check_applies(l: &mut Loader<'_>, ra: &RuleAt<'_>, r: &RawRule, kind: &str) {
    let id = ra.id;
    let text_rule = matches!(kind, "keywords" | "regex");
    let settings = [
        ("negation", r.negation.as_ref().map(|n| n.span()), text_rule),
        ("max_hits", r.max_hits.as_ref().map(|n| n.span()), text_rule),
        (
            "at_least",
            r.at_least.as_ref().map(|n| n.span()),
            kind == "signal",
        ),
        (
            "at_most",
            r.at_most.as_ref().map(|n| n.span()),
            kind == "signal",
        ),
        (
            "forms",
            r.forms.as_ref().map(|n| n.span()),
            kind == "keywords",
        ),
    ];
    for (name, span, ok) in settings {
        if let (Some(span), false) = (span, ok) {
            l.err(
                &ra.at(span),
                format!("rule {id:?}: {name} does not apply to a {kind} rule"),
            );
        }
    }
}

/// The negation guard the rule uses, if any. Negation is for urgency and tone words ("not
/// urgent", "not happy"). A rule with an intent names a topic, and a topic is still the topic
/// when negated ("I have not received a refund"): such rules are immune unless they say
/// `negation = true`.
fn rule_negation(
    l: &mut Loader<'_>,
    ra: &RuleAt<'_>,
    r: &RawRule,
    kind: &str,
    has_intent: bool,
    negation: Option<&Arc<Negation>>,
) -> Option<Arc<Negation>> {
    let id = ra.id;
    let text_rule = matches!(kind, "keywords" | "regex");
    match (&r.negation, text_rule) {
        (Some(b), _) if !*b.get_ref() => None,
        (Some(b), _) if negation.is_none() => {
            l.err(
                &ra.at(b.span()),
                format!("rule {id:?}: negation = true, but this file has no [negation] phrases"),
            );
            None
        }
        (Some(_), true) => negation.cloned(),
        (None, true) if !has_intent => negation.cloned(),
        _ => None,
    }
}

fn rule_evidence(
    l: &mut Loader<'_>,
    ra: &RuleAt<'_>,
    r: &RawRule,
    has_tone: bool,
    has_intent: bool,
) -> Option<f64> {
    let id = ra.id;
    match &r.evidence {
        Some(e) if !e.get_ref().is_finite() => {
            l.err(
                &ra.at(e.span()),
                format!("rule {id:?}: evidence must be a finite number"),
            );
            None
        }
        Some(e) if has_tone == has_intent => {
            l.err(
                &ra.at(e.span()),
                format!("rule {id:?}: evidence counts towards one label: give the rule a tone or an intent, not both or neither"),
            );
            None
        }
        Some(e) => Some(*e.get_ref()),
        None => None,
    }
}

/// A keyword rule: its phrases (with their forms) go to `keywords`, its gap phrases (and
/// phrases with too many forms) to `gap_patterns`; the matcher lists the keywords as written.
fn keywords_matcher(
    l: &mut Loader<'_>,
    ra: &RuleAt<'_>,
    r: &RawRule,
    forms: bool,
    keywords: &mut Vec<String>,
    gap_patterns: &mut Vec<GapPattern>,
) -> Option<Matcher> {
    let id = ra.id;
    let list = r.keywords.as_ref()?;
    if list.get_ref().is_empty() {
        l.err(
            &ra.at(list.span()),
            format!("rule {id:?}: keywords is empty"),
        );
    }
    let mut seen = Vec::new();
    let mut distinct = HashSet::new();
    let mut generated = HashSet::new();
    for k in list.get_ref() {
        if !l.count_phrase(&ra.at(k.span())) {
            break;
        }
        let Some(norm) = checked_keyword(l, ra, k, &distinct, &generated) else {
            continue;
        };
        distinct.insert(norm.clone());
        match forms::parse_gaps(&norm) {
            Err(msg) => {
                l.err(
                    &ra.at(k.span()),
                    format!("rule {id:?}: keyword {norm:?}: {msg}"),
                );
                continue;
            }
            Ok(Some(parts)) => {
                gap_patterns.push(gap_pattern(&parts, forms));
                seen.push(norm);
                continue;
            }
            Ok(None) => {}
        }
        let variants = if forms {
            match forms::phrase_forms(&norm) {
                Ok(v) => v,
                // Too many combinations for the matcher: matched by the rule's regex instead,
                // one alternation per word.
                Err(_) => {
                    let parts: Vec<forms::Part> = norm
                        .split(' ')
                        .map(|w| forms::Part::Word(w.into()))
                        .collect();
                    gap_patterns.push(gap_pattern(&parts, true));
                    seen.push(norm);
                    continue;
                }
            }
        } else {
            vec![norm.clone()]
        };
        for (i, v) in variants.into_iter().enumerate() {
            // A generated form counts against the limits like a written keyword; one that
            // another keyword of the rule already lists is that keyword.
            if i > 0 && (distinct.contains(&v) || !l.count_phrase(&ra.at(k.span()))) {
                continue;
            }
            if i > 0 {
                distinct.insert(v.clone());
                generated.insert(v.clone());
            }
            keywords.push(v);
        }
        seen.push(norm);
    }
    Some(Matcher::Keywords(seen))
}

/// A keyword normalised, or `None` (said) when it is empty, too long, or already there.
fn checked_keyword(
    l: &mut Loader<'_>,
    ra: &RuleAt<'_>,
    k: &Spanned<String>,
    distinct: &HashSet<String>,
    generated: &HashSet<String>,
) -> Option<String> {
    let id = ra.id;
    let norm = normalise(k.get_ref().trim());
    if norm.is_empty() {
        l.err(&ra.at(k.span()), format!("rule {id:?}: empty keyword"));
        return None;
    }
    let chars = norm.chars().count();
    if chars > MAX_KEYWORD_CHARS {
        l.err(
            &ra.at(k.span()),
            format!("rule {id:?}: keyword is {chars} characters long; the limit is {MAX_KEYWORD_CHARS} (a keyword is a phrase: for longer text use a regex or a few shorter keywords)"),
        );
        return None;
    }
    if distinct.contains(&norm) {
        let msg = if generated.contains(&norm) {
            format!(
                "rule {id:?}: keyword {:?} is already a form of an earlier keyword (forms = true): leave it out",
                k.get_ref()
            )
        } else {
            format!("rule {id:?}: keyword {:?} is listed twice", k.get_ref())
        };
        l.err(&ra.at(k.span()), msg);
        return None;
    }
    Some(norm)
}

fn gap_pattern(parts: &[forms::Part], forms: bool) -> GapPattern {
    (
        forms::gap_regex(parts, forms),
        forms::anchor_words(parts, forms),
        forms::later_words(parts, forms),
    )
}

fn regex_matcher(l: &mut Loader<'_>, ra: &RuleAt<'_>, r: &RawRule) -> Option<Matcher> {
    let id = ra.id;
    let re = r.regex.as_ref()?;
    if !l.count_phrase(&ra.at(re.span())) {
        return None;
    }
    match l.compile_regex(re.get_ref()) {
        Ok(compiled) => {
            if compiled.is_match("") {
                l.err(
                    &ra.at(re.span()),
                    format!("rule {id:?}: regex matches empty text, so it would hit every email"),
                );
            }
            if let Some(c) = uppercase_literal(re.get_ref()) {
                l.err(
                    &ra.at(re.span()),
                    format!("rule {id:?}: regex has upper-case {c:?}, but text is matched in lower case, so that part can never match; write it in lower case"),
                );
            }
            Some(Matcher::Regex(compiled))
        }
        // Earlier regexes used the budget up, and that was said at the first one over; the
        // rule stays (meta rules may name it) but is never built: the load fails.
        Err(None) => Some(Matcher::Keywords(Vec::new())),
        Err(Some(e)) => {
            let span = match e.offset {
                Some(off) => offset_in_value(&l.sources[ra.fi], &re.span(), re.get_ref(), off),
                None => re.span(),
            };
            l.err(
                &ra.at(span),
                format!("rule {id:?}: regex does not compile: {}", e.message),
            );
            None
        }
    }
}

fn senders_matcher(l: &mut Loader<'_>, ra: &RuleAt<'_>, r: &RawRule) -> Option<Matcher> {
    let id = ra.id;
    let list = r.senders.as_ref()?;
    if list.get_ref().is_empty() {
        l.err(
            &ra.at(list.span()),
            format!("rule {id:?}: senders is empty"),
        );
    }
    let mut out = Vec::new();
    for s in list.get_ref() {
        if !l.count_phrase(&ra.at(s.span())) {
            break;
        }
        let v = s
            .get_ref()
            .trim()
            .trim_start_matches('@')
            .to_ascii_lowercase();
        let ok = match v.rsplit_once('@') {
            Some((local, domain)) => !local.is_empty() && domain.contains('.'),
            None => v.contains('.') && !v.starts_with('.'),
        };
        if !ok || v.contains(char::is_whitespace) {
            l.err(
                &ra.at(s.span()),
                format!(
                    "rule {id:?}: {:?} is neither an address nor a domain",
                    s.get_ref()
                ),
            );
        }
        out.push(v);
    }
    Some(Matcher::Senders(out))
}

fn signal_matcher(l: &mut Loader<'_>, ra: &RuleAt<'_>, r: &RawRule) -> Option<Matcher> {
    let id = ra.id;
    let name = r.signal.as_ref()?;
    let within = match &r.within {
        Some(w) => match parse_duration(w.get_ref()) {
            Ok(d) => Some(d.as_secs() as i64),
            Err(e) => {
                l.err(&ra.at(w.span()), format!("rule {id:?}: within: {e}"));
                None
            }
        },
        None => None,
    };
    let signal = match name.get_ref().as_str() {
        "caps_ratio" => Signal::CapsRatio {
            min_letters: r
                .min_letters
                .as_ref()
                .map_or(20, |m| (*m.get_ref()).max(0) as usize),
        },
        "punctuation_run" => Signal::PunctuationRun,
        "words" => Signal::Words,
        "earlier_contacts" => Signal::EarlierContacts {
            within_secs: within.unwrap_or(7 * 86_400),
        },
        "reply_to_answered" => Signal::ReplyToAnswered,
        other => {
            l.err(
                &ra.at(name.span()),
                format!("rule {id:?}: unknown signal {other:?}; use caps_ratio, punctuation_run, words, earlier_contacts or reply_to_answered"),
            );
            return None;
        }
    };
    if r.within.is_some() && !matches!(signal, Signal::EarlierContacts { .. }) {
        l.err(
            &ra.at(r.within.as_ref()?.span()),
            format!("rule {id:?}: within applies to earlier_contacts only"),
        );
    }
    if r.min_letters.is_some() && !matches!(signal, Signal::CapsRatio { .. }) {
        l.err(
            &ra.at(r.min_letters.as_ref()?.span()),
            format!("rule {id:?}: min_letters applies to caps_ratio only"),
        );
    }
    let at_least = r.at_least.as_ref().map(|v| *v.get_ref());
    let at_most = r.at_most.as_ref().map(|v| *v.get_ref());
    match (at_least, at_most) {
        (None, None) => l.err(
            &ra.at(name.span()),
            format!("rule {id:?}: a signal rule needs at_least and/or at_most"),
        ),
        (Some(a), Some(b)) if a > b => l.err(
            &ra.at(r.at_least.as_ref()?.span()),
            format!("rule {id:?} can never fire: at_least {a} is above at_most {b}"),
        ),
        (Some(a), _) if matches!(signal, Signal::CapsRatio { .. }) && a > 1.0 => l.err(
            &ra.at(r.at_least.as_ref()?.span()),
            format!("rule {id:?} can never fire: caps_ratio is a share between 0 and 1"),
        ),
        _ => {}
    }
    Some(Matcher::Signal {
        signal,
        at_least,
        at_most,
    })
}

/// A meta rule's expression with the rule names still unresolved, and where it is written.
fn meta_matcher(l: &mut Loader<'_>, ra: &RuleAt<'_>, r: &RawRule) -> Option<(Expr<String>, Loc)> {
    let id = ra.id;
    let src = r.meta.as_ref()?;
    // The span covers the quotes; offsets inside the expression start one later.
    let inner_start = src.span().start + 1;
    // Parsed first, so that a nesting too deep is named where it happens.
    match meta::parse(src.get_ref()) {
        Ok(_) if src.get_ref().chars().count() > MAX_META_CHARS => {
            l.err(
                &ra.at(src.span()),
                format!("rule {id:?}: meta is longer than {MAX_META_CHARS} characters (the limit): combine fewer rules, or name a part as a meta rule of its own"),
            );
            None
        }
        Ok(e) => Some((e, ra.at(src.span()))),
        Err(e) => {
            let off = inner_start + e.offset;
            l.err(
                &ra.at(off..off + 1),
                format!("rule {id:?}: meta: {}", e.message),
            );
            None
        }
    }
}

/// The rule's inline examples (text, whether it must match, where), within [`MAX_EXAMPLES`].
fn rule_examples(l: &mut Loader<'_>, ra: &RuleAt<'_>, r: &RawRule) -> Vec<(String, bool, Loc)> {
    let mut examples = Vec::new();
    let Some(ex) = &r.examples else {
        return examples;
    };
    let all = ex
        .matches
        .iter()
        .map(|e| (e, true))
        .chain(ex.no_match.iter().map(|e| (e, false)));
    for (e, should) in all {
        l.examples += 1;
        if l.examples == MAX_EXAMPLES + 1 {
            l.err(
                &ra.at(e.span()),
                format!("more than {MAX_EXAMPLES} inline examples in all rule files (the limit; each is scored by the whole pack): keep a few telling ones per rule"),
            );
        }
        if l.examples > MAX_EXAMPLES {
            break;
        }
        examples.push((e.get_ref().clone(), should, ra.at(e.span())));
    }
    examples
}

/// Gap phrases: one regex each, bounded by the regex budget like any regex. Each is compiled
/// once for the regex budget's accounting and its errors, then as the anchored engine it runs
/// as.
fn compile_gaps(
    l: &mut Loader<'_>,
    ra: &RuleAt<'_>,
    matcher_loc: &Loc,
    gap_patterns: Vec<GapPattern>,
) -> (Vec<regex_automata::meta::Regex>, Vec<GapAnchor>) {
    let id = ra.id;
    let mut gaps = Vec::new();
    let mut gap_anchors = Vec::new();
    for (pattern, anchors, later) in gap_patterns {
        match l.compile_regex(&pattern) {
            Ok(_) => match regex_automata::meta::Regex::builder()
                .configure(
                    regex_automata::meta::Config::new().nfa_size_limit(Some(REGEX_SIZE_LIMIT)),
                )
                .build(&pattern)
            {
                Ok(re) => {
                    gap_anchors.push(GapAnchor {
                        anchors,
                        gap: gaps.len(),
                        later,
                    });
                    gaps.push(re);
                }
                Err(e) => l.err(
                    matcher_loc,
                    format!("rule {id:?}: a gap phrase does not compile: {e}"),
                ),
            },
            Err(None) => {}
            Err(Some(e)) => l.err(
                matcher_loc,
                format!("rule {id:?}: a gap phrase does not compile: {}", e.message),
            ),
        }
    }
    (gaps, gap_anchors)
}

/// One source's phrases while building.
#[derive(Default)]
struct PhraseTable {
    phrases: Vec<String>,
    /// Per phrase: the rules it serves.
    patterns: Vec<Pattern>,
    /// Phrase -> its index, so a phrase shared by rules is one pattern.
    index: HashMap<String, usize>,
    /// Per gap phrase reading this source ([`Pattern::gaps`] point here): what each later
    /// word may be ([`GapAnchor::later`]).
    later: Vec<Vec<Vec<String>>>,
    /// (rule, gap) -> its place in `later`.
    gap_index: HashMap<(usize, usize), usize>,
}

/// What a keyword matcher is built from: the phrases, and the words the gap tests name.
type PhrasesKey = (Vec<String>, Vec<String>);

impl PhraseTable {
    /// The pattern of `phrase`, added if it is new.
    fn pattern(&mut self, phrase: &str) -> usize {
        if let Some(&p) = self.index.get(phrase) {
            return p;
        }
        self.phrases.push(phrase.to_string());
        self.patterns.push(Pattern {
            rules: Vec::new(),
            gaps: Vec::new(),
        });
        self.index
            .insert(phrase.to_string(), self.phrases.len() - 1);
        self.phrases.len() - 1
    }
}

/// Compile keyword matchers and regex sets for checked rules. An error names the rule (an index
/// into `pending`) it is best reported at.
fn build(
    pending: &[Pending],
    groups: Vec<super::Group>,
    meta_order: Vec<usize>,
) -> Result<RuleSet, (usize, String)> {
    // Per source: the phrases and the regexes reading it.
    let mut phrases: BTreeMap<Source, PhraseTable> = BTreeMap::new();
    let mut regexes: BTreeMap<Source, (Vec<String>, Vec<usize>)> = BTreeMap::new();
    let mut headers = Vec::new();
    let mut history_window_secs = 0;
    for (i, p) in pending.iter().enumerate() {
        for s in &p.rule.sources {
            if let Source::Header(h) = s
                && !headers.contains(h)
            {
                headers.push(h.clone());
            }
            match &p.rule.matcher {
                Matcher::Keywords(_) => phrases.entry(s.clone()).or_default().add(i, p),
                Matcher::Regex(re) => {
                    let (pats, idx) = regexes.entry(s.clone()).or_default();
                    pats.push(re.as_str().to_string());
                    idx.push(i);
                }
                _ => {}
            }
        }
        if let Matcher::Signal {
            signal: Signal::EarlierContacts { within_secs },
            ..
        } = &p.rule.matcher
        {
            history_window_secs = history_window_secs.max(*within_secs);
        }
    }
    let out_rules: Vec<Rule> = pending.iter().map(|p| p.rule.clone()).collect();
    let sender_and_signal_rules = out_rules
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.matcher, Matcher::Senders(_) | Matcher::Signal { .. }))
        .map(|(i, _)| i)
        .collect();
    let scans = keyword_scans(phrases)?;
    let regex_scans = regex_scans(pending, regexes)?;
    let sources = scans
        .iter()
        .map(|s| &s.source)
        .chain(regex_scans.iter().map(|s| &s.source))
        .map(|s| (s.clone(), SmolStr::new(s.name())))
        .collect();
    let (evidence_labels, evidence_slot) = evidence_labels(&out_rules);
    let meta_names = meta_order
        .iter()
        .map(|&r| match &out_rules[r].matcher {
            Matcher::Meta(expr) => expr.names().into_iter().collect(),
            _ => Vec::new(),
        })
        .collect();
    Ok(RuleSet {
        inner: Arc::new(Inner {
            ids: out_rules.iter().map(|r| SmolStr::new(&r.id)).collect(),
            rules: out_rules,
            groups,
            scans,
            regex_scans,
            meta_order,
            sender_and_signal_rules,
            headers,
            history_window_secs,
            sources,
            evidence_labels,
            evidence_slot,
            meta_names,
        }),
    })
}

/// The labels rules with `evidence` speak for, sorted by kind and label (as a verdict lists
/// them), and per rule its label's place among them.
fn evidence_labels(rules: &[Rule]) -> (Vec<(&'static str, SmolStr)>, Vec<Option<usize>>) {
    fn label(r: &Rule) -> Option<(&'static str, &str)> {
        match (r.evidence, &r.tone, &r.intent) {
            (Some(_), Some(l), _) => Some(("tone", l.as_str())),
            (Some(_), _, Some(i)) => Some(("intent", i.as_str())),
            _ => None,
        }
    }
    let labels: BTreeSet<(&'static str, &str)> = rules.iter().filter_map(label).collect();
    let slots = rules
        .iter()
        .map(|r| label(r).and_then(|l| labels.iter().position(|x| *x == l)))
        .collect();
    let labels = labels
        .into_iter()
        .map(|(kind, l)| (kind, SmolStr::new(l)))
        .collect();
    (labels, slots)
}

impl PhraseTable {
    /// Rule `i`'s keywords and the anchors of its gap phrases.
    fn add(&mut self, i: usize, p: &Pending) {
        for phrase in &p.keywords {
            let at = self.pattern(phrase);
            if !self.patterns[at].rules.contains(&i) {
                self.patterns[at].rules.push(i);
            }
        }
        for a in &p.gap_anchors {
            let need = *self.gap_index.entry((i, a.gap)).or_insert(self.later.len());
            if need == self.later.len() {
                self.later.push(a.later.clone());
            }
            for word in &a.anchors {
                let at = self.pattern(word);
                let gaps = &mut self.patterns[at].gaps;
                if !gaps.iter().any(|&(r, g, _)| (r, g) == (i, a.gap)) {
                    gaps.push((i, a.gap, need));
                }
            }
        }
    }
}

/// One keyword matcher per source. Rules read `text` (subject and body) unless told otherwise,
/// so sources mostly have the same phrases: each distinct list is compiled once, and shared.
fn keyword_scans(phrases: BTreeMap<Source, PhraseTable>) -> Result<Vec<Scan>, (usize, String)> {
    let mut scans: Vec<Scan> = Vec::new();
    // (phrases, words the gap tests name) -> their matcher.
    let mut compiled: Vec<(PhrasesKey, Arc<Phrases>)> = Vec::new();
    for (source, t) in phrases {
        let words: Vec<String> = t.later.iter().flatten().flatten().cloned().collect();
        let key = (t.phrases, words);
        let matcher = match compiled.iter().find(|(k, _)| *k == key) {
            Some((_, a)) => a.clone(),
            None => {
                let a = Phrases::new(&key.0, &key.1).map(Arc::new).map_err(|e| {
                    let first = t.patterns.first().and_then(|p| p.rules.first()).copied();
                    (
                        first.unwrap_or(0),
                        format!("cannot compile the keywords for {}: {e}", source.name()),
                    )
                })?;
                compiled.push((key, a.clone()));
                a
            }
        };
        let gap_needs = t
            .later
            .iter()
            .map(|words| {
                words
                    .iter()
                    .map(|forms| forms.iter().map(|f| matcher.last_token(f)).collect())
                    .collect()
            })
            .collect();
        scans.push(Scan {
            source,
            phrases: matcher,
            patterns: t.patterns,
            gap_needs,
        });
    }
    Ok(scans)
}

/// One regex set per source; sources with the same regexes share one.
fn regex_scans(
    pending: &[Pending],
    regexes: BTreeMap<Source, (Vec<String>, Vec<usize>)>,
) -> Result<Vec<RegexScan>, (usize, String)> {
    let mut regex_scans: Vec<RegexScan> = Vec::new();
    let mut compiled: Vec<(Vec<String>, regex::RegexSet)> = Vec::new();
    for (source, (pats, rules)) in regexes {
        let set = match compiled.iter().find(|(p, _)| *p == pats) {
            Some((_, set)) => set.clone(),
            None => {
                let set =
                    regex_set(&pats).map_err(|e| regex_set_error(pending, &source, &rules, &e))?;
                compiled.push((pats, set.clone()));
                set
            }
        };
        regex_scans.push(RegexScan { source, set, rules });
    }
    Ok(regex_scans)
}

fn regex_set(pats: &[String]) -> Result<regex::RegexSet, regex::Error> {
    RegexSetBuilder::new(pats)
        .size_limit(REGEX_SET_SIZE_LIMIT)
        .build()
}

/// Why the regexes of `source` do not compile together, said at the first rule reading it.
/// Not expected: they fit [`REGEX_TOTAL_SIZE`] together, and the set has room beyond that.
fn regex_set_error(
    pending: &[Pending],
    source: &Source,
    rules: &[usize],
    e: &regex::Error,
) -> (usize, String) {
    let mut files: Vec<&str> = rules
        .iter()
        .map(|&r| {
            let origin = pending[r].rule.origin.as_str();
            origin.rsplit_once(':').map_or(origin, |(f, _)| f)
        })
        .collect();
    files.sort_unstable();
    files.dedup();
    (
        rules.first().copied().unwrap_or(0),
        format!(
            "the {} regexes reading {} do not compile together ({e}); they are in {}: {SHRINK_REGEX}",
            rules.len(),
            source.name(),
            files.join(", "),
        ),
    )
}
