//! Routing: which team a customer's email goes to, and why; and which clarifying questions its
//! acknowledgement asks. Pure: a verdict and the customer's words in, a decision out.
//!
//! A team (`[[team]]`) lists the rules and intents that route to it. The most specific route
//! wins: first a rule a team names (in the order the teams are written), then an intent a team
//! names (the same order), then the default team. The reason names the evidence the way
//! `triaged explain` does: `intent refund, rule billing-error: "charged twice"`.
//!
//! A question (`[[ask]]`) applies to an email with one of its intents or routed to one of its
//! teams, unless one of its `unless` patterns finds the answer already in the email (an order
//! number, a time, an address). At most [`MAX_QUESTIONS`] are asked, in the order written.

use regex::{Regex, RegexSet};

use crate::score::{RuleSet, Verdict};

/// Questions one acknowledgement asks at most: more reads as a form, not a person.
pub const MAX_QUESTIONS: usize = 2;

/// Bytes of the customer's words the `unless` patterns read (the start of a long email says
/// what it is about; the cost of a pattern stays bounded whatever arrives).
pub const MAX_ASK_TEXT: usize = 64 * 1024;

/// One team of `[[team]]`.
#[derive(Debug, Clone)]
pub struct Team {
    /// `[a-z0-9_-]`, unique: in the store, the CLI, `#team NAME` and digests.
    pub name: String,
    /// Customer-facing, to follow "We have passed your message to": "our billing
    /// specialists, who can check the charges on your account".
    pub description: String,
    /// Staff of the team (lower-cased).
    pub staff: Vec<String>,
    /// Rule ids that route here (the most specific route).
    pub rules: Vec<String>,
    /// Intents that route here.
    pub intents: Vec<String>,
    /// Tickets no route claims come here (at most one team).
    pub default: bool,
    /// An IMAP folder the team's email is filed into, and how.
    pub folder: Option<TeamFolder>,
    /// Instant alerts of this team's tickets go to these instead of `[alerts] to` (empty:
    /// `[alerts] to`).
    pub alert_to: Vec<String>,
}

/// Where a team's email is filed in the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamFolder {
    pub name: String,
    /// `true`: a copy is filed, and the email is otherwise filed as without a team (it stays
    /// where it arrived, or goes to its priority's folder); `false`: it is moved, and a
    /// priority's folder is not used. (The watcher does this after setting the keywords.)
    pub copy: bool,
}

/// One question of `[[ask]]`.
#[derive(Debug, Clone)]
pub struct Ask {
    /// Unique; named in `triaged explain` and logs.
    pub id: String,
    /// The question, a template (`{{ team_description }}`, `{{ customer_name }}` ...) rendered
    /// when the email is recorded.
    pub question: String,
    /// Asked when the email has one of these intents ...
    pub intents: Vec<String>,
    /// ... or is routed to one of these teams.
    pub teams: Vec<String>,
    /// Not asked when one of these finds its answer in the subject or the customer's words.
    pub unless: Vec<Regex>,
}

/// Every `unless` pattern of every question in one set, so an email's words are read once
/// whatever the number of questions: (the set, the range of its patterns per question).
#[derive(Debug, Clone)]
pub struct UnlessSet {
    set: RegexSet,
    ranges: Vec<std::ops::Range<usize>>,
}

/// Compiled size of all `unless` patterns together.
pub const UNLESS_SET_SIZE_LIMIT: usize = 32 << 20;

/// `[[team]]` and `[[ask]]`: empty when neither is configured (every email is acknowledged as
/// before, with no team and no question).
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub teams: Vec<Team>,
    pub asks: Vec<Ask>,
    /// Made by [`Routing::new`]; `None`: no question has an `unless`.
    unless: Option<UnlessSet>,
}

/// The team an email went to, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Routed {
    pub team: String,
    /// e.g. `intent refund, rule billing-error: "charged twice"`, or `default team`.
    pub reason: String,
}

impl Routing {
    /// Teams and questions, the questions' `unless` patterns compiled into one set (an error
    /// when together they pass [`UNLESS_SET_SIZE_LIMIT`]).
    pub fn new(teams: Vec<Team>, asks: Vec<Ask>) -> Result<Routing, String> {
        let mut patterns = Vec::new();
        let mut ranges = Vec::new();
        for a in &asks {
            let start = patterns.len();
            patterns.extend(a.unless.iter().map(|r| r.as_str().to_string()));
            ranges.push(start..patterns.len());
        }
        let unless = if patterns.is_empty() {
            None
        } else {
            let set = regex::RegexSetBuilder::new(&patterns)
                .size_limit(UNLESS_SET_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    format!(
                        "the [[ask]] unless patterns together are too large: {}",
                        e.to_string().lines().last().unwrap_or("").trim()
                    )
                })?;
            Some(UnlessSet { set, ranges })
        };
        Ok(Routing {
            teams,
            asks,
            unless,
        })
    }

    pub fn team(&self, name: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.name == name)
    }

    /// The team for `verdict`: a team's rule, else a team's intent, else the default team;
    /// `None` when no team is configured or none applies and there is no default.
    pub fn route(&self, verdict: &Verdict, rules: &RuleSet) -> Option<Routed> {
        for team in &self.teams {
            if let Some(hit) = verdict
                .hits
                .iter()
                .find(|h| team.rules.iter().any(|r| *r == h.rule))
            {
                return Some(Routed {
                    team: team.name.clone(),
                    reason: rule_words(&hit.rule, &hit.matched, &hit.target),
                });
            }
        }
        for team in &self.teams {
            if let Some(intent) = verdict
                .intents
                .iter()
                .find(|i| team.intents.iter().any(|t| t == *i))
            {
                // The first rule that gave this intent (a learned intent may have several,
                // none alone enough: then the intent speaks for itself).
                let by = verdict.hits.iter().find(|h| {
                    rules
                        .rules()
                        .iter()
                        .any(|r| r.id == h.rule && r.intent.as_deref() == Some(intent))
                });
                let reason = match by {
                    Some(h) => format!(
                        "intent {intent}, {}",
                        rule_words(&h.rule, &h.matched, &h.target)
                    ),
                    None => format!("intent {intent}"),
                };
                return Some(Routed {
                    team: team.name.clone(),
                    reason,
                });
            }
        }
        self.teams.iter().find(|t| t.default).map(|t| Routed {
            team: t.name.clone(),
            reason: "default team (no route matched)".into(),
        })
    }

    /// What routing makes of a customer's email with `verdict`, `subject` and `body` (its text
    /// body as parsed): the team and why, and the questions its acknowledgement asks, whose
    /// `unless` patterns read the subject and the customer's own words (quotes and signature
    /// left out, as the rules read them). The pipeline records this and
    /// `triaged explain` shows it: one function, so the two cannot differ.
    pub fn decide(
        &self,
        verdict: &Verdict,
        rules: &RuleSet,
        subject: &str,
        body: &str,
    ) -> Decision<'_> {
        let routed = self.route(verdict, rules);
        let team = routed.as_ref().map(|r| r.team.as_str());
        // The text is put together only when a question could be asked.
        let applies = self.applies(verdict, team);
        if applies.is_empty() {
            return Decision {
                routed,
                asks: Vec::new(),
                answered: Vec::new(),
                beyond: Vec::new(),
            };
        }
        let text = format!("{subject}\n{}", crate::score::text::own_words(body));
        let Sorted {
            asks,
            answered,
            beyond,
        } = self.sort_out(applies, &text);
        Decision {
            routed,
            asks,
            answered,
            beyond,
        }
    }

    /// The questions to ask about an email with `verdict`, routed to `team`, whose subject and
    /// own words (quotes and signature left out) are `text`: at most [`MAX_QUESTIONS`], in the
    /// order written.
    pub fn questions(&self, verdict: &Verdict, team: Option<&str>, text: &str) -> Vec<&Ask> {
        self.sort_out(self.applies(verdict, team), text).asks
    }

    /// The questions `applies` (indices into `asks`, in order) sorted out by `text`: those to
    /// ask (its answer is not in `text`; at most [`MAX_QUESTIONS`]), those it answers, and
    /// those left unasked past the limit.
    fn sort_out(&self, applies: Vec<usize>, text: &str) -> Sorted<'_> {
        if applies.is_empty() {
            return Sorted::default();
        }
        // One pass over the words for every pattern.
        let matched = self
            .unless
            .as_ref()
            .map(|u| (u.set.matches(head(text, MAX_ASK_TEXT)), &u.ranges));
        let (answered, asks): (Vec<usize>, Vec<usize>) = applies.into_iter().partition(|&i| {
            matched
                .as_ref()
                .is_some_and(|(m, ranges)| ranges[i].clone().any(|p| m.matched(p)))
        });
        let of = |ids: &[usize]| ids.iter().map(|&i| &self.asks[i]).collect::<Vec<_>>();
        let cut = asks.len().min(MAX_QUESTIONS);
        Sorted {
            asks: of(&asks[..cut]),
            answered: of(&answered),
            beyond: of(&asks[cut..]),
        }
    }

    /// The questions (indices into `asks`) that apply to an email with `verdict` routed to
    /// `team`, before their `unless` patterns are read.
    fn applies(&self, verdict: &Verdict, team: Option<&str>) -> Vec<usize> {
        (0..self.asks.len())
            .filter(|&i| {
                let a = &self.asks[i];
                a.intents.iter().any(|x| verdict.intents.contains(x))
                    || team.is_some_and(|t| a.teams.iter().any(|x| x == t))
            })
            .collect()
    }
}

/// The questions that apply to one email, sorted out.
#[derive(Default)]
struct Sorted<'a> {
    asks: Vec<&'a Ask>,
    answered: Vec<&'a Ask>,
    beyond: Vec<&'a Ask>,
}

/// What [`Routing::decide`] makes of one customer's email.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    /// The team and why; `None`: no team applies (none configured, no route matched and no
    /// default team).
    pub routed: Option<Routed>,
    /// The questions its acknowledgement asks, in the order written, at most
    /// [`MAX_QUESTIONS`] (unrendered: the outbox renders them when it writes the email).
    pub asks: Vec<&'a Ask>,
    /// Questions that apply but are not asked: one of their `unless` patterns found the answer
    /// in the email.
    pub answered: Vec<&'a Ask>,
    /// Questions that apply and are not answered but are not asked either: past
    /// [`MAX_QUESTIONS`], in the order written.
    pub beyond: Vec<&'a Ask>,
}

/// `rule ID: "words"` (a meta rule or a signal names what it saw the same way).
fn rule_words(rule: &str, matched: &str, target: &str) -> String {
    if matched.is_empty() || target == "meta" {
        format!("rule {rule}")
    } else {
        format!("rule {rule}: \u{201c}{matched}\u{201d}")
    }
}

/// The first `max` bytes of `s`, cut on a character boundary.
fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{Hit, Priority};

    fn rules() -> RuleSet {
        let dir = std::env::temp_dir().join(format!("triaged-route-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.toml");
        std::fs::write(
            &path,
            r#"
[[rule]]
id = "charged-twice"
keywords = ["charged twice"]
weight = 3.0
intent = "billing"

[[rule]]
id = "refund-word"
keywords = ["refund"]
weight = 1.0
intent = "refund"

[[rule]]
id = "down"
keywords = ["down"]
weight = 5.0
intent = "outage"
"#,
        )
        .unwrap();
        RuleSet::load(&[path.as_path()]).expect("rules load")
    }

    fn verdict(intents: &[&str], hits: &[(&str, &str)]) -> Verdict {
        Verdict {
            score: 1.0,
            priority: Priority::Normal,
            tones: Vec::new(),
            intents: intents.iter().map(|s| s.to_string()).collect(),
            hits: hits
                .iter()
                .map(|(rule, matched)| Hit {
                    rule: (*rule).into(),
                    target: "body".into(),
                    matched: (*matched).into(),
                    count: 1,
                    weight: 1.0,
                })
                .collect(),
            caps: Vec::new(),
            evidence: Vec::new(),
        }
    }

    fn team(name: &str, rules: &[&str], intents: &[&str], default: bool) -> Team {
        Team {
            name: name.into(),
            description: format!("our {name} people"),
            staff: vec!["a@example.com".into()],
            rules: rules.iter().map(|s| s.to_string()).collect(),
            intents: intents.iter().map(|s| s.to_string()).collect(),
            default,
            folder: None,
            alert_to: Vec::new(),
        }
    }

    fn ask(id: &str, intents: &[&str], teams: &[&str], unless: &[&str]) -> Ask {
        Ask {
            id: id.into(),
            question: format!("{id}?"),
            intents: intents.iter().map(|s| s.to_string()).collect(),
            teams: teams.iter().map(|s| s.to_string()).collect(),
            unless: unless.iter().map(|p| Regex::new(p).unwrap()).collect(),
        }
    }

    #[test]
    fn the_most_specific_route_wins_and_says_why() {
        let rules = rules();
        let routing = Routing::new(
            vec![
                team("technical", &[], &["outage"], false),
                team("billing", &["charged-twice"], &["refund", "billing"], false),
                team("general", &[], &[], true),
            ],
            Vec::new(),
        )
        .unwrap();
        // A rule route beats an intent route of a team written before it.
        let v = verdict(
            &["billing", "outage"],
            &[("down", "down"), ("charged-twice", "charged twice")],
        );
        let r = routing.route(&v, &rules).unwrap();
        assert_eq!(r.team, "billing");
        assert_eq!(
            r.reason,
            "rule charged-twice: \u{201c}charged twice\u{201d}"
        );
        // Intents: the first team written that names one of them, with the rule that gave it.
        let v = verdict(
            &["outage", "refund"],
            &[("refund-word", "refund"), ("down", "down")],
        );
        let r = routing.route(&v, &rules).unwrap();
        assert_eq!(r.team, "technical");
        assert_eq!(r.reason, "intent outage, rule down: \u{201c}down\u{201d}");
        // An intent no rule hit gave (learned evidence) speaks for itself.
        let r = routing.route(&verdict(&["refund"], &[]), &rules).unwrap();
        assert_eq!(
            (r.team.as_str(), r.reason.as_str()),
            ("billing", "intent refund")
        );
        // Nothing matched: the default team.
        let r = routing.route(&verdict(&[], &[]), &rules).unwrap();
        assert_eq!(r.team, "general");
        assert_eq!(r.reason, "default team (no route matched)");
        // Without a default team, no team; without teams, never one.
        let no_default =
            Routing::new(vec![team("billing", &[], &["refund"], false)], Vec::new()).unwrap();
        assert_eq!(no_default.route(&verdict(&["outage"], &[]), &rules), None);
        assert_eq!(Routing::default().route(&v, &rules), None);
    }

    #[test]
    fn questions_apply_by_intent_or_team_unless_answered_at_most_two() {
        let routing = Routing::new(
            Vec::new(),
            vec![
                ask(
                    "invoice",
                    &["billing", "refund"],
                    &[],
                    &[r"(?i)\b(invoice|order)\W{0,3}(no\.?|number|#)?\W{0,3}[a-z]{0,4}-?\d{3,}"],
                ),
                ask("since-when", &["outage"], &[], &[r"(?i)\bsince\b"]),
                ask("account", &[], &["billing"], &[r"[\w.+-]+@[\w-]+\.[\w.]+"]),
                ask("more", &["billing"], &[], &[]),
            ],
        )
        .unwrap();
        let billing = verdict(&["billing"], &[]);
        let ids = |qs: Vec<&Ask>| qs.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(routing.questions(&billing, Some("billing"), "I was charged twice")),
            ["invoice", "account"],
            "the first two that apply, in the order written"
        );
        let sorted = routing.sort_out(
            routing.applies(&billing, Some("billing")),
            "I was charged twice",
        );
        assert_eq!(
            ids(sorted.beyond),
            ["more"],
            "unasked past the limit, and said so"
        );
        assert_eq!(
            ids(routing.questions(&billing, None, "charged twice for invoice INV-20417")),
            ["more"],
            "the invoice number is there; no team, so not the team's question"
        );
        assert_eq!(
            ids(routing.questions(
                &verdict(&["outage"], &[]),
                Some("technical"),
                "It has been down since 9 this morning"
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            ids(routing.questions(&verdict(&["outage"], &[]), None, "It is down")),
            ["since-when"]
        );
        assert!(
            routing
                .questions(&verdict(&[], &[]), None, "hello")
                .is_empty()
        );
    }

    #[test]
    fn decide_reads_the_subject_and_the_customers_own_words_and_says_what_was_answered() {
        let rules = rules();
        let routing = Routing::new(
            vec![team("billing", &["charged-twice"], &["billing"], false)],
            vec![
                ask(
                    "invoice",
                    &["billing"],
                    &[],
                    &[r"(?i)\binvoice\W{0,3}\d{3,}"],
                ),
                ask("account", &[], &["billing"], &[r"@"]),
            ],
        )
        .unwrap();
        let v = verdict(&["billing"], &[("charged-twice", "charged twice")]);
        let ids = |qs: &[&Ask]| qs.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
        // The number only in the quoted thread is not the customer's answer.
        let d = routing.decide(&v, &rules, "Charged twice", "Help!\n> invoice 12345\n");
        assert_eq!(d.routed.as_ref().map(|r| r.team.as_str()), Some("billing"));
        assert_eq!(ids(&d.asks), ["invoice", "account"]);
        assert!(d.answered.is_empty());
        // In the subject it is.
        let d = routing.decide(&v, &rules, "Charged twice, invoice 12345", "Help!");
        assert_eq!(ids(&d.asks), ["account"]);
        assert_eq!(ids(&d.answered), ["invoice"]);
        // No team and no intent that asks: nothing, and nothing answered.
        let d = routing.decide(&verdict(&[], &[]), &rules, "Hello", "a@b.example");
        assert_eq!(d.routed, None);
        assert!(d.asks.is_empty() && d.answered.is_empty());
    }

    #[test]
    fn unless_reads_a_bounded_start_of_a_long_email() {
        let routing = Routing::new(
            Vec::new(),
            vec![ask("since-when", &["outage"], &[], &[r"(?i)\bsince\b"])],
        )
        .unwrap();
        let mut text = "x ".repeat(MAX_ASK_TEXT);
        text.push_str("since Monday");
        // The answer past the bound is not read: the question is asked.
        assert_eq!(
            routing
                .questions(&verdict(&["outage"], &[]), None, &text)
                .len(),
            1
        );
        assert_eq!(head("héllo", 2), "h");
    }
}
