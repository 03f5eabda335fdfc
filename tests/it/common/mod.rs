//! A real mail stack for tests, on free loopback ports: Dovecot (IMAP, IMAPS, LMTP) from a private
//! config in a temp dir, and an aiosmtpd SMTP server that delivers into Dovecot over LMTP and logs
//! every message it accepts. Everything is torn down by PID when the `MailStack` is dropped.
//! Optionally (`StackOptions::oauth`) an OAuth2 token-introspection endpoint on loopback that both
//! servers check bearer tokens against (IMAP XOAUTH2/OAUTHBEARER, SMTP AUTH XOAUTH2/OAUTHBEARER).
#![allow(dead_code)]

pub mod hostile;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::TryStreamExt;

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

/// The short capability list (close to Microsoft 365's) advertised when `idle` or `moves` is off,
/// with IDLE and MOVE added back for whichever is on; with both on there is no override and
/// Dovecot advertises its own, longer, default list.
const REDUCED_CAPABILITY: &str =
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS NAMESPACE UNSELECT CHILDREN";

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
        }
    }
}

/// One question the introspection endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub token: String,
    /// What it answered.
    pub active: bool,
    /// Who asked: the HTTP User-Agent, `dovecot-oauth2-passdb/2.3.19.1` for IMAP logins,
    /// `triaged-test-smtp` for SMTP AUTH.
    pub agent: String,
}

// `from_*`: who the question came from, not a conversion.
#[allow(clippy::wrong_self_convention)]
impl Introspection {
    pub fn from_imap(&self) -> bool {
        self.agent.starts_with("dovecot")
    }
    pub fn from_smtp(&self) -> bool {
        self.agent == "triaged-test-smtp"
    }
}

/// One AUTH the SMTP server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpAuth {
    pub user: String,
    /// `PLAIN`, `LOGIN`, `XOAUTH2` or `OAUTHBEARER`.
    pub mechanism: String,
    /// The bearer token (XOAUTH2/OAUTHBEARER only).
    pub token: Option<String>,
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

/// A message read back over IMAP.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub uid: u32,
    pub flags: Vec<String>,
    pub raw: Vec<u8>,
}

fn free_ports(n: usize) -> Vec<u16> {
    // Hold all listeners until every port is chosen, so the n ports differ.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn id_of(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("numeric id")
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A throwaway CA and a leaf certificate for localhost/127.0.0.1 signed by it (rustls refuses a
/// self-signed CA certificate used as a server certificate).
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3",
            "-subj",
            "/CN=triaged test CA",
        ])
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])
        .current_dir(dir));
    run(Command::new("openssl")
        .arg("req")
        .args(ec)
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ])
        .current_dir(dir));
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write leaf.ext");
    run(Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
        ])
        .args(["-out", "server.crt", "-days", "3", "-extfile", "leaf.ext"])
        .current_dir(dir));
}

impl MailStack {
    pub fn start() -> MailStack {
        Self::start_with(StackOptions::default())
    }

    pub fn start_with(opts: StackOptions) -> MailStack {
        let dir = tempfile::Builder::new()
            .prefix("triaged-stack-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        // Dovecot's own users must be able to traverse it.
        run(Command::new("chmod").arg("0755").arg(d));
        make_certs(d);
        let ports = free_ports(4);
        let (imap_port, imaps_port, lmtp_port, smtp_port) =
            (ports[0], ports[1], ports[2], ports[3]);

        let root = is_root();
        let (mail_uid, mail_gid, internal_user, login_user) = if root {
            (
                id_of("-u", "nobody"),
                id_of("-g", "nobody"),
                "dovecot".to_string(),
                "dovenull".to_string(),
            )
        } else {
            let me = current_user();
            (id_of("-u", &me), id_of("-g", &me), me.clone(), me)
        };
        let home = d.join("home");
        std::fs::create_dir_all(&home).expect("mkdir home");
        if root {
            std::os::unix::fs::chown(&home, Some(mail_uid), Some(mail_gid)).expect("chown home");
        }
        let passwd: String = USERS
            .iter()
            .map(|u| format!("{u}:{{PLAIN}}{}::::::\n", opts.password))
            .collect();
        std::fs::write(d.join("passwd"), passwd).expect("write passwd");
        let chroot = if root { "" } else { "chroot =" };
        let capability = if opts.idle && opts.moves {
            String::new()
        } else {
            let mut caps: Vec<&str> = REDUCED_CAPABILITY.split(' ').collect();
            if opts.idle {
                caps.insert(
                    caps.iter().position(|c| *c == "LITERAL+").unwrap_or(0),
                    "IDLE",
                );
            }
            if opts.moves {
                caps.insert(
                    caps.iter().position(|c| *c == "UIDPLUS").unwrap_or(0) + 1,
                    "MOVE",
                );
            }
            format!("imap_capability = {}\n", caps.join(" "))
        };
        let oauth = opts.oauth.then(OauthServer::start);
        let mut auth = String::from("auth_mechanisms = plain login\n");
        let mut passdb_filter = "";
        let mut oauth_passdb = String::new();
        let mut anvil_extra = "";
        if let Some(o) = &oauth {
            // Dovecot hands the bearer token of XOAUTH2/OAUTHBEARER to the passdb chain as the
            // password. `mechanisms` keeps each passdb to its own kind: a token is never tried
            // as a password, nor a password introspected as a token.
            auth = "auth_mechanisms = plain login xoauth2 oauthbearer\n\
                    auth_cache_size = 0\n\
                    auth_failure_delay = 0\n"
                .to_string();
            passdb_filter = "mechanisms = plain login";
            oauth_passdb = format!(
                "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n",
                d.join("dovecot-oauth2.conf.ext").display()
            );
            std::fs::write(
                d.join("dovecot-oauth2.conf.ext"),
                format!(
                    "introspection_mode = post\n\
                     introspection_url = http://127.0.0.1:{}/introspect\n\
                     username_attribute = username\n\
                     active_attribute = active\n\
                     active_value = true\n\
                     timeout_msecs = 10000\n",
                    o.port
                ),
            )
            .expect("write dovecot-oauth2.conf.ext");
            // No per-IP auth penalty (every test client is 127.0.0.1): the auth process finds no
            // anvil-auth-penalty socket and turns the penalty off.
            anvil_extra = "unix_listener anvil-auth-penalty {\n    mode = 0\n  }";
        }
        let mut acl = String::new();
        if !opts.keywords || !opts.create_folders {
            // Dovecot 2.3 has no switch for "no new keywords"; the ACL plugin without the `w`
            // right takes `\*` (and the non-\Seen/\Deleted flags) out of PERMANENTFLAGS.
            // Without `k` no folder can be created.
            let rights: String = if opts.keywords {
                "lrwstipekxa"
            } else {
                "lrsteipkx"
            }
            .chars()
            .filter(|r| opts.create_folders || *r != 'k')
            .collect();
            std::fs::write(d.join("dovecot-acl"), format!("* owner {rights}\n"))
                .expect("write dovecot-acl");
            acl = format!(
                "mail_plugins = $mail_plugins acl\nplugin {{\n  acl = vfile:{}\n}}\n",
                d.join("dovecot-acl").display()
            );
        }
        let conf = format!(
            r#"instance_name = triaged-test-{imap_port}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/server.crt
ssl_key = <{d}/server.key
disable_plaintext_auth = no
{auth}mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
# A test mailbox: no fsync, so delivery speed measures the software, not the disk.
mail_fsync = never
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
first_valid_uid = 1
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
{capability}{acl}
namespace inbox {{
  inbox = yes
  separator = {separator}
  prefix = {prefix}
  mailbox "{special_sent}" {{
    special_use = \Sent
    auto = create
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
  {passdb_filter}
}}
{oauth_passdb}userdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
  default_fields = uid={mail_uid} gid={mail_gid} home={d}/home/%u
}}
service imap-login {{
  {chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service anvil {{
  {chroot}
  {anvil_extra}
}}
service pop3-login {{
  {chroot}
}}
service submission-login {{
  {chroot}
}}
"#,
            d = d.display(),
            separator = opts.separator,
            prefix = opts.prefix,
            // The special-use mailbox's name inside the namespace, in its own separator.
            special_sent = SPECIAL_SENT.replace('/', opts.separator),
            internal_group = if root {
                "dovecot".to_string()
            } else {
                current_user()
            },
        );
        std::fs::write(d.join("dovecot.conf"), conf).expect("write dovecot.conf");
        let stack = MailStack {
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
        };
        stack.start_dovecot();
        stack.start_smtp();
        stack
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn dovecot_log(&self) -> String {
        std::fs::read_to_string(self.path("dovecot.log")).unwrap_or_default()
    }

    pub fn start_dovecot(&self) {
        let mut slot = self.dovecot.lock().expect("lock");
        assert!(slot.is_none(), "dovecot already running");
        let out = std::fs::File::create(self.path("dovecot.stderr")).expect("stderr file");
        let child = Command::new("dovecot")
            .args(["-F", "-c"])
            .arg(self.path("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start dovecot (is it installed? bash scripts/install-test-deps.sh)");
        *slot = Some(child);
        drop(slot);
        let ready =
            wait_for_banner(self.imap_port, "* OK") && wait_for_banner(self.lmtp_port, "220");
        if !ready {
            panic!(
                "dovecot did not come up:\n{}\n{}",
                std::fs::read_to_string(self.path("dovecot.stderr")).unwrap_or_default(),
                self.dovecot_log()
            );
        }
    }

    pub fn stop_dovecot(&self) {
        if let Some(child) = self.dovecot.lock().expect("lock").take() {
            terminate(child);
        }
    }

    pub fn restart_dovecot(&self) {
        self.stop_dovecot();
        self.start_dovecot();
    }

    fn start_smtp(&self) {
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

    /// Deliver over LMTP as an MTA would, with the From address as envelope sender.
    pub fn deliver(&self, rcpt: &str, raw: &[u8]) {
        self.deliver_many(rcpt, &[raw.to_vec()]);
    }

    /// Deliver several messages over one LMTP connection.
    pub fn deliver_many(&self, rcpt: &str, msgs: &[Vec<u8>]) {
        let envelope: Vec<(String, &[u8])> = msgs
            .iter()
            .map(|m| (envelope_sender(m), m.as_slice()))
            .collect();
        self.deliver_with(rcpt, &envelope);
    }

    /// Deliver with an explicit envelope sender ("" for the null sender of bounces).
    pub fn deliver_from(&self, mail_from: &str, rcpt: &str, raw: &[u8]) {
        self.deliver_with(rcpt, &[(mail_from.to_string(), raw)]);
    }

    /// Deliver one message and return the server's refusal instead of panicking on it.
    pub fn try_deliver_from(&self, mail_from: &str, rcpt: &str, raw: &[u8]) -> Result<(), String> {
        let stream =
            TcpStream::connect(("127.0.0.1", self.lmtp_port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut w = stream.try_clone().map_err(|e| e.to_string())?;
        let mut r = BufReader::new(stream);
        let mut step = |send: &[u8], code: &str| -> Result<(), String> {
            if !send.is_empty() {
                w.write_all(send).map_err(|e| e.to_string())?;
            }
            loop {
                let mut line = String::new();
                r.read_line(&mut line).map_err(|e| e.to_string())?;
                if !line.starts_with(code) {
                    return Err(line.trim().to_string());
                }
                if line.as_bytes().get(3) != Some(&b'-') {
                    return Ok(());
                }
            }
        };
        step(b"", "220")?;
        step(b"LHLO test.local\r\n", "250")?;
        step(format!("MAIL FROM:<{mail_from}>\r\n").as_bytes(), "250")?;
        step(format!("RCPT TO:<{rcpt}>\r\n").as_bytes(), "250")?;
        step(b"DATA\r\n", "354")?;
        let mut data = dot_stuff(raw);
        data.extend_from_slice(b".\r\n");
        step(&data, "250")?;
        step(b"QUIT\r\n", "221").ok();
        Ok(())
    }

    fn deliver_with(&self, rcpt: &str, msgs: &[(String, &[u8])]) {
        let stream = TcpStream::connect(("127.0.0.1", self.lmtp_port)).expect("connect lmtp");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut w = stream.try_clone().expect("clone");
        let mut r = BufReader::new(stream);
        expect_reply(&mut r, "220", "greeting");
        w.write_all(b"LHLO test.local\r\n").expect("write");
        expect_reply(&mut r, "250", "LHLO");
        for (from, raw) in msgs {
            write!(w, "MAIL FROM:<{from}>\r\n").expect("write");
            expect_reply(&mut r, "250", "MAIL FROM");
            write!(w, "RCPT TO:<{rcpt}>\r\n").expect("write");
            expect_reply(&mut r, "250", "RCPT TO");
            w.write_all(b"DATA\r\n").expect("write");
            expect_reply(&mut r, "354", "DATA");
            w.write_all(&dot_stuff(raw)).expect("write");
            w.write_all(b".\r\n").expect("write");
            expect_reply(&mut r, "250", "end of DATA");
        }
        w.write_all(b"QUIT\r\n").ok();
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

    async fn login(&self, user: &str) -> async_imap::Session<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .expect("connect imap");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("greeting")
            .expect("greeting");
        client
            .login(user, self.opts.password)
            .await
            .map_err(|(e, _)| e)
            .expect("login")
    }

    /// Every message in a folder (BODY.PEEK, so nothing is marked read).
    pub async fn fetch_all(&self, user: &str, folder: &str) -> Vec<Fetched> {
        let mut s = self.login(user).await;
        let mbox = match s.select(folder).await {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        if mbox.exists > 0 {
            let fetches: Vec<_> = s
                .uid_fetch("1:*", "(UID FLAGS BODY.PEEK[])")
                .await
                .expect("fetch")
                .try_collect()
                .await
                .expect("fetch");
            for f in fetches {
                out.push(Fetched {
                    uid: f.uid.unwrap_or(0),
                    flags: f.flags().map(|fl| flag_name(&fl)).collect(),
                    raw: f.body().unwrap_or_default().to_vec(),
                });
            }
        }
        s.logout().await.ok();
        out.sort_by_key(|f| f.uid);
        out
    }

    /// Re-read a folder until `pred` holds or `timeout` passes; returns the last state either way.
    pub async fn wait_for(
        &self,
        user: &str,
        folder: &str,
        pred: impl Fn(&[Fetched]) -> bool,
        timeout: Duration,
    ) -> Vec<Fetched> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.fetch_all(user, folder).await;
            if pred(&msgs) || Instant::now() > deadline {
                return msgs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// APPEND a message to a folder (created if missing).
    pub async fn append(&self, user: &str, folder: &str, raw: &[u8]) {
        self.append_many(user, folder, &[raw.to_vec()], None).await;
    }

    /// APPEND messages over one session, optionally with an INTERNALDATE (arrival time) such
    /// as `"\"12-Nov-2026 10:00:00 +0000\""` (quoted: async-imap sends it as given).
    pub async fn append_many(
        &self,
        user: &str,
        folder: &str,
        msgs: &[Vec<u8>],
        internaldate: Option<&str>,
    ) {
        let mut s = self.login(user).await;
        let _ = s.create(folder).await;
        for raw in msgs {
            s.append(folder, None, internaldate, raw)
                .await
                .expect("append");
        }
        s.logout().await.ok();
    }
}

/// OAuth2 and raw IMAP.
impl MailStack {
    fn oauth_server(&self) -> &OauthServer {
        self.oauth
            .as_ref()
            .expect("the stack runs without OAuth (StackOptions { oauth: true, .. })")
    }

    /// The token-introspection endpoint (RFC 7662: POST `token=…`, answers
    /// `{"active":true,"username":…}` or `{"active":false}`), when `oauth` is on.
    pub fn introspection_url(&self) -> Option<String> {
        self.oauth
            .as_ref()
            .map(|o| format!("http://127.0.0.1:{}/introspect", o.port))
    }

    /// A new random opaque bearer token, active for `user` until revoked.
    pub fn issue_token(&self, user: &str) -> String {
        let token = format!("tok-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        self.oauth_server()
            .state
            .lock()
            .expect("lock")
            .tokens
            .insert(
                token.clone(),
                TokenInfo {
                    user: user.to_string(),
                    active: true,
                },
            );
        token
    }

    /// From now on the endpoint answers `active: false` for this token (Dovecot caches nothing,
    /// so the next login with it fails).
    pub fn revoke_token(&self, token: &str) {
        if let Some(t) = self
            .oauth_server()
            .state
            .lock()
            .expect("lock")
            .tokens
            .get_mut(token)
        {
            t.active = false;
        }
    }

    /// Every question the introspection endpoint answered, oldest first (IMAP and SMTP alike;
    /// see `Introspection::agent`). One per login attempt with a token: nothing is cached.
    pub fn introspections(&self) -> Vec<Introspection> {
        self.oauth_server().state.lock().expect("lock").seen.clone()
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

    /// An IMAP session over `AUTHENTICATE XOAUTH2` or `AUTHENTICATE OAUTHBEARER` with a bearer
    /// token (plain text to the loopback port). A refused token is an `Err` (Dovecot answers
    /// with a JSON error challenge, to which the empty response is sent, then NO).
    pub async fn authenticate(
        &self,
        mechanism: &str,
        user: &str,
        token: &str,
    ) -> Result<async_imap::Session<tokio::net::TcpStream>, async_imap::error::Error> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .expect("connect imap");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("greeting")
            .expect("greeting");
        let initial = match mechanism {
            "XOAUTH2" => xoauth2_response(user, token),
            "OAUTHBEARER" => oauthbearer_response(user, token),
            other => panic!("not a bearer-token mechanism: {other}"),
        };
        client
            .authenticate(
                mechanism,
                BearerAuth {
                    initial: Some(initial.into_bytes()),
                },
            )
            .await
            .map_err(|(e, _)| e)
    }

    /// One plain-text IMAP session as `user` (LOGIN with the password), then each command in
    /// turn (without tag), over a blocking socket; returns, for each command, the lines the server sent for it: the
    /// untagged ones, then the tagged reply (CRLF stripped, literals inlined).
    pub fn imap_raw(&self, user: &str, commands: &[&str]) -> Vec<Vec<String>> {
        let stream = TcpStream::connect(("127.0.0.1", self.imap_port)).expect("connect imap");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut w = stream.try_clone().expect("clone");
        let mut r = BufReader::new(stream);
        let mut greeting = String::new();
        r.read_line(&mut greeting).expect("greeting");
        let mut run = |tag: &str, cmd: &str| -> Vec<String> {
            write!(w, "{tag} {cmd}\r\n").expect("write");
            let mut lines = Vec::new();
            loop {
                let line = read_imap_line(&mut r);
                let done = line.starts_with(&format!("{tag} "));
                lines.push(line);
                if done {
                    return lines;
                }
            }
        };
        let login = run("l", &format!("LOGIN \"{user}\" \"{}\"", self.opts.password));
        assert!(
            login.last().is_some_and(|l| l.starts_with("l OK")),
            "login: {login:?}"
        );
        let out = commands
            .iter()
            .enumerate()
            .map(|(i, c)| run(&format!("c{i}"), c))
            .collect();
        run("z", "LOGOUT");
        out
    }
}

/// One IMAP response line with any `{n}` literals read and inlined.
fn read_imap_line(r: &mut impl BufRead) -> String {
    let mut out = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).expect("read imap");
        assert!(n > 0, "IMAP connection closed after {out:?}");
        let line = line.trim_end_matches(['\r', '\n']);
        out.push_str(line);
        let literal = line
            .strip_suffix('}')
            .and_then(|l| l.rsplit_once('{'))
            .and_then(|(_, n)| n.trim_end_matches('+').parse::<usize>().ok());
        match literal {
            Some(n) => {
                let mut buf = vec![0; n];
                r.read_exact(&mut buf).expect("read literal");
                out.push_str(&String::from_utf8_lossy(&buf));
            }
            None => return out,
        }
    }
}

/// The XOAUTH2 initial client response (Google's and Microsoft's SASL mechanism).
pub fn xoauth2_response(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

/// The OAUTHBEARER initial client response (RFC 7628).
pub fn oauthbearer_response(user: &str, token: &str) -> String {
    format!("n,a={user},\x01auth=Bearer {token}\x01\x01")
}

/// Sends the initial response at the first (empty) challenge; answers any later challenge (the
/// JSON error a server sends before refusing a token) with the empty response SASL expects.
struct BearerAuth {
    initial: Option<Vec<u8>>,
}

impl async_imap::Authenticator for BearerAuth {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.initial.take().unwrap_or_default()
    }
}

struct TokenInfo {
    user: String,
    active: bool,
}

#[derive(Default)]
struct OauthState {
    tokens: HashMap<String, TokenInfo>,
    seen: Vec<Introspection>,
}

/// A minimal RFC 7662 token-introspection endpoint on a loopback port, in threads: one request
/// per connection (it answers `Connection: close`).
struct OauthServer {
    port: u16,
    state: Arc<Mutex<OauthState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OauthServer {
    fn start() -> OauthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind introspection endpoint");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(OauthState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || {
                        if let Err(e) = serve_introspection(conn, &state) {
                            eprintln!("introspection endpoint: {e}");
                        }
                    });
                }
            })
        };
        OauthServer {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for OauthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_introspection(conn: TcpStream, state: &Mutex<OauthState>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    let mut request_line = String::new();
    if r.read_line(&mut request_line)? == 0 {
        return Ok(()); // the wake-up connection of Drop
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (mut length, mut agent) = (0usize, String::new());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "user-agent" => agent = value.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let form = if method == "POST" {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        query.to_string()
    };
    let token = form
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| form_decode(v));
    let (status, json) = match (path, token) {
        ("/introspect", Some(token)) => {
            let mut st = state.lock().expect("lock");
            let user = st
                .tokens
                .get(&token)
                .filter(|t| t.active)
                .map(|t| t.user.clone());
            st.seen.push(Introspection {
                token,
                active: user.is_some(),
                agent,
            });
            let json = match user {
                Some(u) => serde_json::json!({
                    "active": true,
                    "username": u,
                    "token_type": "Bearer",
                    "scope": "IMAP.AccessAsUser.All SMTP.Send",
                }),
                None => serde_json::json!({ "active": false }),
            };
            ("200 OK", json)
        }
        ("/introspect", None) => (
            "400 Bad Request",
            serde_json::json!({ "error": "invalid_request" }),
        ),
        _ => ("404 Not Found", serde_json::json!({ "error": "not_found" })),
    };
    let body = json.to_string();
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

/// application/x-www-form-urlencoded value decoding.
fn form_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            x => out.push(x),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

fn flag_name(f: &async_imap::types::Flag<'_>) -> String {
    use async_imap::types::Flag;
    match f {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::MayCreate => "\\*".into(),
        Flag::Custom(s) => s.to_string(),
    }
}

/// SIGTERM, wait up to 5 s, then SIGKILL.
fn terminate(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Connect until the port takes connections (10 s at most).
fn wait_for_port(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Connect until the server greets with `prefix` (10 s at most).
fn wait_for_banner(port: u16, prefix: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut delay = Duration::from_millis(5);
    while Instant::now() < deadline {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut line = String::new();
            if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with(prefix) {
                return true;
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
    false
}

/// Read one (possibly multi-line) reply and check its code.
fn expect_reply(r: &mut impl BufRead, code: &str, what: &str) {
    loop {
        let mut line = String::new();
        r.read_line(&mut line)
            .unwrap_or_else(|e| panic!("LMTP {what}: {e}"));
        assert!(
            line.starts_with(code),
            "LMTP {what}: expected {code}, got {line:?}"
        );
        if line.as_bytes().get(3) != Some(&b'-') {
            return;
        }
    }
}

/// CRLF line endings (bare LF and bare CR too), dot-stuffing, and a final CRLF.
fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    let mut at_line_start = true;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if raw.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                at_line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The address in the first From: header, for the envelope; a fixed one when there is none.
fn envelope_sender(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(16 * 1024)]);
    let from = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("from").then(|| value.to_string())
        });
    let addr = from.and_then(|v| {
        let v = v.trim();
        let inner = match (v.rfind('<'), v.rfind('>')) {
            (Some(a), Some(b)) if a < b => &v[a + 1..b],
            _ => v,
        };
        let inner = inner.trim();
        (inner.contains('@') && !inner.contains(char::is_whitespace)).then(|| inner.to_string())
    });
    addr.unwrap_or_else(|| "sender@example.test".to_string())
}

/// Every `.eml` under `../shared/eval/mime/<sub>`, sorted. The corpus sits beside the
/// repository (CI has it); when it is missing the test fails, unless
/// TRIAGED_ALLOW_MISSING_EVAL=1, which returns `None` so the test can return early.
pub fn eval_mime(sub: &str) -> Option<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/eval/mime")
        .join(sub);
    if !dir.is_dir() {
        assert!(
            std::env::var("TRIAGED_ALLOW_MISSING_EVAL").is_ok_and(|v| v == "1"),
            "evaluation corpus missing at {} (set TRIAGED_ALLOW_MISSING_EVAL=1 to skip)",
            dir.display()
        );
        return None;
    }
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "eml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Some(out)
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
