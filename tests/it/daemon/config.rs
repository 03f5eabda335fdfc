//! The config of a triaged daemon that talks to a test mail stack, built by name:
//!
//! ```ignore
//! let cfg = DaemonConfig::of(&stack).sent_folder("Sent").http(port).health_alerts("1s").write();
//! ```
//!
//! Every section starts from what all tests need (the stack's IMAP with STARTTLS and its SMTP
//! on loopback, the shipped rules and templates, a store in the config's own temp dir, fast
//! retries, no witness copies); a method per common change; `set` (one key) and `raw` (whole
//! sections, appended) for the odd case. Shared by the integration tests, the benchmark and
//! the demo.

use std::path::{Path, PathBuf};

use crate::common::MailStack;

/// A config written for one daemon: its directory (a temp dir, removed on drop), the config
/// file and the store it names.
pub struct DaemonConfig {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub store: PathBuf,
}

impl DaemonConfig {
    /// A config for a daemon against `stack`, to adjust and then `write`.
    pub fn of(stack: &MailStack) -> ConfigBuilder {
        ConfigBuilder::new(stack)
    }

    /// The rules directory of a config built with `own_rules_and_templates`.
    pub fn rules(&self) -> PathBuf {
        self.dir.path().join("rules")
    }

    /// The templates directory of a config built with `own_rules_and_templates`.
    pub fn templates(&self) -> PathBuf {
        self.dir.path().join("templates")
    }
}

/// The keys of one TOML table, in the order written.
type Table = Vec<(String, toml::Value)>;

/// What a `DaemonConfig` will say; see the module's doc.
pub struct ConfigBuilder {
    dir: tempfile::TempDir,
    imaps_port: u16,
    /// The first is `[mailbox]`; with more than one, each is a `[[mailbox]]`.
    mailboxes: Vec<Table>,
    /// Every other table, by its dotted name, in the order first set.
    tables: Vec<(String, Table)>,
    own_rules_and_templates: bool,
    raw: String,
}

fn set_in(table: &mut Table, key: &str, value: toml::Value) {
    match table.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => table.push((key.to_string(), value)),
    }
}

fn render(out: &mut String, header: &str, table: &Table) {
    out.push_str(&format!("\n{header}\n"));
    for (key, value) in table {
        out.push_str(&format!("{key} = {value}\n"));
    }
}

/// A mailbox of `user` on the stack's Dovecot (STARTTLS, the password from the environment,
/// polled every second, from the first email on).
fn server_mailbox(imap_port: u16, ca_file: &Path, user: &str) -> Table {
    [
        ("host", toml::Value::from("127.0.0.1")),
        ("port", i64::from(imap_port).into()),
        ("tls", "starttls".into()),
        ("ca_file", ca_file.display().to_string().into()),
        ("username", user.into()),
        ("password_env", "TRIAGED_TEST_IMAP_PASSWORD".into()),
        ("poll_interval", "1s".into()),
        ("start", "all".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const STAFF: &str = "staff@example.test";

impl ConfigBuilder {
    fn new(stack: &MailStack) -> ConfigBuilder {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("triaged.sqlite");
        ConfigBuilder {
            dir,
            imaps_port: stack.imaps_port,
            mailboxes: vec![server_mailbox(
                stack.imap_port,
                &stack.ca_file,
                "support@example.test",
            )],
            tables: Vec::new(),
            own_rules_and_templates: false,
            raw: String::new(),
        }
        .set("smtp", "host", "127.0.0.1")
        .set("smtp", "port", i64::from(stack.smtp_port))
        .set("smtp", "tls", "none")
        .set("smtp", "from", "Example Support <support@example.test>")
        .set("smtp", "timeout", "10s")
        .set("store", "path", store.display().to_string())
        .set("support", "addresses", vec!["support@example.test"])
        .set("support", "staff", vec![STAFF])
        .set("support", "domain", "support.example.test")
        .table("ack")
        .set(
            "scoring",
            "rules",
            repo().join("config/rules").display().to_string(),
        )
        .set(
            "templates",
            "dir",
            repo().join("templates").display().to_string(),
        )
        .set("outbox", "retry_initial", "1s")
        .set("outbox", "retry_max", "2s")
        // The witness copies (README "What it guarantees") are emails of their own in the
        // support INBOX; tests that count emails do without them unless they ask for one.
        .set("outbox", "witness", "none")
    }

    /// The config's directory (exists already: files a command in the config reads can go
    /// there before `write`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Escape hatch: one key of a table (`"mailbox"` is the first mailbox; dotted names such as
    /// `"alerts.health"` are sub-tables), replacing the default if there is one.
    pub fn set(mut self, table: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        let value = value.into();
        if table == "mailbox" {
            set_in(&mut self.mailboxes[0], key, value);
            return self;
        }
        match self.tables.iter_mut().find(|(name, _)| name == table) {
            Some((_, t)) => set_in(t, key, value),
            None => {
                let mut t = Table::new();
                set_in(&mut t, key, value);
                self.tables.push((table.to_string(), t));
            }
        }
        self
    }

    /// The table `name` written even if no key is set (keeps the order of the tables).
    fn table(mut self, name: &str) -> Self {
        if !self.tables.iter().any(|(n, _)| n == name) {
            self.tables.push((name.to_string(), Table::new()));
        }
        self
    }

    /// Escape hatch: TOML appended after every table (whole sections such as `[[digest]]` or
    /// `[sla]`; not a table the builder writes too).
    pub fn raw(mut self, toml: &str) -> Self {
        self.raw.push_str(toml);
        self.raw.push('\n');
        self
    }

    // [mailbox]

    /// Connect to IMAP on `port` instead of the stack's (a proxy in between).
    pub fn imap_port(self, port: u16) -> Self {
        self.set("mailbox", "port", i64::from(port))
    }

    /// IMAP over implicit TLS, on the stack's IMAPS port.
    pub fn imap_implicit_tls(self) -> Self {
        let port = self.imaps_port;
        self.imap_port(port).set("mailbox", "tls", "implicit")
    }

    /// The IMAP password from this environment variable (default
    /// `TRIAGED_TEST_IMAP_PASSWORD`, which `Daemon::start` sets to the stack's).
    pub fn password_env(self, var: &str) -> Self {
        self.without_mailbox_secret()
            .set("mailbox", "password_env", var)
    }

    /// The IMAP password from a command (for a daemon in the test's own process, which does
    /// not get the variables a child process would).
    pub fn password_command(self, command: &str) -> Self {
        self.without_mailbox_secret()
            .set("mailbox", "password_command", command)
    }

    /// IMAP login with XOAUTH2, the token from a command.
    pub fn imap_token_command(self, command: &str) -> Self {
        self.without_mailbox_secret()
            .set("mailbox", "auth", "xoauth2")
            .set("mailbox", "token_command", command)
    }

    fn without_mailbox_secret(mut self) -> Self {
        self.mailboxes[0].retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "password_env" | "password_command" | "token_command"
            )
        });
        self
    }

    /// The mailbox's name (`name = "main"`).
    pub fn mailbox_name(self, name: &str) -> Self {
        self.set("mailbox", "name", name)
    }

    /// A second mailbox on the same server, of `user`, named `name`, with `address` its support
    /// address; the mailboxes are then written as `[[mailbox]]`.
    pub fn another_mailbox(mut self, name: &str, user: &str) -> Self {
        let first = &self.mailboxes[0];
        let get = |key: &str| {
            first
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .expect("the first mailbox has it")
        };
        let port = get("port").as_integer().expect("a port") as u16;
        let ca_file = PathBuf::from(get("ca_file").as_str().expect("a path"));
        let mut t = server_mailbox(port, &ca_file, user);
        t.insert(0, ("address".to_string(), user.into()));
        t.insert(0, ("name".to_string(), name.into()));
        self.mailboxes.push(t);
        self
    }

    /// `sent_folder` (a folder name, or `"auto"` for the special-use `\Sent` one).
    pub fn sent_folder(self, folder: &str) -> Self {
        self.set("mailbox", "sent_folder", folder)
    }

    pub fn batch_size(self, n: i64) -> Self {
        self.set("mailbox", "batch_size", n)
    }

    pub fn triage_timeout(self, d: &str) -> Self {
        self.set("mailbox", "triage_timeout", d)
    }

    /// `liveness_interval` and `liveness_timeout`.
    pub fn liveness(self, interval: &str, timeout: &str) -> Self {
        self.set("mailbox", "liveness_interval", interval).set(
            "mailbox",
            "liveness_timeout",
            timeout,
        )
    }

    // [smtp]

    /// SMTP AUTH as `user` with XOAUTH2, the token from a command.
    pub fn smtp_token_command(self, user: &str, command: &str) -> Self {
        self.set("smtp", "username", user)
            .set("smtp", "token_command", command)
    }

    /// SMTP AUTH as `user` with the password from this environment variable.
    pub fn smtp_password_env(self, user: &str, var: &str) -> Self {
        self.set("smtp", "username", user)
            .set("smtp", "password_env", var)
    }

    /// One sending rate limit: at most `max` emails `per` period.
    pub fn smtp_rate_limit(self, max: i64, per: &str) -> Self {
        let mut limit = toml::Table::new();
        limit.insert("max".into(), max.into());
        limit.insert("per".into(), per.into());
        self.set("smtp", "rate_limits", vec![toml::Value::Table(limit)])
    }

    pub fn pushback_pause(self, d: &str) -> Self {
        self.set("smtp", "pushback_pause", d)
    }

    // [store]

    /// The store at `path` instead of in the config's directory.
    pub fn store(self, path: &Path) -> Self {
        self.set("store", "path", path.display().to_string())
    }

    pub fn busy_timeout(self, d: &str) -> Self {
        self.set("store", "busy_timeout", d)
    }

    // [ack]

    /// Acknowledgements per minute before the circuit breaker holds them (100,000: never, for
    /// backlogs).
    pub fn circuit_breaker(self, per_minute: i64) -> Self {
        self.set("ack", "circuit_breaker_per_minute", per_minute)
    }

    pub fn per_sender_limit(self, n: i64) -> Self {
        self.set("ack", "per_sender_limit", n)
    }

    /// Mail older than this gets no acknowledgement.
    pub fn max_age(self, d: &str) -> Self {
        self.set("ack", "max_age", d)
    }

    // [outbox]

    /// Witness copies by Bcc to the support address, settled after `grace`.
    pub fn witness_bcc(self, grace: Option<&str>) -> Self {
        let b = self.set("outbox", "witness", "bcc");
        match grace {
            Some(g) => b.set("outbox", "witness_grace", g),
            None => b,
        }
    }

    /// The first and the longest wait before a failed send is tried again (default 1 s, 2 s).
    pub fn retries(self, initial: &str, max: &str) -> Self {
        self.set("outbox", "retry_initial", initial)
            .set("outbox", "retry_max", max)
    }

    pub fn max_attempts(self, n: i64) -> Self {
        self.set("outbox", "max_attempts", n)
    }

    pub fn account_retry(self, d: &str) -> Self {
        self.set("outbox", "account_retry", d)
    }

    // [flags]

    /// Urgent mail moved into `folder` (`[flags.folders] urgent`).
    pub fn urgent_folder(self, folder: &str) -> Self {
        self.set("flags.folders", "urgent", folder)
    }

    /// `[flags] keyword_fallback` (`"folders"`: priorities into folders where keywords do not
    /// stick).
    pub fn keyword_fallback(self, fallback: &str) -> Self {
        self.set("flags", "keyword_fallback", fallback)
    }

    // [http], [alerts]

    /// The status server on `127.0.0.1:port`.
    pub fn http(self, port: u16) -> Self {
        self.set("http", "listen", format!("127.0.0.1:{port}"))
    }

    /// Alerts to staff@example.test.
    pub fn staff_alerts(self) -> Self {
        self.set("alerts", "to", vec![STAFF])
    }

    /// Alerts to staff, and a health alert once a problem has lasted `after`.
    pub fn health_alerts(self, after: &str) -> Self {
        self.staff_alerts().set("alerts.health", "after", after)
    }

    // [scoring], [templates]

    /// Rules and templates of its own, to edit: copies of the shipped ones in the config's
    /// directory (`DaemonConfig::rules`, `DaemonConfig::templates`), named relative to it.
    pub fn own_rules_and_templates(mut self) -> Self {
        self.own_rules_and_templates = true;
        self.set("scoring", "rules", "rules")
            .set("templates", "dir", "templates")
    }

    /// Write `triaged.toml` into the config's directory.
    pub fn write(self) -> DaemonConfig {
        let dir = self.dir;
        if self.own_rules_and_templates {
            copy_dir(&repo().join("config/rules"), &dir.path().join("rules"));
            copy_dir(&repo().join("templates"), &dir.path().join("templates"));
        }
        let mut text = String::new();
        let header = if self.mailboxes.len() == 1 {
            "[mailbox]"
        } else {
            "[[mailbox]]"
        };
        for m in &self.mailboxes {
            render(&mut text, header, m);
        }
        for (name, t) in &self.tables {
            render(&mut text, &format!("[{name}]"), t);
        }
        text.push_str(&self.raw);
        let store = self
            .tables
            .iter()
            .find(|(name, _)| name == "store")
            .and_then(|(_, t)| t.iter().find(|(k, _)| k == "path"))
            .and_then(|(_, v)| v.as_str())
            .map(PathBuf::from)
            .expect("a store path");
        let path = dir.path().join("triaged.toml");
        std::fs::write(&path, text).expect("write config");
        DaemonConfig { dir, path, store }
    }
}

/// Copy the files of `from` into `to` (made if missing).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}
