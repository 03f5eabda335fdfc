//! Golden files for the acknowledgement a customer receives (issue 17): each
//! `tests/golden/acks/NAME.eml` goes the daemon's own way — the shipped config/triaged.toml
//! (its teams and questions) and rule pack, `Pipeline::process` into a real SQLite store (parse,
//! guard, score, route, questions, the outbox row), `Store::claim_next_due`, `Outbox::compose`
//! with the shipped templates — and the text and HTML parts of the composed email, read back
//! with a MIME parser, must equal `NAME.txt` and `NAME.html` beside it, byte for byte. So a
//! change to a template, a rule, a team, a question or the routing that changes what a
//! customer reads fails here. On a mismatch the actual part is written to `NAME.actual.txt` /
//! `NAME.actual.html` and the test fails with the `diff -u` to run. When the change is meant,
//! bless it: `TRIAGED_BLESS=1 cargo test --test it acks_golden` (review with `git diff`).
//!
//! The config is the shipped one with two changes: no `[sla]` (nor `[followups.hours]`, which
//! needs its time zone; the promise then reads
//! "within 2 hours" or "within 1 day" whatever the day and hour the test runs; business hours would name a
//! weekday), and for the case without teams, no `[[team]]` and no `[[ask]]`.

use std::path::{Path, PathBuf};

use triaged::clock::Clock;
use triaged::config::Config;
use triaged::outbox::Outbox;
use triaged::pipeline::{Fetched, Pipeline};
use triaged::store::Store;

/// Where the fixtures are, relative to the repository.
const DIR: &str = "tests/golden/acks";

/// Each case: the fixture's name, and whether the config has the shipped teams and questions.
const CASES: &[(&str, bool)] = &[
    // Billing team, asks for the invoice number.
    ("billing-double-charge", true),
    // Billing team, nothing to ask: the number is in the email.
    ("billing-double-charge-with-invoice", true),
    // Technical team, asks since when.
    ("outage", true),
    // Technical team, asks the sign-in address, invites the meek customer to say more.
    ("meek", true),
    // Asks to leave: confirmed, no retention, no apology.
    ("leaving", true),
    // Threatens to leave (churn-risk): not a leaving customer; the default team.
    ("threat-to-leave", true),
    // No teams configured: today's acknowledgement.
    ("no-teams-configured", false),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped config with its rules and templates named by absolute path, the store in
/// `dir`, no `[sla]`, and (unless `teams`) no teams and no questions.
fn config_in(dir: &Path, teams: bool) -> Config {
    let repo = repo();
    let text = std::fs::read_to_string(repo.join("config/triaged.toml")).expect("shipped config");
    let mut config: toml::Table = toml::from_str(&text).expect("shipped config parses");
    assert!(
        config.contains_key("team") && config.contains_key("ask"),
        "the shipped config has [[team]] and [[ask]]"
    );
    config.remove("sla");
    if let Some(f) = config
        .get_mut("followups")
        .and_then(toml::Value::as_table_mut)
    {
        f.remove("hours");
    }
    if !teams {
        config.remove("team");
        config.remove("ask");
    }
    let mut set = |table: &str, key: &str, value: PathBuf| {
        config
            .entry(table)
            .or_insert_with(|| toml::Table::new().into())
            .as_table_mut()
            .expect("a table")
            .insert(key.into(), value.display().to_string().into());
    };
    set("scoring", "rules", repo.join("config/rules"));
    set("templates", "dir", repo.join("templates"));
    set("store", "path", dir.join("triaged.sqlite"));
    let path = dir.join("triaged.toml");
    std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write config");
    Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The acknowledgement of `raw`, as the daemon composes it: (text part, HTML part, the team
/// the ticket went to).
fn acknowledgement(raw: &[u8], teams: bool) -> (String, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_in(dir.path(), teams);
    let clock = Clock::system();
    let store = Store::open(&config.store.path).expect("store");
    let mut pipeline = Pipeline::new(&config, clock.clone(), store, false);
    pipeline
        .process(&Fetched {
            folder: "INBOX",
            uidvalidity: 1,
            uid: 1,
            raw: Some(raw),
            size: raw.len(),
            arrived_at: Some(clock.now()),
        })
        .expect("recorded");
    let mut store = Store::open(&config.store.path).expect("store");
    let item = store
        .claim_next_due(clock.now())
        .expect("claim")
        .expect("an acknowledgement is queued");
    assert!(
        store.claim_next_due(clock.now()).expect("claim").is_none(),
        "one acknowledgement, nothing else"
    );
    let sender = triaged::smtp::Sender::new(&config.smtp).expect("sender");
    let outbox = Outbox::new(&config, sender, clock, &Default::default());
    let (msg, _) = outbox.compose(&item).expect("composes");
    let bytes = msg.formatted();
    let parsed = mail_parser::MessageParser::default()
        .parse(&bytes)
        .expect("our own email parses");
    let part = |p: Option<std::borrow::Cow<'_, str>>, what: &str| {
        p.unwrap_or_else(|| panic!("no {what} part"))
            .replace("\r\n", "\n")
    };
    (
        part(parsed.body_text(0), "text"),
        part(parsed.body_html(0), "HTML"),
        item.team,
    )
}

/// The first line where `expected` and `actual` differ.
fn first_difference(expected: &str, actual: &str) -> String {
    let (mut e, mut a) = (expected.lines(), actual.lines());
    for n in 1.. {
        match (e.next(), a.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => break,
            (x, y) => {
                let show =
                    |l: Option<&str>| l.map_or("(end of output)".into(), |l| format!("{l:?}"));
                return format!(
                    "line {n}: expected {}\n                 actual   {}",
                    show(x),
                    show(y)
                );
            }
        }
    }
    "the same lines; the line endings or a final newline differ".into()
}

#[test]
fn acknowledgements_match_the_golden_files() {
    let bless = std::env::var("TRIAGED_BLESS").is_ok_and(|v| v == "1");
    let dir = repo().join(DIR);
    // A fixture or a golden file the table does not name would never be checked.
    for e in std::fs::read_dir(&dir)
        .expect("fixture directory")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".actual.") || name == "README.md" {
            continue;
        }
        let stem = name.split('.').next().unwrap_or("");
        assert!(
            CASES.iter().any(|(c, _)| *c == stem),
            "{DIR}/{name} belongs to no case of acks_golden"
        );
    }
    let mut failures = Vec::new();
    for (name, teams) in CASES {
        let raw = std::fs::read(dir.join(format!("{name}.eml"))).expect("fixture");
        let (text, html, team) = acknowledgement(&raw, *teams);
        assert_eq!(
            team.is_empty(),
            !teams,
            "{name}: a team exactly when teams are configured (got {team:?})"
        );
        for (ext, actual) in [("txt", &text), ("html", &html)] {
            let expected_path = dir.join(format!("{name}.{ext}"));
            let actual_path = dir.join(format!("{name}.actual.{ext}"));
            if bless {
                std::fs::write(&expected_path, actual).expect("write expected");
                let _ = std::fs::remove_file(&actual_path);
                continue;
            }
            match std::fs::read_to_string(&expected_path) {
                Ok(expected) if expected == *actual => {
                    // A leftover from an earlier failure would mislead.
                    let _ = std::fs::remove_file(&actual_path);
                }
                expected => {
                    std::fs::write(&actual_path, actual).expect("write actual");
                    let why = match expected {
                        Ok(expected) => first_difference(&expected, actual),
                        Err(e) => format!("no {name}.{ext} ({e})"),
                    };
                    failures.push(format!(
                        "{DIR}/{name}.{ext}: {why}\n    diff -u {DIR}/{name}.{ext} {DIR}/{name}.actual.{ext}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "acknowledgements differ from the golden files ({} of {} parts; actual written beside \
         each):\n{}\nIf the change is meant: TRIAGED_BLESS=1 cargo test --test it acks_golden, \
         then review git diff {DIR}",
        failures.len(),
        CASES.len() * 2,
        failures.join("\n")
    );
}
