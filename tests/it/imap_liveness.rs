//! IMAP liveness: a connection dropped without a FIN is found within `liveness_interval +
//! liveness_timeout`, reported (log, `/healthz`), and replaced; mail that came meanwhile is
//! triaged and acknowledged. Between the real binary and the real Dovecot sits a TCP proxy of
//! this test that can blackhole the traffic: it stops forwarding in both directions and holds
//! what it read, without closing anything (its kernel still acknowledges every segment, as a
//! proxy or a load balancer in front of a hung server would), so neither TCP keepalive nor an
//! error from the socket can find it: only the daemon's own checks.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::common::{MailStack, StackOptions};
use crate::daemon;
use crate::daemon::{Daemon, DaemonConfig, customer_email, free_port};

const WAIT: Duration = Duration::from_secs(30);

/// A loopback TCP proxy to `127.0.0.1:upstream` that can be switched to blackhole.
struct Proxy {
    port: u16,
    blackhole: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (blackhole, rx) = watch::channel(false);
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (down_r, down_w) = down.into_split();
                    let (up_r, up_w) = up.into_split();
                    tokio::join!(pump(down_r, up_w, rx.clone()), pump(up_r, down_w, rx));
                });
            }
        });
        Proxy {
            port,
            blackhole,
            accept,
        }
    }

    /// On: nothing is forwarded either way, nothing closed (new connections are accepted and
    /// hear nothing). Off: what was held goes through, and forwarding resumes.
    fn set_blackhole(&self, on: bool) {
        self.blackhole.send_replace(on);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copy `from` to `to`, holding each chunk (and the end of the stream) while blackholed.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut blackhole: watch::Receiver<bool>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        if blackhole.wait_for(|on| !*on).await.is_err() {
            return;
        }
        if n == 0 {
            let _ = to.shutdown().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Poll `cond` every 25 ms (without blocking the runtime the proxy runs on) until it holds or
/// `timeout` passes; returns whether it held.
async fn until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `GET path` on the daemon's status server: (status, body).
async fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect status server");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut raw = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, body.to_string())
}

fn lines_with(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

/// The daemon's error line for a check that got no answer.
const SILENT: &str = "no answer from the server in 2s (liveness_timeout)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_blackholed_in_idle_is_found_reported_and_replaced() {
    blackholed(StackOptions::default(), "1s").await;
}

/// Without IDLE the wait between polls is cut into NOOPs every `liveness_interval`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_blackholed_between_polls_is_found_reported_and_replaced() {
    blackholed(
        StackOptions {
            idle: false,
            ..Default::default()
        },
        "1m",
    )
    .await;
}

/// With a server of `opts` and `poll_interval`, liveness checks every 2 s answered within 2 s:
/// a blackhole is found within 4 s (plus slack), reported, and the connection replaced.
async fn blackholed(opts: StackOptions, poll_interval: &str) {
    let stack = MailStack::start_with(opts);
    let proxy = Proxy::start(stack.imap_port).await;
    let http = free_port();
    let interval = Duration::from_secs(2);
    let timeout = Duration::from_secs(2);
    let cfg = DaemonConfig::of(&stack)
        .imap_port(proxy.port)
        .liveness("2s", "2s")
        .set("mailbox", "poll_interval", poll_interval)
        .http(http)
        .write();
    let mut d = Daemon::start(&cfg);
    stack.deliver(
        "support@example.test",
        &customer_email(
            "customer+1@example.test",
            "before@c",
            "Export fails",
            "The export does not work.",
        ),
    );
    assert!(
        until(WAIT, || daemon::sent(&cfg) == 1).await,
        "first email not acknowledged through the proxy:\n{}",
        d.log_text()
    );
    // The check runs every interval and goes back to IDLE on the same connection.
    assert!(
        until(WAIT, || lines_with(
            &d.log_text(),
            "IMAP connection checked"
        ) >= 2)
        .await,
        "{}",
        d.log_text()
    );
    assert_eq!(
        lines_with(&d.log_text(), "IMAP connected"),
        1,
        "{}",
        d.log_text()
    );
    assert_eq!(http_get(http, "/healthz").await.0, 200);

    proxy.set_blackhole(true);
    let blackholed = Instant::now();
    assert!(
        until(WAIT, || d.log_text().contains(SILENT)).await,
        "the silent connection was not noticed:\n{}",
        d.log_text()
    );
    let found_in = blackholed.elapsed();
    eprintln!(
        "blackholed connection found in {:.2} s (liveness_interval {interval:?} + liveness_timeout {timeout:?})",
        found_in.as_secs_f64()
    );
    // Within interval + timeout, with room for a slow debug build on a busy machine.
    assert!(
        found_in <= interval + timeout + Duration::from_secs(5),
        "found only after {found_in:?}"
    );
    let (status, body) = http_get(http, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("IMAP INBOX"), "{body}");

    // Mail arrives while the path is dead; the path comes back.
    stack.deliver(
        "support@example.test",
        &customer_email(
            "customer+2@example.test",
            "after@c",
            "Login broken",
            "I cannot log in since this morning.",
        ),
    );
    proxy.set_blackhole(false);
    assert!(
        until(WAIT, || daemon::sent(&cfg) == 2).await,
        "the email that came meanwhile was not acknowledged:\n{}",
        d.log_text()
    );
    assert!(
        until(WAIT, || daemon::count(
            &cfg,
            "SELECT count(*) FROM messages WHERE flags_state = 'done'"
        ) == 2)
        .await,
        "{}",
        d.log_text()
    );
    let mut healthy = false;
    let deadline = Instant::now() + WAIT;
    while !healthy && Instant::now() < deadline {
        healthy = http_get(http, "/healthz").await.0 == 200;
        if !healthy {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(healthy, "{}", d.log_text());
    d.terminate();
    let log = d.log_text();
    // Found once, logged once; replaced by one new connection.
    assert_eq!(lines_with(&log, SILENT), 1, "{log}");
    assert_eq!(lines_with(&log, "IMAP connected"), 2, "{log}");
}
