//! Rule files: TOML -> compiled [`Rule`]s, with every problem located at file:line:col.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use toml::Spanned;

use super::{Field, Rule, normalise};
use crate::diag::Diagnostic;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    fields: Option<Vec<Spanned<String>>>,
    keywords: Option<Spanned<Vec<Spanned<String>>>>,
    regex: Option<Spanned<String>>,
    weight: Spanned<f64>,
    tone: Option<Spanned<String>>,
}

/// Compiled regexes larger than this are refused (a runaway keyword list is a mistake).
const REGEX_SIZE_LIMIT: usize = 4 << 20;

/// Load every file in order. Returns all rules, or every problem found.
pub fn load_rules(files: &[&Path]) -> Result<Vec<Rule>, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    let mut seen: HashMap<String, (PathBuf, usize)> = HashMap::new();
    for &file in files {
        let source = match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => {
                errors.push(Diagnostic::file(
                    file,
                    format!("cannot read rule file: {e}"),
                ));
                continue;
            }
        };
        let raw: RawFile = match toml::from_str(&source) {
            Ok(r) => r,
            Err(e) => {
                errors.push(Diagnostic::from_toml(file, &source, &e));
                continue;
            }
        };
        let err = |errors: &mut Vec<Diagnostic>, span: std::ops::Range<usize>, msg: String| {
            errors.push(Diagnostic::at(file, &source, span, msg));
        };
        for spanned in raw.rule {
            let rule_span = spanned.span();
            let r = spanned.into_inner();
            let id = r.id.get_ref().clone();
            let mut ok = true;
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
            {
                err(
                    &mut errors,
                    r.id.span(),
                    format!("rule id {id:?} must be lower-case letters, digits, '_', '.', '-'"),
                );
                ok = false;
            }
            let (line, _) = crate::diag::line_col(&source, r.id.span().start);
            if let Some((first_file, first_line)) = seen.get(&id) {
                err(
                    &mut errors,
                    r.id.span(),
                    format!(
                        "duplicate rule id {id:?} (first defined at {}:{first_line})",
                        first_file.display()
                    ),
                );
                ok = false;
            } else {
                seen.insert(id.clone(), (file.to_path_buf(), line));
            }
            let weight = *r.weight.get_ref();
            if !weight.is_finite() {
                err(
                    &mut errors,
                    r.weight.span(),
                    format!("rule {id:?}: weight must be a finite number"),
                );
                ok = false;
            }
            let mut fields = Vec::new();
            match &r.fields {
                None => fields.extend([Field::Subject, Field::Body]),
                Some(list) if list.is_empty() => {
                    err(
                        &mut errors,
                        rule_span.clone(),
                        format!("rule {id:?}: fields is empty; use any of subject, body, from"),
                    );
                    ok = false;
                }
                Some(list) => {
                    for f in list {
                        match Field::ALL.iter().find(|x| x.as_str() == f.get_ref()) {
                            Some(&x) if !fields.contains(&x) => fields.push(x),
                            Some(_) => {}
                            None => {
                                err(
                                    &mut errors,
                                    f.span(),
                                    format!(
                                        "rule {id:?}: unknown field {:?}; use subject, body or from",
                                        f.get_ref()
                                    ),
                                );
                                ok = false;
                            }
                        }
                    }
                }
            }
            let matcher = match (&r.keywords, &r.regex) {
                (Some(_), Some(re)) => {
                    err(
                        &mut errors,
                        re.span(),
                        format!("rule {id:?} has both keywords and regex; use one"),
                    );
                    None
                }
                (None, None) => {
                    err(
                        &mut errors,
                        rule_span.clone(),
                        format!("rule {id:?} needs keywords = [...] or regex = '...'"),
                    );
                    None
                }
                (Some(kws), None) => {
                    if kws.get_ref().is_empty()
                        || kws.get_ref().iter().any(|k| k.get_ref().trim().is_empty())
                    {
                        err(
                            &mut errors,
                            kws.span(),
                            format!(
                                "rule {id:?}: keywords must be a non-empty list of non-empty phrases"
                            ),
                        );
                        None
                    } else {
                        let pattern =
                            keywords_pattern(kws.get_ref().iter().map(|k| k.get_ref().as_str()));
                        match build(&pattern) {
                            Ok(re) => Some(re),
                            Err(e) => {
                                err(
                                    &mut errors,
                                    kws.span(),
                                    format!("rule {id:?}: keywords do not compile: {e}"),
                                );
                                None
                            }
                        }
                    }
                }
                (None, Some(re)) => match build(re.get_ref()) {
                    Ok(compiled) => {
                        if compiled.is_match("") {
                            err(
                                &mut errors,
                                re.span(),
                                format!(
                                    "rule {id:?}: regex matches empty text, so it would hit every email"
                                ),
                            );
                            None
                        } else {
                            Some(compiled)
                        }
                    }
                    Err(e) => {
                        let first = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("invalid regex")
                            .trim()
                            .to_string();
                        err(
                            &mut errors,
                            re.span(),
                            format!("rule {id:?}: regex does not compile: {first}"),
                        );
                        None
                    }
                },
            };
            let tone = match &r.tone {
                Some(t)
                    if t.get_ref().is_empty()
                        || !t
                            .get_ref()
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_') =>
                {
                    err(
                        &mut errors,
                        t.span(),
                        format!(
                            "rule {id:?}: tone {:?} must be lower-case letters, '-' or '_'",
                            t.get_ref()
                        ),
                    );
                    ok = false;
                    None
                }
                Some(t) => Some(t.get_ref().clone()),
                None => None,
            };
            if let (true, Some(matcher)) = (ok, matcher) {
                rules.push(Rule {
                    id,
                    description: r.description,
                    fields,
                    matcher,
                    weight,
                    tone,
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

fn build(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// One alternation of the normalised phrases, each bounded by word boundaries where it starts or
/// ends with a word character, with any run of spaces matching any whitespace.
fn keywords_pattern<'a>(keywords: impl Iterator<Item = &'a str>) -> String {
    let alternatives: Vec<String> = keywords
        .map(|k| {
            let k = normalise(k.trim());
            let words: Vec<String> = k.split_whitespace().map(regex::escape).collect();
            let body = words.join(r"\s+");
            let start = if k.chars().next().is_some_and(char::is_alphanumeric) {
                r"\b"
            } else {
                ""
            };
            let end = if k.chars().last().is_some_and(char::is_alphanumeric) {
                r"\b"
            } else {
                ""
            };
            format!("{start}{body}{end}")
        })
        .collect();
    format!("(?:{})", alternatives.join("|"))
}
