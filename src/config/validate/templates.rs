//! `[templates]`: the directory of the email templates, and every template something uses.

use super::Validator;
use crate::alerts::AlertConfig;
use crate::config::{AckConfig, FollowupConfig, raw};
use crate::digest::DigestConfig;
use crate::templates::Templates;

/// What sends email from templates, read before the templates are.
pub(super) struct Users<'a> {
    pub(super) ack: &'a AckConfig,
    pub(super) followups: &'a FollowupConfig,
    pub(super) digests: &'a [DigestConfig],
    pub(super) alerts: Option<&'a AlertConfig>,
}

impl Validator<'_> {
    /// Every template something uses, each with its .txt and .html; a missing file is
    /// reported with what needs it and how to fix it.
    pub(super) fn templates(
        &mut self,
        templates: Option<raw::Templates>,
        users: &Users<'_>,
    ) -> Option<Templates> {
        let dir = self.resolve(
            templates
                .as_ref()
                .and_then(|t| t.dir.as_deref())
                .unwrap_or("templates"),
        );
        let mut names = vec![users.ack.template.clone()];
        for (name, what, fix) in wanted(users) {
            let missing: Vec<String> = ["txt", "html"]
                .iter()
                .map(|ext| format!("{name}.{ext}"))
                .filter(|file| !dir.join(file).is_file())
                .collect();
            if missing.is_empty() {
                names.push(name);
            } else {
                self.err_file(format!(
                    "{what} but {} has no {}: copy them from triaged's templates/ directory{fix}",
                    dir.display(),
                    missing.join(" or "),
                ));
            }
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        match Templates::load(&dir, &names) {
            Ok(t) => Some(t),
            Err(mut errs) => {
                self.errors.append(&mut errs);
                None
            }
        }
    }
}

/// The templates besides the acknowledgement's: (template, what needs it, the other fix).
fn wanted(users: &Users<'_>) -> Vec<(String, String, String)> {
    let mut wanted: Vec<(String, String, String)> = users
        .followups
        .enabled()
        .into_iter()
        .map(|f| {
            let name = f.as_str();
            (
                name.to_string(),
                format!("[followups] {name} is on"),
                format!(", or set {name} = false"),
            )
        })
        .collect();
    for (name, used, section) in [
        ("digest", !users.digests.is_empty(), "[[digest]]"),
        ("alert", users.alerts.is_some(), "[alerts]"),
        (
            "health",
            users.alerts.is_some_and(|a| a.health.enabled),
            "[alerts.health]",
        ),
    ] {
        if used {
            wanted.push((
                name.to_string(),
                format!("{section} needs it"),
                String::new(),
            ));
        }
    }
    wanted
}
