//! The test mail stack itself works: LMTP delivery is visible over IMAP, the SMTP server delivers
//! into Dovecot and refuses on demand, the capability switch works, and a restart keeps mail.

mod common;

use std::time::Duration;

use common::{MailStack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmtp_delivery_smtp_faults_and_restart() {
    let started = std::time::Instant::now();
    let stack = MailStack::start();
    eprintln!("stack started in {} ms", started.elapsed().as_millis());

    stack.deliver(
        "customer+7@example.test",
        b"From: a@example.test\r\nSubject: hi\r\nMessage-ID: <x@y>\r\n\r\n.leading dot\r\nbody\r\n",
    );
    let inbox = stack.fetch_all("customer@example.test", "INBOX").await;
    assert_eq!(inbox.len(), 1);
    let raw = String::from_utf8_lossy(&inbox[0].raw);
    assert!(raw.contains("\r\n.leading dot\r\n"), "{raw}");
    assert!(!inbox[0].flags.iter().any(|f| f == "\\Seen"));

    // SMTP -> LMTP -> the customer's INBOX, logged; then refusals on demand.
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(stack.smtp_port)
        .build();
    let msg = || {
        Message::builder()
            .from("support@example.test".parse().expect("from"))
            .to("customer@example.test".parse().expect("to"))
            .subject("via smtp")
            .body("hello".to_string())
            .expect("message")
    };
    smtp.send(msg()).await.expect("send");
    assert_eq!(stack.smtp_received().len(), 1);
    let inbox = stack
        .wait_for(
            "customer@example.test",
            "INBOX",
            |m| m.len() == 2,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(inbox.len(), 2);
    stack.set_smtp_mode("tempfail");
    assert!(smtp.send(msg()).await.expect_err("refused").is_transient());
    stack.set_smtp_mode("permfail");
    assert!(smtp.send(msg()).await.expect_err("refused").is_permanent());
    assert_eq!(stack.smtp_refused_count(), 2);

    stack.restart_dovecot();
    assert_eq!(
        stack
            .fetch_all("customer@example.test", "INBOX")
            .await
            .len(),
        2
    );
}

/// A plain-text IMAP session as support@, straight to the port (no STARTTLS).
async fn login(stack: &MailStack) -> async_imap::Session<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", stack.imap_port))
        .await
        .expect("connect");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.expect("greeting");
    client
        .login("support@example.test", "pw")
        .await
        .map_err(|(e, _)| e)
        .expect("login")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_can_be_switched_off() {
    for idle in [true, false] {
        let stack = MailStack::start_with(StackOptions { idle });
        let mut s = login(&stack).await;
        let caps = s.capabilities().await.expect("caps");
        assert_eq!(caps.has_str("IDLE"), idle);
    }
}

/// Regression (a corpus run in CI stalled with mail waiting): Dovecot announces new mail once,
/// in the response to whatever command comes next (here a STORE, as when the daemon flags what
/// it just triaged), and never again in IDLE. The daemon must see that announcement in the
/// unsolicited channel and sync again instead of going to IDLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_mail_announced_in_a_command_response_is_not_lost() {
    let stack = MailStack::start();
    stack.deliver(
        "support@example.test",
        b"From: a@example.test\r\nSubject: first\r\nMessage-ID: <first@y>\r\n\r\nbody\r\n",
    );
    let mut s = login(&stack).await;
    s.select("INBOX").await.expect("select");
    assert!(
        !triaged::imap::new_mail_announced(&s),
        "nothing new after SELECT"
    );

    stack.deliver(
        "support@example.test",
        b"From: a@example.test\r\nSubject: second\r\nMessage-ID: <second@y>\r\n\r\nbody\r\n",
    );
    use futures::TryStreamExt;
    let _: Vec<_> = s
        .uid_store("1", "+FLAGS.SILENT (triage/low)")
        .await
        .expect("store")
        .try_collect()
        .await
        .expect("store responses");
    assert!(
        triaged::imap::new_mail_announced(&s),
        "the EXISTS in the STORE response is seen"
    );
    assert!(!triaged::imap::new_mail_announced(&s), "and consumed once");
}
