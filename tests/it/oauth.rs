//! OAuth2 against the real test stack: Dovecot verifies bearer tokens with its `oauth2` passdb
//! against the harness's token-introspection endpoint, and the SMTP server requires AUTH. The
//! daemon (the real binary) gets its tokens from a `token_command`, as with Gmail or Microsoft
//! 365: it logs in with XOAUTH2 to both; when the IMAP token is revoked it fetches a new one and
//! carries on; when no valid token can be had, it says so in one line and alerts staff.

use std::time::Duration;

use crate::common::{MailStack, StackOptions};
use crate::daemon::{ConfigBuilder, Daemon, DaemonConfig, count, customer_email, wait_until};

/// The config of `b` with IMAP and SMTP logins by XOAUTH2, with tokens read from two files.
fn oauth_config(b: ConfigBuilder) -> (DaemonConfig, std::path::PathBuf, std::path::PathBuf) {
    let imap_token = b.dir().join("imap-token");
    let smtp_token = b.dir().join("smtp-token");
    // The token command counts its runs, as a real helper's refreshes would show.
    let command = |file: &std::path::Path| {
        format!(
            "echo run >> {runs}; cat {file}",
            runs = file.with_extension("runs").display(),
            file = file.display()
        )
    };
    let cfg = b
        .imap_token_command(&command(&imap_token))
        .smtp_token_command("support@example.test", &command(&smtp_token))
        .write();
    (cfg, imap_token, smtp_token)
}

/// `doveadm kick`: end every IMAP session of `user`.
fn kick(stack: &MailStack, user: &str) {
    let out = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(stack.dir.path().join("dovecot.conf"))
        .args(["kick", user])
        .output()
        .expect("doveadm");
    assert!(
        out.status.success(),
        "doveadm kick: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn runs(token_file: &std::path::Path) -> usize {
    std::fs::read_to_string(token_file.with_extension("runs"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn acked(cfg: &DaemonConfig) -> i64 {
    count(
        cfg,
        "SELECT count(*) FROM outbox WHERE kind = 'ack' AND state = 'sent'",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xoauth2_logins_and_a_revoked_token_is_replaced() {
    let stack = MailStack::start_with(StackOptions {
        oauth: true,
        ..Default::default()
    });
    let (cfg, imap_token, smtp_token) = oauth_config(DaemonConfig::of(&stack));
    let t1 = stack.issue_token("support@example.test");
    let s1 = stack.issue_token("support@example.test");
    std::fs::write(&imap_token, format!("{t1}\n")).expect("token");
    std::fs::write(&smtp_token, format!("{s1}\n")).expect("token");

    let mut d = Daemon::start(&cfg);
    stack.deliver(
        "support@example.test",
        &customer_email(
            "customer@example.test",
            "o1@customers.example.test",
            "Login question",
            "How do I reset my password?",
        ),
    );
    assert!(
        wait_until(Duration::from_secs(30), || acked(&cfg) == 1),
        "no ack over OAuth:\n{}",
        d.log_text()
    );
    // IMAP asked the introspection endpoint about t1; SMTP authenticated with XOAUTH2 and s1.
    let seen = stack.introspections();
    assert!(
        seen.iter()
            .any(|i| i.from_imap() && i.token == t1 && i.active),
        "{seen:?}"
    );
    let auths = stack.smtp_auths();
    assert!(
        auths
            .iter()
            .any(|a| a.mechanism == "XOAUTH2" && a.token.as_deref() == Some(s1.as_str())),
        "{auths:?}"
    );
    // The inbox and Sent watchers... here only the inbox: one run of the command, cached after.
    assert_eq!(runs(&imap_token), 1, "the token is cached for its lifetime");

    // The token expires early (revoked); the helper would now print a new one.
    stack.revoke_token(&t1);
    let t2 = stack.issue_token("support@example.test");
    std::fs::write(&imap_token, format!("{t2}\n")).expect("token");
    // The server ends the session (as Microsoft 365 does when a token expires): the daemon
    // reconnects, its cached t1 is refused, it runs the command again at once, logs in with t2.
    kick(&stack, "support@example.test");
    stack.deliver(
        "support@example.test",
        &customer_email(
            "customer@example.test",
            "o2@customers.example.test",
            "Another question",
            "Where is my invoice?",
        ),
    );
    assert!(
        wait_until(Duration::from_secs(60), || acked(&cfg) == 2),
        "no ack after the token was replaced:\n{}",
        d.log_text()
    );
    let seen = stack.introspections();
    assert!(
        seen.iter()
            .any(|i| i.from_imap() && i.token == t1 && !i.active),
        "t1 refused: {seen:?}\n{}",
        d.log_text()
    );
    assert!(
        seen.iter()
            .any(|i| i.from_imap() && i.token == t2 && i.active),
        "t2 used: {seen:?}"
    );
    assert_eq!(
        runs(&imap_token),
        2,
        "exactly one more run of the token command"
    );
    let log = d.log_text();
    assert!(
        log.contains("IMAP refused the cached token; fetching a new one"),
        "{log}"
    );
    assert!(d.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_stays_refused_is_one_clear_line_and_a_health_alert() {
    let stack = MailStack::start_with(StackOptions {
        oauth: true,
        ..Default::default()
    });
    let (cfg, imap_token, smtp_token) = oauth_config(DaemonConfig::of(&stack).health_alerts("1s"));
    // The IMAP grant is gone: the helper prints a token the server refuses. SMTP is fine.
    let dead = stack.issue_token("support@example.test");
    stack.revoke_token(&dead);
    std::fs::write(&imap_token, format!("{dead}\n")).expect("token");
    std::fs::write(
        &smtp_token,
        format!("{}\n", stack.issue_token("support@example.test")),
    )
    .expect("token");
    let d = Daemon::start(&cfg);
    let alert = wait_until(Duration::from_secs(60), || {
        stack.smtp_received().iter().any(|m| {
            m["subject"]
                .as_str()
                .unwrap_or("")
                .contains("PROBLEM: IMAP login failing")
        })
    });
    let log = d.log_text();
    assert!(alert, "no health alert:\n{log}");
    // One readable line per failed attempt, naming the account and what to check.
    let line = log
        .lines()
        .find(|l| l.contains("Logging in to 127.0.0.1") && l.contains("failed"))
        .unwrap_or_else(|| panic!("no login failure line:\n{log}"));
    assert!(
        line.contains("support@example.test") && line.contains("token_command"),
        "{line}"
    );
    // It keeps trying (and never stops silently): more than one attempt, the command re-run
    // (the alert may come after the first: the health monitor looks again at `after`).
    assert!(
        wait_until(Duration::from_secs(30), || runs(&imap_token) >= 2),
        "{}",
        d.log_text()
    );
}
