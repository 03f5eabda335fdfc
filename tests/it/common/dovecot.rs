//! Dovecot: its private config (users, namespace, capabilities, ACLs, the OAuth2 passdb), the
//! process, and delivery into it over LMTP as an MTA would.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{current_user, id_of, is_root, terminate, wait_for_banner};
use super::{MailStack, SPECIAL_SENT, StackOptions, USERS};

/// The short capability list (close to Microsoft 365's: no CONDSTORE) advertised when `idle`,
/// `moves` or `condstore` is off, with IDLE and MOVE added back for whichever is on; with all
/// on there is no override and Dovecot advertises its own, longer, default list.
const REDUCED_CAPABILITY: &str =
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS NAMESPACE UNSELECT CHILDREN";

/// Where Dovecot listens.
pub struct Ports {
    pub imap: u16,
    pub imaps: u16,
    pub lmtp: u16,
}

/// Write Dovecot's config for `opts` into the stack's directory `d` (and its users, home, ACL
/// and OAuth2 passdb files); `oauth_port` is the introspection endpoint's, when there is one.
pub fn configure(d: &Path, opts: &StackOptions, ports: Ports, oauth_port: Option<u16>) {
    let Ports {
        imap: imap_port,
        imaps: imaps_port,
        lmtp: lmtp_port,
    } = ports;
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
    let capability = if opts.idle && opts.moves && opts.condstore {
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
    let mut auth = String::from("auth_mechanisms = plain login\n");
    let mut passdb_filter = "";
    let mut oauth_passdb = String::new();
    let mut anvil_extra = "";
    if let Some(oauth_port) = oauth_port {
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
                oauth_port
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
}

impl MailStack {
    fn dovecot_log(&self) -> String {
        std::fs::read_to_string(self.path("dovecot.log")).unwrap_or_default()
    }

    pub fn start_dovecot(&self) {
        if let Err(why) = self.try_start_dovecot() {
            panic!("{why}");
        }
    }

    /// Start Dovecot and wait for its greetings; `Err` (Dovecot stopped again) with what it
    /// said when it does not greet.
    pub(super) fn try_start_dovecot(&self) -> Result<(), String> {
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
            self.stop_dovecot();
            return Err(format!(
                "dovecot did not come up:\n{}\n{}",
                std::fs::read_to_string(self.path("dovecot.stderr")).unwrap_or_default(),
                self.dovecot_log()
            ));
        }
        Ok(())
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
