//! The quick start: a local mail stack, eight sample customer emails, the daemon, and a summary
//! of what it did. Run through `bash scripts/demo.sh` (which installs the mail stack first).
//!
//! `--keep-running` leaves the daemon and the stack up until Ctrl-C.

// The harness of the integration tests (tests/it), of which this uses a part.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/daemon/config.rs"]
mod config;

use std::path::Path;
use std::time::{Duration, Instant};

use common::MailStack;
use config::DaemonConfig;
use triaged::clock::Clock;
use triaged::config::Config;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let keep_running = std::env::args().any(|a| a == "--keep-running");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(demo(keep_running))
}

async fn demo(keep_running: bool) -> anyhow::Result<()> {
    println!("Starting a local mail stack (Dovecot + SMTP on loopback) ...");
    let stack = MailStack::start();
    // Staff get a morning digest and instant alerts (the security scare raises one).
    // And the monitoring endpoint: /healthz, /metrics and the status page.
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cfg = DaemonConfig::of(&stack)
        // The demo runs the daemon in this process: the password from a command instead of
        // the environment variable the test config names.
        .password_command("echo pw")
        .staff_alerts()
        .http(http_port)
        .raw("[[digest]]\nname = \"team\"\nto = [\"staff@example.test\"]\ntimes = [\"09:00\"]\n")
        .write();
    println!(
        "  IMAP 127.0.0.1:{} (STARTTLS), SMTP 127.0.0.1:{}, config {}",
        stack.imap_port,
        stack.smtp_port,
        cfg.path.display()
    );

    let files = deliver_samples(&stack)?;
    println!(
        "Delivered {} sample emails to support@example.test. Starting triaged ...\n",
        files.len()
    );

    let config = Config::load(&cfg.path).map_err(|errs| {
        anyhow::anyhow!(
            "{}",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let preview_config = config.clone();
    let daemon = tokio::spawn(triaged::daemon::run(config, Clock::system(), async {
        let _ = stop_rx.await;
    }));

    let store = cfg.store.clone();
    let started = Instant::now();
    let done = settled(&store, files.len() as i64).await;
    println!(
        "\n=== What triaged did ({} ms) ===\n",
        started.elapsed().as_millis()
    );
    if !done {
        println!("(not everything settled within 30 s; showing what is recorded)");
    }
    print_summary(&store)?;

    print_mailboxes(&stack).await;
    println!(
        "\n=== The next staff digest (triaged digest --preview; not sent) ===\n\n{}",
        triaged::tools::digest::preview(&preview_config, None, None, None, Clock::system().now())?
    );

    print_monitoring(http_port).await?;

    if keep_running {
        println!(
            "\nStatus page: http://127.0.0.1:{http_port}/  (health: /healthz, metrics: /metrics)"
        );
        println!(
            "\nThe daemon keeps running. Deliver more mail, e.g. with swaks or python's smtplib.LMTP to 127.0.0.1:{}; read it over IMAP at 127.0.0.1:{} as support@example.test / pw. Ctrl-C stops.",
            stack.lmtp_port, stack.imap_port
        );
        tokio::signal::ctrl_c().await?;
    }
    let _ = stop_tx.send(());
    daemon.await??;
    Ok(())
}

/// Deliver every sample email of examples/mail to support@ (a bounce from the null sender, as
/// MTAs send them); returns their files.
fn deliver_samples(stack: &MailStack) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mail_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mail");
    let mut files: Vec<_> = std::fs::read_dir(&mail_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    for f in &files {
        let raw = std::fs::read(f)?;
        // A bounce arrives from the null sender, as MTAs send them.
        if f.file_name()
            .is_some_and(|n| n.to_string_lossy().contains("bounce"))
        {
            stack.deliver_from("", "support@example.test", &raw);
        } else {
            stack.deliver("support@example.test", &raw);
        }
    }
    Ok(files)
}

/// Wait until every email is recorded and the outbox has nothing left to send (at most 30 s).
async fn settled(store: &Path, expected: i64) -> bool {
    let started = Instant::now();
    loop {
        let settled = query_i64(store, "SELECT count(*) FROM messages") == expected
            && query_i64(
                store,
                "SELECT count(*) FROM outbox WHERE kind = 'ack' AND state IN ('pending', 'sending')",
            ) == 0
            && query_i64(
                store,
                "SELECT count(*) FROM messages WHERE flags_state = 'pending'",
            ) == 0
            && query_i64(
                store,
                "SELECT count(*) FROM notices WHERE kind = 'alert' AND state IN ('pending', 'sending')",
            ) == 0;
        if settled {
            break true;
        }
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The acknowledgements customers got, the keywords staff see, the alerts staff got.
async fn print_mailboxes(stack: &MailStack) {
    let acks = stack.fetch_all("customer@example.test", "INBOX").await;
    println!(
        "\nAcknowledgements in the customers' mailbox (customer@example.test): {}",
        acks.len()
    );
    for a in &acks {
        let raw = String::from_utf8_lossy(&a.raw);
        let h = |name: &str| {
            raw.lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        println!("  {:<62} In-Reply-To {}", h("Subject"), h("In-Reply-To"));
    }
    let support = stack.fetch_all("support@example.test", "INBOX").await;
    println!("\nKeywords on the support copies (what staff see in their mail client):");
    for m in &support {
        let raw = String::from_utf8_lossy(&m.raw);
        let subject = raw
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("")
            .chars()
            .take(50)
            .collect::<String>();
        println!("  {subject:<52} {}", m.flags.join(" "));
    }

    let alerts = stack.fetch_all("staff@example.test", "INBOX").await;
    println!("\nInstant alerts in the staff mailbox: {}", alerts.len());
    for m in &alerts {
        let parsed = mail_parser::MessageParser::default().parse(&m.raw);
        println!(
            "  {}",
            parsed.as_ref().and_then(|p| p.subject()).unwrap_or("")
        );
    }
}

/// What monitoring sees: a few lines of /metrics, and the status page saved to a file.
async fn print_monitoring(http_port: u16) -> anyhow::Result<()> {
    let metrics = http_get(http_port, "/metrics").await?;
    println!("\n=== Monitoring: GET http://127.0.0.1:{http_port}/metrics (excerpt) ===");
    for line in metrics.lines().filter(|l| {
        [
            "triaged_emails_seen_total",
            "triaged_emails_triaged_total{",
            "triaged_acks_sent_total",
            "triaged_ack_latency_seconds_count",
            "triaged_imap_idle",
            "triaged_outbox_depth",
        ]
        .iter()
        .any(|p| l.starts_with(p))
            && !l.ends_with(" 0")
    }) {
        println!("  {line}");
    }
    let page = http_get(http_port, "/").await?;
    let page_file = std::env::temp_dir().join("triaged-demo-status.html");
    std::fs::write(&page_file, &page)?;
    println!(
        "  The status page (open tickets by priority, SLA clocks): saved to {}",
        page_file.display()
    );

    Ok(())
}

/// The body of a GET to the daemon's HTTP endpoint.
async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await?;
    Ok(raw
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}

fn query_i64(store: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(store)
        .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
        .unwrap_or(0)
}

fn print_summary(store: &Path) -> anyhow::Result<()> {
    let c = rusqlite::Connection::open(store)?;
    let mut stmt = c.prepare(
        "SELECT m.uid, m.sender, m.subject, m.priority, m.score, m.tones, m.ack, coalesce(t.tag, '-'),
                (SELECT group_concat(rule, ',') FROM hits h WHERE h.message_row = m.id),
                (SELECT state FROM outbox o WHERE o.message_row = m.id AND o.kind = 'ack')
         FROM messages m LEFT JOIN tickets t ON t.id = m.ticket_id ORDER BY m.uid",
    )?;
    println!(
        "{:<3} {:<7} {:>5} {:<20} {:<8} {:<16} {:<46} rules",
        "uid", "prio", "score", "tone", "ticket", "acknowledgement", "subject"
    );
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, f64>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, Option<String>>(8)?,
            r.get::<_, Option<String>>(9)?,
        ))
    })?;
    for row in rows {
        let (uid, _sender, subject, prio, score, tones, ack, ticket, rules, outbox) = row?;
        let ack = match outbox {
            Some(state) => state,
            None => format!("none: {ack}"),
        };
        let subject: String = subject.chars().take(45).collect();
        println!(
            "{uid:<3} {prio:<7} {score:>5.1} {tones:<20} {ticket:<8} {ack:<16} {subject:<46} {}",
            rules.unwrap_or_default()
        );
    }
    let mut stmt = c.prepare(
        "SELECT o.kind, t.tag, o.due_at FROM outbox o JOIN tickets t ON t.id = o.ticket_id
         WHERE o.kind != 'ack' AND o.state = 'pending' ORDER BY o.due_at, o.id",
    )?;
    let followups = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "\nFollow-ups queued (holding notes go out if no staff reply comes by the promised time): {}",
        followups.len()
    );
    for (kind, tag, due) in followups {
        println!(
            "  {kind:<8} {tag:<8} due {}",
            triaged::tools::tickets::when(due)
        );
    }

    Ok(())
}
