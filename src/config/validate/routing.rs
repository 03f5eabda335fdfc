//! `[[team]]` and `[[ask]]`: who handles what, and the questions an acknowledgement asks.

use toml::Spanned;

use super::Validator;
use crate::config::{SupportConfig, raw};
use crate::route::{Ask, Routing, Team, TeamFolder};
use crate::score::RuleSet;
use crate::templates::{MailContext, render_inline};

/// Most `[[ask]]` entries, and `unless` patterns of one.
const MAX_ASKS: usize = 200;
const MAX_UNLESS: usize = 20;
/// Compiled size of one `unless` pattern.
const UNLESS_SIZE_LIMIT: usize = 1 << 20;
/// Characters of a team name or a question id.
const MAX_NAME: usize = 40;
/// Characters of a team's customer-facing description.
const MAX_DESCRIPTION: usize = 300;

impl Validator<'_> {
    /// Teams and questions. Intents and rule ids they name must exist in `rules` (`None`: the
    /// rules did not load, and their problems are reported already).
    pub(super) fn routing(
        &mut self,
        teams: Vec<raw::Team>,
        asks: Vec<raw::Ask>,
        support: &SupportConfig,
        rules: Option<&RuleSet>,
        watched: &[&str],
    ) -> Routing {
        let known = Known::of(rules);
        let mut out = Routing::default();
        for t in teams {
            if let Some(team) = self.team(t, support, &known, &out.teams, watched) {
                out.teams.push(team);
            }
        }
        let mut questions: Vec<Ask> = Vec::new();
        if asks.len() > MAX_ASKS {
            self.err_file(format!(
                "{} [[ask]] entries: at most {MAX_ASKS} (an acknowledgement asks at most two)",
                asks.len()
            ));
        }
        for a in asks.into_iter().take(MAX_ASKS) {
            if let Some(ask) = self.ask(a, &known, &out.teams, &questions) {
                questions.push(ask);
            }
        }
        match Routing::new(out.teams, questions) {
            Ok(r) => r,
            Err(e) => {
                self.err_file(e);
                Routing::default()
            }
        }
    }

    fn team(
        &mut self,
        t: raw::Team,
        support: &SupportConfig,
        known: &Known,
        before: &[Team],
        watched: &[&str],
    ) -> Option<Team> {
        let name = t.name.get_ref().trim().to_string();
        let section = format!("[[team]] {name:?}");
        let mut ok = true;
        if !is_name(&name) || name.len() > MAX_NAME {
            self.err(&t.name, format!("team name must be 1 to {MAX_NAME} lower-case letters, digits, '-' or '_' (it names the team in `#team NAME`, the CLI and digests)"));
            ok = false;
        } else if before.iter().any(|b| b.name == name) {
            self.err(
                &t.name,
                format!("a team named {name:?} already exists: give each a different name"),
            );
            ok = false;
        }
        let description = t.description.get_ref().trim().to_string();
        if description.is_empty() || description.contains('\n') {
            self.err(&t.description, format!("{section} description must be one line for customers, e.g. \"our billing specialists, who can check the charges on your account\""));
        } else if description.chars().count() > MAX_DESCRIPTION {
            self.err(
                &t.description,
                format!("{section} description is longer than {MAX_DESCRIPTION} characters"),
            );
        }
        let staff = if t.staff.is_empty() {
            self.err(&t.name, format!("{section} has no staff: list who handles its tickets in staff = [\"...\"] (addresses of [support] staff)"));
            Vec::new()
        } else {
            self.staff_addresses(&section, "staff", &t.staff, support)
        };
        let alert_to = if t.alert_to.is_empty() {
            Vec::new()
        } else {
            self.staff_addresses(&section, "alert_to", &t.alert_to, support)
        };
        let intents = self.known_names(&section, &t.intents, known, Kind::Intent);
        let rules = self.known_names(&section, &t.rules, known, Kind::Rule);
        let default = t.default.as_ref().is_some_and(|d| *d.get_ref());
        if let Some(d) = &t.default
            && *d.get_ref()
            && let Some(first) = before.iter().find(|b| b.default)
        {
            self.err(
                d,
                format!(
                    "{section}: team {:?} is the default team already; only one team can be",
                    first.name
                ),
            );
        }
        let folder = self.team_folder(&section, &t.folder, &t.folder_mode, watched);
        ok.then_some(Team {
            name,
            description,
            staff,
            rules,
            intents,
            default,
            folder,
            alert_to,
        })
    }

    fn team_folder(
        &mut self,
        section: &str,
        folder: &Option<Spanned<String>>,
        mode: &Option<Spanned<String>>,
        watched: &[&str],
    ) -> Option<TeamFolder> {
        let copy = match mode {
            None => false,
            Some(m) => match m.get_ref().as_str() {
                "move" => false,
                "copy" => true,
                other => {
                    self.err(
                        m,
                        format!("{section} folder_mode {other:?}: use \"move\" or \"copy\""),
                    );
                    false
                }
            },
        };
        match folder {
            None => {
                if let Some(m) = mode {
                    self.err(
                        m,
                        format!("{section} folder_mode without folder: name the folder"),
                    );
                }
                None
            }
            Some(f) if f.get_ref().trim().is_empty() => {
                self.err(f, format!("{section} folder is empty"));
                None
            }
            // Filing email into a folder the daemon reads would hand it the email again.
            Some(f)
                if watched.iter().any(|w| {
                    let name = f.get_ref().trim();
                    name == *w
                        || (name.eq_ignore_ascii_case("INBOX") && w.eq_ignore_ascii_case("INBOX"))
                }) =>
            {
                self.err(
                    f,
                    format!(
                        "{section} folder {:?} is a folder the daemon watches (a mailbox's folders or sent_folder): name another one",
                        f.get_ref().trim()
                    ),
                );
                None
            }
            Some(f) => Some(TeamFolder {
                name: f.get_ref().trim().to_string(),
                copy,
            }),
        }
    }

    /// Intents or rule ids the rules know; each unknown one reported where written, with
    /// what exists.
    fn known_names(
        &mut self,
        section: &str,
        names: &[Spanned<String>],
        known: &Known,
        kind: Kind,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for n in names {
            let v = n.get_ref().trim().to_string();
            let (list, what) = match kind {
                Kind::Intent => (&known.intents, "intent"),
                Kind::Rule => (&known.rules, "rule"),
            };
            if known.loaded && !list.contains(&v) {
                let hint = match kind {
                    Kind::Intent => format!(" (the rules give: {})", known.intents.join(", ")),
                    Kind::Rule => String::new(),
                };
                self.err(
                    n,
                    format!("{section}: no rule has {what} {v:?}{hint}: a typo, or a rule file left out?"),
                );
            }
            if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    }

    fn ask(&mut self, a: raw::Ask, known: &Known, teams: &[Team], before: &[Ask]) -> Option<Ask> {
        let id = a.id.get_ref().trim().to_string();
        let section = format!("[[ask]] {id:?}");
        let mut ok = true;
        if !is_name(&id) || id.len() > MAX_NAME {
            self.err(
                &a.id,
                format!("ask id must be 1 to {MAX_NAME} lower-case letters, digits, '-' or '_'"),
            );
            ok = false;
        } else if before.iter().any(|b| b.id == id) {
            self.err(
                &a.id,
                format!("an [[ask]] with id {id:?} already exists: give each a different id"),
            );
            ok = false;
        }
        if a.intents.is_empty() && a.teams.is_empty() {
            self.err(
                &a.id,
                format!(
                    "{section} applies to nothing: give intents = [...] or teams = [...] (or both)"
                ),
            );
            ok = false;
        }
        let intents = self.known_names(&section, &a.intents, known, Kind::Intent);
        let mut for_teams = Vec::new();
        for t in &a.teams {
            let v = t.get_ref().trim().to_string();
            if !teams.iter().any(|t| t.name == v) {
                let names: Vec<&str> = teams.iter().map(|t| t.name.as_str()).collect();
                self.err(
                    t,
                    format!(
                        "{section}: no [[team]] is named {v:?} (teams: {})",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
                ok = false;
            }
            for_teams.push(v);
        }
        let question = a.question.get_ref().trim().to_string();
        if question.is_empty() {
            self.err(&a.question, format!("{section} question is empty"));
            ok = false;
        } else if let Err(e) = render_inline(&question, &MailContext::sample()) {
            self.err(
                &a.question,
                format!("{section} question does not render: {e}"),
            );
            ok = false;
        }
        if a.unless.len() > MAX_UNLESS {
            self.err(
                &a.id,
                format!(
                    "{section} has {} unless patterns: at most {MAX_UNLESS}",
                    a.unless.len()
                ),
            );
        }
        let mut unless = Vec::new();
        for p in a.unless.iter().take(MAX_UNLESS) {
            match regex::RegexBuilder::new(p.get_ref())
                .size_limit(UNLESS_SIZE_LIMIT)
                .build()
            {
                Ok(re) => unless.push(re),
                Err(e) => {
                    let why = e.to_string();
                    let why = why.lines().last().unwrap_or("").trim().to_string();
                    self.err(
                        p,
                        format!("{section} unless pattern does not compile: {why}"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(Ask {
            id,
            question,
            intents,
            teams: for_teams,
            unless,
        })
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Intent,
    Rule,
}

/// The intents and rule ids of the loaded rules.
struct Known {
    loaded: bool,
    intents: Vec<String>,
    rules: Vec<String>,
}

impl Known {
    fn of(rules: Option<&RuleSet>) -> Known {
        let Some(rules) = rules else {
            return Known {
                loaded: false,
                intents: Vec::new(),
                rules: Vec::new(),
            };
        };
        let mut intents: Vec<String> = rules
            .rules()
            .iter()
            .filter_map(|r| r.intent.clone())
            .collect();
        intents.sort();
        intents.dedup();
        Known {
            loaded: true,
            intents,
            rules: rules.rules().iter().map(|r| r.id.clone()).collect(),
        }
    }
}

/// `[a-z0-9_-]+`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}
