//! The TOML schema exactly as written by the operator. Unknown keys are errors: all of a file's
//! are found by walking [`shape`] (see [`super::keys`]) before serde, which stops at the first.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::keys::Shape;
use crate::score::Priority;

/// The tables of the file: which keys hold tables, and of which struct. A struct added for a
/// table is named here too (`every_table_of_the_example_is_walked` fails otherwise).
pub fn shape() -> Shape {
    let per_priority = Shape::of::<PerPriority>;
    Shape::of::<Root>()
        .with("mailbox", Shape::of::<Mailbox>())
        .with(
            "smtp",
            Shape::of::<Smtp>().with("rate_limits", Shape::of::<RateLimit>()),
        )
        .with("store", Shape::of::<Store>())
        .with("support", Shape::of::<Support>())
        .with("ack", Shape::of::<Ack>().with("reply_time", per_priority()))
        .with(
            "flags",
            Shape::of::<Flags>()
                .with("priority_keywords", per_priority())
                .with("folders", per_priority()),
        )
        .with(
            "scoring",
            Shape::of::<Scoring>().with("thresholds", Shape::of::<Thresholds>()),
        )
        .with("templates", Shape::of::<Templates>())
        .with("outbox", Shape::of::<Outbox>())
        .with(
            "sla",
            Shape::of::<Sla>()
                .with("first_response", per_priority())
                .with("next_response", per_priority()),
        )
        .with("followups", Shape::of::<Followups>())
        .with("digest", Shape::of::<Digest>())
        .with("team", Shape::of::<Team>())
        .with("ask", Shape::of::<Ask>())
        .with(
            "alerts",
            Shape::of::<Alerts>().with("health", Shape::of::<Health>()),
        )
        .with("http", Shape::of::<Http>())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    pub mailbox: Mailboxes,
    pub smtp: Smtp,
    pub store: Store,
    pub support: Support,
    pub ack: Option<Ack>,
    pub flags: Option<Flags>,
    pub scoring: Option<Scoring>,
    pub templates: Option<Templates>,
    pub outbox: Option<Outbox>,
    pub sla: Option<Sla>,
    pub followups: Option<Followups>,
    #[serde(default)]
    pub digest: Vec<Digest>,
    pub alerts: Option<Alerts>,
    pub http: Option<Http>,
    #[serde(default)]
    pub team: Vec<Team>,
    #[serde(default)]
    pub ask: Vec<Ask>,
}

/// `[[team]]`: who handles what, and what the customer is told about them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: Spanned<String>,
    pub description: Spanned<String>,
    #[serde(default)]
    pub staff: Vec<Spanned<String>>,
    #[serde(default)]
    pub intents: Vec<Spanned<String>>,
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    pub default: Option<Spanned<bool>>,
    pub folder: Option<Spanned<String>>,
    pub folder_mode: Option<Spanned<String>>,
    #[serde(default)]
    pub alert_to: Vec<Spanned<String>>,
}

/// `[[ask]]`: a clarifying question, and the evidence that makes it unnecessary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    pub id: Spanned<String>,
    pub question: Spanned<String>,
    #[serde(default)]
    pub intents: Vec<Spanned<String>>,
    #[serde(default)]
    pub teams: Vec<Spanned<String>>,
    #[serde(default)]
    pub unless: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub enabled: Option<bool>,
    pub listen: Option<Spanned<String>>,
    pub allow_remote: Option<bool>,
}

/// `[mailbox]` (one table) or `[[mailbox]]` (several). Not `#[serde(untagged)]`: that buffers
/// the input, which loses the spans (`Spanned` fails outright) and turns a typo into "did not
/// match any variant"; dispatching on table or array keeps toml's own errors and positions.
#[derive(Debug)]
pub struct Mailboxes(pub Vec<Mailbox>);

impl<'de> Deserialize<'de> for Mailboxes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};

        struct OneOrMany;
        impl<'de> serde::de::Visitor<'de> for OneOrMany {
            type Value = Mailboxes;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [mailbox] table or [[mailbox]] tables")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Mailboxes, A::Error> {
                Mailbox::deserialize(MapAccessDeserializer::new(map)).map(|m| Mailboxes(vec![m]))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Mailboxes, A::Error> {
                Vec::<Mailbox>::deserialize(SeqAccessDeserializer::new(seq)).map(Mailboxes)
            }
        }
        d.deserialize_any(OneOrMany)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mailbox {
    /// Required and unique when there are several; `[a-z0-9_-]`. Default "main".
    pub name: Option<Spanned<String>>,
    /// The support address this mailbox receives for (default: the first [support] address).
    pub address: Option<Spanned<String>>,
    pub host: Spanned<String>,
    pub port: Option<u16>,
    pub tls: Spanned<String>,
    pub username: Spanned<String>,
    pub auth: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_command: Option<Spanned<String>>,
    pub token_command: Option<Spanned<String>>,
    pub token_lifetime: Option<Spanned<String>>,
    pub folder: Option<Spanned<String>>,
    /// The folders to watch; `folder = "X"` is the one-folder spelling.
    pub folders: Option<Spanned<Vec<Spanned<String>>>>,
    pub sent_folder: Option<String>,
    pub poll_interval: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    /// How often a waiting connection is checked (IDLE ended, NOOP, IDLE again).
    pub liveness_interval: Option<Spanned<String>>,
    /// How long the answer to that check (and to IDLE, DONE) may take.
    pub liveness_timeout: Option<Spanned<String>>,
    pub start: Option<Spanned<String>>,
    pub ca_file: Option<String>,
    pub batch_size: Option<Spanned<i64>>,
    pub max_message_size: Option<Spanned<String>>,
    pub triage_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: Spanned<String>,
    pub port: Option<u16>,
    pub tls: Spanned<String>,
    pub username: Option<Spanned<String>>,
    pub auth: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_command: Option<Spanned<String>>,
    pub token_command: Option<Spanned<String>>,
    pub token_lifetime: Option<Spanned<String>>,
    pub from: Spanned<String>,
    pub ca_file: Option<String>,
    pub timeout: Option<Spanned<String>>,
    pub transaction_timeout: Option<Spanned<String>>,
    pub rate_limits: Option<Vec<RateLimit>>,
    pub pushback_pause: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub max: Spanned<u32>,
    pub per: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    pub path: String,
    pub busy_timeout: Option<Spanned<String>>,
    pub keep_text: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Support {
    pub addresses: Vec<Spanned<String>>,
    #[serde(default)]
    pub staff: Vec<Spanned<String>>,
    pub domain: Spanned<String>,
    pub require_addressed: Option<bool>,
}

/// One value per priority, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerPriority {
    pub urgent: Option<Spanned<String>>,
    pub high: Option<Spanned<String>>,
    pub normal: Option<Spanned<String>>,
    pub low: Option<Spanned<String>>,
}

impl PerPriority {
    pub fn entries(&self) -> impl Iterator<Item = (Priority, &Spanned<String>)> {
        [
            (Priority::Urgent, &self.urgent),
            (Priority::High, &self.high),
            (Priority::Normal, &self.normal),
            (Priority::Low, &self.low),
        ]
        .into_iter()
        .filter_map(|(p, v)| v.as_ref().map(|v| (p, v)))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub enabled: Option<bool>,
    pub template: Option<String>,
    pub per_sender_limit: Option<u32>,
    pub per_sender_window: Option<Spanned<String>>,
    pub max_age: Option<Spanned<String>>,
    pub circuit_breaker_per_minute: Option<u32>,
    pub loop_burst: Option<u32>,
    pub loop_window: Option<Spanned<String>>,
    pub max_unanswered_auto: Option<Spanned<u32>>,
    pub auto_answer_within: Option<Spanned<String>>,
    pub reply_time: Option<PerPriority>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flags {
    pub enabled: Option<bool>,
    pub priority_keywords: Option<PerPriority>,
    pub tone_prefix: Option<Spanned<String>>,
    pub flag_urgent: Option<bool>,
    pub folders: Option<PerPriority>,
    pub keyword_fallback: Option<Spanned<String>>,
    pub corrections: Option<bool>,
    pub corrections_interval: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub urgent: Option<f64>,
    pub high: Option<f64>,
    pub normal: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scoring {
    pub rules: Option<Spanned<String>>,
    pub weights: Option<Spanned<String>>,
    pub no_evidence: Option<Spanned<String>>,
    pub thresholds: Option<Thresholds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    pub dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbox {
    pub max_attempts: Option<u32>,
    pub retry_initial: Option<Spanned<String>>,
    pub retry_max: Option<Spanned<String>>,
    pub account_retry: Option<Spanned<String>>,
    pub concurrency: Option<Spanned<u32>>,
    pub witness: Option<Spanned<String>>,
    pub witness_grace: Option<Spanned<String>>,
}

/// Business hours and response targets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    pub timezone: Spanned<String>,
    #[serde(default)]
    pub hours: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub holidays: Vec<Spanned<String>>,
    pub first_response: Option<PerPriority>,
    pub next_response: Option<PerPriority>,
}

/// The follow-up policies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Followups {
    pub holding: Option<bool>,
    pub verify: Option<bool>,
    pub verify_after: Option<Spanned<String>>,
    pub survey: Option<bool>,
    pub survey_after: Option<Spanned<String>>,
    pub survey_url: Option<Spanned<String>>,
    /// Customer-facing hours, in the form of `[sla.hours]`; default: the business hours.
    pub hours: Option<BTreeMap<String, Spanned<String>>>,
}

/// One `[[digest]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    pub name: Spanned<String>,
    pub to: Vec<Spanned<String>>,
    pub times: Spanned<Vec<String>>,
    #[serde(default)]
    pub days: Vec<String>,
    pub timezone: Option<Spanned<String>>,
    pub quiet_hours: Option<Spanned<String>>,
    pub send_empty: Option<bool>,
    #[serde(default)]
    pub intents: Vec<String>,
    #[serde(default)]
    pub priorities: Vec<Spanned<String>>,
    pub due_soon: Option<Spanned<String>>,
    pub repeat_count: Option<usize>,
    pub repeat_window: Option<Spanned<String>>,
    pub tones: Option<Vec<String>>,
    pub threats: Option<Vec<String>>,
    pub oldest: Option<usize>,
    pub max_per_section: Option<Spanned<i64>>,
    pub period: Option<Spanned<String>>,
    #[serde(default)]
    pub teams: Vec<Spanned<String>>,
}

/// `[alerts]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    pub to: Vec<Spanned<String>>,
    #[serde(default)]
    pub intents: Vec<String>,
    pub max_per_hour: Option<Spanned<u32>>,
    pub quiet_hours: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub health: Option<Health>,
}

/// `[alerts.health]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub enabled: Option<bool>,
    pub after: Option<Spanned<String>>,
    pub no_mail_for: Option<Spanned<String>>,
    pub backlog_max: Option<usize>,
    pub backlog_age: Option<Spanned<String>>,
}
