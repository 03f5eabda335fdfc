//! The SMTP server the daemon sends to (common/smtp_server.py, aiosmtpd): it delivers what it
//! accepts into Dovecot over LMTP and logs it; fault modes and per-recipient replies make it
//! refuse on demand.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use super::MailStack;
use super::process::{wait_for_banner, wait_for_port};

/// One AUTH the SMTP server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpAuth {
    pub user: String,
    /// `PLAIN`, `LOGIN`, `XOAUTH2` or `OAUTHBEARER`.
    pub mechanism: String,
    /// The bearer token (XOAUTH2/OAUTHBEARER only).
    pub token: Option<String>,
}

impl MailStack {
    pub(super) fn start_smtp(&self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/common/smtp_server.py");
        let err = std::fs::File::create(self.path("smtp.stderr")).expect("stderr file");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script)
            .arg(self.dir.path())
            .arg(self.smtp_port.to_string())
            .arg(self.lmtp_port.to_string());
        if let Some(url) = self.introspection_url() {
            cmd.arg(url);
        }
        let child = cmd
            .env("SMTP_TLS", self.opts.smtp_tls)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start /usr/bin/python3 (bash scripts/install-test-deps.sh)");
        *self.smtp.lock().expect("lock") = Some(child);
        // A TLS server says nothing in plain text: then its listening port is the sign.
        let up = if self.opts.smtp_tls == "implicit" {
            wait_for_port(self.smtp_port)
        } else {
            wait_for_banner(self.smtp_port, "220")
        };
        if !up {
            panic!(
                "SMTP server did not come up:\n{}",
                std::fs::read_to_string(self.path("smtp.stderr")).unwrap_or_default()
            );
        }
    }

    /// How the SMTP server answers from its next command on (common/smtp_server.py):
    /// `accept`; `tempfail` (451), `ratelimit` (421), `permfail` (550 5.1.1) on every RCPT;
    /// `sender_refused`: every MAIL FROM refused as an address the account may not send as
    /// (`553 5.7.1 <addr>: Sender address rejected: not owned by user addr`), until the mode
    /// changes back; `strict`: accepts, but refuses a message with a line over 998 octets
    /// (`500 5.5.2 Line too long`); `hang_rcpt`: answers MAIL FROM, then never RCPT TO;
    /// `hang_data`: takes the message, then never answers its final "." (both until the mode
    /// changes, and a hung transaction is then refused, never delivered).
    pub fn set_smtp_mode(&self, mode: &str) {
        std::fs::write(self.path("smtp_mode"), mode).expect("write smtp_mode");
    }

    /// Refuse these recipients (exact addresses) with these replies, e.g. `("ana@corporate.example",
    /// "450 4.1.2 <ana@corporate.example>: Recipient address rejected: Domain not found")`, from
    /// the next RCPT TO on and whatever the mode; an empty list takes them all again.
    pub fn set_rcpt_replies(&self, replies: &[(&str, &str)]) {
        let map: serde_json::Map<String, serde_json::Value> = replies
            .iter()
            .map(|(a, r)| (a.to_string(), serde_json::Value::from(*r)))
            .collect();
        // Written whole, then renamed: the server never reads half a file.
        let tmp = self.path("rcpt_replies.json.tmp");
        std::fs::write(&tmp, serde_json::Value::Object(map).to_string()).expect("write");
        std::fs::rename(&tmp, self.path("rcpt_replies.json")).expect("rename");
    }

    /// Every message the SMTP server accepted, oldest first.
    pub fn smtp_received(&self) -> Vec<serde_json::Value> {
        read_jsonl(&self.path("received.jsonl"))
    }

    /// The subjects of what the SMTP server accepted for a recipient `rcpt` says yes to,
    /// oldest first.
    pub fn subjects_to(&self, rcpt: impl Fn(&str) -> bool) -> Vec<String> {
        self.smtp_received()
            .iter()
            .filter(|m| {
                m["rcpt_tos"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|a| a.as_str().is_some_and(&rcpt)))
            })
            .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// How many commands the SMTP server refused (fault modes).
    pub fn smtp_refused_count(&self) -> usize {
        self.smtp_refusals().len()
    }

    /// Every refusal of the fault modes, oldest first: `mode`, `ts`, and `rcpt`, `mail_from`
    /// or `line` (the longest line's length) as refused.
    pub fn smtp_refusals(&self) -> Vec<serde_json::Value> {
        read_jsonl(&self.path("refused.jsonl"))
    }

    /// Every AUTH the SMTP server accepted, oldest first (only with `oauth`).
    pub fn smtp_auths(&self) -> Vec<SmtpAuth> {
        read_jsonl(&self.path("smtp_auths.jsonl"))
            .into_iter()
            .map(|v| SmtpAuth {
                user: v["user"].as_str().unwrap_or_default().to_string(),
                mechanism: v["mechanism"].as_str().unwrap_or_default().to_string(),
                token: v["token"].as_str().map(str::to_string),
            })
            .collect()
    }
}

fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        f.read_to_string(&mut text).ok();
    }
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
