//! Operating the real binary: reload on SIGHUP (a good change — a new rule, a new
//! acknowledgement text — takes effect for the next email without a restart; a bad change, a
//! broken rule, is refused with its problem logged, and the running configuration keeps
//! working); metrics, the status page and JSON logs; and no secret or customer text in the log,
//! even at `RUST_LOG=trace`.

use std::time::Duration;

use crate::common::{MailStack, StackOptions};
use crate::daemon;
use crate::daemon::{Daemon, DaemonConfig, count, customer_email, free_port, wait_until};

fn priority_of(cfg: &DaemonConfig, message_id: &str) -> String {
    daemon::db(cfg)
        .query_row(
            "SELECT priority FROM messages WHERE message_id = ?1",
            [message_id],
            |r| r.get(0),
        )
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_good_change_and_refuses_a_bad_one() {
    let stack = MailStack::start();
    // Rules and templates of its own, to edit.
    let cfg = DaemonConfig::of(&stack).own_rules_and_templates().write();
    let (rules, templates) = (cfg.rules(), cfg.templates());

    let mut d = Daemon::start(&cfg);
    let deliver = |n: u32| {
        let id = format!("reload-{n}@customers.example.test");
        stack.deliver(
            "support@example.test",
            &customer_email(
                &format!("customer+{n}@example.test"),
                &id,
                "A question about the zorblax widget",
                "Hello, how do I set up the zorblax widget? Thanks.",
            ),
        );
        id
    };
    let acked = |id: &str| {
        count(
            &cfg,
            &format!(
                "SELECT count(*) FROM outbox o JOIN messages m ON m.id = o.message_row
                 WHERE m.message_id = '{id}' AND o.kind = 'ack' AND o.state = 'sent'"
            ),
        ) == 1
    };
    let first = deliver(1);
    assert!(
        wait_until(Duration::from_secs(30), || acked(&first)),
        "first email not acknowledged:\n{}",
        d.log_text()
    );
    assert_ne!(priority_of(&cfg, &first), "urgent");

    // A good change: a rule that makes the zorblax urgent, and new acknowledgement wording.
    std::fs::write(
        rules.join("zz-local.toml"),
        "[[rule]]\nid = \"zorblax\"\nkeywords = [\"zorblax\"]\nweight = 20.0\n",
    )
    .expect("write rule");
    let ack = std::fs::read_to_string(templates.join("ack.txt")).expect("ack.txt");
    std::fs::write(
        templates.join("ack.txt"),
        format!("RELOADED-WORDING\n{ack}"),
    )
    .expect("ack");
    d.hup();
    assert!(
        wait_until(Duration::from_secs(30), || d
            .log_text()
            .contains("Configuration reloaded")),
        "no reload logged:\n{}",
        d.log_text()
    );
    let second = deliver(2);
    assert!(
        wait_until(Duration::from_secs(30), || acked(&second)),
        "second email not acknowledged:\n{}",
        d.log_text()
    );
    assert_eq!(priority_of(&cfg, &second), "urgent", "the new rule applies");
    // The acknowledgements, as the customers received them.
    let acks = stack.fetch_all("customer@example.test", "INBOX").await;
    let wording = |to: &str| {
        acks.iter()
            .map(|m| String::from_utf8_lossy(&m.raw).to_string())
            .filter(|raw| raw.contains(&format!("To: {to}")) || raw.contains(&format!("<{to}>")))
            .any(|raw| raw.contains("RELOADED-WORDING"))
    };
    assert!(
        wording("customer+2@example.test"),
        "the new template applies"
    );
    assert!(
        !wording("customer+1@example.test"),
        "the first ack had the old one"
    );

    // A bad change: a broken regex. Refused, the problem named, the old rules kept.
    std::fs::write(
        rules.join("zz-broken.toml"),
        "[[rule]]\nid = \"broken\"\nregex = \"(unclosed\"\nweight = 1.0\n",
    )
    .expect("write rule");
    d.hup();
    assert!(
        wait_until(Duration::from_secs(30), || d
            .log_text()
            .contains("Reload refused")),
        "no refusal logged:\n{}",
        d.log_text()
    );
    let log = d.log_text();
    assert!(
        log.contains("zz-broken.toml:3:"),
        "the problem is named with file:line:\n{log}"
    );
    let third = deliver(3);
    assert!(
        wait_until(Duration::from_secs(30), || acked(&third)),
        "third email not acknowledged after the refused reload:\n{}",
        d.log_text()
    );
    assert_eq!(
        priority_of(&cfg, &third),
        "urgent",
        "the running rules stay"
    );
    assert!(
        d.child
            .as_mut()
            .expect("running")
            .try_wait()
            .expect("wait")
            .is_none()
    );
    let st = d.terminate();
    assert!(st.success(), "{}", d.log_text());
}

/// GET over a plain TCP connection: (status, body).
async fn get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut raw))
        .await
        .expect("answer within 10 s")
        .expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_status_page_and_json_logs_from_the_running_daemon() {
    let stack = MailStack::start();
    let port = free_port();
    let cfg = DaemonConfig::of(&stack).http(port).write();
    let log = cfg.dir.path().join("json.log");
    let mut d = Daemon::start_with_args(&cfg, &log, &["--log-format", "json"]);
    let emails = [
        (
            "ana@example.test",
            "We are down: production outage",
            "Our production system is down, nobody can log in. This is urgent.",
        ),
        (
            "ben@example.test",
            "Question about <b>invoices</b>",
            "Hello, where can I find my invoice? Thanks.",
        ),
    ];
    for (i, (from, subject, body)) in emails.iter().enumerate() {
        stack.deliver(
            "support@example.test",
            &customer_email(from, &format!("m{i}@customers.example.test"), subject, body),
        );
    }
    assert!(
        wait_until(Duration::from_secs(30), || daemon::sent(&cfg) == 2),
        "acks not sent:\n{}",
        d.log_text()
    );

    let (status, body) = get(port, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("the Prometheus text format");
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
            other => panic!("{name} {label:?}: {other:?}\n{body}"),
        }
    };
    assert_eq!(
        value("triaged_emails_seen_total", Some(("mailbox", "INBOX"))),
        2.0
    );
    assert_eq!(value("triaged_acks_sent_total", None), 2.0);
    assert_eq!(
        value("triaged_imap_connected", Some(("source", "INBOX"))),
        1.0
    );
    assert_eq!(value("triaged_imap_idle", Some(("source", "INBOX"))), 1.0);
    assert_eq!(
        value("triaged_emails_triaged_total", Some(("priority", "urgent"))),
        1.0
    );
    assert!(
        value("triaged_rule_hits_total", Some(("rule", "outage"))) >= 1.0,
        "{body}"
    );
    let histogram = scrape
        .samples
        .iter()
        .find(|x| x.metric == "triaged_ack_latency_seconds")
        .map(|x| x.value.clone());
    match histogram {
        Some(prometheus_parse::Value::Histogram(buckets)) => {
            let inf = buckets.last().expect("+Inf bucket");
            assert_eq!(inf.count, 2.0, "both acks in the histogram");
        }
        other => panic!("no latency histogram: {other:?}\n{body}"),
    }

    let (status, page) = get(port, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("T-1001") && page.contains("T-1002"), "{page}");
    assert!(
        page.contains("&lt;b&gt;invoices&lt;/b&gt;"),
        "customer text is escaped:\n{page}"
    );
    let urgent = page.find("<h2>urgent").expect("an urgent group");
    assert!(
        urgent < page.find("invoices").expect("the invoice ticket"),
        "urgent first:\n{page}"
    );
    let (status, ok) = get(port, "/healthz").await;
    assert_eq!((status, ok.trim()), (200, "ok"));

    let st = d.terminate();
    assert!(st.success());
    // Every log line is one JSON object with a level and a message.
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 5, "{text}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(text.contains("\"message\":\"Triaged\""), "{text}");
}

/// Standard base64 (RFC 4648, padded): how SASL PLAIN, LOGIN and XOAUTH2 carry a secret on the
/// wire, and so how a wire log would show it.
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Long and distinctive, so a search of the log for it cannot miss or match by chance.
const LONG_PASSWORD: &str = "Lr7-correct-horse-battery-staple-93f1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_trace_logs_no_password_token_or_customer_text() {
    let stack = MailStack::start_with(StackOptions {
        oauth: true,
        password: LONG_PASSWORD,
        ..Default::default()
    });
    let user = "support@example.test";
    let body = "Our zebra-striped invoice 4417 was charged twice on Tuesday.";
    // Both ways round: IMAP LOGIN with a password and SMTP AUTH XOAUTH2 with a token, then IMAP
    // AUTHENTICATE XOAUTH2 with a token and SMTP AUTH PLAIN with the password.
    for (round, imap_token) in [(1, false), (2, true)] {
        let b = DaemonConfig::of(&stack);
        let token = stack.issue_token(user);
        let token_file = b.dir().join("token");
        std::fs::write(&token_file, format!("{token}\n")).expect("token");
        let token_command = format!("cat {}", token_file.display());
        let cfg = if imap_token {
            b.imap_token_command(&token_command)
                .smtp_password_env(user, "TRIAGED_TEST_SMTP_PASSWORD")
        } else {
            b.smtp_token_command(user, &token_command)
        }
        .write();
        let log = cfg.dir.path().join("trace.log");
        let mut d = Daemon::start_with_env(
            &cfg,
            &log,
            &[],
            &[
                ("RUST_LOG", "trace"),
                ("TRIAGED_TEST_IMAP_PASSWORD", LONG_PASSWORD),
                ("TRIAGED_TEST_SMTP_PASSWORD", LONG_PASSWORD),
            ],
        );
        stack.deliver(
            user,
            &customer_email(
                "customer@example.test",
                &format!("secret-{round}@customers.example.test"),
                "Charged twice",
                body,
            ),
        );
        // Each round's daemon starts on a fresh store and answers every email in the INBOX:
        // this round's and the ones before it.
        assert!(
            wait_until(Duration::from_secs(30), || daemon::sent(&cfg) == round),
            "round {round}: not acknowledged:\n{}",
            d.log_text()
        );
        let st = d.terminate();
        assert!(st.success(), "{}", d.log_text());
        // The logins really used what the log must not show.
        let auths = stack.smtp_auths();
        let smtp = auths.last().expect("an SMTP AUTH");
        assert_eq!(
            smtp.mechanism,
            if imap_token { "PLAIN" } else { "XOAUTH2" },
            "{auths:?}"
        );

        let text = std::fs::read_to_string(&log).expect("log");
        assert!(
            text.contains(" DEBUG ") && text.contains("Triaged"),
            "round {round}: RUST_LOG=trace took effect:\n{text}"
        );
        let xoauth2 = format!("user={user}\x01auth=Bearer {token}\x01\x01");
        for (what, secret) in [
            ("the password", LONG_PASSWORD.to_string()),
            ("the token", token.clone()),
            (
                "AUTH PLAIN",
                base64(format!("\0{user}\0{LONG_PASSWORD}").as_bytes()),
            ),
            ("AUTH LOGIN", base64(LONG_PASSWORD.as_bytes())),
            ("XOAUTH2", base64(xoauth2.as_bytes())),
            ("the customer's words", "zebra-striped invoice".to_string()),
        ] {
            assert!(
                !text.contains(&secret),
                "round {round}: {what} ({secret}) is in the log:\n{text}"
            );
        }
    }
}
