//! `[flags]`: how priorities and tones are shown on the IMAP server.

use std::collections::BTreeMap;

use toml::Spanned;

use super::Validator;
use crate::config::{FlagsConfig, KeywordFallback, raw};
use crate::score::Priority;

impl Validator<'_> {
    pub(super) fn flags(&mut self, flags: raw::Flags) -> FlagsConfig {
        let mut priority_keywords: BTreeMap<Priority, String> = Priority::ALL
            .iter()
            .map(|p| (*p, format!("triage/{}", p.as_str())))
            .collect();
        if let Some(k) = &flags.priority_keywords {
            for (p, v) in k.entries() {
                let kw = self.keyword(v);
                priority_keywords.insert(p, kw);
            }
        }
        let tone_prefix = flags
            .tone_prefix
            .clone()
            .unwrap_or_else(|| Spanned::new(0..0, "tone/".into()));
        if !tone_prefix.get_ref().is_empty() {
            self.keyword(&tone_prefix);
        }
        let mut folders = BTreeMap::new();
        if let Some(f) = &flags.folders {
            for (p, v) in f.entries() {
                folders.insert(p, v.get_ref().clone());
            }
        }
        FlagsConfig {
            enabled: flags.enabled.unwrap_or(true),
            priority_keywords,
            tone_prefix: tone_prefix.into_inner(),
            flag_urgent: flags.flag_urgent.unwrap_or(true),
            folders,
            keyword_fallback: self.keyword_fallback(flags.keyword_fallback.as_ref()),
            corrections: flags.corrections.unwrap_or(true),
            corrections_interval: self.duration_where(
                &flags.corrections_interval,
                std::time::Duration::from_secs(5 * 60),
                |d| !d.is_zero(),
                "corrections_interval must be longer than 0s, e.g. \"5m\"",
            ),
        }
    }

    fn keyword(&mut self, k: &Spanned<String>) -> String {
        let v = k.get_ref().clone();
        let bad = v.is_empty()
            || v.starts_with('\\')
            || v.chars().any(|c| {
                c.is_control() || c.is_whitespace() || "(){%*\"\\]".contains(c) || !c.is_ascii()
            });
        if bad {
            self.err(k, format!("{v:?} is not a valid IMAP keyword: use ASCII without spaces or any of (){{%*\"\\]"));
        }
        v
    }

    fn keyword_fallback(&mut self, value: Option<&Spanned<String>>) -> KeywordFallback {
        let Some(at) = value else {
            return KeywordFallback::Flagged;
        };
        match at.get_ref().as_str() {
            "flagged" => KeywordFallback::Flagged,
            "folders" => KeywordFallback::Folders,
            other => {
                self.err(
                    at,
                    format!("unknown keyword_fallback {other:?}: use \"flagged\" or \"folders\""),
                );
                KeywordFallback::Flagged
            }
        }
    }
}
