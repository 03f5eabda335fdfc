//! `smtp::Sender` on its own connections against the real SMTP server with TLS: implicit TLS
//! and STARTTLS, the server's certificate checked against the stack's CA; several sends on
//! one pooled connection and at the same time.

use std::time::Duration;

use lettre::Message;
use triaged::config::{SmtpConfig, Tls};
use triaged::smtp::Sender;

use crate::common::{MailStack, StackOptions};

fn config(stack: &MailStack, tls: Tls) -> SmtpConfig {
    SmtpConfig {
        // The certificate names localhost and 127.0.0.1.
        host: "localhost".into(),
        port: stack.smtp_port,
        tls,
        username: None,
        credential: None,
        from: "Support <support@example.test>".parse().expect("from"),
        ca_file: Some(stack.ca_file.clone()),
        timeout: Duration::from_secs(10),
        transaction_timeout: Duration::from_secs(30),
        rate_limits: Vec::new(),
        pushback_pause: Duration::from_secs(300),
    }
}

fn email(i: usize) -> Message {
    Message::builder()
        .from("Support <support@example.test>".parse().expect("from"))
        .to("customer@example.test".parse().expect("to"))
        .subject(format!("Re: Order {i} \u{2014} d\u{e9}j\u{e0} vu"))
        .message_id(Some(format!("<tls-{i}@support.example.test>")))
        .body(format!(
            "Hello,\n\nwe have your message number {i}. Gr\u{fc}\u{df}e\n"
        ))
        .expect("message")
}

async fn sends_over(tls: Tls, smtp_tls: &'static str) {
    let stack = MailStack::start_with(StackOptions {
        smtp_tls,
        ..Default::default()
    });
    let sender = Sender::new(&config(&stack, tls)).expect("sender");
    for i in 0..3 {
        sender
            .send(&email(i))
            .await
            .unwrap_or_else(|e| panic!("{smtp_tls} send {i}: {e}"));
    }
    let tasks: Vec<_> = (3..7)
        .map(|i| {
            let sender = sender.clone();
            tokio::spawn(async move { sender.send(&email(i)).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("concurrent send");
    }
    let ids: Vec<String> = stack
        .smtp_received()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut want: Vec<String> = (0..7)
        .map(|i| format!("<tls-{i}@support.example.test>"))
        .collect();
    let mut got = ids.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{smtp_tls}");
    let inbox = stack
        .wait_for(
            "customer@example.test",
            "INBOX",
            |m| m.len() == 7,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(inbox.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_over_implicit_tls() {
    sends_over(Tls::Implicit, "implicit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_over_starttls() {
    sends_over(Tls::Starttls, "starttls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_starttls_is_refused_when_starttls_is_required() {
    let stack = MailStack::start();
    let sender = Sender::new(&config(&stack, Tls::Starttls)).expect("sender");
    let err = sender.send(&email(0)).await.expect_err("plain server");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(stack.smtp_received().is_empty());
}
