//! A real mail stack for tests, on free loopback ports: Dovecot (IMAP, IMAPS, LMTP) from a private
//! config in a temp dir, and an aiosmtpd SMTP server that delivers into Dovecot over LMTP and logs
//! every message it accepts. Everything is torn down by PID when the `MailStack` is dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::TryStreamExt;

/// Users in the test Dovecot, all with password `pw`. `user+anything@` delivers to `user@`.
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
/// Hierarchy separator of the test mailboxes.
pub const SEPARATOR: &str = "/";

#[derive(Debug, Clone, Copy)]
pub struct StackOptions {
    /// Advertise IDLE (false: a capability list without it, for the polling path).
    pub idle: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions { idle: true }
    }
}

pub struct MailStack {
    pub dir: tempfile::TempDir,
    pub imap_port: u16,
    pub imaps_port: u16,
    pub lmtp_port: u16,
    pub smtp_port: u16,
    pub ca_file: PathBuf,
    dovecot: Mutex<Option<Child>>,
    smtp: Mutex<Option<Child>>,
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
            .map(|u| format!("{u}:{{PLAIN}}{PASSWORD}::::::\n"))
            .collect();
        std::fs::write(d.join("passwd"), passwd).expect("write passwd");
        let chroot = if root { "" } else { "chroot =" };
        let capability = if opts.idle {
            String::new()
        } else {
            "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS MOVE NAMESPACE UNSELECT CHILDREN\n".to_string()
        };
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
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
# A test mailbox: no fsync, so delivery speed measures the software, not the disk.
mail_fsync = never
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
first_valid_uid = 1
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
{capability}
namespace inbox {{
  inbox = yes
  separator = {SEPARATOR}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
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
}}
service pop3-login {{
  {chroot}
}}
service submission-login {{
  {chroot}
}}
"#,
            d = d.display(),
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
            dovecot: Mutex::new(None),
            smtp: Mutex::new(None),
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
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let err = std::fs::File::create(self.path("smtp.stderr")).expect("stderr file");
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(self.dir.path())
            .arg(self.smtp_port.to_string())
            .arg(self.lmtp_port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start /usr/bin/python3 (bash scripts/install-test-deps.sh)");
        *self.smtp.lock().expect("lock") = Some(child);
        if !wait_for_banner(self.smtp_port, "220") {
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

    pub fn set_smtp_mode(&self, mode: &str) {
        std::fs::write(self.path("smtp_mode"), mode).expect("write smtp_mode");
    }

    /// Every message the SMTP server accepted, oldest first.
    pub fn smtp_received(&self) -> Vec<serde_json::Value> {
        read_jsonl(&self.path("received.jsonl"))
    }

    /// How many RCPTs the SMTP server refused (fault modes).
    pub fn smtp_refused_count(&self) -> usize {
        read_jsonl(&self.path("refused.jsonl")).len()
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
            .login(user, PASSWORD)
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
