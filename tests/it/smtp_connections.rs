//! `smtp::Sender`'s connections against a small SMTP server written here (tokio, loopback),
//! whose every connection follows a plan: a connection that ran out of time mid-transaction
//! is closed and never used again; a completed one is used again; one the server closed
//! while it idled (or answered 421 to) is replaced without the email failing.

use std::time::Duration;

use lettre::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use triaged::config::{SmtpConfig, Tls};
use triaged::smtp::{SendError, Sender};

/// How the server treats one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Answers everything.
    Normal,
    /// Answers MAIL FROM, then never RCPT TO (nor anything after).
    HangAtRcpt,
    /// Takes one message, then closes the connection (an idle timeout, early).
    CloseAfterOne,
    /// Takes one message, then answers the next MAIL FROM with 421 and closes.
    Say421AfterOne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Connected(usize),
    Delivered(usize),
    /// The connection ended; `true` when the client closed it.
    Closed(usize, bool),
}

/// The server: connection `i` follows `plans[i]` (`Normal` past the end).
async fn server(plans: Vec<Plan>) -> (u16, mpsc::UnboundedReceiver<Event>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for i in 0.. {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let plan = plans.get(i).copied().unwrap_or(Plan::Normal);
            let tx = tx.clone();
            let _ = tx.send(Event::Connected(i));
            tokio::spawn(async move {
                let by_client = serve(stream, plan, i, &tx).await;
                let _ = tx.send(Event::Closed(i, by_client));
            });
        }
    });
    (port, rx)
}

/// One connection; true when the client closed it (EOF), false when the server did.
async fn serve(
    stream: tokio::net::TcpStream,
    plan: Plan,
    i: usize,
    tx: &mpsc::UnboundedSender<Event>,
) -> bool {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let say = async |w: &mut tokio::net::tcp::OwnedWriteHalf, s: &str| {
        let _ = w.write_all(s.as_bytes()).await;
    };
    say(&mut w, "220 test.example ESMTP\r\n").await;
    let (mut in_data, mut hung, mut delivered) = (false, false, 0);
    while let Ok(Some(line)) = lines.next_line().await {
        if hung {
            continue;
        }
        if in_data {
            if line == "." {
                in_data = false;
                delivered += 1;
                let _ = tx.send(Event::Delivered(i));
                say(&mut w, "250 2.0.0 OK queued\r\n").await;
                if plan == Plan::CloseAfterOne {
                    return false;
                }
            }
            continue;
        }
        let cmd = line.to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            say(&mut w, "250-test.example\r\n250 8BITMIME\r\n").await;
        } else if cmd.starts_with("MAIL") {
            if plan == Plan::Say421AfterOne && delivered == 1 {
                say(&mut w, "421 4.4.2 test.example Idle timeout, closing\r\n").await;
                return false;
            }
            say(&mut w, "250 2.1.0 OK\r\n").await;
        } else if cmd.starts_with("RCPT") {
            if plan == Plan::HangAtRcpt {
                hung = true;
                continue;
            }
            say(&mut w, "250 2.1.5 OK\r\n").await;
        } else if cmd.starts_with("DATA") {
            in_data = true;
            say(&mut w, "354 Go ahead\r\n").await;
        } else if cmd.starts_with("QUIT") {
            say(&mut w, "221 Bye\r\n").await;
            return true;
        } else {
            say(&mut w, "250 OK\r\n").await;
        }
    }
    true
}

fn sender(port: u16, timeout: Duration) -> Sender {
    Sender::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: Tls::None,
        username: None,
        credential: None,
        from: "Support <support@example.test>".parse().expect("from"),
        ca_file: None,
        timeout,
        transaction_timeout: Duration::from_secs(30),
        rate_limits: Vec::new(),
        pushback_pause: Duration::from_secs(300),
    })
    .expect("sender")
}

fn email(i: usize) -> Message {
    Message::builder()
        .from("Support <support@example.test>".parse().expect("from"))
        .to("customer@example.test".parse().expect("to"))
        .subject(format!("Re: Order {i}"))
        .body(format!("We have your message {i}.\n"))
        .expect("message")
}

/// The next event (a hang of the code under test ends the test in 10 s, not never).
async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("server running")
}

#[tokio::test]
async fn a_connection_that_ran_out_of_time_is_closed_and_never_used_again() {
    let (port, mut rx) = server(vec![Plan::HangAtRcpt, Plan::Normal]).await;
    let s = sender(port, Duration::from_millis(500));

    let err = s.send(&email(0)).await.expect_err("the server hangs");
    assert_eq!(
        err,
        SendError::Transient("SMTP server did not answer within 0.5 s at RCPT TO".into())
    );
    assert_eq!(next(&mut rx).await, Event::Connected(0));
    // Closed by us, at once: not parked in the pool with a reply on its way.
    assert_eq!(next(&mut rx).await, Event::Closed(0, true));

    // The next emails go on a new connection, and then stay on it.
    s.send(&email(1)).await.expect("send 1");
    s.send(&email(2)).await.expect("send 2");
    assert_eq!(next(&mut rx).await, Event::Connected(1));
    assert_eq!(next(&mut rx).await, Event::Delivered(1));
    assert_eq!(next(&mut rx).await, Event::Delivered(1));
    assert!(rx.try_recv().is_err(), "no other connection");
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced_without_a_failure() {
    let (port, mut rx) = server(vec![
        Plan::CloseAfterOne,
        Plan::Say421AfterOne,
        Plan::Normal,
    ])
    .await;
    let s = sender(port, Duration::from_secs(5));

    s.send(&email(0)).await.expect("send 0");
    assert_eq!(next(&mut rx).await, Event::Connected(0));
    assert_eq!(next(&mut rx).await, Event::Delivered(0));
    assert_eq!(next(&mut rx).await, Event::Closed(0, false));
    // The pooled connection is dead: MAIL FROM finds it so, and a new one takes the email.
    s.send(&email(1)).await.expect("send 1");
    assert_eq!(next(&mut rx).await, Event::Connected(1));
    assert_eq!(next(&mut rx).await, Event::Delivered(1));
    // This one answers the next MAIL FROM with an idle-timeout 421: no pushback, a new
    // connection.
    s.send(&email(2)).await.expect("send 2");
    assert_eq!(next(&mut rx).await, Event::Closed(1, false));
    assert_eq!(next(&mut rx).await, Event::Connected(2));
    assert_eq!(next(&mut rx).await, Event::Delivered(2));
}

#[tokio::test]
async fn a_server_that_never_greets_is_timed_out_at_the_greeting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accepts, and says nothing.
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = tx.send(stream);
        }
    });
    let s = sender(port, Duration::from_millis(300));
    let err = s.send(&email(0)).await.expect_err("no greeting");
    assert_eq!(
        err,
        SendError::Transient("SMTP server did not answer within 0.3 s at the greeting".into())
    );
    assert!(rx.recv().await.is_some());
}
