//! `triaged explain`: why an email scores as it does.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::guard;
use crate::parse::{self, Email, ParseLimits};
use crate::route::Routed;
use crate::score::{self, History, Verdict};
use crate::store::Store;
use crate::templates::MailContext;
use crate::tickets::{self, Role};
use crate::wording;

/// Parse `path` (an RFC 5322 message), score it with the configured rules and say why: the
/// verdict, every hit, whether the guard would let an acknowledgement go out, the team it goes
/// to and why, and the questions its acknowledgement would ask. History signals (earlier
/// contacts) come from the store when it exists; it is only read.
pub fn explain(config: &Config, path: &Path, json: bool, now: i64) -> Result<String> {
    let raw = std::fs::read(path).with_context(|| format!("Reading {}", path.display()))?;
    let limits = ParseLimits {
        max_size: config.mailbox().max_message_size,
    };
    let email = match parse::parse(&raw, &limits) {
        Ok(e) => e,
        Err(skip) => anyhow::bail!(
            "{}: the daemon would record this email as skipped ({}): {skip}",
            path.display(),
            skip.code()
        ),
    };
    let (history, history_note) = if config.store.path.exists() {
        let store = Store::open(&config.store.path)?;
        let h = store.history(&email, now, config.rules.history_window_secs())?;
        let note = format!(
            "{} earlier email(s) from this sender in the store",
            h.earlier_contacts.len()
        );
        (h, note)
    } else {
        (
            History::default(),
            "no store yet: no earlier contacts".to_string(),
        )
    };
    let verdict = score::score(&email, &config.rules, &config.thresholds, &history, now);
    let guard = guard::check(&email, &config.guard_config());
    let ack = match guard {
        Ok(()) => "may be acknowledged (subject to the per-sender limit and max_age)".to_string(),
        Err(r) => format!("no acknowledgement: {}", r.code()),
    };
    let from = email
        .from
        .as_ref()
        .map(|a| a.email.clone())
        .unwrap_or_default();
    let routing = Routing::of(config, &email, &verdict, guard, now);
    if json {
        let mut v = score::explain_json(&verdict, &config.rules, &config.thresholds);
        v["file"] = path.display().to_string().into();
        v["from"] = from.into();
        v["subject"] = email.subject.clone().into();
        v["guard"] = match guard {
            Ok(()) => "ok".into(),
            Err(r) => r.code().into(),
        };
        v["history"] = history_note.into();
        v["budget"] = email.budget.clone().into();
        v["route"] = routing.route_json();
        v["would_ask"] = routing.asks_json();
        v["answered"] = routing.answered_json();
        v["not_asked_beyond_limit"] = routing.beyond.clone().into();
        return Ok(format!(
            "{}\n",
            crate::wording::json(serde_json::to_string_pretty(&v)?)
        ));
    }
    // The sender, the subject and the matched words are the customer's: shown escaped. The
    // report is a table of lines, so only its line breaks and tabs stay.
    let budget: String = email
        .budget
        .iter()
        .map(|note| format!("budget   {}\n", wording::one_line(note)))
        .collect();
    Ok(format!(
        "{}\nfrom     {}\nsubject  {}\nguard    {ack}\nhistory  {history_note}\n{budget}{}\n{}",
        wording::one_line(&path.display().to_string()),
        wording::one_line(&from),
        wording::one_line(&email.subject),
        wording::lines(&score::explain_text(
            &verdict,
            &config.rules,
            &config.thresholds
        )),
        routing.text()
    ))
}

/// The team an email goes to and the questions its acknowledgement asks, as the daemon
/// decides them ([`crate::route::Routing::decide`]), the questions rendered as the outbox
/// renders them.
struct Routing {
    /// The team and why; `Err`: why there is none.
    team: Result<Routed, String>,
    /// Each question's `[[ask]]` id and its text (`Err`: why it does not render).
    asks: Vec<(String, Result<String, String>)>,
    /// Why nothing is asked, when nothing is.
    no_asks: String,
    /// `[[ask]]` ids that apply but are not asked: the email gives their answer.
    answered: Vec<String>,
    /// `[[ask]]` ids that apply, unanswered, past the limit of questions an ack asks.
    beyond: Vec<String>,
}

impl Routing {
    fn of(
        config: &Config,
        email: &Email,
        verdict: &Verdict,
        guard: Result<(), guard::Refusal>,
        now: i64,
    ) -> Routing {
        let routing = &config.routing;
        // The daemon routes only a customer's email (explain reads no folder: not the Sent one).
        if tickets::role_of(guard, false) != Role::Customer {
            return Routing {
                team: Err("not a customer's email: staff and robots are not routed".into()),
                asks: Vec::new(),
                no_asks: "nothing (not a customer's email)".into(),
                answered: Vec::new(),
                beyond: Vec::new(),
            };
        }
        let d = routing.decide(verdict, &config.rules, &email.subject, &email.body_text);
        let team = d.routed.ok_or_else(|| {
            if routing.teams.is_empty() {
                "no [[team]] configured".to_string()
            } else {
                "no route matched, and no default team".to_string()
            }
        });
        let answered: Vec<&str> = d.answered.iter().map(|a| a.id.as_str()).collect();
        let no_asks = if guard.is_err() {
            "nothing (no acknowledgement goes out)".to_string()
        } else if routing.asks.is_empty() {
            "nothing (no [[ask]] configured)".to_string()
        } else if answered.is_empty() {
            "nothing (no question applies)".to_string()
        } else {
            format!("nothing (the email answers {})", answered.join(", "))
        };
        if guard.is_err() {
            return Routing {
                team,
                asks: Vec::new(),
                no_asks,
                answered: Vec::new(),
                beyond: Vec::new(),
            };
        }
        let ctx = context(config, email, verdict, team.as_ref().ok(), now);
        let asks = d
            .asks
            .iter()
            .map(|a| {
                let text = crate::templates::render_inline(&a.question, &ctx);
                (a.id.clone(), text)
            })
            .collect();
        Routing {
            team,
            asks,
            no_asks,
            answered: answered.into_iter().map(str::to_string).collect(),
            beyond: d.beyond.iter().map(|a| a.id.clone()).collect(),
        }
    }

    /// `team     NAME (REASON)` and `would ask: ...`, one question a line.
    fn text(&self) -> String {
        let team = match &self.team {
            Ok(r) => format!("{} ({})", r.team, r.reason),
            Err(why) => format!("none ({why})"),
        };
        let mut out = format!("team     {}\n", wording::one_line(&team));
        if self.asks.is_empty() {
            out.push_str(&format!("would ask: {}\n", self.no_asks));
        }
        for (i, (id, q)) in self.asks.iter().enumerate() {
            let lead = if i == 0 { "would ask:" } else { "          " };
            let q = match q {
                Ok(q) => format!("\u{201c}{q}\u{201d}"),
                Err(e) => format!("(left out: it does not render: {e})"),
            };
            out.push_str(&format!("{lead} {} [{id}]\n", wording::one_line(&q)));
        }
        if !self.asks.is_empty() && !self.answered.is_empty() {
            out.push_str(&format!(
                "           (not asked: the email answers {})\n",
                self.answered.join(", ")
            ));
        }
        if !self.beyond.is_empty() {
            let ids: Vec<String> = self.beyond.iter().map(|id| format!("[{id}]")).collect();
            out.push_str(&format!(
                "           (not asked: an acknowledgement asks at most {}; {} also {})\n",
                crate::route::MAX_QUESTIONS,
                ids.join(", "),
                if ids.len() == 1 { "applies" } else { "apply" }
            ));
        }
        out
    }

    /// `{"team": NAME, "reason": WHY}`, or `{"team": null, "reason": why there is none}`.
    fn route_json(&self) -> serde_json::Value {
        match &self.team {
            Ok(r) => serde_json::json!({"team": r.team, "reason": r.reason}),
            Err(why) => serde_json::json!({"team": null, "reason": why}),
        }
    }

    /// `[{"id": ID, "question": TEXT}]` (`"error"` instead of `"question"` when it does not
    /// render).
    fn asks_json(&self) -> serde_json::Value {
        self.asks
            .iter()
            .map(|(id, q)| match q {
                Ok(q) => serde_json::json!({"id": id, "question": q}),
                Err(e) => serde_json::json!({"id": id, "error": e}),
            })
            .collect()
    }

    /// `[[ask]]` ids not asked because the email answers them.
    fn answered_json(&self) -> serde_json::Value {
        self.answered.clone().into()
    }
}

/// What the outbox gives a question to render, as far as it is known before the email is
/// recorded: no ticket tag yet (the placeholder `T-NEW`), the reply time promised from now.
fn context(
    config: &Config,
    email: &Email,
    verdict: &Verdict,
    team: Option<&Routed>,
    now: i64,
) -> MailContext {
    // Whom the acknowledgement goes to, and the name it greets (as the store records them).
    let (customer_email, name) = email
        .reply_address()
        .map(|a| {
            let name = email.from.as_ref().and_then(|f| f.name.clone());
            (a.email.clone(), name.or_else(|| a.name.clone()))
        })
        .unwrap_or_default();
    let name = name.unwrap_or_default();
    let customer_name = if name.trim().is_empty() {
        customer_email.split('@').next().unwrap_or("").to_string()
    } else {
        name
    };
    let team = team.and_then(|r| config.routing.team(&r.team));
    let sla = &config.sla;
    MailContext {
        kind: "ack".into(),
        customer_name,
        customer_email,
        ticket: "T-NEW".into(),
        subject: email.subject.clone(),
        priority: verdict.priority.as_str().to_string(),
        tones: verdict.tones.clone(),
        reply_time: sla.promise(now, sla.first_response(verdict.priority), now),
        survey_url: config.followups.survey_url.clone(),
        support_address: config.mailbox().address.clone(),
        intents: verdict.intents.clone(),
        team: team.map(|t| t.name.clone()).unwrap_or_default(),
        team_description: team.map(|t| t.description.clone()).unwrap_or_default(),
        questions: Vec::new(),
    }
}
