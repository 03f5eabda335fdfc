//! A config for a triaged daemon that talks to a test mail stack. Shared by the integration
//! tests, the benchmark and the demo.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the test stack listens, and how the daemon should talk to it.
pub struct Target {
    pub imap_port: u16,
    pub smtp_port: u16,
    pub ca_file: PathBuf,
}

impl Target {
    /// Where the test stack `stack` listens.
    pub fn of(stack: &crate::common::MailStack) -> Target {
        Target {
            imap_port: stack.imap_port,
            smtp_port: stack.smtp_port,
            ca_file: stack.ca_file.clone(),
        }
    }
}

/// A config directory for one daemon; `extra` is appended (TOML sections/keys) and may override.
pub struct DaemonConfig {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub store: PathBuf,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Write a config for the daemon. `mailbox_extra`/`ack_extra` are lines added to those sections;
/// `extra` is appended at the end (whole sections).
pub fn write_config(t: &Target, mailbox_extra: &str, ack_extra: &str, extra: &str) -> DaemonConfig {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("triaged.sqlite");
    let repo = repo();
    let text = format!(
        r#"
[mailbox]
host = "127.0.0.1"
port = {imap}
tls = "starttls"
ca_file = "{ca}"
username = "support@example.test"
password_env = "TRIAGED_TEST_IMAP_PASSWORD"
poll_interval = "1s"
start = "all"
{mailbox_extra}

[smtp]
host = "127.0.0.1"
port = {smtp}
tls = "none"
from = "Example Support <support@example.test>"
timeout = "10s"

[store]
path = "{store}"

[support]
addresses = ["support@example.test"]
staff = ["staff@example.test"]
domain = "support.example.test"

[ack]
{ack_extra}

[scoring]
rules = "{rules}"

[templates]
dir = "{templates}"

[outbox]
retry_initial = "1s"
retry_max = "2s"
{witness}{extra}
"#,
        // The witness copies (README "What it guarantees") are emails of their own in the
        // support INBOX; tests that count emails do without them unless they ask for one.
        witness = if extra.contains("witness =") {
            ""
        } else {
            "witness = \"none\"\n"
        },
        imap = t.imap_port,
        smtp = t.smtp_port,
        ca = t.ca_file.display(),
        store = store.display(),
        rules = repo.join("config/rules").display(),
        templates = repo.join("templates").display(),
    );
    let path = dir.path().join("triaged.toml");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write config");
    DaemonConfig { dir, path, store }
}

/// Copy the files of `from` into `to` (made if missing).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// Give the daemon of `cfg` rules and templates of its own, to edit: copies of the shipped
/// ones in its directory, which the config then names. Returns (rules, templates).
pub fn own_rules_and_templates(cfg: &DaemonConfig) -> (PathBuf, PathBuf) {
    let rules = cfg.dir.path().join("rules");
    let templates = cfg.dir.path().join("templates");
    copy_dir(&repo().join("config/rules"), &rules);
    copy_dir(&repo().join("templates"), &templates);
    let text = std::fs::read_to_string(&cfg.path).expect("config");
    let text = text
        .replace(
            &format!("rules = \"{}\"", repo().join("config/rules").display()),
            "rules = \"rules\"",
        )
        .replace(
            &format!("dir = \"{}\"", repo().join("templates").display()),
            "dir = \"templates\"",
        );
    std::fs::write(&cfg.path, text).expect("config");
    (rules, templates)
}
