//! Rule files: TOML -> a compiled [`RuleSet`], with lint and the rules' inline examples. Every
//! problem is located at file:line:col and all are reported at once.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexBuilder, RegexSetBuilder};
use serde::Deserialize;
use toml::Spanned;

use super::meta::{self, Expr};
use super::text::{is_word_char, normalise, split_words};
use super::{
    Group, History, Inner, Matcher, Negation, Pattern, RegexScan, Rule, RuleSet, Scan, Signal,
    Source, Thresholds, score, text_email,
};
use crate::config::parse_duration;
use crate::diag::Diagnostic;
use crate::parse::Address;

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
/// Default negation window in words.
const NEGATION_WINDOW: usize = 3;

/// Where a diagnostic points: a file's text and a span in it.
#[derive(Clone)]
struct Loc {
    file: usize,
    span: Range<usize>,
}

/// A rule between parsing and compiling.
struct Pending {
    rule: Rule,
    loc: Loc,
    id_loc: Loc,
    keywords: Vec<(String, bool, bool)>,
    meta: Option<(Expr<String>, Loc)>,
    group: Option<(String, Loc)>,
    examples: Vec<(String, bool, Loc)>,
}

struct Loader<'a> {
    files: &'a [&'a Path],
    sources: Vec<String>,
    errors: Vec<Diagnostic>,
}

impl Loader<'_> {
    fn err(&mut self, at: &Loc, msg: impl Into<String>) {
        let d = Diagnostic::at(
            self.files[at.file],
            &self.sources[at.file],
            at.span.clone(),
            msg,
        );
        self.errors.push(d);
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

fn build_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or("invalid regex")
                .trim()
                .to_string()
        })
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
        errors: Vec::new(),
    };
    let mut pending: Vec<Pending> = Vec::new();
    let mut groups: Vec<(Group, Loc)> = Vec::new();
    for (fi, &file) in files.iter().enumerate() {
        let source = match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => {
                l.errors.push(Diagnostic::file(
                    file,
                    format!("cannot read rule file: {e}"),
                ));
                l.sources.push(String::new());
                continue;
            }
        };
        let parsed: Result<RawFile, _> = toml::from_str(&source);
        l.sources.push(source);
        let raw = match parsed {
            Ok(r) => r,
            Err(e) => {
                let d = Diagnostic::from_toml(file, &l.sources[fi], &e);
                l.errors.push(d);
                continue;
            }
        };
        let at = |span: Range<usize>| Loc { file: fi, span };
        let negation = raw.negation.map(|n| {
            let span = n.span();
            let n = n.into_inner();
            let mut phrases = Vec::new();
            for p in &n.phrases {
                let words = split_words(&normalise(p.get_ref()));
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
        });
        for g in raw.group {
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
            if let Some((_, first)) = groups.iter().find(|(x, _)| x.id == id) {
                let (line, _) = crate::diag::line_col(&l.sources[first.file], first.span.start);
                let msg = format!(
                    "duplicate group id {id:?} (first defined at {}:{line})",
                    files[first.file].display()
                );
                l.err(&at(g.id.span()), msg);
                continue;
            }
            groups.push((
                Group {
                    id,
                    description: g.description,
                    min: g.min.map(|v| *v.get_ref()),
                    max: g.max.map(|v| *v.get_ref()),
                },
                at(g.id.span()),
            ));
        }
        for spanned in raw.rule {
            let rule_loc = at(spanned.span());
            let r = spanned.into_inner();
            if let Some(p) = compile_rule(&mut l, fi, rule_loc, r, negation.as_ref()) {
                pending.push(p);
            }
        }
    }

    // Ids are unique across files.
    let mut first_at: HashMap<String, usize> = HashMap::new();
    let mut keep = vec![true; pending.len()];
    for (i, p) in pending.iter().enumerate() {
        match first_at.get(&p.rule.id) {
            Some(&j) => {
                let first = &pending[j].id_loc;
                let (line, _) = crate::diag::line_col(&l.sources[first.file], first.span.start);
                let msg = format!(
                    "duplicate rule id {:?} (first defined at {}:{line})",
                    p.rule.id,
                    files[first.file].display()
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
    let index: HashMap<String, usize> = pending
        .iter()
        .enumerate()
        .map(|(i, p)| (p.rule.id.clone(), i))
        .collect();

    // Groups resolve.
    for p in pending.iter_mut() {
        if let Some((name, loc)) = p.group.clone() {
            match groups.iter().position(|(g, _)| g.id == name) {
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

    // Meta references resolve, have no cycles, and can be true.
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
    let meta_order = match topo_order(&pending, &deps) {
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
    };

    // A rule must be able to change something.
    let used: Vec<bool> = (0..pending.len())
        .map(|i| deps.iter().any(|d| d.contains(&i)))
        .collect();
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

    if !l.errors.is_empty() {
        return Err(l.errors);
    }
    let set = match build(
        pending.iter().map(|p| (&p.rule, &p.keywords)),
        groups.iter().map(|(g, _)| g.clone()).collect(),
        meta_order,
    ) {
        Ok(s) => s,
        Err(msg) => {
            l.errors.push(Diagnostic::file(files[0], msg));
            return Err(l.errors);
        }
    };

    // Inline examples, scored by the whole set (meta rules see the rules they combine).
    let th = Thresholds {
        urgent: f64::INFINITY,
        high: f64::INFINITY,
        normal: f64::INFINITY,
    };
    for p in &pending {
        for (example, should, loc) in &p.examples {
            let email = example_email(&p.rule, example);
            let v = score(&email, &set, &th, &History::default(), 0);
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
    if l.errors.is_empty() {
        Ok(set)
    } else {
        Err(l.errors)
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
fn topo_order(pending: &[Pending], deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: usize,
        pending: &[Pending],
        deps: &[Vec<usize>],
        mark: &mut [Mark],
        stack: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match mark[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let from = stack.iter().position(|&x| x == i).unwrap_or(0);
                return Err(stack[from..].to_vec());
            }
            Mark::New => {}
        }
        mark[i] = Mark::Active;
        stack.push(i);
        for &d in &deps[i] {
            visit(d, pending, deps, mark, stack, out)?;
        }
        stack.pop();
        mark[i] = Mark::Done;
        if matches!(pending[i].rule.matcher, Matcher::Meta(_)) {
            out.push(i);
        }
        Ok(())
    }
    let mut mark = vec![Mark::New; pending.len()];
    let mut out = Vec::new();
    for i in 0..pending.len() {
        visit(i, pending, deps, &mut mark, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// Parse and check one rule. `None` when it has errors (already reported).
fn compile_rule(
    l: &mut Loader<'_>,
    fi: usize,
    rule_loc: Loc,
    r: RawRule,
    negation: Option<&Arc<Negation>>,
) -> Option<Pending> {
    let at = |span: Range<usize>| Loc { file: fi, span };
    let errors_before = l.errors.len();
    let id = r.id.get_ref().clone();
    if !is_id(&id) {
        l.err(
            &at(r.id.span()),
            format!("rule id {id:?} must be lower-case letters, digits, '_', '.', '-' (and not and/or/not/of)"),
        );
    }
    let weight = match &r.weight {
        Some(w) if !w.get_ref().is_finite() => {
            l.err(
                &at(w.span()),
                format!("rule {id:?}: weight must be a finite number"),
            );
            0.0
        }
        Some(w) => *w.get_ref(),
        None => 0.0,
    };
    let max_hits = match &r.max_hits {
        Some(m) if !(1..=1000).contains(m.get_ref()) => {
            l.err(
                &at(m.span()),
                format!("rule {id:?}: max_hits must be 1 to 1000"),
            );
            1
        }
        Some(m) => *m.get_ref() as u32,
        None => 1,
    };
    let label = |l: &mut Loader<'_>, what: &str, v: &Option<Spanned<String>>| -> Option<String> {
        let v = v.as_ref()?;
        if is_label(v.get_ref()) {
            Some(v.get_ref().clone())
        } else {
            l.err(
                &at(v.span()),
                format!(
                    "rule {id:?}: {what} {:?} must be lower-case letters, digits, '-' or '_'",
                    v.get_ref()
                ),
            );
            None
        }
    };
    let tone = label(l, "tone", &r.tone);
    let intent = label(l, "intent", &r.intent);

    // Exactly one way to match.
    let kinds: Vec<(&str, Range<usize>)> = [
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
            &rule_loc,
            format!("rule {id:?} needs one of keywords, regex, senders, signal or meta"),
        );
        return None;
    }
    if kinds.len() > 1 {
        let names: Vec<&str> = kinds.iter().map(|k| k.0).collect();
        l.err(
            &at(kinds[1].1.clone()),
            format!("rule {id:?} has {}; use exactly one", names.join(" and ")),
        );
        return None;
    }
    let kind = kinds[0].0;

    // Where it looks: only keywords and regex read text.
    let mut sources: Vec<Source> = Vec::new();
    if matches!(kind, "keywords" | "regex") {
        match &r.targets {
            None => sources.extend([Source::Subject, Source::Body]),
            Some(list) if list.get_ref().is_empty() => l.err(
                &at(list.span()),
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
                        Err(msg) => l.err(&at(t.span()), format!("rule {id:?}: {msg}")),
                    }
                }
            }
        }
    } else if let Some(t) = &r.targets {
        l.err(
            &at(t.span()),
            format!("rule {id:?}: `in` applies to keywords and regex rules only"),
        );
    }
    let only_for = |l: &mut Loader<'_>, name: &str, span: Option<Range<usize>>, ok: bool| {
        if let (Some(span), false) = (span, ok) {
            l.err(
                &at(span),
                format!("rule {id:?}: {name} does not apply to a {kind} rule"),
            );
        }
    };
    let text_rule = matches!(kind, "keywords" | "regex");
    only_for(
        l,
        "negation",
        r.negation.as_ref().map(|n| n.span()),
        text_rule,
    );
    only_for(
        l,
        "max_hits",
        r.max_hits.as_ref().map(|n| n.span()),
        text_rule,
    );
    only_for(
        l,
        "at_least",
        r.at_least.as_ref().map(|n| n.span()),
        kind == "signal",
    );
    only_for(
        l,
        "at_most",
        r.at_most.as_ref().map(|n| n.span()),
        kind == "signal",
    );
    let negation = match (&r.negation, text_rule) {
        (Some(b), _) if !*b.get_ref() => None,
        (Some(b), _) if negation.is_none() => {
            l.err(
                &at(b.span()),
                format!("rule {id:?}: negation = true, but this file has no [negation] phrases"),
            );
            None
        }
        (_, true) => negation.cloned(),
        _ => None,
    };

    let mut keywords = Vec::new();
    let mut meta_expr = None;
    let matcher = match kind {
        "keywords" => {
            let list = r.keywords.as_ref()?;
            if list.get_ref().is_empty() {
                l.err(&at(list.span()), format!("rule {id:?}: keywords is empty"));
            }
            let mut seen = Vec::new();
            for k in list.get_ref() {
                let norm = normalise(k.get_ref().trim());
                if norm.is_empty() {
                    l.err(&at(k.span()), format!("rule {id:?}: empty keyword"));
                    continue;
                }
                if seen.contains(&norm) {
                    l.err(
                        &at(k.span()),
                        format!("rule {id:?}: keyword {:?} is listed twice", k.get_ref()),
                    );
                    continue;
                }
                let left = norm.chars().next().is_some_and(is_word_char);
                let right = norm.chars().last().is_some_and(is_word_char);
                keywords.push((norm.clone(), left, right));
                seen.push(norm);
            }
            Matcher::Keywords(seen)
        }
        "regex" => {
            let re = r.regex.as_ref()?;
            match build_regex(re.get_ref()) {
                Ok(compiled) => {
                    if compiled.is_match("") {
                        l.err(
                            &at(re.span()),
                            format!(
                                "rule {id:?}: regex matches empty text, so it would hit every email"
                            ),
                        );
                    }
                    if let Some(c) = uppercase_literal(re.get_ref()) {
                        l.err(
                            &at(re.span()),
                            format!("rule {id:?}: regex has upper-case {c:?}, but text is matched in lower case, so that part can never match; write it in lower case"),
                        );
                    }
                    Matcher::Regex(compiled)
                }
                Err(e) => {
                    l.err(
                        &at(re.span()),
                        format!("rule {id:?}: regex does not compile: {e}"),
                    );
                    return None;
                }
            }
        }
        "senders" => {
            let list = r.senders.as_ref()?;
            if list.get_ref().is_empty() {
                l.err(&at(list.span()), format!("rule {id:?}: senders is empty"));
            }
            let mut out = Vec::new();
            for s in list.get_ref() {
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
                        &at(s.span()),
                        format!(
                            "rule {id:?}: {:?} is neither an address nor a domain",
                            s.get_ref()
                        ),
                    );
                }
                out.push(v);
            }
            Matcher::Senders(out)
        }
        "signal" => {
            let name = r.signal.as_ref()?;
            let within = match &r.within {
                Some(w) => match parse_duration(w.get_ref()) {
                    Ok(d) => Some(d.as_secs() as i64),
                    Err(e) => {
                        l.err(&at(w.span()), format!("rule {id:?}: within: {e}"));
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
                        &at(name.span()),
                        format!("rule {id:?}: unknown signal {other:?}; use caps_ratio, punctuation_run, words, earlier_contacts or reply_to_answered"),
                    );
                    return None;
                }
            };
            if r.within.is_some() && !matches!(signal, Signal::EarlierContacts { .. }) {
                l.err(
                    &at(r.within.as_ref()?.span()),
                    format!("rule {id:?}: within applies to earlier_contacts only"),
                );
            }
            if r.min_letters.is_some() && !matches!(signal, Signal::CapsRatio { .. }) {
                l.err(
                    &at(r.min_letters.as_ref()?.span()),
                    format!("rule {id:?}: min_letters applies to caps_ratio only"),
                );
            }
            let at_least = r.at_least.as_ref().map(|v| *v.get_ref());
            let at_most = r.at_most.as_ref().map(|v| *v.get_ref());
            match (at_least, at_most) {
                (None, None) => l.err(
                    &at(name.span()),
                    format!("rule {id:?}: a signal rule needs at_least and/or at_most"),
                ),
                (Some(a), Some(b)) if a > b => l.err(
                    &at(r.at_least.as_ref()?.span()),
                    format!("rule {id:?} can never fire: at_least {a} is above at_most {b}"),
                ),
                (Some(a), _) if matches!(signal, Signal::CapsRatio { .. }) && a > 1.0 => l.err(
                    &at(r.at_least.as_ref()?.span()),
                    format!("rule {id:?} can never fire: caps_ratio is a share between 0 and 1"),
                ),
                _ => {}
            }
            Matcher::Signal {
                signal,
                at_least,
                at_most,
            }
        }
        _ => {
            let src = r.meta.as_ref()?;
            // The span covers the quotes; offsets inside the expression start one later.
            let inner_start = src.span().start + 1;
            match meta::parse(src.get_ref()) {
                Ok(e) => {
                    meta_expr = Some((e, at(src.span())));
                }
                Err(e) => {
                    let off = inner_start + e.offset;
                    l.err(
                        &at(off..off + 1),
                        format!("rule {id:?}: meta: {}", e.message),
                    );
                    return None;
                }
            }
            // Resolved once every file is read.
            Matcher::Meta(Expr::And(Vec::new()))
        }
    };

    let mut examples = Vec::new();
    if let Some(ex) = &r.examples {
        for e in &ex.matches {
            examples.push((e.get_ref().clone(), true, at(e.span())));
        }
        for e in &ex.no_match {
            examples.push((e.get_ref().clone(), false, at(e.span())));
        }
    }
    if l.errors.len() > errors_before {
        return None;
    }
    let (line, _) = crate::diag::line_col(&l.sources[fi], r.id.span().start);
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
        },
        loc: rule_loc,
        id_loc: at(r.id.span()),
        keywords,
        meta: meta_expr,
        group: r
            .group
            .as_ref()
            .map(|g| (g.get_ref().clone(), at(g.span()))),
        examples,
    })
}

/// One source's phrases while building: the texts, their pattern info, and an index by
/// (bounds, text) so a phrase shared by rules is one pattern.
type PhraseTable = (Vec<String>, Vec<Pattern>, HashMap<String, usize>);

/// Compile automata and regex sets for checked rules.
fn build<'a>(
    rules: impl Iterator<Item = (&'a Rule, &'a Vec<(String, bool, bool)>)>,
    groups: Vec<super::Group>,
    meta_order: Vec<usize>,
) -> Result<RuleSet, String> {
    let mut out_rules = Vec::new();
    // Per source: phrase -> pattern (bounds, rules).
    let mut phrases: BTreeMap<Source, PhraseTable> = BTreeMap::new();
    let mut regexes: BTreeMap<Source, (Vec<String>, Vec<usize>)> = BTreeMap::new();
    let mut headers = Vec::new();
    let mut history_window_secs = 0;
    for (i, (rule, keywords)) in rules.enumerate() {
        for s in &rule.sources {
            if let Source::Header(h) = s
                && !headers.contains(h)
            {
                headers.push(h.clone());
            }
            match &rule.matcher {
                Matcher::Keywords(_) => {
                    let (pats, info, by_text) = phrases.entry(s.clone()).or_default();
                    for (phrase, left, right) in keywords {
                        // Bounds are part of the pattern: the same text with other bounds is
                        // another pattern.
                        let key = format!("{}{}{phrase}", u8::from(*left), u8::from(*right));
                        let p = *by_text.entry(key).or_insert_with(|| {
                            pats.push(phrase.clone());
                            info.push(Pattern {
                                left: *left,
                                right: *right,
                                rules: Vec::new(),
                            });
                            pats.len() - 1
                        });
                        if !info[p].rules.contains(&i) {
                            info[p].rules.push(i);
                        }
                    }
                }
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
        } = &rule.matcher
        {
            history_window_secs = history_window_secs.max(*within_secs);
        }
        out_rules.push(rule.clone());
    }
    let mut scans = Vec::new();
    for (source, (pats, patterns, _)) in phrases {
        let automaton: AhoCorasick = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&pats)
            .or_else(|_| {
                // Very large keyword sets may not fit a DFA; the NFA is slower but fine.
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .build(&pats)
            })
            .map_err(|e| format!("cannot compile the keywords for {}: {e}", source.name()))?;
        scans.push(Scan {
            source,
            automaton,
            patterns,
        });
    }
    let mut regex_scans = Vec::new();
    for (source, (pats, rules)) in regexes {
        let set = RegexSetBuilder::new(&pats)
            .size_limit(REGEX_SIZE_LIMIT * 4)
            .build()
            .map_err(|e| format!("cannot compile the regexes for {}: {e}", source.name()))?;
        regex_scans.push(RegexScan { source, set, rules });
    }
    Ok(RuleSet {
        inner: Arc::new(Inner {
            rules: out_rules,
            groups,
            scans,
            regex_scans,
            meta_order,
            headers,
            history_window_secs,
        }),
    })
}
