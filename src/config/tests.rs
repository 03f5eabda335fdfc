use std::path::{Path, PathBuf};

use super::*;
use crate::sla::to_ts;

const MINIMAL: &str = r#"
[mailbox]
host = "127.0.0.1"
tls = "none"
username = "support@example.test"
password_env = "PW"

[smtp]
host = "127.0.0.1"
tls = "none"
from = "Support <support@example.test>"

[store]
path = "triaged.sqlite"

[support]
addresses = ["support@example.test"]
domain = "support.example.test"
"#;

const RULE: &str = r#"
[[rule]]
id = "outage"
keywords = ["outage"]
weight = 5.0
"#;

/// A config directory with rules/ and templates/ beside the config file.
fn setup(config: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(d.path().join("rules")).expect("mkdir");
    std::fs::create_dir(d.path().join("templates")).expect("mkdir");
    std::fs::write(d.path().join("rules/a.toml"), RULE).expect("write");
    std::fs::write(d.path().join("templates/ack.txt"), "Hi {{ customer_name }}").expect("write");
    std::fs::write(
        d.path().join("templates/ack.html"),
        "<p>Hi {{ customer_name }}</p>",
    )
    .expect("write");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for name in ["holding", "verify", "survey", "digest", "alert", "health"] {
        for ext in ["txt", "html"] {
            let file = format!("{name}.{ext}");
            std::fs::copy(shipped.join(&file), d.path().join("templates").join(&file))
                .expect("copy template");
        }
    }
    let path = d.path().join("triaged.toml");
    std::fs::write(&path, config).expect("write");
    (d, path)
}

fn errors(config: &str) -> Vec<String> {
    let (_d, path) = setup(config);
    let errs = Config::load(&path).expect_err("config must be refused");
    errs.iter()
        .map(|e| e.to_string().replace(&path.display().to_string(), "CONFIG"))
        .collect()
}

#[test]
fn example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/triaged.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.mailbox().tls, Tls::Implicit);
    assert_eq!(c.mailbox().port, 993);
    assert_eq!(
        c.mailbox().credential,
        Credential::Password(SecretSource::Env("TRIAGED_IMAP_PASSWORD".into()))
    );
    assert!(c.rules.len() > 5, "the default rule pack is loaded");
    assert_eq!(c.support.staff.len(), 2);
}

#[test]
fn minimal_config_gets_defaults() {
    let (_d, path) = setup(MINIMAL);
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.mailbox().port, 143);
    assert_eq!(c.mailbox().folders, ["INBOX"]);
    assert_eq!(c.mailbox().start, Start::New);
    assert_eq!(c.smtp.port, 25);
    assert!(c.smtp.rate_limits.is_empty());
    assert_eq!(c.smtp.pushback_pause, Duration::from_secs(300));
    assert_eq!(c.smtp.timeout, Duration::from_secs(30));
    assert_eq!(c.smtp.transaction_timeout, Duration::from_secs(120));
    assert_eq!(c.ack.per_sender_limit, 3);
    assert_eq!(c.ack.max_age, Duration::from_secs(2 * 86_400));
    assert_eq!(c.ack.max_unanswered_auto, 3);
    assert_eq!(c.ack.auto_answer_within, Duration::from_secs(15 * 60));
    assert_eq!(
        c.flags.priority_keywords[&Priority::Urgent],
        "triage/urgent"
    );
    assert!(c.store.path.ends_with("triaged.sqlite") && c.store.path.is_absolute());
    assert_eq!(c.thresholds, crate::score::Thresholds::DEFAULT);
}

#[test]
fn corrections_are_read_every_5_minutes_unless_configured() {
    let (_d, path) = setup(MINIMAL);
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(c.flags.corrections);
    assert_eq!(c.flags.corrections_interval, Duration::from_secs(300));
    let (_d, path) = setup(&format!(
        "{MINIMAL}\n[flags]\ncorrections = false\ncorrections_interval = \"30s\"\n"
    ));
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!c.flags.corrections);
    assert_eq!(c.flags.corrections_interval, Duration::from_secs(30));
    let errs = errors(&format!(
        "{MINIMAL}\n[flags]\ncorrections_interval = \"0s\"\n"
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("CONFIG:21:24: corrections_interval must be longer than 0s")),
        "{errs:?}"
    );
}

#[test]
fn the_store_keeps_the_customers_words_unless_told_not_to() {
    let (_d, path) = setup(MINIMAL);
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(c.store.keep_text);
    let (_d, path) = setup(&MINIMAL.replace(
        "path = \"triaged.sqlite\"",
        "path = \"triaged.sqlite\"\nkeep_text = false",
    ));
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!c.store.keep_text);
    let errs = errors(&MINIMAL.replace(
        "path = \"triaged.sqlite\"",
        "path = \"triaged.sqlite\"\nkeep_text = \"no\"",
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("CONFIG:15:13: ") && e.contains("expected a boolean")),
        "{errs:?}"
    );
}

#[test]
fn the_priority_without_evidence_is_configurable() {
    let (_d, path) = setup(&format!("{MINIMAL}\n[scoring]\nno_evidence = \"low\"\n"));
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.thresholds.no_evidence, Priority::Low);
    let errs = errors(&format!("{MINIMAL}\n[scoring]\nno_evidence = \"later\"\n"));
    assert!(
        errs.iter().any(|e| e.starts_with(
            "CONFIG:21:15: [scoring] no_evidence must be urgent, high, normal or low"
        )),
        "{errs:?}"
    );
}

#[test]
fn problems_are_reported_with_file_line_col() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            MINIMAL.replace("[store]", "[store]\npaht = \"x\""),
            "CONFIG:14:1: unknown field `paht`",
        ),
        (
            "tls none on a remote host",
            MINIMAL.replacen("host = \"127.0.0.1\"", "host = \"imap.example.com\"", 1),
            "CONFIG:4:7: tls = \"none\" is only allowed for a loopback host",
        ),
        (
            "missing password source",
            MINIMAL.replace("password_env = \"PW\"\n", ""),
            "CONFIG:5:12: [mailbox] needs a password source",
        ),
        (
            "both password sources",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\npassword_command = \"pass x\"",
            ),
            "CONFIG:7:20: [mailbox] has both password_env and password_command",
        ),
        (
            "bad duration",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\npoll_interval = \"60\"",
            ),
            "CONFIG:7:17: \"60\" is not a duration",
        ),
        (
            "bad start",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nstart = \"yesterday\"",
            ),
            "CONFIG:7:9: unknown start \"yesterday\"",
        ),
        (
            "bad tls",
            MINIMAL.replacen("tls = \"none\"", "tls = \"ssl\"", 1),
            "CONFIG:4:7: unknown tls mode \"ssl\"",
        ),
        (
            "bad address",
            MINIMAL.replace("[\"support@example.test\"]", "[\"support\"]"),
            "CONFIG:17:14: \"support\" is not an email address",
        ),
        (
            "bad keyword",
            format!("{MINIMAL}\n[flags.priority_keywords]\nurgent = \"very urgent\"\n"),
            "CONFIG:21:10: \"very urgent\" is not a valid IMAP keyword",
        ),
        (
            "syntax error",
            MINIMAL.replace("[store]", "[store"),
            "CONFIG:13:",
        ),
        (
            "token with a password",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\ntoken_command = \"oauth2 get\"",
            ),
            "CONFIG:6:16: [mailbox] uses auth = \"xoauth2\": the token comes from token_command, drop the password source",
        ),
        (
            "oauth without a token command",
            MINIMAL.replace("password_env = \"PW\"", "auth = \"xoauth2\""),
            "CONFIG:6:8: [mailbox] auth = \"xoauth2\" needs token_command",
        ),
        (
            "token command with password auth",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "auth = \"password\"\npassword_env = \"PW\"\ntoken_command = \"x\"",
            ),
            "CONFIG:8:17: [mailbox] token_command and token_lifetime need auth = \"xoauth2\"",
        ),
        (
            "unknown auth",
            MINIMAL.replace("password_env = \"PW\"", "auth = \"kerberos\""),
            "CONFIG:6:8: unknown auth \"kerberos\": use \"password\", \"xoauth2\" or \"oauthbearer\"",
        ),
        (
            "oauthbearer over smtp",
            MINIMAL.replace(
                "from = ",
                "username = \"s@example.test\"\nauth = \"oauthbearer\"\ntoken_command = \"x\"\nfrom = ",
            ),
            "CONFIG:12:8: unknown auth \"oauthbearer\": use \"password\" or \"xoauth2\"",
        ),
        (
            "short token lifetime",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "token_command = \"x\"\ntoken_lifetime = \"1s\"",
            ),
            "CONFIG:7:18: token_lifetime must be at least 10s",
        ),
        (
            "idle too long",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nidle_timeout = \"30m\"",
            ),
            "CONFIG:7:16: idle_timeout must be under 29 minutes",
        ),
        (
            "liveness check never",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nliveness_interval = \"1h\"",
            ),
            "CONFIG:7:21: liveness_interval must be between 1s and 29m",
        ),
        (
            "liveness answer awaited for no time",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nliveness_timeout = \"0s\"",
            ),
            "CONFIG:7:20: liveness_timeout must be between 1s and 10m",
        ),
        (
            "an SMTP transaction shorter than one of its steps",
            MINIMAL.replace(
                "from = \"Support <support@example.test>\"",
                "from = \"Support <support@example.test>\"\ntimeout = \"10s\"\ntransaction_timeout = \"5s\"",
            ),
            "CONFIG:13:23: transaction_timeout must be at least timeout (10s) and at most 1h",
        ),
        (
            "absurd max_message_size",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nmax_message_size = \"10GB\"",
            ),
            "CONFIG:7:20: max_message_size = \"10GB\" is outside 1KB to 64MB",
        ),
        (
            "tiny max_message_size",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nmax_message_size = \"100\"",
            ),
            "CONFIG:7:20: max_message_size = \"100\" is outside 1KB to 64MB",
        ),
        (
            "absurd batch_size",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nbatch_size = 1000000",
            ),
            "CONFIG:7:14: batch_size = 1000000 is outside 1 to 1000",
        ),
        (
            "zero batch_size",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nbatch_size = 0",
            ),
            "CONFIG:7:14: batch_size = 0 is outside 1 to 1000",
        ),
        (
            "negative batch_size",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nbatch_size = -5",
            ),
            "CONFIG:7:14: batch_size = -5 is outside 1 to 1000",
        ),
        (
            "loop limit too high",
            format!("{MINIMAL}\n[ack]\nmax_unanswered_auto = 50\n"),
            "CONFIG:21:23: max_unanswered_auto is at most 20 (0 switches the loop check off)",
        ),
        (
            "no answer window",
            format!("{MINIMAL}\n[ack]\nauto_answer_within = \"0s\"\n"),
            "CONFIG:21:22: auto_answer_within must be longer than 0s",
        ),
        (
            "answer window of days",
            format!("{MINIMAL}\n[ack]\nauto_answer_within = \"2d\"\n"),
            "CONFIG:21:22: auto_answer_within is at most 24h",
        ),
    ];
    for (name, config, want) in cases {
        let errs = errors(&config);
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{name}: want {want:?}, got {errs:#?}"
        );
    }
}

#[test]
fn oauth_credentials() {
    let config = MINIMAL
        .replace(
            "password_env = \"PW\"",
            "token_command = \"oauth2 get imap\"",
        )
        .replace(
            "from = ",
            "username = \"support@example.test\"\ntoken_command = \"oauth2 get smtp\"\nfrom = ",
        );
    let (_d, path) = setup(&config);
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        c.mailbox().credential,
        Credential::Token {
            mechanism: OAuthMechanism::Xoauth2,
            command: "oauth2 get imap".into(),
            lifetime: Duration::from_secs(50 * 60),
        }
    );
    assert!(matches!(
        c.smtp.credential,
        Some(Credential::Token { ref command, .. }) if command == "oauth2 get smtp"
    ));
    let bearer = MINIMAL.replace(
        "password_env = \"PW\"",
        "auth = \"oauthbearer\"\ntoken_command = \"t\"\ntoken_lifetime = \"30m\"",
    );
    let (_d, path) = setup(&bearer);
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(matches!(
        c.mailbox().credential,
        Credential::Token { mechanism: OAuthMechanism::Oauthbearer, lifetime, .. } if lifetime == Duration::from_secs(1800)
    ));
}

#[test]
fn all_problems_are_reported_at_once() {
    let config = MINIMAL
        .replacen("tls = \"none\"", "tls = \"ssl\"", 2)
        .replace("password_env = \"PW\"\n", "");
    let errs = errors(&config);
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn broken_rules_and_templates_are_reported_with_their_files() {
    let (d, path) = setup(MINIMAL);
    std::fs::write(
        d.path().join("rules/b.toml"),
        "[[rule]]\nid = \"bad\"\nregex = \"(unclosed\"\nweight = 1.0\n",
    )
    .expect("write");
    std::fs::write(d.path().join("templates/ack.txt"), "Hi {{ customer_name ").expect("write");
    let errs: Vec<String> = Config::load(&path)
        .expect_err("refused")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errs.iter().any(|e| e.contains("rules/b.toml:3:")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("templates/ack.txt:1:")),
        "{errs:#?}"
    );
}

#[test]
fn loopback() {
    for (host, want) in [
        ("127.0.0.1", true),
        ("127.1.2.3", true),
        ("::1", true),
        ("[::1]", true),
        ("localhost", true),
        ("10.0.0.1", false),
        ("imap.example.com", false),
    ] {
        assert_eq!(is_loopback(host), want, "{host}");
    }
}

#[test]
fn sla_and_followups_are_read_and_checked_where_written() {
    let (_d, path) = setup(&format!(
        "{MINIMAL}
[sla]
timezone = \"Europe/Berlin\"
holidays = [\"2026-12-24\"]
[sla.hours]
sat = \"10:00-14:00\"
[sla.first_response]
urgent = \"1h\"
[followups]
survey = true
verify_after = \"2d\"
survey_url = \"https://survey.example.com/\"
[followups.hours]
sat = \"closed\"
"
    ));
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(c.sla.business_hours);
    assert_eq!(
        c.sla.first_response(Priority::Urgent),
        Duration::from_secs(3600)
    );
    assert_eq!(
        c.sla.first_response(Priority::Normal),
        Duration::from_secs(86_400)
    );
    assert_eq!(
        c.sla.next_response(Priority::Urgent),
        Duration::from_secs(3600)
    );
    assert_eq!(c.followups.enabled(), Followup::ALL);
    assert_eq!(c.followups.verify_after, Duration::from_secs(2 * 86_400));
    // Saturday 2026-11-28 11:00 in Berlin: business hours, not customer-facing hours.
    let sat = to_ts(1_795_860_000);
    assert_eq!(sat.to_string(), "2026-11-28T10:00:00Z");
    assert!(c.sla.calendar.is_open(sat));
    assert!(!c.followups.send_hours.is_open(sat));
    // Without [sla]: open around the clock, promises in hours.
    let (_d, path) = setup(MINIMAL);
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!c.sla.business_hours);
    assert_eq!(
        c.sla.promise(0, c.sla.first_response(Priority::High), 100),
        "within 8 hours"
    );
    assert_eq!(c.followups.enabled(), [Followup::Holding, Followup::Verify]);

    let errs = errors(&format!(
        "{MINIMAL}
[ack.reply_time]
urgent = \"2h\"
[sla]
timezone = \"Europe/Berln\"
holidays = [\"2026-13-01\"]
[sla.hours]
mon = \"17:00-09:00\"
[followups]
survey = true
survey_url = \"survey.example.com\"
"
    ));
    let joined = errs.join("\n");
    for want in [
        "CONFIG:21:10: [ack.reply_time] is now [sla.first_response]",
        "CONFIG:23:12: [sla] timezone: unknown time zone \"Europe/Berln\"; did you mean Europe/Berlin?",
        "CONFIG:24:13: [sla] holidays[0]:",
        "CONFIG:26:7: [sla] hours.mon:",
        "CONFIG:29:14: survey_url must be an http(s) link",
    ] {
        assert!(joined.contains(want), "{want:?} not in:\n{joined}");
    }
}

#[test]
fn a_followup_without_its_templates_says_how_to_fix_it() {
    let (d, path) = setup(MINIMAL);
    std::fs::remove_file(d.path().join("templates/verify.html")).expect("rm");
    let errs = Config::load(&path).expect_err("refused");
    let text = errs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("[followups] verify is on but")
            && text.contains("has no verify.html")
            && text.contains("set verify = false"),
        "{text}"
    );
}

#[test]
fn zero_targets_and_an_instant_resolution_check_are_refused() {
    let errs = errors(&format!(
        "{MINIMAL}
[sla]
timezone = \"UTC\"
[sla.next_response]
high = \"0s\"
[followups]
verify_after = \"0s\"
"
    ));
    let joined = errs.join("\n");
    assert!(
        joined.contains("[sla.next_response] high must be longer than zero"),
        "{joined}"
    );
    assert!(
        joined.contains("verify_after must be longer than zero"),
        "{joined}"
    );
}

#[test]
fn the_reply_due_time_follows_the_ticket() {
    use crate::tickets::State;
    let sla = SlaConfig::default();
    let h = 3600;
    // Not answered yet: first response (high: 8h) from the opening.
    assert_eq!(
        sla.response_due(State::Acknowledged, Priority::High, 0, 0, 0),
        Some(8 * h)
    );
    // Reopened after an answer: next response from the customer's last email.
    assert_eq!(
        sla.response_due(State::Reopened, Priority::High, 0, 2 * h, 5 * h),
        Some(13 * h)
    );
    // Waiting for the customer, or closed: no clock.
    assert_eq!(
        sla.response_due(State::Answered, Priority::High, 0, 2 * h, 0),
        None
    );
    assert_eq!(
        sla.response_due(State::Closed, Priority::Urgent, 0, 0, 0),
        None
    );
}

/// MINIMAL with a staff address, for digest and alert recipients.
fn with_staff(extra: &str) -> String {
    format!("{MINIMAL}staff = [\"lead@elsewhere.test\"]\n{extra}")
}

#[test]
fn digests_and_alerts_are_read() {
    let (_d, path) = setup(&with_staff(
        r#"
[sla]
timezone = "Europe/Berlin"

[[digest]]
name = "team"
to = ["lead@elsewhere.test", "ops@example.test"]
times = ["15:00", "09:00"]
days = ["mon", "fri"]
quiet_hours = "20:00-07:00"
intents = ["billing"]
priorities = ["urgent"]
repeat_count = 2

[[digest]]
name = "lead"
to = ["lead@elsewhere.test"]
times = ["08:00"]
timezone = "UTC"
send_empty = true

[alerts]
to = ["lead@elsewhere.test"]
intents = ["outage"]
max_per_hour = 3
[alerts.health]
no_mail_for = "4h"
"#,
    ));
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.digests.len(), 2);
    let team = &c.digests[0];
    assert_eq!(team.to, vec!["lead@elsewhere.test", "ops@example.test"]);
    assert_eq!(team.schedule.times.len(), 2);
    assert_eq!(
        team.schedule.days,
        [true, false, false, false, true, false, false]
    );
    assert_eq!(
        team.schedule.tz.iana_name(),
        Some("Europe/Berlin"),
        "the [sla] zone"
    );
    assert!(team.quiet.is_some() && !team.send_empty);
    assert_eq!(team.priorities, vec![Priority::Urgent]);
    assert_eq!(team.repeat_count, 2);
    assert_eq!(c.digests[1].schedule.tz.iana_name(), Some("UTC"));
    assert!(c.digests[1].send_empty);
    let a = c.alerts.expect("alerts");
    assert_eq!(a.max_per_hour, 3);
    assert_eq!(a.intents, vec!["outage"]);
    assert!(a.health.enabled);
    assert_eq!(a.health.no_mail_for, Some(Duration::from_secs(4 * 3600)));
    assert_eq!(a.health.after, Duration::from_secs(300));
}

#[test]
fn staff_mail_never_goes_to_customers_or_back_to_support() {
    let errs = errors(&with_staff(
        r#"
[[digest]]
name = "team"
to = ["customer@gmail.test", "support@example.test"]
times = ["9am"]
quiet_hours = "20:00"
priorities = ["critical"]

[[digest]]
name = "team"
to = []
times = ["09:00"]
days = ["someday"]

[alerts]
to = ["lead@elsewhere.test"]
max_per_hour = 0
timezone = "Europe/Berln"
"#,
    ));
    let text = errs.join("\n");
    for want in [
        "\"customer@gmail.test\" is not staff: add it to [support] staff",
        "\"support@example.test\" is a support address",
        "\"9am\" is not a time of day",
        "quiet_hours: \"20:00\" is not a window",
        "unknown priority \"critical\"",
        "a digest named \"team\" already exists",
        "to is empty",
        "unknown weekday \"someday\"",
        "max_per_hour must be at least 1",
        "did you mean Europe/Berlin",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // Each at its place in the file.
    assert!(
        errs.iter()
            .any(|e| e.starts_with("CONFIG:2") || e.starts_with("CONFIG:3")),
        "{text}"
    );
}

#[test]
fn staff_mail_without_its_templates_says_how_to_fix_it() {
    let (d, path) = setup(&with_staff("[alerts]\nto = [\"lead@elsewhere.test\"]\n"));
    std::fs::remove_file(d.path().join("templates/health.txt")).expect("rm");
    let text = Config::load(&path)
        .expect_err("refused")
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("[alerts.health] needs it but")
            && text.contains("has no health.txt: copy them from"),
        "{text}"
    );
}

/// MINIMAL with its `[mailbox]` as the first of two `[[mailbox]]` tables; `first` and `second`
/// are extra lines of each.
fn two_mailboxes(first: &str, second: &str) -> String {
    let second = format!(
        "\n[[mailbox]]\n{second}\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"billing@example.test\"\npassword_env = \"PW2\"\n"
    );
    MINIMAL
        .replace("[mailbox]\n", &format!("[[mailbox]]\n{first}\n"))
        .replace("\n[smtp]", &format!("{second}\n[smtp]"))
}

#[test]
fn one_mailbox_or_several() {
    // A lone [mailbox] is the mailbox "main", watching INBOX, receiving for the first support
    // address, answering From [smtp] from.
    let (_d, path) = setup(MINIMAL);
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.mailboxes.len(), 1);
    assert_eq!(c.mailbox().name, "main");
    assert_eq!(c.mailbox().folders, ["INBOX"]);
    assert_eq!(c.mailbox().address, "support@example.test");
    assert_eq!(c.mailbox().from, None);
    assert_eq!(c.mailbox().key("INBOX"), "INBOX");

    // [[mailbox]] twice: names, folder lists, addresses; the second's address becomes a
    // support address, and its folders are stored as NAME:FOLDER.
    let config = two_mailboxes(
        "name = \"main\"\nfolders = [\"INBOX\", \"Escalations\"]",
        "name = \"billing\"\naddress = \"Billing@Example.test\"\nfolder = \"Invoices\"\nsent_folder = \"Sent\"",
    );
    let (_d, path) = setup(&config);
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    let names: Vec<&str> = c.mailboxes.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["main", "billing"]);
    assert_eq!(
        c.mailbox().name,
        "main",
        "Config::mailbox() is the first of the list"
    );
    assert_eq!(c.mailbox().folders, ["INBOX", "Escalations"]);
    let billing = &c.mailboxes[1];
    assert_eq!(billing.username, "billing@example.test");
    assert_eq!(billing.folders, ["Invoices"]);
    assert_eq!(billing.sent_folder.as_deref(), Some("Sent"));
    assert_eq!(billing.address, "billing@example.test");
    assert_eq!(
        billing.from.as_ref().map(ToString::to_string).as_deref(),
        Some("Support <billing@example.test>"),
        "the mailbox address with [smtp] from's display name"
    );
    assert_eq!(c.mailbox().address, "support@example.test");
    assert_eq!(c.mailbox().from, None);
    assert_eq!(
        c.support.addresses,
        ["support@example.test", "billing@example.test"]
    );
    assert!(
        c.guard_config()
            .support_addresses
            .contains(&"billing@example.test".to_string())
    );
    assert_eq!(c.mailbox().key("Escalations"), "Escalations");
    assert_eq!(billing.key("Invoices"), "billing:Invoices");
    // And back: a key names its mailbox; a plain one is the first's.
    for (key, want) in [
        ("INBOX", "main"),
        ("billing:Invoices", "billing"),
        ("billing:Sent", "billing"),
        ("Escalations", "main"),
        ("Archive:2024", "main"),
    ] {
        let got = mailbox_of_key(&c.mailboxes, key).map(|m| m.name.as_str());
        assert_eq!(got, Some(want), "{key}");
    }

    // A single [[mailbox]] is as good as [mailbox]; its name is free.
    let config = MINIMAL.replace("[mailbox]\n", "[[mailbox]]\nname = \"desk\"\n");
    let (_d, path) = setup(&config);
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.mailboxes.len(), 1);
    assert_eq!(c.mailbox().name, "desk");
    assert_eq!(
        c.mailbox().key("INBOX"),
        "INBOX",
        "the first keeps plain names"
    );
}

#[test]
fn mailbox_problems_are_reported_where_written() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a second mailbox without a name",
            two_mailboxes("name = \"main\"", ""),
            "CONFIG:13:12: each [[mailbox]] needs a name when there are several",
        ),
        (
            "duplicate names",
            two_mailboxes("name = \"main\"", "name = \"main\""),
            "CONFIG:10:8: name = \"main\" is used by another [[mailbox]]",
        ),
        (
            "a name that is not lower-case letters and digits",
            two_mailboxes("name = \"main\"", "name = \"Billing Desk\""),
            "CONFIG:10:8: name = \"Billing Desk\": use lower-case letters, digits, '-' and '_'",
        ),
        (
            "folder and folders",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nfolder = \"INBOX\"\nfolders = [\"INBOX\", \"Escalations\"]",
            ),
            "CONFIG:8:11: [mailbox] has both folder and folders: keep one",
        ),
        (
            "no folders",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nfolders = []",
            ),
            "CONFIG:7:11: folders is empty",
        ),
        (
            "a folder twice",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nfolders = [\"INBOX\", \"INBOX\"]",
            ),
            "CONFIG:7:21: folder \"INBOX\" is listed twice",
        ),
        (
            "a bad address",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\naddress = \"billing\"",
            ),
            "CONFIG:7:11: \"billing\" is not an email address",
        ),
        (
            "a first-mailbox folder that reads like another mailbox's",
            two_mailboxes(
                "name = \"main\"\nfolder = \"billing:INBOX\"",
                "name = \"billing\"",
            ),
            "CONFIG:4:10: folder \"billing:INBOX\" of the first mailbox reads like a folder of the mailbox named \"billing\"",
        ),
        (
            "a typo in a [[mailbox]] is still a typo, where it was made",
            two_mailboxes("name = \"main\"", "name = \"billing\"\nfolder_ = \"x\""),
            "CONFIG:11:1: unknown field `folder_`",
        ),
        (
            "a typo in a lone [mailbox]",
            MINIMAL.replace(
                "password_env = \"PW\"",
                "password_env = \"PW\"\nfolderz = \"x\"",
            ),
            "CONFIG:7:1: unknown field `folderz`",
        ),
        (
            "a mailbox address as a digest recipient",
            format!(
                "{}\n[[digest]]\nname = \"d\"\nto = [\"billing@example.test\"]\ntimes = [\"09:00\"]\n",
                two_mailboxes(
                    "name = \"main\"",
                    "name = \"billing\"\naddress = \"billing@example.test\""
                )
            ),
            "CONFIG:31:7: [[digest]] \"d\" to = \"billing@example.test\" is a support address",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, config, want) in cases {
        let errs = errors(&config);
        if !errs.iter().any(|e| e.starts_with(want)) {
            wrong.push(format!("{name}: want {want:?}, got {errs:#?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_digest_lists_at_most_500_per_section() {
    let digest =
        "[[digest]]\nname = \"team\"\nto = [\"lead@elsewhere.test\"]\ntimes = [\"09:00\"]\n";
    let (_d, path) = setup(&with_staff(&format!("{digest}max_per_section = 500\n")));
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.digests[0].max_per_section, 500);
    for bad in ["0", "100000"] {
        let errs = errors(&with_staff(&format!("{digest}max_per_section = {bad}\n")));
        assert!(
            errs.iter().any(|e| e.starts_with("CONFIG:")
                && e.contains(&format!(
                    ":19: [[digest]] \"team\": max_per_section = {bad} is outside 1 to 500"
                ))),
            "{errs:?}"
        );
    }
}

/// Each problem with the test directory's path cut: `DIR/triaged.toml:3:1: ...`.
fn problems(dir: &Path, path: &Path) -> Vec<String> {
    Config::load(path)
        .expect_err("config must be refused")
        .iter()
        .map(|e| e.to_string().replace(&dir.display().to_string(), "DIR"))
        .collect()
}

#[test]
fn every_unknown_key_of_a_file_is_reported_in_order() {
    // Typos in [mailbox], [store] (two, the later one first alphabetically, as the parsed
    // table holds them), an inline rate limit, a nested table, a [[digest]], a whole table.
    let config = MINIMAL
        .replace(
            "password_env = \"PW\"",
            "password_env = \"PW\"\nfolderz = \"x\"",
        )
        .replace("[store]", "[store]\nzpath = 1\napath = 2")
        .replace(
            "from = \"Support <support@example.test>\"",
            "from = \"Support <support@example.test>\"\nrate_limits = [{ max = 1, per = \"1m\", burst = 2 }]",
        )
        + "\n[sla]\ntimezone = \"UTC\"\n[sla.first_response]\nurgnet = \"1h\"\n\
           \n[[digest]]\nname = \"d\"\nto = [\"lead@example.test\"]\ntimes = [\"09:00\"]\nsend_emtpy = true\n\
           \n[storee]\npath = \"x\"\n";
    let (d, path) = setup(&config);
    let got = problems(d.path(), &path);
    let want = [
        "DIR/triaged.toml:7:1: unknown field `folderz`, expected one of `name`, `address`, `host`",
        "DIR/triaged.toml:13:39: unknown field `burst`, expected `max` or `per`",
        "DIR/triaged.toml:16:1: unknown field `zpath`, expected one of `path`, `busy_timeout`, `keep_text`",
        "DIR/triaged.toml:17:1: unknown field `apath`, expected one of `path`, `busy_timeout`, `keep_text`",
        "DIR/triaged.toml:27:1: unknown field `urgnet`, expected one of `urgent`, `high`, `normal`, `low`",
        "DIR/triaged.toml:33:1: unknown field `send_emtpy`, expected one of `name`, `to`, `times`",
        "DIR/triaged.toml:35:2: unknown field `storee`, expected one of `mailbox`, `smtp`, `store`",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (got, want) in got.iter().zip(want) {
        assert!(got.starts_with(want), "want {want:?}\n got {got:?}");
    }
}

#[test]
fn problems_in_several_files_are_sorted_by_file_and_line() {
    // [flags] is written first but checked late; rules and templates are checked between the
    // config's sections; a threshold problem has no line. Sorted: by file (rules/, templates/,
    // triaged.toml), then by line, the whole-file problem first.
    let config = format!(
        "[flags.priority_keywords]\nurgent = \"very urgent\"\n{}\n[scoring.thresholds]\nhigh = 9.0\n",
        MINIMAL.replace(
            "password_env = \"PW\"",
            "password_env = \"PW\"\nstart = \"yesterday\""
        )
    );
    let (d, path) = setup(&config);
    std::fs::write(
        d.path().join("rules/b.toml"),
        "[[rule]]\nid = \"bad\"\nregex = \"(unclosed\"\nweight = 1.0\n",
    )
    .expect("write");
    std::fs::write(d.path().join("templates/ack.txt"), "Hi {{ customer_name ").expect("write");
    let got = problems(d.path(), &path);
    let want = [
        "DIR/rules/b.toml:3:",
        "DIR/templates/ack.txt:1:",
        "DIR/triaged.toml: [scoring.thresholds] must satisfy urgent >= high >= normal",
        "DIR/triaged.toml:2:10: \"very urgent\" is not a valid IMAP keyword",
        "DIR/triaged.toml:9:9: unknown start \"yesterday\"",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (got, want) in got.iter().zip(want) {
        assert!(got.starts_with(want), "want {want:?}\n got {got:?}");
    }
}

/// The walk knows every table: a key added to any table of the example config (which shows
/// every table) is reported by it, where it was written, and the example has none of its own.
/// A table whose struct is missing from `raw::shape` fails here.
#[test]
fn every_table_of_the_example_is_walked() {
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/triaged.toml"))
            .expect("read the example");
    let unknown = |source: &str| {
        let doc = toml::de::DeTable::parse(source).expect("the example parses");
        raw::shape().unknown_keys(Path::new("x.toml"), source, doc.get_ref())
    };
    assert_eq!(unknown(&example), vec![]);
    let lines: Vec<&str> = example.lines().collect();
    // Their keys are the operator's (days of the week), checked by the calendar.
    let free = ["[sla.hours]", "[followups.hours]"];
    let mut walked = 0;
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with('[') || free.contains(line) {
            continue;
        }
        let mut edited = lines.clone();
        edited.insert(i + 1, "bogus_key = 1");
        let got: Vec<String> = unknown(&edited.join("\n"))
            .iter()
            .map(ToString::to_string)
            .collect();
        let want = format!("x.toml:{}:1: unknown field `bogus_key`", i + 2);
        assert!(
            got.len() == 1 && got[0].starts_with(&want),
            "{line}: {got:?}"
        );
        walked += 1;
    }
    assert!(walked >= 15, "{walked} tables");
}

/// Rules with the intents the team tests route on.
const ROUTE_RULES: &str = r#"
[[rule]]
id = "charged-twice"
keywords = ["charged twice"]
weight = 3.0
intent = "billing"

[[rule]]
id = "down"
keywords = ["down"]
weight = 5.0
intent = "outage"
"#;

#[test]
fn teams_and_questions_are_read() {
    let (d, path) = setup(&with_staff(
        r#"
[[team]]
name = "billing"
description = "our billing specialists, who can check the charges on your account"
staff = ["lead@elsewhere.test"]
rules = ["charged-twice"]
intents = ["billing"]
folder = "Teams/Billing"
folder_mode = "copy"
alert_to = ["lead@elsewhere.test"]

[[team]]
name = "general"
description = "our support team"
staff = ["lead@elsewhere.test"]
default = true

[[ask]]
id = "invoice"
question = "Could you send {{ team_description }} the invoice or order number?"
intents = ["billing"]
unless = ['(?i)\binvoice\s*\d+']

[[digest]]
name = "billing"
to = ["lead@elsewhere.test"]
times = ["09:00"]
teams = ["billing"]

[alerts]
to = ["lead@elsewhere.test"]
"#,
    ));
    std::fs::write(d.path().join("rules/a.toml"), ROUTE_RULES).expect("write");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    let r = &c.routing;
    assert_eq!(r.teams.len(), 2);
    let billing = r.team("billing").expect("billing");
    assert_eq!(billing.rules, ["charged-twice"]);
    assert_eq!(
        billing.folder,
        Some(crate::route::TeamFolder {
            name: "Teams/Billing".into(),
            copy: true
        })
    );
    assert_eq!(billing.alert_to, ["lead@elsewhere.test"]);
    assert!(r.team("general").expect("general").default);
    assert_eq!(r.asks.len(), 1);
    assert_eq!(c.digests[0].teams, ["billing"]);
}

#[test]
fn team_and_question_problems_are_reported_where_written() {
    let (d, path) = setup(&with_staff(
        r#"
[[team]]
name = "billing"
description = "our billing specialists"
staff = []
intents = ["biling"]
rules = ["no-such-rule"]
default = true

[[team]]
name = "Tech Team"
description = "our engineers"
staff = ["customer@gmail.test"]
default = true
folder_mode = "shove"

[[ask]]
id = "invoice"
question = "Could you send the {{ invoice_number }}?"
teams = ["billnig"]
unless = ['(unclosed']

[[ask]]
id = "nothing"
question = "{% if %}"

[[digest]]
name = "d"
to = ["lead@elsewhere.test"]
times = ["09:00"]
teams = ["sales"]
"#,
    ));
    std::fs::write(d.path().join("rules/a.toml"), ROUTE_RULES).expect("write");
    let errs: Vec<String> = Config::load(&path)
        .expect_err("refused")
        .iter()
        .map(|e| e.to_string().replace(&path.display().to_string(), "CONFIG"))
        .collect();
    let has = |at: &str, words: &str| {
        assert!(
            errs.iter().any(|e| e.starts_with(at) && e.contains(words)),
            "no {at} {words:?} in {errs:#?}"
        );
    };
    let line = |n: usize| format!("CONFIG:{}:", n + 19);
    // Line numbers within the extra text, after MINIMAL and its staff line.
    has(&line(3), "has no staff");
    has(
        &line(6),
        "no rule has intent \"biling\" (the rules give: billing, outage)",
    );
    has(&line(7), "no rule has rule \"no-such-rule\"");
    has(&line(11), "team name must be 1 to 40 lower-case");
    has(&line(13), "\"customer@gmail.test\" is not staff");
    has(&line(14), "is the default team already");
    has(&line(15), "folder_mode \"shove\": use \"move\" or \"copy\"");
    has(&line(15), "folder_mode without folder");
    has(&line(19), "question does not render");
    has(
        &line(20),
        "no [[team]] is named \"billnig\" (teams: billing)",
    );
    has(&line(21), "unless pattern does not compile");
    has(&line(24), "applies to nothing");
    has(&line(25), "question does not render");
    has(&line(31), "no [[team]] is named \"sales\"");
    assert!(
        !errs.iter().any(|e| e.contains("alert_to")),
        "no team has alert_to"
    );
}

/// A verdict with these intents and nothing else (what routing and questions read).
fn with_intents(intents: &[&str]) -> crate::score::Verdict {
    crate::score::Verdict {
        score: 1.0,
        priority: Priority::Normal,
        tones: Vec::new(),
        intents: intents.iter().map(|s| s.to_string()).collect(),
        hits: Vec::new(),
        caps: Vec::new(),
        evidence: Vec::new(),
    }
}

#[test]
fn the_example_routes_to_its_teams() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/triaged.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    let cases: &[(&[&str], &str)] = &[
        (&["billing"], "billing"),
        (&["refund"], "billing"),
        (&["outage"], "technical"),
        (&["data-loss"], "technical"),
        (&["access"], "technical"),
        // An outage that stops customers paying: the team written first.
        (&["billing", "outage"], "technical"),
        (&["cancel"], "care"),
        (&["churn-risk"], "care"),
        (&[], "care"),
    ];
    for (intents, team) in cases {
        let routed = c
            .routing
            .route(&with_intents(intents), &c.rules)
            .unwrap_or_else(|| panic!("{intents:?}: no team"));
        assert_eq!(routed.team, *team, "{intents:?}: {}", routed.reason);
    }
    // Every team's staff is listed in [support] staff, so their own mail is known as staff's
    // (validation would also take any address at a support address's domain).
    for t in &c.routing.teams {
        assert!(
            t.staff.iter().all(|s| c.support.staff.contains(s)),
            "{}: {:?}",
            t.name,
            t.staff
        );
    }
}

#[test]
fn the_example_questions_are_asked_only_when_the_email_lacks_the_answer() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/triaged.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    // (intent, what the customer wrote, asked?)
    let cases: &[(&str, &str, bool)] = &[
        // The invoice or order number.
        ("billing", "I was charged twice this month.", true),
        (
            "billing",
            "My card statement shows two payments of 49.00 EUR on 28 November.",
            true,
        ),
        ("refund", "I want my money back for my last order.", true),
        (
            "refund",
            "I placed an order from 2023 and never got it, please refund.",
            true,
        ),
        ("billing", "The invoice dated 03/03/2026 is wrong.", true),
        ("billing", "You billed me 3 times for the same thing.", true),
        ("billing", "Order 3 weeks ago, charged twice.", true),
        ("billing", "Charged twice for invoice 2026-1183", false),
        ("billing", "Invoice no. 4711 shows the wrong amount.", false),
        (
            "billing",
            "invoice number INV-20417 was charged twice",
            false,
        ),
        ("refund", "Please refund order #A1B2C3.", false),
        ("refund", "My order number is 113-4567890-1234567.", false),
        ("refund", "Order ID: 88231", false),
        ("billing", "Receipt #99812 attached.", false),
        ("billing", "About INV20417: the VAT is missing.", false),
        ("billing", "The booking reference is ABC-12345.", false),
        ("billing", "I paid the invoice\n2026-1183 twice.", false),
        // Since when (and what they were doing).
        ("outage", "The dashboard is down.", true),
        (
            "outage",
            "Every checkout ends in a 502 error and none of our customers can pay.",
            true,
        ),
        (
            "outage",
            "Since this is urgent, please call me on +49 30 1234567.",
            true,
        ),
        (
            "outage",
            "Since you changed the layout nothing loads.",
            true,
        ),
        (
            "outage",
            "Error 503 on every page for all 500 of our users.",
            true,
        ),
        (
            "outage",
            "We are losing 12.50 EUR a minute, version 2.10 is affected.",
            true,
        ),
        ("outage", "It may be down for everyone.", true),
        ("outage", "The site has been down since 9.", false),
        ("outage", "Down since yesterday!", false),
        ("outage", "Ever since Monday the app crashes.", false),
        ("outage", "It crashes since the update.", false),
        ("outage", "It has been down since about 07:30.", false),
        ("outage", "The API is down this morning.", false),
        ("outage", "It went down last night.", false),
        ("outage", "It crashed at 7:30 and again at 9.", false),
        ("outage", "Nothing loads from around 9am.", false),
        ("outage", "It has been broken since Tuesday.", false),
        ("outage", "It was down on Friday too.", false),
        ("outage", "The outage started on 28 November.", false),
        ("outage", "Down since Dec 3rd.", false),
        ("outage", "Unreachable since 2026-12-01.", false),
        ("outage", "It went down two hours ago.", false),
        (
            "outage",
            "The site has been down for the last 3 hours.",
            false,
        ),
        ("outage", "It has been down for a few days now.", false),
        ("outage", "The app was down all day.", false),
        ("outage", "It stopped working when I clicked Pay.", false),
        ("outage", "Everything crashes after the upgrade.", false),
        ("outage", "Down over the weekend.", false),
        // The address they sign in with.
        ("access", "I can't log in to my account.", true),
        (
            "access",
            "My email address changed last week and now I am locked out.",
            true,
        ),
        (
            "access",
            "I wrote to @support on Twitter but I still cannot log in.",
            true,
        ),
        (
            "access",
            "I can't log in as ada.lovelace+shop@example.co.uk.",
            false,
        ),
        ("access", "Locked out. Username: ada_l", false),
    ];
    let asked = |intent: &str| match intent {
        "billing" | "refund" => "invoice-number",
        "outage" => "since-when",
        "access" => "sign-in-address",
        other => panic!("no question for {other}"),
    };
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(intent, text, want)| {
            let qs = c.routing.questions(&with_intents(&[intent]), None, text);
            qs.iter().any(|a| a.id == asked(intent)) != *want
        })
        .map(|(intent, text, want)| {
            format!(
                "{intent} {text:?}: {}",
                if *want { "not asked" } else { "asked" }
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn a_team_alert_address_without_alerts_is_refused() {
    let (d, path) = setup(&with_staff(
        r#"
[[team]]
name = "billing"
description = "our billing specialists"
staff = ["lead@elsewhere.test"]
alert_to = ["lead@elsewhere.test"]
"#,
    ));
    std::fs::write(d.path().join("rules/a.toml"), ROUTE_RULES).expect("write");
    let errs = Config::load(&path).expect_err("refused");
    assert!(
        errs.iter().any(|e| e
            .to_string()
            .contains("has alert_to, but there is no [alerts] section")),
        "{errs:?}"
    );
}

/// A team folder that the daemon watches (INBOX, as the server spells it in any case, or the
/// Sent folder) would hand filed email back to it: refused where written.
#[test]
fn a_team_folder_that_is_watched_is_refused() {
    for (folder, extra) in [("inbox", ""), ("Sent", "sent_folder = \"Sent\"\n")] {
        let config = with_staff(&format!(
            "[[team]]\nname = \"billing\"\ndescription = \"our billing specialists\"\n\
             staff = [\"lead@elsewhere.test\"]\nfolder = \"{folder}\"\n"
        ))
        .replacen("[mailbox]\n", &format!("[mailbox]\n{extra}"), 1);
        let (d, path) = setup(&config);
        std::fs::write(d.path().join("rules/a.toml"), ROUTE_RULES).expect("write");
        let errs = Config::load(&path).expect_err("refused");
        assert!(
            errs.iter().any(|e| {
                let e = e.to_string();
                e.contains(&format!(
                    "folder \"{folder}\" is a folder the daemon watches"
                )) && e.starts_with(&path.display().to_string())
            }),
            "{errs:?}"
        );
    }
}
