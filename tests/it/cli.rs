//! `triaged check`: a good config passes with a one-line summary; broken ones fail with
//! file:line:col for every problem and exit 1.

use std::process::Command;

/// Run `triaged ARGS --config CONFIG` from the repository root: exit code, stdout, stderr.
fn run_with(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(args)
        .arg("--config")
        .arg(config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run triaged");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check(config: &std::path::Path) -> (i32, String, String) {
    run_with(config, &["check"])
}

const GOOD: &str = r#"
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

[scoring]
rules = "rules"
"#;

fn setup(config: &str, rule: &str, template: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(d.path().join("rules")).expect("mkdir");
    std::fs::create_dir_all(d.path().join("templates")).expect("mkdir");
    std::fs::write(d.path().join("triaged.toml"), config).expect("write");
    std::fs::write(d.path().join("rules/pack.toml"), rule).expect("write");
    std::fs::write(d.path().join("templates/ack.txt"), template).expect("write");
    std::fs::write(d.path().join("templates/ack.html"), "<p>{{ ticket }}</p>").expect("write");
    // The follow-ups that are on by default, as shipped.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for file in ["holding.txt", "holding.html", "verify.txt", "verify.html"] {
        std::fs::copy(shipped.join(file), d.path().join("templates").join(file)).expect("copy");
    }
    d
}

const RULE: &str = "[[rule]]\nid = \"outage\"\nkeywords = [\"outage\"]\nweight = 5.0\n";

#[test]
fn the_shipped_example_config_passes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/triaged.toml");
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(": OK ("), "{out}");
    // One summary line, then one per digest, one per team, the questions and the alerts.
    assert_eq!(lines.len(), 7, "{out}");
    assert!(lines[1].starts_with("  digest \"team\" to "), "{out}");
    assert!(lines[2].starts_with("  team \"technical\" "), "{out}");
    assert!(lines[5].starts_with("  questions: "), "{out}");
    assert!(lines[6].starts_with("  alerts to "), "{out}");
}

#[test]
fn every_problem_is_reported_with_file_line_col_and_exit_1() {
    let config = GOOD
        .replace("[store]", "[store]\npaht = \"x\"")
        .replace("password_env = \"PW\"\n", "");
    let rule = "[[rule]]\nid = \"bad\"\nregex = \"(unclosed\"\nweight = 1.0\n";
    let d = setup(&config, rule, "Hello {{ customer_name }");
    let (code, _out, err) = check(&d.path().join("triaged.toml"));
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    // A TOML schema error stops parsing of that file, so this run reports the unknown key; the
    // rules and templates are still checked once the file parses (next test).
    assert!(
        lines
            .iter()
            .any(|l| l.contains("triaged.toml:13:1: unknown field `paht`")),
        "{err}"
    );

    let config = GOOD.replace("password_env = \"PW\"\n", "");
    let d = setup(&config, rule, "Hello {{ customer_name }");
    let (code, _out, err) = check(&d.path().join("triaged.toml"));
    assert_eq!(code, 1, "{err}");
    for want in [
        "triaged.toml:5:12: [mailbox] needs a password source",
        "rules/pack.toml:3:",
        "templates/ack.txt:1:",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(err.trim_end().ends_with("3 problems found"), "{err}");
}

#[test]
fn a_missing_config_file_is_one_clear_line() {
    let (code, _out, err) = check(std::path::Path::new("/nonexistent/triaged.toml"));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("/nonexistent/triaged.toml: cannot read config file"),
        "{err}"
    );
}

#[test]
fn a_minimal_config_passes() {
    let d = setup(GOOD, RULE, "Hello {{ customer_name }}");
    let (code, out, err) = check(&d.path().join("triaged.toml"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK (1 rules in 1 files"), "{out}");
}

#[test]
fn check_lists_each_mailbox() {
    // One mailbox: the summary line ends as it always has.
    let d = setup(GOOD, RULE, "Hello {{ customer_name }}");
    let (code, out, err) = check(&d.path().join("triaged.toml"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.ends_with(", mailbox support@example.test@127.0.0.1:143/INBOX)")),
        "{out}"
    );

    // Two: counted on the summary line, then one line each with its folders and From.
    let config = GOOD.replace("[mailbox]\n", "[[mailbox]]\nname = \"main\"\n").replace(
        "\n[smtp]",
        "\n[[mailbox]]\nname = \"billing\"\naddress = \"billing@example.test\"\nfolders = [\"INBOX\", \"Disputes\"]\n\
         host = \"127.0.0.1\"\ntls = \"none\"\nusername = \"billing@example.test\"\npassword_env = \"PW\"\n\n[smtp]",
    );
    let d = setup(&config, RULE, "Hello {{ customer_name }}");
    let (code, out, err) = check(&d.path().join("triaged.toml"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].ends_with(", 2 mailboxes)"), "{out}");
    assert_eq!(
        lines[1],
        "  mailbox \"main\" support@example.test@127.0.0.1:143/INBOX: for support@example.test, answered from Support <support@example.test>",
        "{out}"
    );
    assert_eq!(
        lines[2],
        "  mailbox \"billing\" billing@example.test@127.0.0.1:143/INBOX,Disputes: for billing@example.test, answered from Support <billing@example.test>",
        "{out}"
    );
}

/// Run `triaged ARGS --config config/triaged.toml` from the repository root.
fn run_triaged(args: &[&str]) -> (i32, String, String) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    run_with(&repo.join("config/triaged.toml"), args)
}

fn explain(args: &[&str]) -> (i32, String, String) {
    run_triaged(&[&["explain"], args].concat())
}

#[test]
fn explain_shows_the_verdict_every_hit_and_the_guard() {
    let (code, out, err) = explain(&["examples/mail/01-outage-angry.eml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("priority urgent (score "), "{out}");
    assert!(out.contains("guard    may be acknowledged"), "{out}");
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("rule "))
        .collect();
    assert!(table.len() > 3, "{out}");
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("outage ") && l.contains("\"is down\"") && l.contains("+5.0")),
        "{out}"
    );

    // A robot: scored all the same, but the guard says no.
    let (code, out, _) = explain(&["examples/mail/07-out-of-office.eml", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["guard"], "auto_submitted");
    assert!(v["hits"].is_array() && v["priority"].is_string(), "{v}");

    let (code, _, err) = explain(&["no/such.eml"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: Reading no/such.eml"), "{err}");
}

#[test]
fn explain_says_what_the_budget_left_out() {
    let d = tempfile::tempdir().expect("tempdir");
    let refs: String = (0..200).map(|i| format!(" <r{i}@example.test>")).collect();
    let eml = d.path().join("threaded.eml");
    std::fs::write(
        &eml,
        format!(
            "From: a@example.test\r\nSubject: Any news?\r\nMessage-ID: <m@example.test>\r\n\
             References:{refs} <{}@example.test>\r\n\r\nStill waiting.\r\n",
            "x".repeat(300)
        ),
    )
    .expect("write");
    let path = eml.display().to_string();
    let (code, out, err) = explain(&[&path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("budget   151 threading ids left out"), "{out}");
    let (_, out, _) = explain(&[&path, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["budget"].as_array().map(Vec::len), Some(1), "{v}");
}

#[test]
fn eval_scores_labelled_rows_in_priority_and_tone_mode() {
    let d = tempfile::tempdir().expect("tempdir");
    // No header row, a literal \n in a cell, an empty subject.
    let csv = d.path().join("labelled.csv");
    std::fs::write(
        &csv,
        "\"Site down\",\"Our site is down and we are losing money.\\nFix it today!\",high\n\
         \"\",\"How do I export a report? No rush.\",low\n\
         \"Billing\",\"I was charged twice, this is unacceptable\",high\n\
         \"Thanks\",\"Great job on the release, thank you for the help\",low\n",
    )
    .expect("write");
    let path = csv.to_str().expect("utf-8 path");
    let (code, out, err) = run_triaged(&[
        "eval",
        "--data",
        path,
        "--text",
        "0,1",
        "--label",
        "2",
        "--map",
        "high=high,low=low",
        "--predicted-map",
        "urgent=high,normal=low",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["rows"], 4);
    assert_eq!(v["accuracy"], 1.0, "{out}");

    let (code, out, err) = run_triaged(&[
        "eval",
        "--data",
        path,
        "--text",
        "0,1",
        "--label",
        "2",
        "--map",
        "high=complaint,low=other",
        "--tone",
        "angry,frustrated",
        "--positive",
        "complaint",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("positive class `complaint`: precision 1.000  recall 0.500"),
        "{out}"
    );

    // Intent mode: labels of the data mapped onto our intents, every other label "none".
    let intents = d.path().join("intents.csv");
    std::fs::write(
        &intents,
        "text,intent\n\
         I want my money back for the broken kettle,get_refund\n\
         Where is my refund?,track_refund\n\
         Please cancel my subscription,cancel_order\n\
         What time do you open on Sunday?,opening_hours\n\
         Please send me your catalogue,catalogue\n",
    )
    .expect("write");
    let (code, out, err) = run_triaged(&[
        "eval",
        "--data",
        intents.to_str().expect("utf-8"),
        "--text",
        "text",
        "--label",
        "intent",
        "--intents",
        "--map",
        "get_refund=refund,track_refund=refund,cancel_order=cancel,*=none",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        v["classes"],
        serde_json::json!(["refund", "cancel", "none"]),
        "{out}"
    );
    assert_eq!(v["macro_f1"], 1.0, "{out}");
    assert_eq!(v["exact"], 5, "{out}");
    // A held-out part: two parts of one split are disjoint and together are every row.
    let part = |p: &str| {
        let (code, out, err) = run_triaged(&[
            "eval",
            "--data",
            intents.to_str().expect("utf-8"),
            "--text",
            "text",
            "--label",
            "intent",
            "--intents",
            "--map",
            "get_refund=refund,track_refund=refund,cancel_order=cancel,*=none",
            "--part",
            p,
            "--test-share",
            "0.5",
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["rows"].as_u64().expect("rows")
    };
    assert_eq!(part("train") + part("test"), 5);

    let (code, _, err) = run_triaged(&["eval", "--data", path, "--text", "0,1", "--label", "7"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn tune_fits_weights_that_the_config_can_include() {
    let rules = "[[rule]]\nid = \"outage\"\nkeywords = [\"outage\"]\nweight = 1.0\n\
                 [[rule]]\nid = \"thanks\"\nkeywords = [\"thanks\"]\nweight = -1.0\n\
                 [[rule]]\nid = \"lawyer\"\nkeywords = [\"lawyer\"]\nweight = 3.0\n";
    let d = setup(GOOD, rules, "Hello {{ ticket }}");
    // Outages are high, thanks are low, the rest normal; a little noise so no class is pure.
    let mut csv = String::from("subject,body,priority\n");
    for i in 0..120 {
        let (body, label) = match i % 3 {
            0 => (
                "there is an outage here",
                if i % 15 == 0 { "normal" } else { "high" },
            ),
            1 => ("thanks for everything", "low"),
            _ => ("a question about reports", "normal"),
        };
        csv.push_str(&format!("\"Ticket {i}\",\"{body}\",{label}\n"));
    }
    let data = d.path().join("labelled.csv");
    std::fs::write(&data, csv).expect("write");
    let weights = d.path().join("weights.toml");
    let (code, text, err) = run_with(
        &d.path().join("triaged.toml"),
        &[
            "tune",
            "--text",
            "subject,body",
            "--label",
            "priority",
            "--folds",
            "3",
            "--data",
            data.to_str().expect("utf-8 path"),
            "--out",
            weights.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("classes low < normal < high"), "{text}");
    let tuned = text
        .lines()
        .find(|l| l.starts_with("rules, tuned weights"))
        .expect("tuned row");
    let macro_f1: f64 = tuned
        .split_whitespace()
        .nth(7)
        .and_then(|v| v.parse().ok())
        .expect("figure");
    assert!(
        macro_f1 > 0.9,
        "an easy data set is fitted well out of fold: {tuned}"
    );
    let file = std::fs::read_to_string(&weights).expect("weights written");
    assert!(
        file.contains("[weights]") && file.contains("\noutage = "),
        "{file}"
    );
    // No row mentions a lawyer: the data says nothing about that rule, so the file leaves
    // it out and it keeps its weight (it used to be written as 0, switching the rule off).
    assert!(!file.contains("lawyer"), "{file}");

    // The config includes it; a weights file naming an unknown rule is a located error.
    let config = GOOD.replace(
        "rules = \"rules\"",
        "rules = \"rules\"\nweights = \"weights.toml\"",
    );
    std::fs::write(d.path().join("triaged.toml"), &config).expect("write");
    let (code, out, err) = check(&d.path().join("triaged.toml"));
    assert_eq!(code, 0, "{out}{err}");
    std::fs::write(&weights, format!("{file}\"gone\" = 1.0\n")).expect("write");
    let (code, _, err) = check(&d.path().join("triaged.toml"));
    assert_eq!(code, 1);
    assert!(
        err.contains("weights.toml:") && err.contains("no rule \"gone\""),
        "{err}"
    );
}

#[test]
fn tune_in_tone_mode_compares_rules_with_a_text_model() {
    let rules = "[[rule]]\nid = \"awful\"\nkeywords = [\"awful\"]\ntone = \"angry\"\n";
    let d = setup(GOOD, rules, "Hello {{ ticket }}");
    // "awful" finds half the negative rows; "delayed" (no rule) finds the rest.
    let mut csv = String::from("text,sentiment\n");
    for i in 0..90 {
        let row = match i % 3 {
            0 => "awful service today,negative",
            1 => "my flight was delayed again,negative",
            _ => "lovely crew and a smooth trip,positive",
        };
        csv.push_str(row);
        csv.push('\n');
    }
    let data = d.path().join("tweets.csv");
    std::fs::write(&data, csv).expect("write");
    let (code, text, err) = run_with(
        &d.path().join("triaged.toml"),
        &[
            "tune",
            "--text",
            "text",
            "--label",
            "sentiment",
            "--tone",
            "angry",
            "--positive",
            "negative",
            "--folds",
            "3",
            "--yardstick",
            "--data",
            data.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(code, 0, "{text}{err}");
    let recall = |prefix: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(prefix)).expect(prefix);
        line.split_whitespace()
            .rev()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("recall")
    };
    assert_eq!(recall("tone rules (angry)"), 0.5, "{text}");
    assert_eq!(recall("TF-IDF + logistic regression"), 1.0, "{text}");
    assert!(
        text.contains("  delayed "),
        "the missing phrase is suggested: {text}"
    );
}

/// `triaged check` passes on DIR/triaged.toml, and `triaged explain` of an email with this
/// subject and body succeeds: its output.
fn check_and_explain(dir: &std::path::Path, subject: &str, body: &str) -> String {
    let config = dir.join("triaged.toml");
    let (code, out, err) = check(&config);
    assert_eq!(code, 0, "{out}{err}");
    let mail = dir.join("m.eml");
    std::fs::write(
        &mail,
        format!("From: a@example.org\r\nTo: support@example.test\r\nSubject: {subject}\r\n\r\n{body}\r\n"),
    )
    .expect("write");
    let (code, out, err) = run_with(&config, &["explain", mail.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn tune_learns_keyword_rules_that_check_and_explain_read() {
    let rules = "[[rule]]\nid = \"awful\"\nkeywords = [\"awful\"]\ntone = \"angry\"\n";
    let d = setup(GOOD, rules, "Hello {{ ticket }}");
    // "awful" (a rule) and "delayed" / "lost my bag" (no rule) are negative; the rest is not.
    let mut csv = String::from("text,sentiment\n");
    for i in 0..300 {
        let row = match i % 5 {
            0 => format!("awful service on trip {i},negative"),
            1 => format!("my flight {i} was delayed again,negative"),
            2 => "they lost my bag,negative".to_string(),
            3 => "lovely crew and a smooth trip,positive".to_string(),
            _ => "thanks for the upgrade,positive".to_string(),
        };
        csv.push_str(&row);
        csv.push('\n');
    }
    let data = d.path().join("tweets.csv");
    std::fs::write(&data, csv).expect("write");
    let learned = d.path().join("rules/learned.toml");
    let learn_args = [
        "tune",
        "--data",
        data.to_str().expect("utf-8 path"),
        "--text",
        "text",
        "--label",
        "sentiment",
        "--part",
        "train",
        "--tone",
        "angry",
        "--positive",
        "negative",
        "--learn-as",
        "negative",
        "--learn",
        learned.to_str().expect("utf-8 path"),
    ];
    let (code, text, err) = run_with(&d.path().join("triaged.toml"), &learn_args);
    assert_eq!(code, 0, "{text}{err}");
    // Held out: the rule alone finds about a third of the negative rows (the split is random),
    // rules and learned phrases all of them, and nothing else.
    let row = text
        .lines()
        .find(|l| l.starts_with("tone negative"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(text.contains("held-out test part"), "{text}");
    let cells: Vec<&str> = row.split_whitespace().collect();
    let rule_recall: f64 = cells[4].parse().expect("recall");
    assert!(cells[2] == "1.000" && rule_recall < 0.6, "{text}");
    assert_eq!(cells.last(), Some(&"1.000"), "{text}");
    let file = std::fs::read_to_string(&learned).expect("learned file");
    assert!(file.contains("keywords = [\"delayed\"]"), "{file}");
    assert!(
        file.contains("tone = \"negative\"") && file.contains("evidence = "),
        "{file}"
    );

    // The learned file sits in the rules directory: check reads it, explain names its rules.
    let out = check_and_explain(d.path(), "trip", "They lost my bag.");
    assert!(out.contains("learned.negative.lost"), "{out}");
    assert!(out.contains("negative"), "{out}");

    // Learning again into the same file, now one of the configured rule files: it is read
    // once (no duplicate ids), and its old rules are no features of the new ones.
    let (code, text, err) = run_with(&d.path().join("triaged.toml"), &learn_args);
    assert_eq!(code, 0, "{text}{err}");
    let again = std::fs::read_to_string(&learned).expect("learned file");
    // A feature over an earlier learned rule would be a meta rule naming its id.
    assert!(!again.contains("meta = \"learned."), "{again}");
    assert!(again.contains("meta = \"awful\""), "{again}");
    check_and_explain(d.path(), "trip", "They lost my bag.");

    // A learned file with a NaN evidence, a duplicate id or a broken line is refused at its
    // line.
    let line_of = |needle: &str| file.lines().position(|l| l.contains(needle)).expect(needle) + 1;
    let first_evidence = line_of("evidence = ");
    let ids: Vec<&str> = file.lines().filter(|l| l.starts_with("id = ")).collect();
    assert!(ids.len() >= 2, "{file}");
    let second_id_line = line_of(ids[1]);
    for (broken, line, message) in [
        (
            file.replacen("evidence = ", "evidence = nan #", 1),
            first_evidence,
            "evidence must be a finite number",
        ),
        (
            file.replacen(ids[1], ids[0], 1),
            second_id_line,
            "duplicate rule id",
        ),
        (
            file.replacen("evidence = ", "evidence = = ", 1),
            first_evidence,
            "",
        ),
    ] {
        std::fs::write(&learned, broken).expect("write");
        let (code, out, err) = check(&d.path().join("triaged.toml"));
        let shown = format!("{out}{err}");
        assert_eq!(code, 1, "{shown}");
        assert!(
            shown.contains(&format!("learned.toml:{line}:")) && shown.contains(message),
            "line {line}, {message:?}: {shown}"
        );
    }
}

#[test]
fn tune_learns_priority_phrases_beside_the_weights() {
    let d = setup(GOOD, RULE, "Hello {{ ticket }}");
    // No rule speaks for these rows; "payroll" is high, "brochure" low, the rest normal.
    let mut csv = String::from("subject,body,priority\n");
    for i in 0..240 {
        let row = match i % 3 {
            0 => format!("Run {i},the payroll export failed again,high"),
            1 => format!("Note {i},please send a new brochure,low"),
            _ => format!("Question {i},how do I change my address,medium"),
        };
        csv.push_str(&row);
        csv.push('\n');
    }
    let data = d.path().join("tickets.csv");
    std::fs::write(&data, csv).expect("write");
    let learned = d.path().join("rules/learned.toml");
    let weights = d.path().join("weights.toml");
    let args = |with_out: bool| {
        let mut a = vec![
            "tune".to_string(),
            "--data".into(),
            data.display().to_string(),
            "--text".into(),
            "subject,body".into(),
            "--label".into(),
            "priority".into(),
            "--map".into(),
            "high=high,medium=normal,low=low".into(),
            "--part".into(),
            "train".into(),
            "--learn".into(),
            learned.display().to_string(),
        ];
        if with_out {
            a.extend(["--out".to_string(), weights.display().to_string()]);
        }
        a
    };
    // Without --out there is nowhere for the thresholds: refused, nothing written.
    let a = args(false);
    let (code, _, err) = run_with(
        &d.path().join("triaged.toml"),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("needs --out"), "{err}");
    assert!(!learned.exists());

    let a = args(true);
    let (code, text, err) = run_with(
        &d.path().join("triaged.toml"),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(code, 0, "{text}{err}");
    let held_out = |name: &str| -> f64 {
        let line = text
            .lines()
            .skip_while(|l| !l.starts_with("On the held-out test part"))
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {text}"));
        line.split_whitespace()
            .rev()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .expect("macro-F1")
    };
    assert!(held_out("configured rules") < 0.5, "{text}");
    assert_eq!(held_out("tuned rules + learned phrases"), 1.0, "{text}");
    let file = std::fs::read_to_string(&learned).expect("learned file");
    assert!(
        file.contains("keywords = [\"payroll\"]") && file.contains("weight = "),
        "{file}"
    );

    // The daemon's config takes both files: check passes, explain names the phrase.
    let config = format!("{GOOD}weights = \"weights.toml\"\n");
    std::fs::write(d.path().join("triaged.toml"), config).expect("write");
    let out = check_and_explain(d.path(), "payroll", "The payroll export failed.");
    assert!(out.contains("learned.priority.payroll"), "{out}");
    assert!(
        out.contains("priority urgent") || out.contains("priority high"),
        "{out}"
    );

    // Learning again with both files configured: the weights file names no learned rule,
    // and the pair still loads.
    let (code, text, err) = run_with(
        &d.path().join("triaged.toml"),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(code, 0, "{text}{err}");
    let weights_text = std::fs::read_to_string(&weights).expect("weights file");
    assert!(!weights_text.contains("learned."), "{weights_text}");
    check_and_explain(d.path(), "payroll", "The payroll export failed.");
}

/// A raw character that would reach the terminal as a control: C0 (but the line breaks and
/// tabs of the layout), DEL, C1, and the bidi overrides and isolates.
fn raw_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// An email whose sender name and subject carry ESC sequences (recolour, retitle the terminal,
/// clear the screen), BEL, NUL, a C1 CSI and a right-to-left override, in encoded words as a
/// mail client would send them, and a body with raw ESC and BEL bytes.
const HOSTILE: &str = "From: =?utf-8?q?Eve=1B]0;owned=07_Hacker=00?= <eve@example.test>\r\n\
    To: support@example.test\r\n\
    Subject: =?utf-8?q?Refund=1B[31m_now=07=00_=C2=9B2J_=E2=80=AEtxt.exe?= our site is down\r\n\
    Message-ID: <hostile-1@example.test>\r\n\
    Date: Sun, 22 Nov 2026 09:12:00 +0000\r\n\
    MIME-Version: 1.0\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\r\n\
    Our site is down \x1b[2J since this morning\x07, please refund us.\r\n";

#[test]
fn hostile_subject_and_name_show_escaped_in_every_cli_output() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "{GOOD}\n[templates]\ndir = \"{templates}\"\n\n\
         [[digest]]\nname = \"team\"\nto = [\"staff@example.test\"]\ntimes = [\"09:00\"]\n\
         timezone = \"UTC\"\nsend_empty = true\n",
        templates = repo.join("templates").display()
    )
    .replace(
        "rules = \"rules\"",
        &format!("rules = \"{}\"", repo.join("config/rules").display()),
    )
    .replace(
        "domain = \"support.example.test\"",
        "domain = \"support.example.test\"\nstaff = [\"staff@example.test\"]",
    );
    let path = d.path().join("triaged.toml");
    std::fs::write(&path, config).expect("write");
    let eml = d.path().join("hostile.eml");
    std::fs::write(&eml, HOSTILE).expect("write");

    // The store holds the email as the daemon would have recorded it (ticket, queued ack).
    let config = triaged::config::Config::load(&path).expect("config loads");
    let store = triaged::store::Store::open(&config.store.path).expect("store");
    let clock = triaged::clock::Clock::system();
    let now = clock.now();
    let mut pipeline = triaged::pipeline::Pipeline::new(&config, clock, store, false);
    pipeline
        .process(&triaged::pipeline::Fetched {
            folder: "INBOX",
            uidvalidity: 1,
            uid: 1,
            raw: Some(HOSTILE.as_bytes()),
            size: HOSTILE.len(),
            arrived_at: Some(now - 3600),
        })
        .expect("recorded");
    drop(pipeline);

    // The store really holds the raw characters: JSON (escaped by serde) shows them.
    let (code, json, err) = run_with(&path, &["tickets", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(!json.chars().any(raw_control), "{json:?}");
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let subject = v[0]["subject"].as_str().expect("subject");
    assert!(
        subject.contains("Refund\x1b[31m now\x07\0") && subject.contains("\u{9b}2J \u{202e}txt"),
        "{subject:?}"
    );

    let eml = eml.to_str().expect("utf-8 path");
    for args in [
        &["tickets"][..],
        &["ticket", "show", "T-1001"],
        &["ticket", "show", "T-1001", "--json"],
        &["queue"],
        &["queue", "--json"],
        &["status"],
        &["explain", eml],
        &["explain", eml, "--json"],
        &["digest", "--preview", "--at", "2030-01-01 09:00"],
    ] {
        let (code, out, err) = run_with(&path, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        let raw: Vec<char> = out.chars().filter(|c| raw_control(*c)).collect();
        assert!(raw.is_empty(), "{args:?} printed {raw:?}:\n{out}");
        if !args.contains(&"--json") && args[0] != "status" {
            // Shown, escaped: the ESC of the subject, or the customer's address at least.
            assert!(
                out.contains("\\x1b[31m") || out.contains("eve@example.test"),
                "{args:?}:\n{out}"
            );
        }
    }
    let (_, show, _) = run_with(&path, &["ticket", "show", "T-1001"]);
    assert!(
        show.contains("subject   Refund\\x1b[31m now\\x07\\x00 \\u{9b}2J \\u{202e}txt.exe"),
        "{show}"
    );
    let (_, digest, _) = run_with(&path, &["digest", "--preview", "--at", "2030-01-01 09:00"]);
    assert!(
        digest.contains("Eve\\x1b]0;owned\\x07 Hacker\\x00 <eve@example.test>"),
        "the sender's name, escaped, in the digest's text part:\n{digest}"
    );
    assert!(
        digest.contains("down \\x1b[2J since"),
        "the excerpt:\n{digest}"
    );
}

#[test]
fn tickets_lists_the_first_rows_and_counts_the_rest() {
    let d = setup(GOOD, RULE, "{{ ticket }}");
    let path = d.path().join("triaged.toml");
    let config = triaged::config::Config::load(&path).expect("config loads");
    let store = triaged::store::Store::open(&config.store.path).expect("store");
    let clock = triaged::clock::Clock::system();
    let now = clock.now();
    let mut pipeline = triaged::pipeline::Pipeline::new(&config, clock, store, false);
    for i in 0..5u32 {
        let raw = format!(
            "From: c{i}@example.com\r\nTo: support@example.test\r\nSubject: Question {i}\r\n\
             Message-ID: <q{i}@example.com>\r\n\r\nHello.\r\n"
        );
        pipeline
            .process(&triaged::pipeline::Fetched {
                folder: "INBOX",
                uidvalidity: 1,
                uid: i + 1,
                raw: Some(raw.as_bytes()),
                size: raw.len(),
                arrived_at: Some(now - 3600 + i64::from(i)),
            })
            .expect("recorded");
    }
    drop(pipeline);

    let (code, out, err) = run_with(&path, &["tickets", "--limit", "2"]);
    assert_eq!(code, 0, "{err}");
    // Oldest first: the first two, then how many more.
    assert!(out.contains("T-1001") && out.contains("T-1002"), "{out}");
    assert!(!out.contains("T-1003"), "{out}");
    assert!(
        out.ends_with("2 ticket(s) listed and 3 more (--limit N lists more, --limit 0 all)\n"),
        "{out}"
    );
    let (_, all, _) = run_with(&path, &["tickets", "--limit", "0"]);
    assert!(
        all.contains("T-1005") && all.ends_with("5 ticket(s)\n"),
        "{all}"
    );
    // JSON lists every ticket unless told otherwise.
    let count = |args: &[&str]| {
        let (code, json, err) = run_with(&path, args);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        v.as_array().map_or(0, Vec::len)
    };
    assert_eq!(count(&["tickets", "--json"]), 5);
    assert_eq!(count(&["tickets", "--json", "--limit", "2"]), 2);
    assert_eq!(
        count(&["tickets", "--state", "open", "--json", "--limit", "4"]),
        4
    );
}
