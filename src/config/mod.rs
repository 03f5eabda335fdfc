//! Configuration: the raw TOML schema (`raw`), validated into the typed [`Config`] the program uses.
//!
//! Every problem is reported at once as a [`Diagnostic`] (`file:line:col: message`). Paths in the
//! file are relative to the directory of the config file.

mod notify;
mod raw;
mod secret;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

pub use secret::{
    Credential, Fetched, Login, OAuthMechanism, Secret, SecretSource, sasl_token_response,
};

use crate::diag::Diagnostic;
use crate::score::{Priority, RuleSet, Thresholds};
use crate::sla::{Calendar, CalendarField, RawCalendar, SlaConfig, default_targets};
use crate::templates::Templates;
use crate::tickets::{Followup, FollowupSwitches};
use crate::units::{parse_duration, parse_size};

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
    /// The first of `folders` (the one folder of a mailbox that watches one).
    pub folder: String,
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

/// SMTP hosts known to file what their accounts send in the Sent folder.
const FILES_SENT: &[&str] = &[
    "smtp.gmail.com",
    "smtp.googlemail.com",
    "smtp.office365.com",
    "smtp-mail.outlook.com",
];

/// At most this many SMTP transactions in flight (`[outbox] concurrency`).
pub const MAX_SEND_CONCURRENCY: u32 = 32;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// The first (or only) mailbox.
    pub mailbox: MailboxConfig,
    /// Every mailbox, the first included; they share the store and the outbox.
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
}

/// The port `[http]` listens on unless told otherwise.
pub const DEFAULT_HTTP_PORT: u16 = 9465;
/// The default of `[mailbox] triage_timeout`: parsing and scoring one email in the daemon.
pub const DEFAULT_TRIAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of `[store] busy_timeout`: how long a statement waits for a lock another
/// connection holds.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// `[ack] max_unanswered_auto`: the default, and the most the store reads per email.
const DEFAULT_UNANSWERED_AUTO: u32 = 3;
/// `[smtp] transaction_timeout` unless set (or `timeout`, when that is longer).
const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest `[smtp] transaction_timeout`: a send holds its outbox row that long.
const MAX_SMTP_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_UNANSWERED_AUTO: u32 = 20;

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

    /// [`Config::load`] on the calling thread.
    fn load_here(path: &Path) -> Result<Config, Vec<Diagnostic>> {
        let source = crate::diag::read_limited(path, "config file", MAX_CONFIG_BYTES)
            .map_err(|d| vec![d])?;
        let raw: raw::Root =
            toml::from_str(&source).map_err(|e| vec![Diagnostic::from_toml(path, &source, &e)])?;
        Validator {
            path,
            source: &source,
            errors: Vec::new(),
        }
        .validate(raw)
    }
}

/// The credential keys of `[mailbox]` or `[smtp]`, as written.
struct RawCredential<'r> {
    auth: Option<&'r Spanned<String>>,
    env: Option<&'r Spanned<String>>,
    command: Option<&'r Spanned<String>>,
    token_command: Option<&'r Spanned<String>>,
    token_lifetime: Option<&'r Spanned<String>>,
    /// The username, when one is set: a credential is then required.
    required_at: Option<&'r Spanned<String>>,
    /// Whether OAUTHBEARER is offered (IMAP) or only XOAUTH2 (SMTP through lettre).
    oauthbearer: bool,
}

struct Validator<'a> {
    path: &'a Path,
    source: &'a str,
    errors: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::at(self.path, self.source, at.span(), message));
    }

    fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir().join(p)
        }
    }

    fn duration(&mut self, value: &Option<Spanned<String>>, default: Duration) -> Duration {
        let Some(v) = value else { return default };
        match parse_duration(v.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                self.err(v, e);
                default
            }
        }
    }

    fn tls(&mut self, tls: &Spanned<String>, host: &Spanned<String>) -> Tls {
        let t = match tls.get_ref().as_str() {
            "implicit" => Tls::Implicit,
            "starttls" => Tls::Starttls,
            "none" => Tls::None,
            other => {
                self.err(
                    tls,
                    format!(
                        "unknown tls mode {other:?}: use \"implicit\", \"starttls\" or \"none\""
                    ),
                );
                return Tls::Implicit;
            }
        };
        if t == Tls::None && !is_loopback(host.get_ref()) {
            self.err(
                tls,
                format!(
                    "tls = \"none\" is only allowed for a loopback host, not {:?}: use \"implicit\" or \"starttls\"",
                    host.get_ref()
                ),
            );
        }
        t
    }

    /// The credential of `[section]`: `auth` (default "password", or "xoauth2" when a
    /// token_command is set), and exactly one source for it. `required_at` is the username
    /// when one is set (a credential is needed); without it none may be given.
    fn credential(&mut self, section: &str, c: RawCredential<'_>) -> Option<Credential> {
        let auth = match c.auth {
            Some(a) => a.get_ref().as_str(),
            None if c.token_command.is_some() => "xoauth2",
            None => "password",
        };
        let mechanism = match auth {
            "password" => None,
            "xoauth2" => Some(OAuthMechanism::Xoauth2),
            "oauthbearer" if c.oauthbearer => Some(OAuthMechanism::Oauthbearer),
            other => {
                let choices = if c.oauthbearer {
                    "\"password\", \"xoauth2\" or \"oauthbearer\""
                } else {
                    "\"password\" or \"xoauth2\""
                };
                if let Some(at) = c.auth {
                    self.err(at, format!("unknown auth {other:?}: use {choices}"));
                }
                return None;
            }
        };
        let Some(mechanism) = mechanism else {
            if let Some(t) = c.token_command.or(c.token_lifetime) {
                self.err(
                    t,
                    format!("[{section}] token_command and token_lifetime need auth = \"xoauth2\" (or \"oauthbearer\")"),
                );
            }
            return match (c.env, c.command) {
                (Some(e), None) => {
                    Some(Credential::Password(SecretSource::Env(e.get_ref().clone())))
                }
                (None, Some(cmd)) => Some(Credential::Password(SecretSource::Command(
                    cmd.get_ref().clone(),
                ))),
                (Some(_), Some(cmd)) => {
                    self.err(
                        cmd,
                        format!("[{section}] has both password_env and password_command: keep one"),
                    );
                    None
                }
                (None, None) => {
                    if let Some(at) = c.required_at {
                        self.err(
                            at,
                            format!(
                                "[{section}] needs a password source: set password_env = \"VAR\" or password_command = \"cmd\" (never the password itself), or token_command for OAuth2"
                            ),
                        );
                    }
                    None
                }
            };
        };
        if let Some(p) = c.env.or(c.command) {
            self.err(
                p,
                format!("[{section}] uses auth = \"{auth}\": the token comes from token_command, drop the password source"),
            );
        }
        let lifetime = self.duration(&c.token_lifetime.cloned(), Duration::from_secs(50 * 60));
        if lifetime < Duration::from_secs(10)
            && let Some(at) = c.token_lifetime
        {
            self.err(at, "token_lifetime must be at least 10s");
        }
        let Some(command) = c.token_command else {
            let at = c.auth.or(c.required_at);
            if let Some(at) = at {
                self.err(
                    at,
                    format!("[{section}] auth = \"{auth}\" needs token_command = \"cmd\": a command that prints a fresh access token"),
                );
            }
            return None;
        };
        if c.required_at.is_none() && section == "smtp" {
            self.err(
                command,
                "[smtp] token_command needs username (the account the token is for)",
            );
        }
        Some(Credential::Token {
            mechanism,
            command: command.get_ref().clone(),
            lifetime,
        })
    }

    fn address(&mut self, a: &Spanned<String>) -> String {
        let v = a.get_ref().trim().to_ascii_lowercase();
        if v.parse::<lettre::Address>().is_err() {
            self.err(a, format!("{:?} is not an email address", a.get_ref()));
        }
        v
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

    /// Per-priority durations over defaults.
    fn per_priority(
        &mut self,
        raw: Option<&raw::PerPriority>,
        defaults: &BTreeMap<Priority, Duration>,
    ) -> BTreeMap<Priority, Duration> {
        let mut out = defaults.clone();
        for (p, v) in raw.into_iter().flat_map(raw::PerPriority::entries) {
            let d = self.duration(&Some(v.clone()), Duration::ZERO);
            out.insert(p, d);
        }
        out
    }

    /// A calendar from spanned TOML, each problem reported where it was written.
    fn calendar(
        &mut self,
        section: &str,
        timezone: &Spanned<String>,
        hours: &BTreeMap<String, Spanned<String>>,
        holidays: &[Spanned<String>],
    ) -> Option<Calendar> {
        let raw = RawCalendar {
            timezone: timezone.get_ref().clone(),
            hours: hours
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                .collect(),
            holidays: holidays.iter().map(|h| h.get_ref().clone()).collect(),
        };
        match Calendar::from_raw(&raw) {
            Ok(c) => Some(c),
            Err(errors) => {
                for e in errors {
                    let at = match &e.field {
                        CalendarField::TimeZone => Some(timezone),
                        CalendarField::Day(key) => hours.get(key),
                        CalendarField::Holiday(i) => holidays.get(*i),
                        CalendarField::Hours => None,
                    };
                    match at {
                        Some(at) => self.err(at, format!("[{section}] {e}")),
                        None => self
                            .errors
                            .push(Diagnostic::file(self.path, format!("[{section}] {e}"))),
                    }
                }
                None
            }
        }
    }

    fn sla_and_followups(
        &mut self,
        sla: Option<raw::Sla>,
        f: raw::Followups,
    ) -> (SlaConfig, FollowupConfig) {
        let defaults = default_targets();
        let utc = || Calendar::always_open(jiff::tz::TimeZone::UTC);
        let (calendar, first_response, next_response) = match &sla {
            Some(s) => {
                let calendar = self
                    .calendar("sla", &s.timezone, &s.hours, &s.holidays)
                    .unwrap_or_else(utc);
                let first = self.per_priority(s.first_response.as_ref(), &defaults);
                let next = self.per_priority(s.next_response.as_ref(), &first);
                (calendar, first, next)
            }
            None => (utc(), defaults.clone(), defaults),
        };
        for (table, targets) in [
            ("first_response", &first_response),
            ("next_response", &next_response),
        ] {
            for (p, d) in targets {
                if d.is_zero() {
                    self.errors.push(Diagnostic::file(
                        self.path,
                        format!("[sla.{table}] {} must be longer than zero", p.as_str()),
                    ));
                }
            }
        }
        let send_hours = match (&f.hours, &sla) {
            (None, _) => calendar.clone(),
            (Some(hours), Some(s)) => self
                .calendar("followups", &s.timezone, hours, &s.holidays)
                .unwrap_or_else(|| calendar.clone()),
            (Some(_), None) => {
                self.errors.push(Diagnostic::file(
                    self.path,
                    "[followups.hours] needs [sla] for its time zone: add [sla] timezone = \"Europe/Berlin\" (say)",
                ));
                calendar.clone()
            }
        };
        let verify_after = self.duration(&f.verify_after, Duration::from_secs(16 * 3600));
        if verify_after.is_zero()
            && let Some(at) = &f.verify_after
        {
            self.err(
                at,
                "verify_after must be longer than zero: give the customer time to try the answer",
            );
        }
        let survey_after = self.duration(&f.survey_after, Duration::from_secs(3600));
        let survey_url = match &f.survey_url {
            Some(u) => {
                let v = u.get_ref().trim().to_string();
                if !(v.starts_with("https://") || v.starts_with("http://")) {
                    self.err(u, "survey_url must be an http(s) link; leave it out to ask for a reply with a number");
                }
                v
            }
            None => String::new(),
        };
        let followups = FollowupConfig {
            switches: FollowupSwitches {
                holding: f.holding.unwrap_or(true),
                verify: f.verify.unwrap_or(true),
                survey: f.survey.unwrap_or(false),
            },
            verify_after,
            survey_after,
            survey_url,
            send_hours,
        };
        let sla = SlaConfig {
            calendar,
            business_hours: sla.is_some(),
            first_response,
            next_response,
        };
        (sla, followups)
    }

    /// One `[mailbox]` (or the `index`th `[[mailbox]]`, of `several`), and its `address` as
    /// written. `others`: the names of the other mailboxes, for the first one's folders.
    fn mailbox(
        &mut self,
        m: raw::Mailbox,
        index: usize,
        several: bool,
        others: &[String],
    ) -> (MailboxConfig, Option<String>) {
        let mailbox_tls = self.tls(&m.tls, &m.host);
        let credential = self.credential(
            "mailbox",
            RawCredential {
                auth: m.auth.as_ref(),
                env: m.password_env.as_ref(),
                command: m.password_command.as_ref(),
                token_command: m.token_command.as_ref(),
                token_lifetime: m.token_lifetime.as_ref(),
                required_at: Some(&m.username),
                oauthbearer: true,
            },
        );
        let start = match m.start.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("new") => Start::New,
            Some("all") => Start::All,
            Some(other) => match other
                .strip_prefix("since:")
                .map(str::parse::<jiff::civil::Date>)
            {
                Some(Ok(d)) => Start::Since(d),
                _ => {
                    if let Some(at) = &m.start {
                        self.err(at, format!("unknown start {other:?}: use \"new\", \"all\" or \"since:YYYY-MM-DD\""));
                    }
                    Start::New
                }
            },
        };
        let max_message_size = match &m.max_message_size {
            None => 25 * 1024 * 1024,
            Some(v) => match parse_size(v.get_ref()) {
                Ok(n) if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&n) => {
                    self.err(
                        v,
                        format!(
                            "max_message_size = {:?} is outside 1KB to 64MB: an email is held in memory while it is parsed, and providers refuse mail over 25-150MB anyway (the default is \"25MB\")",
                            v.get_ref()
                        ),
                    );
                    0
                }
                Ok(n) => n,
                Err(e) => {
                    self.err(v, e);
                    0
                }
            },
        };
        let batch_size = match &m.batch_size {
            None => 100,
            Some(b) => match usize::try_from(*b.get_ref()) {
                Ok(n) if (1..=MAX_BATCH_SIZE).contains(&n) => n,
                _ => {
                    self.err(
                        b,
                        format!("batch_size = {} is outside 1 to {MAX_BATCH_SIZE}: it is how many emails one IMAP round trip fetches (and holds in memory); the default is 100", b.get_ref()),
                    );
                    100
                }
            },
        };
        let poll_interval = self.duration(&m.poll_interval, Duration::from_secs(60));
        let idle_timeout = self.duration(&m.idle_timeout, Duration::from_secs(25 * 60));
        if idle_timeout >= Duration::from_secs(29 * 60)
            && let Some(at) = &m.idle_timeout
        {
            self.err(
                at,
                "idle_timeout must be under 29 minutes (RFC 2177): servers drop IDLE after 30",
            );
        }
        let liveness_interval = self.duration(&m.liveness_interval, Duration::from_secs(4 * 60));
        if let Some(at) = &m.liveness_interval
            && !(Duration::from_secs(1)..Duration::from_secs(29 * 60)).contains(&liveness_interval)
        {
            self.err(
                at,
                "liveness_interval must be between 1s and 29m: it is how often a waiting IMAP connection is checked (default 4m)",
            );
        }
        let liveness_timeout = self.duration(&m.liveness_timeout, Duration::from_secs(30));
        if let Some(at) = &m.liveness_timeout
            && !(Duration::from_secs(1)..=Duration::from_secs(10 * 60)).contains(&liveness_timeout)
        {
            self.err(
                at,
                "liveness_timeout must be between 1s and 10m: it is how long the IMAP server may take to answer a check (default 30s)",
            );
        }
        let triage_timeout = self.duration(&m.triage_timeout, DEFAULT_TRIAGE_TIMEOUT);
        if let Some(at) = &m.triage_timeout
            && (triage_timeout < Duration::from_millis(1)
                || triage_timeout > Duration::from_secs(600))
        {
            self.err(at, "triage_timeout must be between 1ms and 10m");
        }
        let name = match &m.name {
            Some(n) => {
                let v = n.get_ref();
                if v.is_empty()
                    || !v.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                    })
                {
                    self.err(
                        n,
                        format!("name = {v:?}: use lower-case letters, digits, '-' and '_' (it labels the mailbox's folders in the store as NAME:FOLDER)"),
                    );
                }
                v.clone()
            }
            None => {
                if several {
                    self.err(
                        &m.username,
                        "each [[mailbox]] needs a name when there are several: add name = \"billing\" (say; lower-case letters, digits, '-' and '_')",
                    );
                }
                "main".to_string()
            }
        };
        let folders: Vec<String> = match (&m.folder, &m.folders) {
            (Some(_), Some(list)) => {
                self.err(
                    list,
                    "[mailbox] has both folder and folders: keep one (folder = \"X\" is folders = [\"X\"])",
                );
                vec![]
            }
            (Some(f), None) => vec![f.get_ref().clone()],
            (None, Some(list)) => {
                if list.get_ref().is_empty() {
                    self.err(
                        list,
                        "folders is empty: list the folders to watch, e.g. folders = [\"INBOX\"]",
                    );
                }
                let mut out: Vec<String> = Vec::new();
                for f in list.get_ref() {
                    if f.get_ref().is_empty() {
                        self.err(f, "a folder name is empty");
                    } else if out.contains(f.get_ref()) {
                        self.err(f, format!("folder {:?} is listed twice", f.get_ref()));
                    }
                    out.push(f.get_ref().clone());
                }
                out
            }
            (None, None) => vec!["INBOX".to_string()],
        };
        // The first mailbox's folders are stored under their plain names; one that looked like
        // another mailbox's NAME:FOLDER would mix the two up.
        for other in others {
            let prefix = format!("{other}:");
            let clash = m
                .folders
                .iter()
                .flat_map(|l| l.get_ref().iter())
                .chain(m.folder.as_ref())
                .find(|f| f.get_ref().starts_with(&prefix));
            if let Some(f) = clash {
                self.err(
                    f,
                    format!("folder {:?} of the first mailbox reads like a folder of the mailbox named {other:?} in the store: rename that mailbox", f.get_ref()),
                );
            }
        }
        let address = m.address.as_ref().map(|a| self.address(a));
        let mailbox = MailboxConfig {
            port: m.port.unwrap_or(match mailbox_tls {
                Tls::Implicit => 993,
                _ => 143,
            }),
            host: m.host.into_inner(),
            tls: mailbox_tls,
            username: m.username.into_inner(),
            credential: credential
                .unwrap_or_else(|| Credential::Password(SecretSource::Env(String::new()))),
            key_prefix: if index == 0 {
                String::new()
            } else {
                format!("{name}:")
            },
            name,
            // Filled in once [support] and [smtp] are read.
            address: String::new(),
            from: None,
            folder: folders.first().cloned().unwrap_or_else(|| "INBOX".into()),
            folders,
            sent_folder: m.sent_folder.filter(|f| !f.is_empty()),
            poll_interval,
            idle_timeout,
            liveness_interval,
            liveness_timeout,
            start,
            ca_file: m.ca_file.map(|p| self.resolve(&p)),
            batch_size,
            max_message_size,
            triage_timeout,
        };
        (mailbox, address)
    }

    fn validate(mut self, raw: raw::Root) -> Result<Config, Vec<Diagnostic>> {
        let raw::Root {
            mailbox: m,
            smtp: s,
            store,
            support,
            ack,
            flags,
            scoring,
            templates,
            outbox,
            sla,
            followups,
            digest,
            alerts,
            http,
        } = raw;

        // [mailbox] or [[mailbox]]: the first keeps plain folder names in the store.
        let several = m.0.len() > 1;
        if m.0.is_empty() {
            self.errors.push(Diagnostic::file(
                self.path,
                "mailbox lists no mailbox: add a [mailbox] table (or [[mailbox]] tables)",
            ));
        }
        let others: Vec<String> =
            m.0.iter()
                .skip(1)
                .filter_map(|mb| mb.name.as_ref().map(|n| n.get_ref().clone()))
                .collect();
        let mut names: Vec<String> = Vec::new();
        let mut mailboxes = Vec::new();
        // Per mailbox, its `address` key as written (`None`: the first [support] address).
        let mut explicit_addresses = Vec::new();
        for (i, raw) in m.0.into_iter().enumerate() {
            if let Some(n) = &raw.name {
                if names.contains(n.get_ref()) {
                    self.err(
                        n,
                        format!(
                            "name = {:?} is used by another [[mailbox]]: give each a name of its own",
                            n.get_ref()
                        ),
                    );
                }
                names.push(n.get_ref().clone());
            }
            let (mailbox, address) =
                self.mailbox(raw, i, several, if i == 0 { &others } else { &[] });
            mailboxes.push(mailbox);
            explicit_addresses.push(address);
        }

        // [smtp]
        let smtp_tls = self.tls(&s.tls, &s.host);
        // lettre speaks XOAUTH2 but not OAUTHBEARER; Gmail and Microsoft 365 take both.
        let smtp_credential = self.credential(
            "smtp",
            RawCredential {
                auth: s.auth.as_ref(),
                env: s.password_env.as_ref(),
                command: s.password_command.as_ref(),
                token_command: s.token_command.as_ref(),
                token_lifetime: s.token_lifetime.as_ref(),
                required_at: s.username.as_ref(),
                oauthbearer: false,
            },
        );
        let from = match s.from.get_ref().parse::<lettre::message::Mailbox>() {
            Ok(mb) => Some(mb),
            Err(e) => {
                let msg = format!(
                    "from = {:?} is not a mailbox ({e}): use \"Support <support@example.com>\"",
                    s.from.get_ref()
                );
                self.err(&s.from, msg);
                None
            }
        };
        let smtp_timeout = self.duration(&s.timeout, Duration::from_secs(30));
        // Never shorter than one step unless asked (and then refused below).
        let transaction_timeout = self.duration(
            &s.transaction_timeout,
            DEFAULT_TRANSACTION_TIMEOUT.max(smtp_timeout),
        );
        if let Some(at) = &s.transaction_timeout
            && (transaction_timeout < smtp_timeout || transaction_timeout > MAX_SMTP_TIMEOUT)
        {
            self.err(
                at,
                format!(
                    "transaction_timeout must be at least timeout ({}) and at most 1h",
                    s.timeout.as_ref().map_or("30s", |t| t.get_ref().as_str())
                ),
            );
        }
        let pushback_pause = self.duration(&s.pushback_pause, Duration::from_secs(300));
        let mut rate_limits = Vec::new();
        for l in s.rate_limits.iter().flatten() {
            let per = match parse_duration(l.per.get_ref()) {
                Ok(d) => d,
                Err(e) => {
                    self.err(&l.per, e);
                    continue;
                }
            };
            if *l.max.get_ref() == 0 {
                self.err(
                    &l.max,
                    "max must be at least 1 (to stop sending, set [ack] enabled = false)",
                );
            } else if per.is_zero() {
                self.err(
                    &l.per,
                    "per must be a positive duration such as \"1m\" or \"1d\"",
                );
            } else {
                rate_limits.push(RateLimit {
                    max: *l.max.get_ref(),
                    per,
                });
            }
        }
        let smtp = from.map(|from| SmtpConfig {
            port: s.port.unwrap_or(match smtp_tls {
                Tls::Implicit => 465,
                Tls::Starttls => 587,
                Tls::None => 25,
            }),
            host: s.host.into_inner(),
            tls: smtp_tls,
            username: s.username.map(Spanned::into_inner),
            credential: smtp_credential,
            from,
            ca_file: s.ca_file.map(|p| self.resolve(&p)),
            timeout: smtp_timeout,
            transaction_timeout,
            rate_limits,
            pushback_pause,
        });

        // [store]
        let busy_timeout = self.duration(&store.busy_timeout, DEFAULT_BUSY_TIMEOUT);
        if busy_timeout.is_zero()
            && let Some(v) = &store.busy_timeout
        {
            self.err(
                v,
                "busy_timeout must be more than 0: a write would fail at the first lock another task holds",
            );
        }
        let store = StoreConfig {
            path: self.resolve(&store.path),
            busy_timeout,
        };

        // [support]
        let addresses: Vec<String> = support.addresses.iter().map(|a| self.address(a)).collect();
        let staff: Vec<String> = support.staff.iter().map(|a| self.address(a)).collect();
        if addresses.is_empty() {
            self.errors.push(Diagnostic::file(
                self.path,
                "[support] addresses is empty: list the support address(es)",
            ));
        }
        let domain = support.domain.get_ref().trim().to_ascii_lowercase();
        if domain.is_empty()
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            self.err(
                &support.domain,
                "domain must be a DNS name such as \"support.example.com\"",
            );
        }
        let mut support = SupportConfig {
            addresses,
            staff,
            domain,
            require_addressed: support.require_addressed.unwrap_or(false),
        };
        // Each mailbox's address: a support address too (loop protection, require_addressed),
        // and the From of what answers its mail.
        for (mb, address) in mailboxes.iter_mut().zip(explicit_addresses) {
            if let Some(a) = &address
                && !support.addresses.contains(a)
            {
                support.addresses.push(a.clone());
            }
            mb.from = match (&address, &smtp) {
                (Some(a), Some(s)) => a
                    .parse::<lettre::Address>()
                    .ok()
                    .map(|a| lettre::message::Mailbox::new(s.from.name.clone(), a)),
                _ => None,
            };
            mb.address =
                address.unwrap_or_else(|| support.addresses.first().cloned().unwrap_or_default());
        }

        // [ack]
        let ack = ack.unwrap_or_default();
        if let Some(rt) = &ack.reply_time
            && let Some((_, at)) = rt.entries().next()
        {
            self.err(
                at,
                "[ack.reply_time] is now [sla.first_response] (the same keys, counted in business time when [sla] gives hours)",
            );
        }
        let per_sender_window =
            self.duration(&ack.per_sender_window, Duration::from_secs(24 * 3600));
        let max_age = self.duration(&ack.max_age, Duration::from_secs(2 * 24 * 3600));
        let max_unanswered_auto = match &ack.max_unanswered_auto {
            // The store reads this many of the address's sent emails for every email it records.
            Some(m) if *m.get_ref() > MAX_UNANSWERED_AUTO => {
                self.err(
                    m,
                    format!(
                        "max_unanswered_auto is at most {MAX_UNANSWERED_AUTO} (0 switches the loop check off)"
                    ),
                );
                DEFAULT_UNANSWERED_AUTO
            }
            Some(m) => *m.get_ref(),
            None => DEFAULT_UNANSWERED_AUTO,
        };
        let auto_answer_within =
            self.duration(&ack.auto_answer_within, Duration::from_secs(15 * 60));
        if let Some(w) = &ack.auto_answer_within {
            if auto_answer_within.is_zero() {
                self.err(
                    w,
                    "auto_answer_within must be longer than 0s (to switch the loop check off, set max_unanswered_auto = 0)",
                );
            } else if auto_answer_within > Duration::from_secs(24 * 3600) {
                self.err(
                    w,
                    "auto_answer_within is at most 24h: a customer who writes back the next day is not a robot",
                );
            }
        }
        let loop_window = self.duration(&ack.loop_window, Duration::from_secs(10 * 60));
        if let Some(w) = &ack.loop_window
            && (loop_window.is_zero() || loop_window > Duration::from_secs(24 * 3600))
        {
            self.err(
                w,
                "loop_window must be longer than 0s and at most 24h (to switch the burst check off, set loop_burst = 0)",
            );
        }
        let ack = AckConfig {
            enabled: ack.enabled.unwrap_or(true),
            template: ack.template.unwrap_or_else(|| "ack".into()),
            per_sender_limit: ack.per_sender_limit.unwrap_or(3),
            per_sender_window,
            max_age,
            circuit_breaker_per_minute: ack.circuit_breaker_per_minute.unwrap_or(0),
            loop_burst: ack.loop_burst.unwrap_or(4),
            loop_window,
            max_unanswered_auto,
            auto_answer_within,
        };

        // [sla] and [followups]
        let (sla, followups) = self.sla_and_followups(sla, followups.unwrap_or_default());

        // [[digest]] and [alerts]
        let staff_tz = sla.calendar.time_zone().clone();
        let digests = self.digests(digest, &support, &staff_tz);
        let alerts = self.alerts(alerts, &support, &staff_tz);

        // [http]
        let http = http.and_then(|h| {
            let listen = h.listen.as_ref().map_or(
                Ok(std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT))),
                |l| l.get_ref().parse::<std::net::SocketAddr>(),
            );
            let listen = match listen {
                Ok(a) => a,
                Err(_) => {
                    if let Some(l) = &h.listen {
                        self.err(l, format!("listen = {:?} is not an address and port such as \"127.0.0.1:{DEFAULT_HTTP_PORT}\"", l.get_ref()));
                    }
                    return None;
                }
            };
            if !listen.ip().is_loopback()
                && !h.allow_remote.unwrap_or(false)
                && let Some(l) = &h.listen
            {
                self.err(l, "the status page shows customers' addresses and subjects: listen on loopback (and put an authenticating proxy in front), or set allow_remote = true");
            }
            h.enabled.unwrap_or(true).then_some(HttpConfig { listen })
        });

        // [flags]
        let flags = flags.unwrap_or_default();
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
        let flags = FlagsConfig {
            enabled: flags.enabled.unwrap_or(true),
            priority_keywords,
            tone_prefix: tone_prefix.into_inner(),
            flag_urgent: flags.flag_urgent.unwrap_or(true),
            folders,
            keyword_fallback: match flags
                .keyword_fallback
                .as_ref()
                .map(|v| v.get_ref().as_str())
            {
                None | Some("flagged") => KeywordFallback::Flagged,
                Some("folders") => KeywordFallback::Folders,
                Some(other) => {
                    if let Some(at) = &flags.keyword_fallback {
                        self.err(
                            at,
                            format!(
                                "unknown keyword_fallback {other:?}: use \"flagged\" or \"folders\""
                            ),
                        );
                    }
                    KeywordFallback::Flagged
                }
            },
        };

        // [outbox]
        let outbox = outbox.unwrap_or_default();
        let retry_initial = self.duration(&outbox.retry_initial, Duration::from_secs(30));
        let retry_max = self.duration(&outbox.retry_max, Duration::from_secs(3600));
        // At least a second: a refused account must not be hammered.
        let account_retry = self
            .duration(&outbox.account_retry, Duration::from_secs(60))
            .max(Duration::from_secs(1));
        let concurrency = match &outbox.concurrency {
            Some(c) if *c.get_ref() == 0 || *c.get_ref() > MAX_SEND_CONCURRENCY => {
                self.err(
                    c,
                    format!("concurrency is 1 to {MAX_SEND_CONCURRENCY} (SMTP transactions in flight at once)"),
                );
                3
            }
            Some(c) => *c.get_ref() as usize,
            None => 3,
        };
        let watches_sent = mailboxes.iter().any(|m| m.sent_folder.is_some());
        let files_sent = FILES_SENT.iter().any(|h| {
            smtp.as_ref()
                .is_some_and(|s| s.host.eq_ignore_ascii_case(h))
        });
        let witness = match outbox.witness.as_ref().map(|w| (w, w.get_ref().as_str())) {
            None | Some((_, "auto")) if files_sent && watches_sent => Witness::Sent,
            None | Some((_, "auto" | "bcc")) => Witness::Bcc,
            Some((w, "sent")) => {
                if !watches_sent {
                    self.err(
                        w,
                        "witness = \"sent\" needs a [mailbox] sent_folder to look for the copies in",
                    );
                }
                Witness::Sent
            }
            Some((_, "none")) => Witness::Off,
            Some((w, other)) => {
                self.err(
                    w,
                    format!(
                        "witness = {other:?}: expected \"auto\", \"bcc\", \"sent\" or \"none\""
                    ),
                );
                Witness::Off
            }
        };
        let witness_grace = self.duration(&outbox.witness_grace, Duration::from_secs(120));
        let outbox = OutboxConfig {
            max_attempts: outbox.max_attempts.unwrap_or(10).max(1),
            retry_initial,
            retry_max,
            account_retry,
            concurrency,
            witness,
            witness_grace,
        };

        // [scoring]: thresholds and rule files
        let scoring = scoring.unwrap_or_default();
        let th = scoring.thresholds.unwrap_or_default();
        let no_evidence = match scoring.no_evidence.as_ref() {
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
            self.errors.push(Diagnostic::file(
                self.path,
                "[scoring.thresholds] must satisfy urgent >= high >= normal",
            ));
        }
        let rules_dir = self.resolve(
            scoring
                .rules
                .as_ref()
                .map_or("rules", |r| r.get_ref().as_str()),
        );
        let rule_files = match list_files(&rules_dir, "toml") {
            Ok(files) if !files.is_empty() => files,
            Ok(_) => {
                let msg = format!("no *.toml rule files in {}", rules_dir.display());
                match &scoring.rules {
                    Some(at) => self.err(at, msg),
                    None => self.errors.push(Diagnostic::file(self.path, msg)),
                }
                Vec::new()
            }
            Err(e) => {
                let msg = format!("cannot read rules directory {}: {e}", rules_dir.display());
                match &scoring.rules {
                    Some(at) => self.err(at, msg),
                    None => self.errors.push(Diagnostic::file(self.path, msg)),
                }
                Vec::new()
            }
        };
        let refs: Vec<&Path> = rule_files.iter().map(PathBuf::as_path).collect();
        let mut rules = match RuleSet::load(&refs) {
            Ok(r) => Some(r),
            Err(mut errs) => {
                self.errors.append(&mut errs);
                None
            }
        };
        // A weights file from `triaged tune` replaces weights (and thresholds) by rule id.
        let mut thresholds = thresholds;
        if let (Some(at), Some(loaded)) = (&scoring.weights, &rules) {
            let path = self.resolve(at.get_ref());
            if !path.is_file() {
                self.err(
                    at,
                    format!("weights file {} does not exist", path.display()),
                );
            } else {
                match crate::score::load_weights(&path, loaded) {
                    Ok((tuned, th)) => {
                        rules = Some(tuned);
                        if let Some(th) = th {
                            thresholds = Thresholds { no_evidence, ..th };
                        }
                    }
                    Err(mut errs) => self.errors.append(&mut errs),
                }
            }
        }

        // [templates]
        let templates_dir = self.resolve(
            templates
                .as_ref()
                .and_then(|t| t.dir.as_deref())
                .unwrap_or("templates"),
        );
        // Every template something uses, each with its .txt and .html; a missing file is
        // reported with what needs it and how to fix it: (template, what needs it, other fix).
        let mut wanted: Vec<(String, String, String)> = followups
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
            ("digest", !digests.is_empty(), "[[digest]]"),
            ("alert", alerts.is_some(), "[alerts]"),
            (
                "health",
                alerts.as_ref().is_some_and(|a| a.health.enabled),
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
        let mut template_names = vec![ack.template.clone()];
        for (name, what, fix) in wanted {
            let missing: Vec<String> = ["txt", "html"]
                .iter()
                .map(|ext| format!("{name}.{ext}"))
                .filter(|file| !templates_dir.join(file).is_file())
                .collect();
            if missing.is_empty() {
                template_names.push(name);
            } else {
                self.errors.push(Diagnostic::file(
                    self.path,
                    format!(
                        "{what} but {} has no {}: copy them from triaged's templates/ directory{fix}",
                        templates_dir.display(),
                        missing.join(" or "),
                    ),
                ));
            }
        }
        let names: Vec<&str> = template_names.iter().map(String::as_str).collect();
        let templates = match Templates::load(&templates_dir, &names) {
            Ok(t) => Some(t),
            Err(mut errs) => {
                self.errors.append(&mut errs);
                None
            }
        };

        let mailbox = mailboxes.first().cloned();
        match (smtp, rules, templates, mailbox) {
            (Some(smtp), Some(rules), Some(templates), Some(mailbox)) if self.errors.is_empty() => {
                Ok(Config {
                    path: self.path.to_path_buf(),
                    mailbox,
                    mailboxes,
                    smtp,
                    store,
                    support,
                    ack,
                    sla,
                    followups,
                    flags,
                    outbox,
                    thresholds,
                    rules,
                    rule_files,
                    templates,
                    digests,
                    alerts,
                    http,
                })
            }
            _ => Err(self.errors),
        }
    }
}

impl Config {
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

/// `[mailbox] max_message_size` bounds: an email is held in memory whole while parsed.
const MIN_MESSAGE_SIZE: usize = 1024;
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// `[mailbox] batch_size` at most: emails fetched (and held) per IMAP round trip.
const MAX_BATCH_SIZE: usize = 1000;

/// The files in `dir` with extension `ext`, sorted by name.
fn list_files(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
