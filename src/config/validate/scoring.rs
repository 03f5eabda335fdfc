//! `[scoring]`: the thresholds, the rule files and the weights `triaged tune` wrote.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::Validator;
use crate::config::raw;
use crate::score::{Priority, RuleSet, Thresholds};

/// What `[scoring]` gives: `rules` is `None` when a rule file is broken (reported).
pub(super) struct Scoring {
    pub(super) thresholds: Thresholds,
    pub(super) rules: Option<RuleSet>,
    pub(super) rule_files: Vec<PathBuf>,
}

impl Validator<'_> {
    pub(super) fn scoring(&mut self, scoring: raw::Scoring) -> Scoring {
        let thresholds = self.thresholds(
            scoring.thresholds.unwrap_or_default(),
            scoring.no_evidence.as_ref(),
        );
        let rule_files = self.rule_files(scoring.rules.as_ref());
        let refs: Vec<&Path> = rule_files.iter().map(PathBuf::as_path).collect();
        let rules = match RuleSet::load(&refs) {
            Ok(r) => Some(r),
            Err(mut errs) => {
                self.errors.append(&mut errs);
                None
            }
        };
        let (rules, thresholds) = match (&scoring.weights, rules) {
            (Some(at), Some(loaded)) => self.weights(at, loaded, thresholds),
            (_, rules) => (rules, thresholds),
        };
        Scoring {
            thresholds,
            rules,
            rule_files,
        }
    }

    fn thresholds(
        &mut self,
        th: raw::Thresholds,
        no_evidence: Option<&Spanned<String>>,
    ) -> Thresholds {
        let no_evidence = match no_evidence {
            None => Priority::Normal,
            Some(s) => match Priority::ALL.iter().find(|p| p.as_str() == s.get_ref()) {
                Some(p) => *p,
                None => {
                    self.err(
                        s,
                        format!(
                            "[scoring] no_evidence must be urgent, high, normal or low, not {:?}",
                            s.get_ref()
                        ),
                    );
                    Priority::Normal
                }
            },
        };
        let thresholds = Thresholds {
            urgent: th.urgent.unwrap_or(8.0),
            high: th.high.unwrap_or(4.0),
            normal: th.normal.unwrap_or(1.0),
            no_evidence,
        };
        if !(thresholds.urgent >= thresholds.high && thresholds.high >= thresholds.normal) {
            self.err_file("[scoring.thresholds] must satisfy urgent >= high >= normal");
        }
        thresholds
    }

    /// The `*.toml` files of the rules directory (default `rules/` beside the config).
    fn rule_files(&mut self, dir: Option<&Spanned<String>>) -> Vec<PathBuf> {
        let rules_dir = self.resolve(dir.map_or("rules", |r| r.get_ref().as_str()));
        let msg = match list_files(&rules_dir, "toml") {
            Ok(files) if !files.is_empty() => return files,
            Ok(_) => format!("no *.toml rule files in {}", rules_dir.display()),
            Err(e) => format!("cannot read rules directory {}: {e}", rules_dir.display()),
        };
        match dir {
            Some(at) => self.err(at, msg),
            None => self.err_file(msg),
        }
        Vec::new()
    }

    /// A weights file from `triaged tune` replaces weights (and thresholds) by rule id.
    fn weights(
        &mut self,
        at: &Spanned<String>,
        loaded: RuleSet,
        thresholds: Thresholds,
    ) -> (Option<RuleSet>, Thresholds) {
        let path = self.resolve(at.get_ref());
        if !path.is_file() {
            self.err(
                at,
                format!("weights file {} does not exist", path.display()),
            );
            return (Some(loaded), thresholds);
        }
        match crate::score::load_weights(&path, &loaded) {
            Ok((tuned, th)) => {
                let thresholds = th.map_or(thresholds, |th| Thresholds {
                    no_evidence: thresholds.no_evidence,
                    ..th
                });
                (Some(tuned), thresholds)
            }
            Err(mut errs) => {
                self.errors.append(&mut errs);
                (Some(loaded), thresholds)
            }
        }
    }
}

/// The files in `dir` with extension `ext`, sorted by name.
fn list_files(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    Ok(files)
}
