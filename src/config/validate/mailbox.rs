//! `[mailbox]` or `[[mailbox]]`: the IMAP accounts watched, their folders and timing.

use std::time::Duration;

use toml::Spanned;

use super::Validator;
use super::credential::RawCredential;
use crate::config::{
    Credential, MailboxConfig, SecretSource, SmtpConfig, Start, SupportConfig, Tls, raw,
};
use crate::units::parse_size;

/// `[mailbox] max_message_size` bounds: an email is held in memory whole while parsed.
const MIN_MESSAGE_SIZE: usize = 1024;
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// `[mailbox] batch_size` at most: emails fetched (and held) per IMAP round trip.
const MAX_BATCH_SIZE: usize = 1000;

impl Validator<'_> {
    /// Every mailbox, and per mailbox its `address` key as written (`None`: the first
    /// `[support]` address, filled in by [`Validator::mailbox_addresses`]). The first keeps
    /// plain folder names in the store.
    pub(super) fn mailboxes(
        &mut self,
        m: raw::Mailboxes,
    ) -> (Vec<MailboxConfig>, Vec<Option<String>>) {
        let several = m.0.len() > 1;
        if m.0.is_empty() {
            self.err_file(
                "mailbox lists no mailbox: add a [mailbox] table (or [[mailbox]] tables)",
            );
        }
        let others: Vec<String> =
            m.0.iter()
                .skip(1)
                .filter_map(|mb| mb.name.as_ref().map(|n| n.get_ref().clone()))
                .collect();
        let mut names: Vec<String> = Vec::new();
        let mut mailboxes = Vec::new();
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
        (mailboxes, explicit_addresses)
    }

    /// Each mailbox's address, once `[support]` and `[smtp]` are read: a support address too
    /// (loop protection, require_addressed), and the From of what answers its mail.
    pub(super) fn mailbox_addresses(
        &mut self,
        mailboxes: &mut [MailboxConfig],
        explicit: Vec<Option<String>>,
        support: &mut SupportConfig,
        smtp: Option<&SmtpConfig>,
    ) {
        for (mb, address) in mailboxes.iter_mut().zip(explicit) {
            if let Some(a) = &address
                && !support.addresses.contains(a)
            {
                support.addresses.push(a.clone());
            }
            mb.from = match (&address, smtp) {
                (Some(a), Some(s)) => a
                    .parse::<lettre::Address>()
                    .ok()
                    .map(|a| lettre::message::Mailbox::new(s.from.name.clone(), a)),
                _ => None,
            };
            mb.address =
                address.unwrap_or_else(|| support.addresses.first().cloned().unwrap_or_default());
        }
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
        let tls = self.tls(&m.tls, &m.host);
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
        let start = self.start(m.start.as_ref());
        let max_message_size = self.max_message_size(m.max_message_size.as_ref());
        let batch_size = self.batch_size(m.batch_size.as_ref());
        let timing = self.timing(&m);
        let name = self.mailbox_name(m.name.as_ref(), &m.username, several);
        let folders = self.folders(&m);
        self.folder_clashes(&m, others);
        let address = m.address.as_ref().map(|a| self.address(a));
        let mailbox = MailboxConfig {
            port: m.port.unwrap_or(match tls {
                Tls::Implicit => 993,
                _ => 143,
            }),
            host: m.host.into_inner(),
            tls,
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
            folders,
            sent_folder: m.sent_folder.filter(|f| !f.is_empty()),
            poll_interval: timing.poll_interval,
            idle_timeout: timing.idle_timeout,
            liveness_interval: timing.liveness_interval,
            liveness_timeout: timing.liveness_timeout,
            start,
            ca_file: m.ca_file.map(|p| self.resolve(&p)),
            batch_size,
            max_message_size,
            triage_timeout: timing.triage_timeout,
        };
        (mailbox, address)
    }

    fn start(&mut self, start: Option<&Spanned<String>>) -> Start {
        let Some(at) = start else {
            return Start::New;
        };
        match at.get_ref().as_str() {
            "new" => Start::New,
            "all" => Start::All,
            other => {
                match other
                    .strip_prefix("since:")
                    .map(str::parse::<jiff::civil::Date>)
                {
                    Some(Ok(d)) => Start::Since(d),
                    _ => {
                        self.err(
                        at,
                        format!("unknown start {other:?}: use \"new\", \"all\" or \"since:YYYY-MM-DD\""),
                    );
                        Start::New
                    }
                }
            }
        }
    }

    fn max_message_size(&mut self, size: Option<&Spanned<String>>) -> usize {
        let Some(v) = size else {
            return 25 * 1024 * 1024;
        };
        match parse_size(v.get_ref()) {
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
        }
    }

    fn batch_size(&mut self, size: Option<&Spanned<i64>>) -> usize {
        let Some(b) = size else { return 100 };
        match usize::try_from(*b.get_ref()) {
            Ok(n) if (1..=MAX_BATCH_SIZE).contains(&n) => n,
            _ => {
                self.err(
                    b,
                    format!("batch_size = {} is outside 1 to {MAX_BATCH_SIZE}: it is how many emails one IMAP round trip fetches (and holds in memory); the default is 100", b.get_ref()),
                );
                100
            }
        }
    }

    /// The mailbox's waits: polling, IDLE, the liveness check, the triage deadline.
    fn timing(&mut self, m: &raw::Mailbox) -> Timing {
        let secs = Duration::from_secs;
        Timing {
            poll_interval: self.duration(&m.poll_interval, secs(60)),
            idle_timeout: self.duration_where(
                &m.idle_timeout,
                secs(25 * 60),
                |d| d < secs(29 * 60),
                "idle_timeout must be under 29 minutes (RFC 2177): servers drop IDLE after 30",
            ),
            liveness_interval: self.duration_where(
                &m.liveness_interval,
                secs(4 * 60),
                |d| (secs(1)..secs(29 * 60)).contains(&d),
                "liveness_interval must be between 1s and 29m: it is how often a waiting IMAP connection is checked (default 4m)",
            ),
            liveness_timeout: self.duration_where(
                &m.liveness_timeout,
                secs(30),
                |d| (secs(1)..=secs(10 * 60)).contains(&d),
                "liveness_timeout must be between 1s and 10m: it is how long the IMAP server may take to answer a check (default 30s)",
            ),
            triage_timeout: self.duration_where(
                &m.triage_timeout,
                crate::config::DEFAULT_TRIAGE_TIMEOUT,
                |d| (Duration::from_millis(1)..=secs(600)).contains(&d),
                "triage_timeout must be between 1ms and 10m",
            ),
        }
    }

    /// `name`: "main" unless given; required when there are several mailboxes.
    fn mailbox_name(
        &mut self,
        name: Option<&Spanned<String>>,
        username: &Spanned<String>,
        several: bool,
    ) -> String {
        let Some(n) = name else {
            if several {
                self.err(
                    username,
                    "each [[mailbox]] needs a name when there are several: add name = \"billing\" (say; lower-case letters, digits, '-' and '_')",
                );
            }
            return "main".to_string();
        };
        let v = n.get_ref();
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            self.err(
                n,
                format!("name = {v:?}: use lower-case letters, digits, '-' and '_' (it labels the mailbox's folders in the store as NAME:FOLDER)"),
            );
        }
        v.clone()
    }

    /// `folder = "X"` or `folders = [...]` (default INBOX).
    fn folders(&mut self, m: &raw::Mailbox) -> Vec<String> {
        match (&m.folder, &m.folders) {
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
        }
    }

    /// The first mailbox's folders are stored under their plain names; one that looked like
    /// another mailbox's NAME:FOLDER would mix the two up.
    fn folder_clashes(&mut self, m: &raw::Mailbox, others: &[String]) {
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
    }
}

/// A mailbox's waits, read together.
struct Timing {
    poll_interval: Duration,
    idle_timeout: Duration,
    liveness_interval: Duration,
    liveness_timeout: Duration,
    triage_timeout: Duration,
}
