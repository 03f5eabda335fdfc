//! Golden files for `triaged explain`: every `tests/golden/explain/NAME.eml` is explained with
//! the shipped config and rules, and the output must equal `NAME.expected` beside it, byte for
//! byte; every `tests/golden/explain-learned/NAME.eml` likewise with the learned intent pack
//! (`config/learned/intents-en.toml`) loaded beside the shipped rules. On a mismatch the actual output is written to `NAME.actual` beside the fixture (so the
//! difference is one `diff -u` away) and the test fails naming each file. When the change is
//! meant, bless it: `TRIAGED_BLESS=1 cargo test --test it explain_golden` overwrites the
//! `.expected` files with what explain prints now (review them with `git diff`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the fixtures are, relative to the repository (explain prints the path it was given).
const DIR: &str = "tests/golden/explain";

/// The fixtures explained with the shipped learned intent pack loaded too.
const LEARNED_DIR: &str = "tests/golden/explain-learned";

/// The learned pack shipped off by default (docs/rules.md, "The learned intent pack").
const LEARNED_PACK: &str = "config/learned/intents-en.toml";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The teams and questions the golden files are explained with (they replace any the shipped
/// config has, so its examples can change without changing these files): a billing team, a
/// technical one and no default team, so an email may go to a team by a rule, by an intent,
/// or to none; questions by intent, by team, one that names the customer, and a third for
/// billing, which an acknowledgement that already asks two leaves out (and explain says so).
const ROUTING: &str = r#"
[[team]]
name = "billing"
description = "our billing specialists, who can check the charges on your account"
staff = ["alice@example.com"]
rules = ["billing-error"]
intents = ["billing", "refund"]
folder = "Teams/Billing"

[[team]]
name = "technical"
description = "our technical team, who can look into the fault itself"
staff = ["bob@example.com"]
intents = ["outage", "data-loss", "access"]

[[ask]]
id = "invoice"
question = "Could you send us the invoice or order number, {{ customer_name }}?"
intents = ["billing", "refund"]
unless = ['(?i)\b(invoice|order)\W{0,3}(no\.?|number|#)?\W{0,3}[a-z]{0,4}-?\d{3,}']

[[ask]]
id = "since-when"
question = "What were you doing when it stopped working, and since when?"
intents = ["outage"]
unless = ['(?i)\bsince\b', '(?i)\b\d{1,2}[:.]\d\d\b']

[[ask]]
id = "account"
question = "Which email address is the account under?"
teams = ["billing"]
unless = ['[\w.+-]+@[\w-]+\.[\w.]+']

[[ask]]
id = "when"
question = "When did you first see the charge?"
intents = ["billing"]
"#;

/// The shipped config/triaged.toml, with its rules and templates named by absolute path, the
/// store in `dir`, where there is none (the history line does not depend on the machine), and
/// [`ROUTING`]'s teams and questions; with `learned`, the rules are a copy of the shipped ones
/// with [`LEARNED_PACK`] beside them, as an operator turns it on.
fn config_in(dir: &Path, learned: bool) -> PathBuf {
    let repo = repo();
    let rules = if learned {
        let rules = dir.join("rules");
        std::fs::create_dir_all(&rules).expect("rules dir");
        for e in std::fs::read_dir(repo.join("config/rules"))
            .expect("config/rules")
            .flatten()
        {
            std::fs::copy(e.path(), rules.join(e.file_name())).expect("copy a rule file");
        }
        std::fs::copy(
            repo.join(LEARNED_PACK),
            rules.join("zz-learned-intents.toml"),
        )
        .expect("copy the learned pack");
        rules
    } else {
        repo.join("config/rules")
    };
    let text = std::fs::read_to_string(repo.join("config/triaged.toml")).expect("shipped config");
    let mut config: toml::Table = toml::from_str(&text).expect("shipped config parses");
    let mut set = |table: &str, key: &str, value: PathBuf| {
        config
            .entry(table)
            .or_insert_with(|| toml::Table::new().into())
            .as_table_mut()
            .expect("a table")
            .insert(key.into(), value.display().to_string().into());
    };
    set("scoring", "rules", rules);
    set("templates", "dir", repo.join("templates"));
    set("store", "path", dir.join("none.sqlite"));
    let routing: toml::Table = toml::from_str(ROUTING).expect("the test's teams parse");
    for key in ["team", "ask"] {
        config.insert(key.into(), routing[key].clone());
    }
    let path = dir.join("triaged.toml");
    std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write config");
    path
}

/// What `triaged explain FIXTURE` prints, run from the repository root.
fn explain(config: &Path, fixture: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["explain", fixture, "--config"])
        .arg(config)
        .current_dir(repo())
        .output()
        .expect("run triaged");
    assert!(
        out.status.success(),
        "triaged explain {fixture}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("explain prints UTF-8")
}

/// The first line where `expected` and `actual` differ: (line number, expected, actual).
fn first_difference(expected: &str, actual: &str) -> (usize, String, String) {
    let (mut e, mut a) = (expected.lines(), actual.lines());
    for n in 1.. {
        match (e.next(), a.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => break,
            (x, y) => {
                let show =
                    |l: Option<&str>| l.map_or("(end of output)".into(), |l| format!("{l:?}"));
                return (n, show(x), show(y));
            }
        }
    }
    // Same lines, so the difference is in the line endings or a final newline.
    (0, format!("{expected:?}"), format!("{actual:?}"))
}

#[test]
fn explain_output_matches_the_golden_files() {
    check_golden(DIR, false, 6);
}

/// With the learned intent pack loaded, explain still names each rule and its words, and the
/// learned phrases read like the rest (`learned.<intent>.<phrase>`).
#[test]
fn explain_output_with_the_learned_pack_matches_the_golden_files() {
    check_golden(LEARNED_DIR, true, 2);
}

/// Explains every `NAME.eml` in `fixtures` (at least `at_least` of them) and compares the output with
/// `NAME.expected` beside it, or writes it there when blessing.
fn check_golden(fixtures: &str, learned: bool, at_least: usize) {
    let bless = std::env::var("TRIAGED_BLESS").is_ok_and(|v| v == "1");
    let dir = repo().join(fixtures);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".eml").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= at_least,
        "expected the fixtures in {}, found {names:?}",
        dir.display()
    );
    // An expected file without its email would never be checked.
    for e in std::fs::read_dir(&dir)
        .expect("fixture directory")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".expected") {
            assert!(
                names.iter().any(|n| n == stem),
                "{fixtures}/{name} has no {stem}.eml beside it"
            );
        }
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config_in(tmp.path(), learned);
    let mut failures = Vec::new();
    for name in &names {
        let actual = explain(&config, &format!("{fixtures}/{name}.eml"));
        let expected_path = dir.join(format!("{name}.expected"));
        let actual_path = dir.join(format!("{name}.actual"));
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expected");
            let _ = std::fs::remove_file(&actual_path);
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {
                // A leftover from an earlier failure would mislead.
                let _ = std::fs::remove_file(&actual_path);
            }
            expected => {
                std::fs::write(&actual_path, &actual).expect("write actual");
                let why = match expected {
                    Ok(expected) => {
                        let (line, e, a) = first_difference(&expected, &actual);
                        format!("line {line}: expected {e}\n                 actual   {a}")
                    }
                    Err(e) => format!("no {name}.expected ({e})"),
                };
                failures.push(format!(
                    "{fixtures}/{name}.eml: {why}\n    diff -u {fixtures}/{name}.expected {fixtures}/{name}.actual"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "triaged explain differs from the golden file for {} of {} emails (actual output \
         written beside each):\n{}\nIf the change is meant: TRIAGED_BLESS=1 cargo test --test it \
         explain_golden, then review git diff {fixtures}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

/// `--json` carries what the text shows: the team and why (or why none), each question
/// rendered with its `[[ask]]` id, and the questions the email answers.
#[test]
fn explain_json_names_the_team_and_the_questions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config_in(tmp.path(), false);
    let json = |name: &str| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_triaged"))
            .args([
                "explain",
                &format!("{DIR}/{name}.eml"),
                "--json",
                "--config",
            ])
            .arg(&config)
            .current_dir(repo())
            .output()
            .expect("run triaged");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let v = json("charged-twice-no-invoice");
    assert_eq!(v["route"]["team"], "billing", "{v}");
    assert_eq!(
        v["route"]["reason"],
        "rule billing-error: \u{201c}charged twice\u{201d}"
    );
    assert_eq!(v["would_ask"][0]["id"], "invoice", "{v}");
    assert_eq!(
        v["would_ask"][0]["question"],
        "Could you send us the invoice or order number, Lena Fischer?"
    );
    assert_eq!(v["would_ask"][1]["id"], "account", "{v}");
    assert_eq!(v["answered"], serde_json::json!([]));
    assert_eq!(
        v["not_asked_beyond_limit"],
        serde_json::json!(["when"]),
        "{v}"
    );

    let v = json("refund-double-charge");
    assert_eq!(v["answered"], serde_json::json!(["invoice"]), "{v}");
    assert_eq!(v["would_ask"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["not_asked_beyond_limit"], serde_json::json!([]), "{v}");

    let v = json("polite-question");
    assert_eq!(v["route"]["team"], serde_json::Value::Null, "{v}");
    assert_eq!(
        v["route"]["reason"],
        "no route matched, and no default team"
    );
    assert_eq!(v["would_ask"], serde_json::json!([]));

    let v = json("auto-reply");
    assert_eq!(v["route"]["team"], serde_json::Value::Null, "{v}");
    assert!(
        v["route"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not a customer's email")),
        "{v}"
    );
}
