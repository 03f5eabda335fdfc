//! `triaged tune --store` on the real stack: the daemon triages nine emails; staff, in their
//! own IMAP client, re-flag the three invoice questions `triage/low` (the rules said normal:
//! the `billing` rule only names an intent). The corrections are in the store; `tune --store`
//! prints the figures, the rules that change and the emails that would move — the invoice
//! questions to staff's `low` — and writes nothing; with `--out` it writes a weights file the
//! config includes and `triaged check` accepts, with which `triaged explain` (the rule
//! engine itself) gives the priorities the report said; the stored verdicts stay as they were.
//! With `--learn` it also writes phrases learned from the customers' words the store kept.

use std::time::Duration;

use crate::common::MailStack;
use crate::daemon::{Daemon, DaemonConfig, cli, count, customer_email, wait_until};

const WAIT: Duration = Duration::from_secs(30);
const SUPPORT: &str = "support@example.test";

/// Nine customers' emails: (Message-ID, subject, body).
fn emails() -> Vec<(String, &'static str, &'static str)> {
    let mut out = Vec::new();
    for i in 0..3 {
        out.push((
            format!("down{i}@customer.example.test"),
            "Our shop is down",
            "The checkout is down since this morning, customers cannot pay. Please fix this urgently.",
        ));
        out.push((
            format!("invoice{i}@customer.example.test"),
            "Invoice copy",
            "Hello, could you send me a copy of my invoice from March? Thanks, Ana",
        ));
        out.push((
            format!("address{i}@customer.example.test"),
            "Account address",
            "Hello, how do I change the email address of my account? Thanks, Ben",
        ));
    }
    out
}

/// The files in the config's directory (the store's WAL files aside).
fn files(cfg: &DaemonConfig) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cfg.dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("triaged.sqlite"))
        .collect();
    names.sort();
    names
}

/// A number in the report's line that starts with `prefix`, before `word`.
fn number_before(text: &str, prefix: &str, word: &str) -> usize {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?}:\n{text}"));
    let at = line
        .find(word)
        .unwrap_or_else(|| panic!("{word:?} not in {line:?}"));
    line[..at]
        .split(|c: char| !c.is_ascii_digit())
        .rev()
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no number before {word:?} in {line:?}"))
}

/// A daemon (no acknowledgements, the slow keyword re-read off) that has triaged and flagged
/// [`emails`], each from its own customer.
fn start_with_the_emails(stack: &MailStack) -> (DaemonConfig, Daemon) {
    let cfg = DaemonConfig::of(stack)
        .set("flags", "corrections_interval", "1h")
        .set("ack", "enabled", false)
        .own_rules_and_templates()
        .write();
    let d = Daemon::start(&cfg);
    let raw: Vec<Vec<u8>> = emails()
        .iter()
        .map(|(id, subject, body)| {
            let from = id.replace('@', ".from@");
            customer_email(&from, id, subject, body)
        })
        .collect();
    stack.deliver_many(SUPPORT, &raw);
    assert!(
        wait_until(WAIT, || count(
            &cfg,
            "SELECT count(*) FROM messages WHERE status = 'triaged' AND flags_state = 'done'"
        ) == 9),
        "{}",
        d.log_text()
    );
    (cfg, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_store_shows_what_staffs_corrections_would_change_and_writes_only_when_asked() {
    let stack = MailStack::start();
    let (cfg, mut d) = start_with_the_emails(&stack);
    assert_eq!(
        count(
            &cfg,
            "SELECT count(*) FROM messages WHERE subject = 'Invoice copy' AND priority = 'normal'"
        ),
        3,
        "the rules call an invoice question normal"
    );

    // Staff re-flag the invoice questions low, in one UID STORE each way.
    let inbox = stack.fetch_all(SUPPORT, "INBOX").await;
    let invoices: Vec<String> = inbox
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.raw).contains("Message-ID: <invoice"))
        .map(|m| m.uid.to_string())
        .collect();
    assert_eq!(invoices.len(), 3);
    let set = invoices.join(",");
    let replies = stack.imap_raw(
        SUPPORT,
        &[
            "SELECT INBOX",
            &format!("UID STORE {set} -FLAGS (triage/normal)"),
            &format!("UID STORE {set} +FLAGS (triage/low)"),
        ],
    );
    for r in &replies {
        assert!(r.last().is_some_and(|l| l.contains(" OK ")), "{replies:?}");
    }
    assert!(
        wait_until(WAIT, || count(
            &cfg,
            "SELECT count(*) FROM corrections WHERE new_value = 'low' AND undone_at = 0"
        ) == 3),
        "{}",
        d.log_text()
    );

    // The report, and nothing written.
    let before = files(&cfg);
    let (code, text, err) = cli(&cfg, &["tune", "--store", "--since", "1d", "--folds", "3"]);
    assert_eq!(code, 0, "{text}{err}");
    eprintln!("{text}");
    assert!(
        text.contains("9 emails from customers")
            && text.contains("staff corrected the priority of 3"),
        "{text}"
    );
    assert!(text.contains("weight 0.3, --weak"), "{text}");
    assert!(text.contains("rules, configured weights"), "{text}");
    assert!(
        text.contains("Rules that gain or lose weight most"),
        "{text}"
    );
    let billing = text
        .lines()
        .find(|l| l.trim_start().starts_with("billing "))
        .unwrap_or_else(|| panic!("billing changes:\n{text}"));
    let change: f64 = billing
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{billing}"));
    assert!(change < 0.0, "billing loses weight: {billing}");
    let to_label = number_before(&text, "Emails that would move", "to their label");
    assert_eq!(
        to_label, 3,
        "the invoice questions move to staff's low:\n{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("normal -> low")
                && l.contains("staff: low")
                && l.contains("Invoice copy"))
            .count(),
        3,
        "{text}"
    );
    assert!(text.contains("Nothing written."), "{text}");
    assert_eq!(files(&cfg), before, "tune --store wrote nothing");
    let (_, again, _) = cli(&cfg, &["tune", "--store", "--since", "1d", "--folds", "3"]);
    assert_eq!(again, text, "the same store, the same report");

    // With --out: a weights file, which the config includes and check accepts; the daemon
    // still runs on its own rules until it reloads.
    let weights = cfg.dir.path().join("weights.toml");
    let (code, text, err) = cli(
        &cfg,
        &[
            "tune",
            "--store",
            "--since",
            "1d",
            "--folds",
            "3",
            "--out",
            weights.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(code, 0, "{text}{err}");
    let file = std::fs::read_to_string(&weights).expect("weights written");
    assert!(
        file.contains("[thresholds]") && file.contains("\nbilling = -"),
        "{file}"
    );
    assert!(file.contains("from the store"), "{file}");
    let config = std::fs::read_to_string(&cfg.path).expect("config");
    let with = config.replacen(
        "[scoring]\n",
        &format!("[scoring]\nweights = {:?}\n", weights.display().to_string()),
        1,
    );
    assert_ne!(with, config, "the config has a [scoring] table");
    std::fs::write(&cfg.path, with).expect("write config");
    let (code, out, err) = cli(&cfg, &["check"]);
    assert_eq!(code, 0, "{out}{err}");
    // The rule engine with the file does what the report said: the invoice questions are
    // low, the others keep their priority.
    for ((id, subject, body), want) in emails().iter().zip(["urgent", "low", "normal"]) {
        let eml = cfg.dir.path().join("m.eml");
        std::fs::write(
            &eml,
            customer_email("x@customer.example.test", id, subject, body),
        )
        .expect("write");
        let (code, out, err) = cli(&cfg, &["explain", eml.to_str().expect("utf-8 path")]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("priority {want} "))),
            "{subject}: {want}?\n{out}"
        );
    }
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM messages WHERE priority = 'low'"),
        0,
        "the stored verdicts are as they were"
    );
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log_text());

    // With --learn: phrases from the customers' words the store kept, fitted beside the
    // weights, written as a rules file that loads with the pack; no email leaves the priority
    // staff gave or left it, and the engine with both files gives the invoice questions low.
    let learned = cfg.rules().join("learned-priority.toml");
    let (code, text, err) = cli(
        &cfg,
        &[
            "tune",
            "--store",
            "--since",
            "1d",
            "--folds",
            "3",
            "--out",
            weights.to_str().expect("utf-8 path"),
            "--learn",
            learned.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(code, 0, "{text}{err}");
    eprintln!("{text}");
    assert!(
        text.contains("9 of 9 emails with their first 4 KB") && text.contains("learned phrases: "),
        "{text}"
    );
    assert_eq!(
        number_before(&text, "Emails that would move", "away from it"),
        0,
        "{text}"
    );
    let rules = std::fs::read_to_string(&learned).expect("learned file");
    assert!(rules.contains("keywords = [\"invoice\"]"), "{rules}");
    assert!(rules.contains("from the store"), "{rules}");
    let (code, out, err) = cli(&cfg, &["check"]);
    assert_eq!(code, 0, "{out}{err}");
    let (id, subject, body) = &emails()[1];
    let eml = cfg.dir.path().join("m.eml");
    std::fs::write(
        &eml,
        customer_email("x@customer.example.test", id, subject, body),
    )
    .expect("write");
    let (_, out, _) = cli(&cfg, &["explain", eml.to_str().expect("utf-8 path")]);
    assert!(
        out.contains("learned.priority.") && out.lines().any(|l| l.starts_with("priority low ")),
        "{out}"
    );
}

/// `tune --store --tone` on the real stack: the rules give none of the nine emails a tone;
/// staff, in their IMAP client, add `tone/angry` to the three about the shop being down. The
/// corrections are in the store; `tune --store --tone angry` prints the figures, the rules
/// that gain evidence for angry and the three emails whose tone would change to staff's, and
/// writes nothing; `--out` is refused (tones are no weights); with `--learn` it writes tone
/// rules that `triaged check` accepts and with which `triaged explain` gives the shop-down
/// email the tone angry and the invoice question none. With `[store] keep_text = false`,
/// `--learn` refuses in one line that names the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_store_tone_fits_staffs_tone_corrections_and_writes_tone_rules_only_when_asked() {
    let stack = MailStack::start();
    let (cfg, mut d) = start_with_the_emails(&stack);
    assert_eq!(
        count(&cfg, "SELECT count(*) FROM messages WHERE tones != ''"),
        0,
        "the rules give these emails no tone"
    );

    // Staff mark the shop-down emails angry, in one UID STORE.
    let inbox = stack.fetch_all(SUPPORT, "INBOX").await;
    let down: Vec<String> = inbox
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.raw).contains("Message-ID: <down"))
        .map(|m| m.uid.to_string())
        .collect();
    assert_eq!(down.len(), 3);
    let replies = stack.imap_raw(
        SUPPORT,
        &[
            "SELECT INBOX",
            &format!("UID STORE {} +FLAGS (tone/angry)", down.join(",")),
        ],
    );
    for r in &replies {
        assert!(r.last().is_some_and(|l| l.contains(" OK ")), "{replies:?}");
    }
    assert!(
        wait_until(WAIT, || count(
            &cfg,
            "SELECT count(*) FROM corrections WHERE field = 'tone' AND new_value = 'angry' AND undone_at = 0"
        ) == 3),
        "{}",
        d.log_text()
    );
    assert_eq!(d.terminate().code(), Some(0), "{}", d.log_text());

    // The report, and nothing written.
    let before = files(&cfg);
    let tone = [
        "tune", "--store", "--since", "1d", "--folds", "3", "--tone", "angry",
    ];
    let (code, text, err) = cli(&cfg, &tone);
    assert_eq!(code, 0, "{text}{err}");
    eprintln!("{text}");
    assert!(
        text.contains("9 emails from customers") && text.contains("staff corrected the tones of 3"),
        "{text}"
    );
    assert!(
        text.contains("9 emails fitted, 3 with the tone") && text.contains("weight 0.3, --weak"),
        "{text}"
    );
    assert!(text.contains("tone rules, configured"), "{text}");
    assert!(
        text.contains("Rules that gain or lose evidence most"),
        "{text}"
    );
    let gains = text
        .lines()
        .skip_while(|l| !l.starts_with("Rules that gain"))
        .skip(2)
        .take_while(|l| l.starts_with("  ") && !l.contains("learned phrases"))
        .filter(|l| {
            l.split_whitespace()
                .nth(3)
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|c| c > 0.0)
        })
        .count();
    assert!(gains > 0, "some rule gains evidence for angry:\n{text}");
    assert_eq!(
        number_before(&text, "Emails whose tone would change", "to their label"),
        3,
        "the shop-down emails become angry, as staff said:\n{text}"
    );
    assert_eq!(
        number_before(&text, "Emails whose tone would change", "away from it"),
        0,
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("not-angry -> angry")
                && l.contains("staff: angry")
                && l.contains("Our shop is down"))
            .count(),
        3,
        "{text}"
    );
    assert!(text.contains("Nothing written."), "{text}");
    assert_eq!(files(&cfg), before, "tune --store --tone wrote nothing");
    let (_, again, _) = cli(&cfg, &tone);
    assert_eq!(again, text, "the same store, the same report");

    // --out: tones are labels, not weights.
    let weights = cfg.dir.path().join("weights.toml");
    let (code, out, err) = cli(
        &cfg,
        &[&tone[..], &["--out", weights.to_str().expect("utf-8 path")]].concat(),
    );
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("tone mode writes no weights file"), "{err}");
    assert!(!weights.exists());

    // --learn: tone rules (over the pack's rules, and phrases) that check accepts and the
    // rule engine reads.
    let learned = cfg.rules().join("learned-angry.toml");
    let learn = [
        &tone[..],
        &["--learn", learned.to_str().expect("utf-8 path")],
    ]
    .concat();
    let (code, text, err) = cli(&cfg, &learn);
    assert_eq!(code, 0, "{text}{err}");
    eprintln!("{text}");
    assert!(
        text.contains("9 of 9 emails with their first 4 KB") && text.contains("learned phrases: "),
        "{text}"
    );
    let rules = std::fs::read_to_string(&learned).expect("learned file");
    assert!(
        rules.contains("tone = \"angry\"") && rules.contains("from the store"),
        "{rules}"
    );
    let (code, out, err) = cli(&cfg, &["check"]);
    assert_eq!(code, 0, "{out}{err}");
    for (n, want) in [(0, true), (1, false)] {
        let (id, subject, body) = &emails()[n];
        let eml = cfg.dir.path().join("m.eml");
        std::fs::write(
            &eml,
            customer_email("x@customer.example.test", id, subject, body),
        )
        .expect("write");
        let (_, out, _) = cli(&cfg, &["explain", eml.to_str().expect("utf-8 path")]);
        let tone_line = out
            .lines()
            .find(|l| l.starts_with("tone "))
            .unwrap_or_else(|| panic!("{out}"));
        assert_eq!(tone_line.contains("angry"), want, "{subject}:\n{out}");
    }

    // A store that keeps no words: --learn refuses, naming the switch.
    std::fs::remove_file(&learned).expect("remove");
    let config = std::fs::read_to_string(&cfg.path).expect("config");
    let without = config.replacen("[store]\n", "[store]\nkeep_text = false\n", 1);
    assert_ne!(without, config, "the config has a [store] table");
    std::fs::write(&cfg.path, without).expect("write config");
    let (code, out, err) = cli(&cfg, &learn);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("[store] keep_text = false") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(!learned.exists());
}
