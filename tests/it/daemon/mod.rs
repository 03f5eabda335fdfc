//! Running the real `triaged` binary against a test mail stack: config, start, stop, kill, and
//! reading its store.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

#[path = "config.rs"]
mod config;
#[path = "inproc.rs"]
mod inproc;
pub use config::{ConfigBuilder, DaemonConfig, copy_dir, repo};
pub use inproc::*;

/// A running `triaged run`.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(cfg: &DaemonConfig) -> Daemon {
        Self::start_with_log(
            cfg,
            &cfg.dir.path().join(format!("daemon-{}.log", now_nanos())),
        )
    }

    pub fn start_with_log(cfg: &DaemonConfig, log: &Path) -> Daemon {
        Self::start_with_args(cfg, log, &[])
    }

    /// Start with extra arguments before `run` (e.g. `--log-format json`).
    pub fn start_with_args(cfg: &DaemonConfig, log: &Path, args: &[&str]) -> Daemon {
        Self::start_with_env(cfg, log, args, &[])
    }

    /// Start with extra arguments and environment variables (which override the defaults:
    /// `TRIAGED_TEST_IMAP_PASSWORD=pw`, `RUST_LOG=info,triaged=debug`).
    pub fn start_with_env(
        cfg: &DaemonConfig,
        log: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let err = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_triaged"))
            .args(args)
            .args(["run", "--config"])
            .arg(&cfg.path)
            .env("TRIAGED_TEST_IMAP_PASSWORD", "pw")
            .env("RUST_LOG", "info,triaged=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn triaged");
        Daemon {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGHUP: reload the configuration.
    pub fn hup(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let st = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Still running (not exited).
    pub fn is_running(&mut self) -> bool {
        let c = self.child.as_mut().expect("started");
        c.try_wait().expect("wait").is_none()
    }

    /// Lines of the log containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Wait until the log has a line containing every one of `needles`; panics (with the log)
    /// when it does not within `timeout`, or when the process ends meanwhile.
    pub fn await_log(&mut self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .log_text()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.to_string();
            }
            assert!(
                self.is_running(),
                "triaged ended while the test waited for {needles:?}:\n{}",
                self.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} within {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!(
                    "triaged did not stop within 20 s of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Open the daemon's store read-only-ish for assertions.
pub fn db(cfg: &DaemonConfig) -> Connection {
    let c = Connection::open(&cfg.store).expect("open store");
    c.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    c
}

/// One integer from a query, 0 when the store does not exist yet.
pub fn count(cfg: &DaemonConfig, sql: &str) -> i64 {
    if !cfg.store.exists() {
        return 0;
    }
    db(cfg).query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

/// Acknowledgements the daemon has recorded as sent.
pub fn sent(cfg: &DaemonConfig) -> i64 {
    count(cfg, "SELECT count(*) FROM outbox WHERE state = 'sent'")
}

/// Emails the daemon has recorded (triaged or skipped).
pub fn recorded(cfg: &DaemonConfig) -> i64 {
    count(cfg, "SELECT count(*) FROM messages")
}

/// Poll `cond` every 25 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A plain customer email.
pub fn customer_email(from: &str, message_id: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Customer <{from}>\r\nTo: support@example.test\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// A loopback port free right now, never handed out before in this process (for the daemon's
/// status server).
pub fn free_port() -> u16 {
    crate::common::free_ports(1)[0]
}

/// GET `path` from the daemon's status server: (status, body); status 0 when it cannot be
/// reached or does not answer within 10 s.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// Whether process `pid` has a handler for signal number `signal` (its `SigCgt` mask in
/// /proc), i.e. the signal no longer takes its default action.
pub fn catches_signal(pid: u32, signal: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

/// Run the CLI against `cfg`'s config file: (exit code, stdout, stderr).
pub fn cli(cfg: &DaemonConfig, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(args)
        .arg("--config")
        .arg(&cfg.path)
        .output()
        .expect("run triaged");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`cli`] that must succeed: its stdout.
pub fn cli_ok(cfg: &DaemonConfig, args: &[&str]) -> String {
    let (code, out, err) = cli(cfg, args);
    assert_eq!(code, 0, "triaged {args:?}:\n{out}{err}");
    out
}
