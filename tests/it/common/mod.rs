//! A real mail stack for tests, on free loopback ports: Dovecot (IMAP, IMAPS, LMTP) from a private
//! config in a temp dir, and an aiosmtpd SMTP server that delivers into Dovecot over LMTP and logs
//! every message it accepts. Everything is torn down by PID when the `MailStack` is dropped.
//! Optionally (`StackOptions::oauth`) an OAuth2 token-introspection endpoint on loopback that both
//! servers check bearer tokens against (IMAP XOAUTH2/OAUTHBEARER, SMTP AUTH XOAUTH2/OAUTHBEARER).
//!
//! By component: `dovecot` (config, process, LMTP delivery), `smtp` (the SMTP server and what it
//! accepted or refused), `imap` (a client to look into the mailboxes), `oauth` (the token
//! endpoint), `certs`, `process` (ports, processes); beside the stack, `corpus` (the shared
//! evaluation mail) and `hostile` (generated hostile emails).

mod certs;
pub mod corpus;
mod dovecot;
pub mod hostile;
mod imap;
mod oauth;
mod process;
mod smtp;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;

pub use corpus::eval_mime;
pub use imap::Fetched;
pub use process::free_ports;
pub use smtp::SmtpAuth;

use oauth::OauthServer;
use process::{run, terminate};

/// Users in the test Dovecot, all with password `pw` (unless `StackOptions::password` says otherwise). `user+anything@` delivers to `user@`.
pub const USERS: &[&str] = &[
    "support@example.test",
    "customer@example.test",
    "staff@example.test",
    "other@example.test",
    // The customers of the follow-up test.
    "ana@example.test",
    "ben@example.test",
    "cy@example.test",
    "dee@example.test",
];
pub const PASSWORD: &str = "pw";
/// Hierarchy separator of the test mailboxes (unless `StackOptions::separator` says otherwise).
pub const SEPARATOR: &str = "/";
/// A Gmail-style Sent folder that every user has (created at login), with the special-use
/// attribute `\Sent`. Plain `LIST "" "*"` shows it as `(\HasNoChildren \Sent) "/" "[Gmail]/Sent Mail"`.
pub const SPECIAL_SENT: &str = "[Gmail]/Sent Mail";

/// What the test mail server can and cannot do. `Default` is the plain stack every test used
/// before these switches existed; override one with `StackOptions { oauth: true, ..Default::default() }`.
#[derive(Debug, Clone, Copy)]
pub struct StackOptions {
    /// Advertise IDLE (false: a capability list without it, for the polling path).
    pub idle: bool,
    /// Also accept OAuth2 bearer tokens: IMAP `AUTHENTICATE XOAUTH2`/`OAUTHBEARER` (Dovecot's
    /// oauth2 passdb asking the harness's introspection endpoint), and the SMTP server then
    /// requires AUTH: PLAIN/LOGIN with the password, XOAUTH2/OAUTHBEARER with a token. Tokens come
    /// from `MailStack::issue_token`. Password logins to IMAP keep working. With it, a failed IMAP
    /// login answers within ~0.5 s (no `auth_failure_delay`, no per-IP auth penalty).
    pub oauth: bool,
    /// Custom keywords allowed (false: in every folder of every user PERMANENTFLAGS is
    /// `(\Deleted \Seen)`, without `\*`, through an ACL without the `w` right; a STORE or APPEND
    /// of a keyword, and also of `\Flagged`/`\Answered`/`\Draft`, then answers OK and sets nothing.
    /// Dovecot 2.3 cannot refuse new keywords alone).
    pub keywords: bool,
    /// Advertise MOVE (false: a capability list without it; UIDPLUS stays; note that Dovecot still
    /// executes a `UID MOVE` that is sent anyway).
    pub moves: bool,
    /// Every user's password, for IMAP and SMTP (default [`PASSWORD`]; a long, distinctive one
    /// lets a test search a log for it).
    pub password: &'static str,
    /// The hierarchy separator of the personal namespace (default [`SEPARATOR`]; `"."` as on
    /// Cyrus, Courier or a Maildir++ Dovecot: `Triage/Urgent` is then one folder's name).
    pub separator: &'static str,
    /// The personal namespace's prefix (default none; `"INBOX."` with separator `"."` as on
    /// Cyrus with `altnamespace: no` or Courier: every folder lives under INBOX, NAMESPACE answers
    /// `(("INBOX." "."))`, and a CREATE outside the prefix is refused).
    pub prefix: &'static str,
    /// The account may create folders (false: an ACL without the `k` right, as on a managed
    /// server; CREATE answers `NO [NOPERM] Permission denied`, a MOVE into a missing folder `NO
    /// [TRYCREATE]`; existing folders, flags and keywords work as before).
    pub create_folders: bool,
    /// TLS on the SMTP server, with the stack's certificate (`ca_file` verifies it):
    /// `"none"` (default), `"starttls"` (offered and required) or `"implicit"`.
    pub smtp_tls: &'static str,
    /// Advertise CONDSTORE and QRESYNC (false: the short capability list, without either, as
    /// on Microsoft 365; IDLE and MOVE as `idle` and `moves` say).
    pub condstore: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            idle: true,
            oauth: false,
            keywords: true,
            moves: true,
            password: PASSWORD,
            separator: SEPARATOR,
            prefix: "",
            create_folders: true,
            smtp_tls: "none",
            condstore: true,
        }
    }
}

pub struct MailStack {
    pub dir: tempfile::TempDir,
    pub imap_port: u16,
    pub imaps_port: u16,
    pub lmtp_port: u16,
    pub smtp_port: u16,
    pub ca_file: PathBuf,
    pub opts: StackOptions,
    dovecot: Mutex<Option<Child>>,
    smtp: Mutex<Option<Child>>,
    oauth: Option<OauthServer>,
}

impl MailStack {
    pub fn start() -> MailStack {
        Self::start_with(StackOptions::default())
    }

    /// A stack on free ports. A port chosen free may be taken before Dovecot listens on it
    /// (by another process, or as the local port of a connection some test makes): then the
    /// stack is set up again on other ports, twice at most.
    pub fn start_with(opts: StackOptions) -> MailStack {
        for attempt in 1.. {
            let stack = Self::configure(opts);
            match stack.try_start_dovecot() {
                Ok(()) => {
                    stack.start_smtp();
                    return stack;
                }
                Err(why) if why.contains("Address already in use") && attempt < 3 => {
                    eprintln!("a port was taken before dovecot listened; other ports ({why})");
                }
                Err(why) => panic!("{why}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// The stack's directory, certificates, ports and server configuration; nothing started.
    fn configure(opts: StackOptions) -> MailStack {
        let dir = tempfile::Builder::new()
            .prefix("triaged-stack-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        // Dovecot's own users must be able to traverse it.
        run(Command::new("chmod").arg("0755").arg(d));
        certs::make_certs(d);
        let ports = free_ports(4);
        let (imap_port, imaps_port, lmtp_port, smtp_port) =
            (ports[0], ports[1], ports[2], ports[3]);
        let oauth = opts.oauth.then(OauthServer::start);
        dovecot::configure(
            d,
            &opts,
            dovecot::Ports {
                imap: imap_port,
                imaps: imaps_port,
                lmtp: lmtp_port,
            },
            oauth.as_ref().map(|o| o.port),
        );
        MailStack {
            ca_file: d.join("ca.crt"),
            dir,
            imap_port,
            imaps_port,
            lmtp_port,
            smtp_port,
            opts,
            dovecot: Mutex::new(None),
            smtp: Mutex::new(None),
            oauth,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for MailStack {
    fn drop(&mut self) {
        if let Ok(mut g) = self.smtp.lock()
            && let Some(c) = g.take()
        {
            terminate(c);
        }
        if let Ok(mut g) = self.dovecot.lock()
            && let Some(c) = g.take()
        {
            terminate(c);
        }
        // The introspection endpoint (a field) stops after both servers.
    }
}
