//! SMTP sending speed, run with `cargo bench --bench smtp`: `Sender::send` in a loop against a
//! local aiosmtpd sink (`python3 -m aiosmtpd -c aiosmtpd.handlers.Sink`, accepts and discards,
//! so the figure is the client's and the wire's, not a mailbox's). An acknowledgement-sized
//! email (text + HTML, about 2 KB) to a fresh recipient each time, over plain TCP on loopback.
//!
//! - serial: one send after the other, on the one pooled connection (what the outbox does today);
//! - concurrent: BENCH_SMTP_TASKS tasks sharing one `Sender` (the pool opens one connection each).
//!
//! Each run sends BENCH_SMTP_MESSAGES (default 2000) after a warm-up of 50, and prints messages/s.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use triaged::config::{SmtpConfig, Tls};
use triaged::smtp::Sender;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The sink, killed (by its own PID) when dropped.
struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink() -> (Sink, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new("/usr/bin/python3")
        .args(["-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start /usr/bin/python3 -m aiosmtpd (bash scripts/install-test-deps.sh)");
    let sink = Sink(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the aiosmtpd sink did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (sink, port)
}

fn config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: Tls::None,
        username: None,
        credential: None,
        from: "Support <support@example.test>".parse().expect("from"),
        ca_file: None,
        timeout: Duration::from_secs(30),
        transaction_timeout: Duration::from_secs(120),
        rate_limits: Vec::new(),
        pushback_pause: Duration::from_secs(300),
    }
}

fn email(from: &Mailbox, i: usize) -> Message {
    let text =
        "Hello,\n\nwe're sorry that your order arrived damaged. We have your message and will \
                answer within 4 business hours.\n\nYour ticket: [#T-1042]\n\nExample Support\n"
            .repeat(4);
    let html = format!("<p>{}</p>", text.replace('\n', "<br>\n"));
    Message::builder()
        .from(from.clone())
        .to(format!("customer+{i}@example.test").parse().expect("to"))
        .subject(format!("Re: Damaged order [#T-{i}]"))
        .message_id(Some(format!("<bench-{i}@support.example.test>")))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .expect("message")
}

async fn run(sender: &Sender, from: &Mailbox, tasks: usize, n: usize) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let sender = sender.clone();
        let from = from.clone();
        let per = n / tasks;
        handles.push(tokio::spawn(async move {
            for i in 0..per {
                let msg = email(&from, t * per + i);
                sender.send(&msg).await.expect("send");
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    (n / tasks * tasks) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run only when benched.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env_or("BENCH_SMTP_MESSAGES", 2000);
    let tasks = env_or("BENCH_SMTP_TASKS", 4).max(1);
    let (_sink, port) = start_sink();
    let cfg = config(port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sender = Sender::new(&cfg).expect("sender");
        run(&sender, &cfg.from, 1, 50).await;
        let serial = run(&sender, &cfg.from, 1, n).await;
        println!("smtp serial: {n} messages, {serial:.0} msgs/s (one connection, aiosmtpd sink)");
        let concurrent = run(&sender, &cfg.from, tasks, n).await;
        println!(
            "smtp concurrent: {n} messages over {tasks} tasks, {concurrent:.0} msgs/s (aiosmtpd sink)"
        );
    });
}
