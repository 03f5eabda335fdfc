//! The test mail stack itself works: LMTP delivery is visible over IMAP, the SMTP server delivers
//! into Dovecot and refuses on demand (a recipient, our sender, a line over 998 octets), the
//! capability switches work, a restart keeps mail, OAuth2 bearer tokens work for IMAP and SMTP
//! (and stop working when revoked), keywords can be forbidden, and the Gmail-style special-use
//! Sent folder is listed with `\Sent`.

use std::time::Duration;

use crate::common::{MailStack, SPECIAL_SENT, SmtpAuth, StackOptions};

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
    // Our sender refused at MAIL FROM, until the mode changes back.
    stack.set_smtp_mode("sender_refused");
    let e = smtp.send(msg()).await.expect_err("refused");
    assert!(
        e.is_permanent()
            && e.to_string()
                .contains("Sender address rejected: not owned by user"),
        "{e}"
    );
    assert_eq!(
        stack.smtp_refusals().last().map(|r| r["mail_from"].clone()),
        Some("support@example.test".into())
    );
    // A strict server: 998 octets a line pass, 999 do not.
    stack.set_smtp_mode("strict");
    let with_line = |n: usize| {
        let name = lettre::message::header::HeaderName::new_from_ascii_str("X-Long");
        let value = "x".repeat(n - "X-Long: ".len());
        Message::builder()
            .from("support@example.test".parse().expect("from"))
            .to("customer@example.test".parse().expect("to"))
            .raw_header(
                lettre::message::header::HeaderValue::dangerous_new_pre_encoded(
                    name,
                    value.clone(),
                    value,
                ),
            )
            .body("hello".to_string())
            .expect("message")
    };
    smtp.send(with_line(998)).await.expect("998 octets pass");
    let e = smtp.send(with_line(999)).await.expect_err("refused");
    assert!(
        e.is_permanent() && e.to_string().contains("Line too long"),
        "{e}"
    );
    assert_eq!(stack.smtp_refused_count(), 4);
    assert_eq!(stack.smtp_received().len(), 2);
    stack.set_smtp_mode("accept");

    stack.restart_dovecot();
    let inbox = stack
        .wait_for(
            "customer@example.test",
            "INBOX",
            |m| m.len() == 3,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(inbox.len(), 3);

    // The default server: keywords and MOVE allowed; the Gmail-style Sent folder beside a plain
    // "Sent" (the one tests use as the support Sent folder), only the former with \Sent.
    stack
        .append("support@example.test", "Sent", b"Subject: s\r\n\r\nx\r\n")
        .await;
    let out = stack.imap_raw(
        "support@example.test",
        &["CAPABILITY", "SELECT INBOX", "LIST \"\" \"*\""],
    );
    assert!(
        has_cap(&out[0], "MOVE") && has_cap(&out[0], "IDLE"),
        "{out:?}"
    );
    assert!(
        out[1]
            .iter()
            .any(|l| l.contains("[PERMANENTFLAGS (") && l.contains("\\*)]")),
        "{out:?}"
    );
    assert!(
        out[2].contains(&r#"* LIST (\HasNoChildren \Sent) "/" "[Gmail]/Sent Mail""#.to_string())
            && out[2].contains(&r#"* LIST (\HasNoChildren) "/" Sent"#.to_string()),
        "{out:?}"
    );
}

/// Whether a raw CAPABILITY exchange lists `cap`.
fn has_cap(lines: &[String], cap: &str) -> bool {
    lines
        .iter()
        .filter(|l| l.starts_with("* CAPABILITY "))
        .any(|l| l.split(' ').any(|c| c == cap))
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
        let stack = MailStack::start_with(StackOptions {
            idle,
            ..Default::default()
        });
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

/// A LOGIN with a password, Ok or the server's refusal.
async fn password_login(stack: &MailStack, user: &str, password: &str) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", stack.imap_port))
        .await
        .expect("connect");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.expect("greeting");
    match client.login(user, password).await {
        Ok(mut s) => {
            s.logout().await.ok();
            Ok(())
        }
        Err((e, _)) => Err(format!("{e:?}")),
    }
}

/// OAuth2: XOAUTH2 and OAUTHBEARER log in to IMAP with an issued token and stop working once it
/// is revoked (Dovecot asks the endpoint at every login); a token is not a password and a
/// password is not a token; the SMTP server requires AUTH and takes XOAUTH2 the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_tokens_for_imap_and_smtp() {
    let stack = MailStack::start_with(StackOptions {
        oauth: true,
        ..Default::default()
    });
    let user = "support@example.test";
    let token = stack.issue_token(user);
    let log = || std::fs::read_to_string(stack.dir.path().join("dovecot.log")).unwrap_or_default();

    for mech in ["XOAUTH2", "OAUTHBEARER"] {
        let mut s = stack
            .authenticate(mech, user, &token)
            .await
            .unwrap_or_else(|e| panic!("{mech}: {e:?}\n{}", log()));
        s.select("INBOX").await.expect("select");
        s.logout().await.ok();
    }
    password_login(&stack, user, "pw")
        .await
        .expect("the password still works");
    let seen = stack.introspections();
    assert_eq!(seen.len(), 2, "one introspection per token login: {seen:?}");
    assert!(
        seen.iter()
            .all(|i| i.token == token && i.active && i.from_imap()),
        "{seen:?}"
    );

    // Refused (concurrently: each refusal takes Dovecot ~0.5 s): the revoked token with both
    // mechanisms, another user's token, the token as a PLAIN password, a wrong password.
    let other = stack.issue_token("customer@example.test");
    stack.revoke_token(&token);
    let (xoauth2, oauthbearer, foreign, token_as_pw, wrong_pw) = tokio::join!(
        stack.authenticate("XOAUTH2", user, &token),
        stack.authenticate("OAUTHBEARER", user, &token),
        stack.authenticate("XOAUTH2", user, &other),
        password_login(&stack, user, &token),
        password_login(&stack, user, "wrong"),
    );
    for (what, refused) in [
        ("revoked XOAUTH2", xoauth2.err().map(|e| format!("{e:?}"))),
        (
            "revoked OAUTHBEARER",
            oauthbearer.err().map(|e| format!("{e:?}")),
        ),
        (
            "another user's token",
            foreign.err().map(|e| format!("{e:?}")),
        ),
        ("token as password", token_as_pw.err()),
        ("wrong password", wrong_pw.err()),
    ] {
        let refusal = refused.unwrap_or_else(|| panic!("{what} was accepted"));
        assert!(
            refusal.contains("AUTHENTICATIONFAILED"),
            "{what}: {refusal}"
        );
    }
    let seen = stack.introspections();
    assert_eq!(seen.len(), 5, "passwords are never introspected: {seen:?}");
    assert_eq!(
        seen[2..]
            .iter()
            .filter(|i| i.token == token && !i.active)
            .count(),
        2,
        "the revoked token was asked about again, not cached: {seen:?}"
    );

    // SMTP: AUTH is required; XOAUTH2 with a live token and PLAIN with the password are accepted,
    // a revoked token gets 535.
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let smtp_token = stack.issue_token(user);
    let transport = |auth: Option<(&str, Mechanism)>| {
        let b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(stack.smtp_port);
        match auth {
            Some((secret, mech)) => b
                .credentials(Credentials::new(user.to_string(), secret.to_string()))
                .authentication(vec![mech])
                .build(),
            None => b.build(),
        }
    };
    let msg = || {
        Message::builder()
            .from(user.parse().expect("from"))
            .to("customer@example.test".parse().expect("to"))
            .subject("via smtp")
            .body("hello".to_string())
            .expect("message")
    };
    transport(Some((&smtp_token, Mechanism::Xoauth2)))
        .send(msg())
        .await
        .expect("XOAUTH2 send");
    transport(Some(("pw", Mechanism::Plain)))
        .send(msg())
        .await
        .expect("PLAIN send");
    let unauthenticated = transport(None)
        .send(msg())
        .await
        .expect_err("AUTH required");
    assert!(unauthenticated.is_permanent(), "{unauthenticated:?}");
    stack.revoke_token(&smtp_token);
    let revoked = transport(Some((&smtp_token, Mechanism::Xoauth2)))
        .send(msg())
        .await
        .expect_err("revoked");
    assert_eq!(
        revoked.status().map(|c| c.to_string()).as_deref(),
        Some("535"),
        "{revoked:?}"
    );
    assert_eq!(
        stack.smtp_auths(),
        vec![
            SmtpAuth {
                user: user.into(),
                mechanism: "XOAUTH2".into(),
                token: Some(smtp_token.clone())
            },
            SmtpAuth {
                user: user.into(),
                mechanism: "PLAIN".into(),
                token: None
            },
        ]
    );
    let received = stack.smtp_received();
    assert_eq!(received.len(), 2);
    assert!(
        received.iter().all(|r| r["auth_user"] == user),
        "{received:?}"
    );
    let from_smtp: Vec<_> = stack
        .introspections()
        .into_iter()
        .filter(|i| i.from_smtp())
        .map(|i| (i.token, i.active))
        .collect();
    assert_eq!(
        from_smtp,
        vec![(smtp_token.clone(), true), (smtp_token, false)]
    );
}

/// keywords = false: PERMANENTFLAGS without `\*`, and a keyword STORE answers OK but sets
/// nothing. moves = false: no MOVE in CAPABILITY (UIDPLUS and IDLE stay). The Gmail-style Sent
/// folder is listed with `\Sent`, in plain LIST and with RETURN (SPECIAL-USE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keywords_no_move_and_special_use() {
    let stack = MailStack::start_with(StackOptions {
        keywords: false,
        moves: false,
        ..Default::default()
    });
    let user = "support@example.test";
    stack.deliver(
        user,
        b"From: a@example.test\r\nSubject: k\r\nMessage-ID: <k@y>\r\n\r\nbody\r\n",
    );
    let out = stack.imap_raw(
        user,
        &[
            "CAPABILITY",
            "SELECT INBOX",
            r"UID STORE 1 +FLAGS (triage/urgent \Flagged \Seen)",
            "UID FETCH 1 (FLAGS)",
            r#"LIST "" "*""#,
            r#"LIST "" "*" RETURN (SPECIAL-USE)"#,
        ],
    );
    let [caps, select, store, fetch, list, list_special] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(!has_cap(caps, "MOVE"), "{caps:?}");
    assert!(
        has_cap(caps, "UIDPLUS") && has_cap(caps, "IDLE"),
        "{caps:?}"
    );
    assert!(
        select.contains(&r"* OK [PERMANENTFLAGS (\Deleted \Seen)] Flags permitted.".to_string()),
        "{select:?}"
    );
    assert!(
        store.last().is_some_and(|l| l.starts_with("c2 OK")),
        "{store:?}"
    );
    let flags = fetch.iter().find(|l| l.contains("FETCH")).expect("fetch");
    assert!(
        flags.contains(r"\Seen")
            && !flags.contains("triage/urgent")
            && !flags.contains(r"\Flagged"),
        "{fetch:?}"
    );
    assert!(
        list.contains(&r#"* LIST (\HasNoChildren \Sent) "/" "[Gmail]/Sent Mail""#.to_string()),
        "{list:?}"
    );
    assert!(
        list_special.contains(&r#"* LIST (\Sent) "/" "[Gmail]/Sent Mail""#.to_string()),
        "{list_special:?}"
    );

    // async-imap parses the name and the attribute.
    use futures::TryStreamExt;
    let mut s = login(&stack).await;
    let names: Vec<_> = s
        .list(Some(""), Some("*"))
        .await
        .expect("list")
        .try_collect()
        .await
        .expect("list");
    let sent = names
        .iter()
        .find(|n| n.name() == SPECIAL_SENT)
        .expect("special Sent listed");
    assert!(
        sent.attributes()
            .contains(&async_imap::types::NameAttribute::Sent)
    );
    s.logout().await.ok();
}
