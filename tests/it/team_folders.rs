//! Team folders (`[[team]] folder`, `folder_mode`): a customer's email routed to a team is filed
//! into the team's folder once its keywords are set — moved, or a copy filed — next to the
//! priority folders of `[flags.folders]`; a folder the server refuses is said once and the
//! email stays. Against the real Dovecot of the test stack, with the real binary.

use std::time::Duration;

use crate::common::MailStack;
use crate::daemon::{self, Daemon, DaemonConfig, count, customer_email, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// Billing files by moving, technical by copying; both handled by staff@example.test.
const TEAMS: &str = r#"
[[team]]
name = "billing"
description = "our billing specialists, who can check the charges on your account"
staff = ["staff@example.test"]
intents = ["billing", "refund"]
folder = "Teams/Billing"

[[team]]
name = "technical"
description = "our technical team, who can look into the fault itself"
staff = ["staff@example.test"]
intents = ["outage", "data-loss"]
folder = "Teams/Technical"
folder_mode = "copy"
"#;

fn flagged(cfg: &DaemonConfig, n: i64) -> bool {
    count(
        cfg,
        "SELECT count(*) FROM messages WHERE flags_state = 'done'",
    ) == n
}

/// The subjects of the emails in `folder`, sorted, with the keywords of each.
async fn subjects(stack: &MailStack, folder: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = stack
        .fetch_all("support@example.test", folder)
        .await
        .into_iter()
        .map(|m| {
            let raw = String::from_utf8_lossy(&m.raw).into_owned();
            let subject = raw
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .to_string();
            (subject, m.flags)
        })
        .collect();
    out.sort();
    out
}

fn names(list: &[(String, Vec<String>)]) -> Vec<&str> {
    list.iter().map(|(s, _)| s.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_email_is_moved_into_its_folder_or_copied_there() {
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack)
        .urgent_folder("Triage/Urgent")
        .raw(TEAMS)
        .write();
    let mut d = Daemon::start(&cfg);
    let emails = [
        // Billing (move), high: into the team's folder.
        (
            "I was charged twice",
            "My bank statement shows the monthly fee twice. Please take one payment back.",
        ),
        // Billing (move), urgent: the team's folder wins over the urgent one.
        (
            "URGENT: charged twice, we are losing money",
            "You charged our card twice and now payroll bounced. This is urgent, we are losing money.",
        ),
        // Technical (copy), urgent: a copy for the team, the email into the urgent folder.
        (
            "Production is down",
            "Our production system is down and nobody can work. This is urgent, we are losing money.",
        ),
        // Technical (copy), high: a copy for the team, the email stays in INBOX.
        (
            "Some notes are missing",
            "After the update we lost data: a few of my notes are gone. Could you look?",
        ),
        // No team: stays.
        (
            "A small question",
            "Hello, where do I change my avatar? Thanks.",
        ),
    ];
    for (i, (subject, body)) in emails.iter().enumerate() {
        stack.deliver(
            "support@example.test",
            &customer_email(
                &format!("customer+{i}@example.test"),
                &format!("tf{i}@c"),
                subject,
                body,
            ),
        );
    }
    assert!(
        wait_until(WAIT, || flagged(&cfg, 5)),
        "not flagged:\n{}",
        d.log_text()
    );
    // The tickets carry their teams (what the watcher read to file them).
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM tickets WHERE team = 'billing'"),
        2
    );
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM tickets WHERE team = 'technical'"
        ),
        2
    );

    let billing = subjects(&stack, "Teams/Billing").await;
    assert_eq!(
        names(&billing),
        [
            "I was charged twice",
            "URGENT: charged twice, we are losing money"
        ],
        "{}",
        d.log_text()
    );
    // Keywords were set before the move, so they came along.
    assert!(
        billing[0].1.iter().any(|f| f == "triage/high"),
        "{billing:?}"
    );
    assert!(
        billing[1].1.iter().any(|f| f == "triage/urgent")
            && billing[1].1.iter().any(|f| f == "\\Flagged"),
        "{billing:?}"
    );
    let technical = subjects(&stack, "Teams/Technical").await;
    assert_eq!(
        names(&technical),
        ["Production is down", "Some notes are missing"],
        "{}",
        d.log_text()
    );
    assert!(
        technical[0].1.iter().any(|f| f == "triage/urgent"),
        "{technical:?}"
    );
    let urgent = subjects(&stack, "Triage/Urgent").await;
    assert_eq!(names(&urgent), ["Production is down"], "{}", d.log_text());
    let inbox = subjects(&stack, "INBOX").await;
    assert_eq!(
        names(&inbox),
        ["A small question", "Some notes are missing"],
        "{}",
        d.log_text()
    );
    assert!(
        inbox
            .iter()
            .all(|(_, f)| !f.iter().any(|f| f == "\\Deleted")),
        "{inbox:?}"
    );

    d.terminate();
    let log = d.log_text();
    assert!(!log.contains("Cannot file email"), "{log}");
    assert_eq!(
        log.lines().filter(|l| l.contains("IMAP connected")).count(),
        1,
        "one connection, no reconnect:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_folder_the_server_refuses_is_said_once_and_the_email_stays() {
    let stack = MailStack::start();
    // Dovecot refuses a name that begins with '~' ("Invalid mailbox name").
    let cfg = DaemonConfig::of(&stack)
        .raw(
            r#"
[[team]]
name = "legal"
description = "our legal team"
staff = ["staff@example.test"]
intents = ["legal-threat"]
folder = "~Legal"
"#,
        )
        .write();
    let mut d = Daemon::start(&cfg);
    // One at a time, so each is its own pass and its own try at the folder.
    for i in 0..3 {
        stack.deliver(
            "support@example.test",
            &customer_email(
                &format!("customer+{i}@example.test"),
                &format!("legal{i}@c"),
                "We will sue you",
                "If this is not fixed we will take legal action and talk to our lawyer.",
            ),
        );
        let n = i + 1;
        assert!(
            wait_until(WAIT, || flagged(&cfg, n) && daemon::sent(&cfg) == n),
            "email {n} not flagged and acknowledged:\n{}",
            d.log_text()
        );
    }
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM tickets WHERE team = 'legal'"),
        3
    );
    // The emails stay where they are, with their keywords.
    let inbox = subjects(&stack, "INBOX").await;
    assert_eq!(inbox.len(), 3, "{inbox:?}\n{}", d.log_text());
    for (_, flags) in &inbox {
        assert!(flags.iter().any(|f| f.starts_with("triage/")), "{flags:?}");
    }
    d.terminate();
    let log = d.log_text();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Cannot file email into folder"))
        .collect();
    assert_eq!(warned.len(), 1, "said once, not per email:\n{log}");
    assert!(
        warned[0].contains("\"~Legal\"")
            && warned[0].contains("[[team]] \"legal\"")
            && warned[0].contains("Invalid mailbox name")
            && warned[0].contains("WARN"),
        "names the folder, the team and the server's answer: {}",
        warned[0]
    );
    assert_eq!(
        log.lines().filter(|l| l.contains("IMAP connected")).count(),
        1,
        "{log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
}
