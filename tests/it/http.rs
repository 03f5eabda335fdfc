//! The status server over real TCP, with a real SQLite store in a temp dir: `/healthz`,
//! `/metrics` (parsed with a Prometheus parser), the status page, 404/405, and clients that
//! send too much or too slowly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use triaged::clock::Clock;
use triaged::config::FollowupConfig;
use triaged::health::HealthBoard;
use triaged::http::{App, StoreSource, serve};
use triaged::metrics::{Metrics, WaitMode};
use triaged::parse::{ParseLimits, parse};
use triaged::score::{Priority, Verdict};
use triaged::sla::SlaConfig;
use triaged::store::{Content, Location, Policy, Store};
use triaged::tickets::Role;

/// A response as read off the wire.
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send `request` as is, read to EOF (the server closes after one response).
async fn send(addr: std::net::SocketAddr, request: &[u8]) -> std::io::Result<Got> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(request).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("no EOF within 10 s"))??;
    let text = String::from_utf8(raw).map_err(std::io::Error::other)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Got {
        status,
        headers,
        body: body.to_string(),
    })
}

async fn get(addr: std::net::SocketAddr, path: &str) -> Got {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    send(addr, req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

struct Server {
    addr: std::net::SocketAddr,
    metrics: Metrics,
    cancel: CancellationToken,
    done: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// Tickets: an urgent one opened 5 h ago (late: the target is 2 h around the clock) whose
/// subject carries markup, a normal one an hour old, and a low one just opened.
fn fill(store: &mut Store, now: i64) {
    let policy = Policy {
        enabled: true,
        max_age: Duration::from_secs(2 * 86_400),
        per_sender_limit: 3,
        per_sender_window: Duration::from_secs(86_400),
        circuit_breaker_per_minute: 0,
        loop_burst: 4,
        loop_window: Duration::from_secs(600),
        max_unanswered_auto: 3,
        auto_answer_within: Duration::from_secs(15 * 60),
        domain: "support.example.test".into(),
        sla: SlaConfig::default(),
        followups: FollowupConfig::default(),
        alerts: None,
        teams: Default::default(),
        keep_text: true,
    };
    let emails = [
        (
            "eve@customers.example",
            "Site down <script>alert(1)</script>",
            Priority::Urgent,
            5 * 3600,
        ),
        (
            "bob@customers.example",
            "Invoice question",
            Priority::Normal,
            3600,
        ),
        ("cy@customers.example", "Feature idea", Priority::Low, 60),
    ];
    for (i, (from, subject, priority, ago)) in emails.into_iter().enumerate() {
        let raw = format!(
            "From: {from}\r\nTo: support@example.test\r\nSubject: {subject}\r\n\
             Message-ID: <http-{i}@customers.example>\r\n\r\nHello.\r\n"
        );
        let email = parse(raw.as_bytes(), &ParseLimits { max_size: 1 << 20 }).expect("parse");
        let verdict = Verdict {
            score: 1.0,
            priority,
            tones: vec![],
            intents: vec![],
            hits: vec![],
            caps: vec![],
            evidence: vec![],
        };
        let at = Location {
            folder: "INBOX",
            uidvalidity: 1,
            uid: i as u32 + 1,
        };
        let content = Content::Triaged {
            email: &email,
            verdict: &verdict,
            guard: Ok(()),
            role: Role::Customer,
            bounced: &[],
            alert: &[],
            route: None,
            asks: &[],
        };
        store
            .record(&at, &content, now - ago, &policy, now - ago)
            .expect("record");
    }
}

async fn start(read_timeout: Duration) -> Server {
    start_with(read_timeout, true).await
}

async fn start_with(read_timeout: Duration, tickets: bool) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.sqlite");
    let clock = Clock::system();
    let mut store = Store::open(&path).expect("store");
    if tickets {
        fill(&mut store, clock.now());
    }
    let source = Arc::new(StoreSource::open(&path, SlaConfig::default()).expect("source"));
    let metrics = Metrics::default();
    let health = {
        let (board, metrics) = (HealthBoard::default(), metrics.clone());
        Box::new(move || triaged::http::health(&board, &metrics))
    };
    let mut app = App::new(metrics.clone(), source, health, clock);
    app.read_timeout = read_timeout;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    let done = tokio::spawn(serve(listener, Arc::new(app), cancel.clone()));
    Server {
        addr,
        metrics,
        cancel,
        done,
        _dir: dir,
    }
}

impl Server {
    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.done)
            .await
            .expect("server stops within 5 s")
            .expect("server task");
    }
}

#[tokio::test]
async fn healthz_follows_imap_state() {
    let s = start(Duration::from_secs(10)).await;
    let r = get(s.addr, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert_eq!(r.header("cache-control"), Some("no-store"));

    s.metrics.imap_state("INBOX", false);
    let r = get(s.addr, "/healthz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "IMAP INBOX: not connected\n");

    s.metrics.imap_state("INBOX", true);
    assert_eq!(get(s.addr, "/healthz").await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text() {
    let s = start(Duration::from_secs(10)).await;
    s.metrics.email_seen("support");
    s.metrics.email_seen("support");
    s.metrics.email_triaged("urgent");
    s.metrics.ack_sent(Duration::from_millis(300));
    s.metrics.ack_sent(Duration::from_secs(45));
    s.metrics.send_failed("pushback");
    s.metrics.imap_state("INBOX", true);
    s.metrics.imap_wait_mode("INBOX", WaitMode::Idle);
    let r = get(s.addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let scrape = prometheus_parse::Scrape::parse(r.body.lines().map(|l| Ok(l.to_string())))
        .expect("prometheus text");
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let found = scrape
            .samples
            .iter()
            .find(|x| x.metric == name && label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)));
        match found.map(|x| &x.value) {
            Some(
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v),
            ) => *v,
            other => panic!("{name} {label:?}: {other:?}\n{}", r.body),
        }
    };
    for family in [
        "triaged_emails_seen_total",
        "triaged_emails_triaged_total",
        "triaged_emails_skipped_total",
        "triaged_acks_sent_total",
        "triaged_ack_latency_seconds",
        "triaged_send_failures_total",
        "triaged_rule_hits_total",
        "triaged_imap_connected",
        "triaged_imap_idle",
        "triaged_outbox_depth",
        "triaged_outbox_oldest_due_seconds",
        "triaged_open_tickets",
        "triaged_config_reloads_total",
        "triaged_start_time_seconds",
    ] {
        assert!(scrape.docs.contains_key(family), "no HELP for {family}");
    }
    assert_eq!(
        value("triaged_emails_seen_total", Some(("mailbox", "support"))),
        2.0
    );
    assert_eq!(
        value("triaged_emails_triaged_total", Some(("priority", "urgent"))),
        1.0
    );
    assert_eq!(
        value("triaged_send_failures_total", Some(("kind", "pushback"))),
        1.0
    );
    assert_eq!(
        value("triaged_send_failures_total", Some(("kind", "permanent"))),
        0.0
    );
    assert_eq!(value("triaged_acks_sent_total", None), 2.0);
    assert_eq!(value("triaged_ack_latency_seconds_count", None), 2.0);
    assert_eq!(value("triaged_ack_latency_seconds_sum", None), 45.3);
    let histogram = scrape
        .samples
        .iter()
        .find(|x| x.metric == "triaged_ack_latency_seconds")
        .map(|x| &x.value);
    let Some(prometheus_parse::Value::Histogram(buckets)) = histogram else {
        panic!("no histogram: {histogram:?}");
    };
    let at = |le: f64| {
        buckets
            .iter()
            .find(|b| b.less_than == le)
            .map(|b| b.count)
            .unwrap_or_else(|| panic!("no bucket {le}"))
    };
    assert_eq!(
        (at(0.25), at(0.5), at(30.0), at(60.0)),
        (0.0, 1.0, 1.0, 2.0)
    );
    assert_eq!(at(f64::INFINITY), 2.0);
    assert_eq!(value("triaged_imap_idle", Some(("source", "INBOX"))), 1.0);
    // The store's figures: three open tickets, one per priority but high.
    for (p, n) in [
        ("urgent", 1.0),
        ("high", 0.0),
        ("normal", 1.0),
        ("low", 1.0),
    ] {
        assert_eq!(
            value("triaged_open_tickets", Some(("priority", p))),
            n,
            "{p}"
        );
    }
    // Each ticket queued its acknowledgement, due when the email arrived; the oldest has
    // waited 5 h.
    assert_eq!(value("triaged_outbox_depth", Some(("kind", "ack"))), 3.0);
    let oldest = value("triaged_outbox_oldest_due_seconds", None);
    assert!(
        (5.0 * 3600.0..5.0 * 3600.0 + 60.0).contains(&oldest),
        "{oldest}"
    );
    let started = value("triaged_start_time_seconds", None);
    assert!(
        (started - Clock::system().now() as f64).abs() < 60.0,
        "{started}"
    );
    s.stop().await;
}

#[tokio::test]
async fn status_page_lists_tickets_escaped_with_sla_clocks() {
    let s = start(Duration::from_secs(10)).await;
    let r = get(s.addr, "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'; style-src 'unsafe-inline'")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let page = &r.body;
    assert!(page.contains("<title>triaged — status</title>"));
    assert!(page.contains("Mailbox healthy"));
    assert!(
        page.contains("Site down &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "{page}");
    // Urgent first; the urgent ticket is late (2 h target, 5 h old), the low one is not.
    let urgent = page.find("<h2>urgent (1)").expect("urgent group");
    let normal = page.find("<h2>normal (1)").expect("normal group");
    let low = page.find("<h2>low (1)").expect("low group");
    assert!(urgent < normal && normal < low);
    assert!(page.contains("reply late by 3h"), "{page}");
    assert!(page.contains("reply due in 2d 23h"), "{page}");
    assert_eq!(page.matches("<tr class=\"late\">").count(), 1);
    assert!(page.contains("eve@customers.example"));

    s.metrics.imap_state("INBOX", false);
    let page = get(s.addr, "/").await.body;
    assert!(
        page.contains("<li>IMAP INBOX: not connected</li>"),
        "{page}"
    );
    s.stop().await;
}

#[tokio::test]
async fn unknown_paths_other_methods_and_head() {
    let s = start(Duration::from_secs(10)).await;
    let r = get(s.addr, "/nope").await;
    assert_eq!((r.status, r.body.as_str()), (404, "not found\n"));

    let r = send(
        s.addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    .expect("POST");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));

    let full = get(s.addr, "/healthz").await;
    let r = send(s.addr, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "");
    assert_eq!(
        r.header("content-length"),
        Some(full.body.len().to_string().as_str())
    );

    // Not HTTP at all: answered with an error or closed, never a hang.
    let garbage = send(s.addr, b"\x00\x01hello\r\n\r\n").await;
    assert!(garbage.is_err() || garbage.is_ok_and(|g| g.status == 400));
    s.stop().await;
}

#[tokio::test]
async fn huge_request_head_is_refused_without_hanging() {
    let s = start(Duration::from_secs(10)).await;
    let started = Instant::now();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    // The server may answer 431 and close while the client still writes, which resets the
    // connection: either is a refusal.
    match send(s.addr, req.as_bytes()).await {
        Ok(r) => assert_eq!(r.status, 431),
        Err(e) => eprintln!("refused by reset: {e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // And the server still serves.
    assert_eq!(get(s.addr, "/healthz").await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn slow_client_is_cut_off_after_the_read_timeout() {
    let s = start(Duration::from_millis(500)).await;
    let started = Instant::now();
    let mut conn = TcpStream::connect(s.addr).await.expect("connect");
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "connection still open after 5 s");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    // Whatever was said before closing, it was not the page.
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    s.stop().await;
}

#[tokio::test]
async fn empty_store_shows_no_tickets() {
    let s = start_with(Duration::from_secs(10), false).await;
    let page = get(s.addr, "/").await.body;
    assert!(page.contains("No open tickets."), "{page}");
    assert!(page.contains("0 open tickets, 0 late"), "{page}");
    let metrics = get(s.addr, "/metrics").await.body;
    assert!(metrics.contains("triaged_outbox_oldest_due_seconds 0\n"));
    assert!(metrics.contains("triaged_open_tickets{priority=\"urgent\"} 0\n"));
    s.stop().await;
}
