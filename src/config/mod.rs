//! Configuration: the TOML schema exactly as written (`raw`), checked section by section
//! (`validate`, a file per section) into the typed [`Config`] the program uses (this file).
//!
//! Every problem is reported at once as a [`Diagnostic`] (`file:line:col: message`). Paths in the
//! file are relative to the directory of the config file.

mod keys;
mod raw;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use secret::{
    Credential, Fetched, Login, OAuthMechanism, Secret, SecretSource, sasl_token_response,
};

use crate::diag::Diagnostic;
use crate::score::{Priority, RuleSet, Thresholds};
use crate::sla::{Calendar, SlaConfig};
use crate::templates::Templates;
use crate::tickets::{Followup, FollowupSwitches};

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS; refused if the server does not offer it.
    Starttls,
    /// No encryption; allowed only for a loopback host.
    None,
}

/// Where the first run starts in a mailbox that already holds mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only mail that arrives after the first start.
    New,
    /// Everything in the folder (old mail is triaged and flagged; `[ack] max_age` keeps it from
    /// being acknowledged).
    All,
    /// Mail that arrived on or after this date (IMAP SEARCH SINCE).
    Since(jiff::civil::Date),
}

/// One mailbox: `[mailbox]`, or one of several `[[mailbox]]`.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// `name` ("main" when not given): labels the mailbox in logs, metrics and the store.
    pub name: String,
    /// What this mailbox's folder names are prefixed with in the store: "" for the first
    /// mailbox (so a store from a single-mailbox version keeps its checkpoints), "NAME:" for
    /// the others. See [`MailboxConfig::key`].
    pub key_prefix: String,
    /// The support address this mailbox receives for (lower-cased; default: the first
    /// `[support]` address). Every mailbox address is a support address for the guard.
    pub address: String,
    /// The From of customer mail answering email that arrived here: `address` with the
    /// display name of `[smtp] from`; `None` (no `address` key): `[smtp] from` itself.
    pub from: Option<lettre::message::Mailbox>,
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: String,
    /// A password or an OAuth2 token command.
    pub credential: Credential,
    /// The folders watched for customer mail, each by a connection of its own.
    pub folders: Vec<String>,
    /// The support account's Sent folder, watched for staff replies (none: not watched).
    pub sent_folder: Option<String>,
    pub poll_interval: Duration,
    pub idle_timeout: Duration,
    /// While waiting for mail, the connection is checked this often: IDLE is ended, a NOOP
    /// sent and IDLE begun again (without IDLE: a NOOP at least this often).
    pub liveness_interval: Duration,
    /// How long the server may take to answer IDLE, DONE or that NOOP before the connection
    /// counts as dead and is replaced. A silent connection is found within
    /// `liveness_interval + liveness_timeout`.
    pub liveness_timeout: Duration,
    pub start: Start,
    pub ca_file: Option<PathBuf>,
    pub batch_size: usize,
    pub max_message_size: usize,
    /// Longest the costly stages (parse, guard, score) may take for one email; past it the
    /// email is skipped as `too_costly` and flagged for staff.
    pub triage_timeout: Duration,
}

impl MailboxConfig {
    /// The store's name for `folder` of this mailbox (checkpoints, message locations, flag
    /// tasks, health sources, metrics labels, logs): `INBOX` in the first mailbox,
    /// `billing:INBOX` in the mailbox named billing. IMAP itself is always given `folder`.
    pub fn key(&self, folder: &str) -> String {
        format!("{}{folder}", self.key_prefix)
    }
}

/// The mailbox a store key (see [`MailboxConfig::key`]) belongs to: the one whose `NAME:` it
/// starts with, else the first.
pub fn mailbox_of_key<'a>(mailboxes: &'a [MailboxConfig], key: &str) -> Option<&'a MailboxConfig> {
    mailboxes
        .iter()
        .find(|m| !m.key_prefix.is_empty() && key.starts_with(&m.key_prefix))
        .or_else(|| mailboxes.first())
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    /// Set when `username` is: the account's password or OAuth2 token command.
    pub credential: Option<Credential>,
    pub from: lettre::message::Mailbox,
    pub ca_file: Option<PathBuf>,
    /// The most one step may take: the connection, the TLS handshake, the greeting, AUTH, and
    /// each command's reply.
    pub timeout: Duration,
    /// The most one email may take from connection (or a pooled one) to the reply to the end of
    /// its data; that last reply may use all of it (servers scan content before answering).
    pub transaction_timeout: Duration,
    /// Sending limits of the provider: at most `max` emails in any `per` window.
    pub rate_limits: Vec<RateLimit>,
    /// How long all sending pauses when the provider pushes back (421, quota exceeded).
    pub pushback_pause: Duration,
}

/// At most `max` emails in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub per: Duration,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// How long a write waits for a lock another process holds before the store counts as
    /// unavailable (and the daemon waits it out).
    pub busy_timeout: Duration,
    /// Keep each customer email's own words (the first 4 KB, `messages.text`) for `triaged
    /// tune --store --learn`; false: keep none (the 300-character excerpt is kept either way).
    pub keep_text: bool,
}

#[derive(Debug, Clone)]
pub struct SupportConfig {
    /// Lower-cased.
    pub addresses: Vec<String>,
    /// Lower-cased.
    pub staff: Vec<String>,
    pub domain: String,
    pub require_addressed: bool,
}

#[derive(Debug, Clone)]
pub struct AckConfig {
    pub enabled: bool,
    pub template: String,
    pub per_sender_limit: u32,
    pub per_sender_window: Duration,
    pub max_age: Duration,
    /// Above this many acknowledgements a minute, further ones are held for staff (0: no
    /// ceiling, the default: a surge of customers is acknowledged, paced by the rate limits).
    pub circuit_breaker_per_minute: u32,
    /// At most this many acknowledgements within `loop_window` to emails of one loop pattern
    /// ([`crate::tickets::loop_pattern`]); more are held for staff (0: no limit).
    pub loop_burst: u32,
    pub loop_window: Duration,
    /// No acknowledgement or follow-up to an address that answered this many of our automatic
    /// emails in a row within `auto_answer_within`, with no staff message since (0: no limit).
    pub max_unanswered_auto: u32,
    pub auto_answer_within: Duration,
}

/// The follow-up policies: which are on, their timing, and when customers may be written to.
#[derive(Debug, Clone)]
pub struct FollowupConfig {
    pub switches: FollowupSwitches,
    /// Business time after the last staff reply before asking whether it solved the problem.
    pub verify_after: Duration,
    /// Business time after closing before the satisfaction question.
    pub survey_after: Duration,
    /// Link of the one-question survey; empty: the customer replies with a number.
    pub survey_url: String,
    /// Customer-facing hours: follow-ups falling due outside them wait for the next opening.
    pub send_hours: Calendar,
}

impl Default for FollowupConfig {
    /// Every follow-up off (the defaults of a config file are in the validator).
    fn default() -> Self {
        FollowupConfig {
            switches: FollowupSwitches::default(),
            verify_after: Duration::from_secs(16 * 3600),
            survey_after: Duration::from_secs(3600),
            survey_url: String::new(),
            send_hours: Calendar::always_open(jiff::tz::TimeZone::UTC),
        }
    }
}

impl FollowupConfig {
    /// The kinds switched on.
    pub fn enabled(&self) -> Vec<Followup> {
        Followup::ALL
            .into_iter()
            .filter(|f| match f {
                Followup::Holding => self.switches.holding,
                Followup::Verify => self.switches.verify,
                Followup::Survey => self.switches.survey,
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct FlagsConfig {
    pub enabled: bool,
    pub priority_keywords: BTreeMap<Priority, String>,
    pub tone_prefix: String,
    pub flag_urgent: bool,
    /// Moves allowed: email of these priorities goes into these folders.
    pub folders: BTreeMap<Priority, String>,
    /// What marks the priority where the server accepts no custom keywords.
    pub keyword_fallback: KeywordFallback,
    /// Triage keywords staff change in their mail client are read back as corrections.
    pub corrections: bool,
    /// How often the keywords of recent email are read again on a server without CONDSTORE
    /// (with it, every time the watcher syncs: only what changed is read), and the priority
    /// folders looked into for emails staff moved there (with CONDSTORE also after each sync).
    pub corrections_interval: std::time::Duration,
}

/// How priorities are shown on a server that refuses custom keywords (Microsoft 365).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeywordFallback {
    /// `\Flagged` on urgent email (when `flag_urgent`), nothing else: mail stays put.
    Flagged,
    /// Also file email into a folder per priority: `[flags.folders]`, or `Triage/Urgent` etc.
    Folders,
}

impl FlagsConfig {
    /// Some email may be moved: `[flags.folders]` names a folder, or the keyword fallback
    /// files email into folders.
    pub fn may_move(&self) -> bool {
        !self.folders.is_empty() || self.keyword_fallback == KeywordFallback::Folders
    }

    /// The folder email of priority `p` moves to on a server without custom keywords.
    pub fn fallback_folder(&self, p: Priority) -> Option<String> {
        if let Some(f) = self.folders.get(&p) {
            return Some(f.clone());
        }
        (self.keyword_fallback == KeywordFallback::Folders).then(|| {
            let name = p.as_str();
            let mut chars = name.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            format!(
                "Triage/{}{}",
                first.map(String::from).unwrap_or_default(),
                chars.as_str()
            )
        })
    }
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub max_attempts: u32,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// While the SMTP server refuses our login or our sender address, all sending waits this
    /// long between tries.
    pub account_retry: Duration,
    /// SMTP transactions in flight at once (each on its own pooled connection).
    pub concurrency: usize,
    /// What proves, after a crash, that an email being sent went out ([`Witness`]).
    pub witness: Witness,
    /// How long after a restart a missing copy still may arrive (a relay's queue).
    pub witness_grace: Duration,
}

/// The copy of each customer email that proves it went out, looked for after a crash to
/// decide whether a send that was in flight must go again (exactly once, not at most once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Witness {
    /// An envelope-only copy (Bcc) to the mailbox's own address, accepted in the same SMTP
    /// transaction as the email: it arrives in the watched mailbox, where the daemon sees it.
    Bcc,
    /// The copy the provider files in the Sent folder itself (Gmail, Microsoft 365); the
    /// mailbox's `sent_folder` must be watched.
    Sent,
    /// None: a send interrupted by a crash is never retried (at most once).
    Off,
}

/// At most this many SMTP transactions in flight (`[outbox] concurrency`).
pub const MAX_SEND_CONCURRENCY: u32 = 32;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// Every mailbox, never none; they share the store and the outbox. The first is
    /// [`Config::mailbox`].
    pub mailboxes: Vec<MailboxConfig>,
    pub smtp: SmtpConfig,
    pub store: StoreConfig,
    pub support: SupportConfig,
    pub ack: AckConfig,
    pub sla: SlaConfig,
    pub followups: FollowupConfig,
    pub flags: FlagsConfig,
    pub outbox: OutboxConfig,
    pub thresholds: Thresholds,
    pub rules: RuleSet,
    pub rule_files: Vec<PathBuf>,
    pub templates: Templates,
    /// `[[digest]]`: scheduled digests for staff.
    pub digests: Vec<crate::digest::DigestConfig>,
    /// `[alerts]`: instant and health alerts (`None`: no alerts).
    pub alerts: Option<crate::alerts::AlertConfig>,
    /// `[http]`: health, metrics and the status page (`None`: off).
    pub http: Option<HttpConfig>,
    /// `[[team]]` and `[[ask]]`: where tickets go, and what acknowledgements ask.
    pub routing: crate::route::Routing,
}

/// The port `[http]` listens on unless told otherwise.
pub const DEFAULT_HTTP_PORT: u16 = 9465;
/// The default of `[mailbox] triage_timeout`: parsing and scoring one email in the daemon.
pub const DEFAULT_TRIAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of `[store] busy_timeout`: how long a statement waits for a lock another
/// connection holds.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// `[http]`: the read-only HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen: std::net::SocketAddr,
}

/// The stack of the thread that loads the configuration: the main thread's size on Linux.
pub const LOAD_STACK: usize = 8 << 20;
/// Bytes in the config file.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    /// Read, parse and validate the config file and everything it points at (rules, templates).
    ///
    /// The one way a configuration is loaded: `triaged check`, start-up and a SIGHUP reload
    /// all call this, so a reload accepts exactly what `check` accepts. The work runs on a
    /// thread of its own with a [`LOAD_STACK`] stack, whichever thread asks (the main thread
    /// for `check`, a tokio blocking thread of 2 MiB for a reload): the parsers it uses are
    /// recursive but each has a depth limit (TOML, regexes: 250, templates, meta rules: 64),
    /// and on a known stack those limits hold the same way everywhere.
    pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
        let owned = path.to_path_buf();
        let loader = std::thread::Builder::new()
            .name("config-load".into())
            .stack_size(LOAD_STACK)
            .spawn(move || Config::load_here(&owned));
        match loader {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(vec![Diagnostic::file(
                    path,
                    "loading the configuration failed unexpectedly (a bug: the message above says where)",
                )])
            }),
            Err(e) => Err(vec![Diagnostic::file(
                path,
                format!("cannot start loading the configuration: {e}"),
            )]),
        }
    }

    /// [`Config::load`] on the calling thread; the problems sorted by file, line and column.
    fn load_here(path: &Path) -> Result<Config, Vec<Diagnostic>> {
        Config::load_unsorted(path).map_err(|mut problems| {
            // Stable: problems about a whole file (line 0) keep their order, first.
            problems.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
            problems
        })
    }

    fn load_unsorted(path: &Path) -> Result<Config, Vec<Diagnostic>> {
        use serde::Deserialize;

        let source = crate::diag::read_limited(path, "config file", MAX_CONFIG_BYTES)
            .map_err(|d| vec![d])?;
        let toml_error = |e: toml::de::Error| vec![Diagnostic::from_toml(path, &source, &e)];
        let document = toml::de::DeTable::parse(&source).map_err(toml_error)?;
        // Every unknown key at once; serde would stop at the first.
        let unknown = raw::shape().unknown_keys(path, &source, document.get_ref());
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let raw =
            raw::Root::deserialize(toml::de::Deserializer::from(document)).map_err(toml_error)?;
        validate::Validator {
            path,
            source: &source,
            errors: Vec::new(),
        }
        .validate(raw)
    }
}

impl Config {
    /// The first (or only) mailbox: the one whose folders keep their plain names in the store.
    pub fn mailbox(&self) -> &MailboxConfig {
        // Infallible: a Config is only made by validation, which refuses one without a
        // mailbox, and nothing removes one.
        &self.mailboxes[0]
    }

    /// What the guard needs to know about our own addresses.
    pub fn guard_config(&self) -> crate::guard::GuardConfig {
        crate::guard::GuardConfig {
            support_addresses: self.support.addresses.clone(),
            staff_addresses: self.support.staff.clone(),
            own_domain: self.support.domain.clone(),
            require_addressed: self.support.require_addressed,
        }
    }
}

/// True for `localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests;
