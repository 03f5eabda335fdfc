//! Tuning from staff's corrections against tuning from a labelled file (issue 18's must-show),
//! on the real stack, run with `cargo bench --bench tune_store`:
//!
//! 1. N labelled support tickets (the English rows of
//!    ../shared/eval/data/tobi_bueck_tickets_multi-lang-4-20k.head.csv, mapped high=high,
//!    medium=normal, low=low; the first N of the seeded training part that `--part train` uses:
//!    30 % test, split seed 1) are delivered as customer emails to the test Dovecot, where the
//!    daemon triages and flags them (acknowledgements off: they are not measured here).
//! 2. Staff, in a second IMAP client, read every email's triage keyword and re-flag each whose
//!    verdict differs from its label (`UID STORE set -FLAGS.SILENT (triage/x)`, `+FLAGS.SILENT
//!    (triage/y)`, one pair per (verdict, label)); the run waits until every correction is in
//!    the store. A second store has staff review only a share of the emails (the rest keep
//!    their verdicts, right or wrong, as a desk that reads some of its mail would).
//! 3. The CSV-based `triaged tune` on the same N rows (fold seed 1, and seeds 2 and 3 to show
//!    how far that fit moves by itself), and `triaged tune --store` on each store with each
//!    weak-label weight, each write a weights file. Dovecot's Maildir numbers the emails when
//!    a session next looks, in directory order, so a store's UID order (the order `tune
//!    --store` folds in) can differ a little from the delivery order between runs.
//! 4. Printed: how each store fit's weights agree with the CSV fit's (Pearson correlation over
//!    the rules both fitted, signs of the CSV fit's ten weightiest rules, mean absolute
//!    difference), each fit's own out-of-fold macro-F1, the macro-F1 (and "high" precision
//!    and recall) of the shipped, the CSV-tuned and the store-tuned weights on the held-out test
//!    part (`triaged eval --part test`: rows no fit saw), and on how many held-out rows the
//!    store-tuned weights give the priority the CSV-tuned ones give.
//!
//! 5. Tones (BENCH_TUNE_TONE=0 leaves them out): N' airline tweets (the first of the training
//!    part of ../shared/eval/data/twitter_us_airline_sentiment.csv, 30 % test, split seed 1;
//!    BENCH_TUNE_TONE_EMAILS, default 500) delivered and triaged; staff, reviewing every one,
//!    add `tone/negative` to each negative tweet the pack gave none of angry, frustrated,
//!    abusive, anxious, and take those tones off each tweet that is not negative. Then
//!    `tune --store --tone angry,frustrated,abusive,anxious,negative --positive negative
//!    --learn-as negative --learn` (each `--weak`) against `tune --data` with the same tone
//!    options on the same rows, each learned file measured beside the pack on the held-out test
//!    part (`triaged eval --tone ... --part test`): precision, recall and F1 of negative.
//!
//! Environment: BENCH_TUNE_TONE (0: no tones; only: tones alone), BENCH_TUNE_EMAILS (N,
//! default 500; the training part has 976 rows),
//! BENCH_TUNE_WEAK (the `--weak` values, default "0.3,0.6,1"), BENCH_TUNE_REVIEWED (the shares
//! of the emails staff review, one store each, default "1,0.3"), BENCH_TUNE_REPORT=1 prints
//! every `tune --store` report. Nothing is written outside temporary directories; the data is
//! read in place, never copied into the repository. Without the data file the bench says so
//! and ends.

// The harness of the integration tests (tests/it), of which this uses a part.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/daemon/mod.rs"]
mod daemon;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::MailStack;
use daemon::{Daemon, DaemonConfig, count, customer_email, wait_until};
use triaged_tune::eval::{Columns, LabelMap, Part, Row, Source, Split};

const SUPPORT: &str = "support@example.test";
const MAP: &str = "high=high,medium=normal,low=low";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data_file() -> PathBuf {
    repo().join("../shared/eval/data/tobi_bueck_tickets_multi-lang-4-20k.head.csv")
}

fn tweets_file() -> PathBuf {
    repo().join("../shared/eval/data/twitter_us_airline_sentiment.csv")
}

/// The pack's tones that say a tweet is negative, and the tone staff add where none does.
const TONES: [&str; 4] = ["angry", "frustrated", "abusive", "anxious"];

/// The English rows of one part of the seeded split, labels mapped.
fn rows(part: Part) -> Vec<Row> {
    let source = Source::from_path(data_file()).expect("source");
    let columns = Columns {
        text: vec!["subject".into(), "body".into()],
        label: "priority".into(),
        filter: vec![("language".into(), "en".into())],
        split: Some(Split {
            part,
            test_share: 0.3,
            seed: 1,
        }),
    };
    let mut rows = triaged_tune::eval::load(&source, &columns)
        .expect("load")
        .rows;
    let map: LabelMap = MAP.parse().expect("map");
    map.apply(&mut rows).expect("map");
    rows
}

/// A CSV field, quoted.
fn field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The rows as a CSV of subject, body, priority.
fn write_csv(path: &Path, rows: &[Row]) {
    let mut out = String::from("subject,body,priority\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{}\n",
            field(&r.texts[0]),
            field(&r.texts[1]),
            r.label
        ));
    }
    std::fs::write(path, out).expect("write csv");
}

/// Row `i` as a customer's email, from a sender of its own (no repeat-contact signal).
fn email(i: usize, r: &Row) -> Vec<u8> {
    let subject = r.texts[0].replace(['\r', '\n'], " ");
    let body = r.texts[1].replace("\r\n", "\n").replace('\n', "\r\n");
    customer_email(
        &format!("customer{i}@customers.example.test"),
        &format!("row{i}@tickets.example.test"),
        &subject,
        &body,
    )
}

/// Run the CLI: stdout, or panic with stderr.
fn triaged(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run triaged");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every email's UID, row and priority keyword, as staff's client sees them.
fn shown(stack: &MailStack) -> Vec<(u32, usize, Option<String>)> {
    keywords(stack)
        .into_iter()
        .map(|(uid, row, k)| {
            let p = k
                .iter()
                .find_map(|k| k.strip_prefix("triage/"))
                .map(str::to_string);
            (uid, row, p)
        })
        .collect()
}

/// Every email's UID, row and keywords, as staff's client sees them.
fn keywords(stack: &MailStack) -> Vec<(u32, usize, Vec<String>)> {
    let replies = stack.imap_raw(
        SUPPORT,
        &[
            "SELECT INBOX",
            "UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
        ],
    );
    let mut out = Vec::new();
    for line in replies[1].iter().filter(|l| l.starts_with("* ")) {
        let after = |key: &str| line.split_once(key).map(|(_, rest)| rest);
        let uid = after("UID ")
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok());
        let row = after("<row")
            .and_then(|r| r.split('@').next())
            .and_then(|n| n.parse().ok());
        let keywords = after("FLAGS (").map_or_else(Vec::new, |r| {
            r.split(')')
                .next()
                .unwrap_or("")
                .split(' ')
                .filter(|k| !k.is_empty() && !k.starts_with('\\'))
                .map(str::to_string)
                .collect()
        });
        if let (Some(uid), Some(row)) = (uid, row) {
            out.push((uid, row, keywords));
        }
    }
    out
}

/// A weights file's rule weights.
fn weights(path: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path).expect("weights file");
    let v: toml::Value = toml::from_str(&text).expect("weights toml");
    v["weights"]
        .as_table()
        .expect("[weights]")
        .iter()
        .map(|(k, w)| (k.clone(), w.as_float().unwrap_or(0.0)))
        .collect()
}

/// The macro-F1 on the line of a tune report that starts with `prefix`.
fn macro_f1(report: &str, prefix: &str) -> f64 {
    report
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l[prefix.len()..].split_whitespace().rev().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// How two fits' weights agree: (rules both fitted, Pearson r, signs agreeing among the
/// ten weightiest of `a`, mean absolute difference).
fn agreement(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> (usize, f64, usize, f64) {
    let both: Vec<(f64, f64)> = a
        .iter()
        .filter_map(|(k, x)| b.get(k).map(|y| (*x, *y)))
        .collect();
    let n = both.len() as f64;
    let (mx, my) = (
        both.iter().map(|p| p.0).sum::<f64>() / n,
        both.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let cov: f64 = both.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let (vx, vy): (f64, f64) = (
        both.iter().map(|(x, _)| (x - mx).powi(2)).sum(),
        both.iter().map(|(_, y)| (y - my).powi(2)).sum(),
    );
    let r = cov / (vx.sqrt() * vy.sqrt());
    let mut top: Vec<(&String, &f64)> = a.iter().collect();
    top.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
    let signs = top
        .iter()
        .take(10)
        .filter(|(k, x)| b.get(*k).is_some_and(|y| y.signum() == x.signum()))
        .count();
    let mad = both.iter().map(|(x, y)| (x - y).abs()).sum::<f64>() / n;
    (both.len(), r, signs, mad)
}

/// Held-out macro-F1 (and high precision, recall) of a config's rules on the test part.
fn held_out(config: &Path) -> (f64, f64, f64) {
    let out = triaged(
        config,
        &[
            "eval",
            "--data",
            data_file().to_str().expect("utf-8 path"),
            "--text",
            "subject,body",
            "--label",
            "priority",
            "--filter",
            "language=en",
            "--map",
            MAP,
            "--predicted-map",
            "urgent=high",
            "--part",
            "test",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("eval json");
    let (p, r, _) = class_figures(&v, "high");
    (v["macro"]["f1"].as_f64().unwrap_or(f64::NAN), p, r)
}

/// Precision, recall and F1 of `class` in an `eval --json` report (NaN where missing).
fn class_figures(v: &serde_json::Value, class: &str) -> (f64, f64, f64) {
    let c = v["per_class"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["class"] == class))
        .cloned()
        .unwrap_or_default();
    let f = |k: &str| c[k].as_f64().unwrap_or(f64::NAN);
    (f("precision"), f("recall"), f("f1"))
}

/// The priority a config's rules give each row.
fn predictions(config: &Path, rows: &[Row]) -> Vec<triaged::score::Priority> {
    let c = triaged::config::Config::load(config).unwrap_or_else(|e| panic!("{e:?}"));
    rows.iter()
        .map(|r| {
            triaged::score::score(
                &triaged::tools::row_email(&r.texts),
                &c.rules,
                &c.thresholds,
                &triaged::score::History::default(),
                0,
            )
            .priority
        })
        .collect()
}

/// The share of `a` equal to `b`.
fn same(a: &[triaged::score::Priority], b: &[triaged::score::Priority]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

/// A config for `eval` with the shipped rules and, if given, a weights file.
fn eval_config(stack: &MailStack, weights: Option<&Path>) -> DaemonConfig {
    let b = DaemonConfig::of(stack);
    match weights {
        Some(w) => b.set("scoring", "weights", w.display().to_string()),
        None => b,
    }
    .write()
}

/// The first `n` rows' store after staff reviewed the given share of the emails and
/// re-flagged those whose verdict is not their label: its config (the stack runs on), what was
/// re-flagged, and the timings.
struct Corrected {
    stack: MailStack,
    cfg: DaemonConfig,
    triaged: i64,
    /// What the store keeps of the customers' words (`messages.text`), in bytes.
    text_bytes: i64,
    reviewed: usize,
    reflagged: usize,
    pairs: usize,
    triage_secs: f64,
    correct_secs: f64,
}

/// Whether staff review email `i` when they review `share` of them (spread evenly).
fn reviews(i: usize, share: f64) -> bool {
    ((i + 1) as f64 * share).floor() > (i as f64 * share).floor()
}

/// Steps 1 and 2: the daemon triages and flags every email; staff review `share` of them
/// and re-flag those whose verdict is not their label, batched per change.
fn corrected(train: &[Row], share: f64) -> Corrected {
    let n = train.len();
    let started = Instant::now();
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack)
        .set("ack", "enabled", false)
        .set("flags", "corrections_interval", "1h")
        .write();
    let d = Daemon::start(&cfg);
    let raw: Vec<Vec<u8>> = train.iter().enumerate().map(|(i, r)| email(i, r)).collect();
    stack.deliver_many(SUPPORT, &raw);
    assert!(
        wait_until(Duration::from_secs(600), || count(
            &cfg,
            "SELECT count(*) FROM messages WHERE flags_state = 'done'"
        ) == n as i64),
        "not every email was triaged and flagged:\n{}",
        d.log_text()
    );
    let triaged = count(
        &cfg,
        "SELECT count(*) FROM messages WHERE status = 'triaged' AND role = 'customer'",
    );
    let triage_secs = started.elapsed().as_secs_f64();
    let text_bytes = count(
        &cfg,
        "SELECT coalesce(sum(length(CAST(text AS BLOB))), 0) FROM messages",
    );

    let started = Instant::now();
    let mut changes: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    let seen = shown(&stack);
    assert_eq!(seen.len(), n, "staff see every email");
    let mut reviewed = 0;
    for (uid, row, keyword) in &seen {
        if !reviews(*row, share) {
            continue;
        }
        reviewed += 1;
        let label = &train[*row].label;
        let keyword = keyword.clone().expect("every email has a triage keyword");
        if &keyword != label {
            changes
                .entry((keyword, label.clone()))
                .or_default()
                .push(*uid);
        }
    }
    let mut commands = vec!["SELECT INBOX".to_string()];
    for ((from, to), uids) in &changes {
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        commands.push(format!("UID STORE {set} -FLAGS.SILENT (triage/{from})"));
        commands.push(format!("UID STORE {set} +FLAGS.SILENT (triage/{to})"));
    }
    let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
    for reply in stack.imap_raw(SUPPORT, &commands) {
        assert!(
            reply.last().is_some_and(|l| l.contains(" OK ")),
            "{reply:?}"
        );
    }
    let reflagged: usize = changes.values().map(Vec::len).sum();
    assert!(
        wait_until(Duration::from_secs(120), || count(
            &cfg,
            "SELECT count(*) FROM corrections WHERE undone_at = 0"
        ) == reflagged as i64),
        "the corrections did not all arrive ({} of {reflagged}):\n{}",
        count(&cfg, "SELECT count(*) FROM corrections WHERE undone_at = 0"),
        d.log_text()
    );
    let correct_secs = started.elapsed().as_secs_f64();
    drop(d);
    Corrected {
        stack,
        cfg,
        triaged,
        text_bytes,
        reviewed,
        reflagged,
        pairs: changes.len(),
        triage_secs,
        correct_secs,
    }
}

/// A list of numbers from the environment.
fn numbers(name: &str, default: &str) -> Vec<f64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// One part of the seeded split of the airline tweets (text, sentiment).
fn tweets(part: Part) -> Vec<Row> {
    let source = Source::from_path(tweets_file()).expect("source");
    let columns = Columns {
        text: vec!["text".into()],
        label: "airline_sentiment".into(),
        filter: Vec::new(),
        split: Some(Split {
            part,
            test_share: 0.3,
            seed: 1,
        }),
    };
    triaged_tune::eval::load(&source, &columns)
        .expect("load tweets")
        .rows
}

/// Precision, recall and F1 of `negative` on the held-out tweets, by the rules of `config`
/// (the pack, and a learned file where one is in its rules directory).
fn tone_held_out(config: &Path) -> (f64, f64, f64) {
    let tones = format!("{},negative", TONES.join(","));
    let out = triaged(
        config,
        &[
            "eval",
            "--data",
            tweets_file().to_str().expect("utf-8 path"),
            "--text",
            "text",
            "--label",
            "airline_sentiment",
            "--tone",
            &tones,
            "--positive",
            "negative",
            "--part",
            "test",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("eval json");
    class_figures(&v, "negative")
}

/// A config with the shipped pack and, if given, a learned file beside it.
fn tone_config(stack: &MailStack, learned: Option<&Path>) -> DaemonConfig {
    let cfg = DaemonConfig::of(stack).own_rules_and_templates().write();
    if let Some(file) = learned {
        std::fs::copy(file, cfg.rules().join("learned-negative.toml")).expect("copy learned");
    }
    cfg
}

/// Step 5: tweets through the real stack, staff correct their tones over IMAP, `tune --store
/// --tone --learn` against `tune --data --tone --learn` on the same rows, measured held out.
fn tone_replay(weaks: &[f64]) {
    let n: usize = std::env::var("BENCH_TUNE_TONE_EMAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut train = tweets(Part::Train);
    train.truncate(n);
    let n = train.len();
    let test_rows = tweets(Part::Test).len();
    let work = tempfile::tempdir().expect("tempdir");
    let csv = work.path().join("tweets.csv");
    let mut text = String::from("text,airline_sentiment\n");
    for r in &train {
        text.push_str(&format!("{},{}\n", field(&r.texts[0]), r.label));
    }
    std::fs::write(&csv, text).expect("write csv");

    let started = Instant::now();
    let stack = MailStack::start();
    let cfg = DaemonConfig::of(&stack)
        .set("ack", "enabled", false)
        .set("flags", "corrections_interval", "1h")
        .write();
    let d = Daemon::start(&cfg);
    let raw: Vec<Vec<u8>> = train
        .iter()
        .enumerate()
        .map(|(i, r)| {
            customer_email(
                &format!("customer{i}@customers.example.test"),
                &format!("row{i}@tickets.example.test"),
                "",
                &r.texts[0].replace(['\r', '\n'], " "),
            )
        })
        .collect();
    stack.deliver_many(SUPPORT, &raw);
    assert!(
        wait_until(Duration::from_secs(600), || count(
            &cfg,
            "SELECT count(*) FROM messages WHERE flags_state = 'done'"
        ) == n as i64),
        "not every tweet was triaged and flagged:\n{}",
        d.log_text()
    );
    let triage_secs = started.elapsed().as_secs_f64();

    // Staff: a negative tweet the pack gave no such tone gets tone/negative; a tweet that is
    // not negative loses the pack's such tones.
    let started = Instant::now();
    let (mut add, mut take) = (Vec::new(), Vec::new());
    for (uid, row, k) in keywords(&stack) {
        let toned = k
            .iter()
            .any(|k| TONES.iter().any(|t| k == &format!("tone/{t}")));
        let negative = train[row].label == "negative";
        if negative && !toned {
            add.push(uid.to_string());
        } else if !negative && toned {
            take.push(uid.to_string());
        }
    }
    let mut commands = vec!["SELECT INBOX".to_string()];
    if !add.is_empty() {
        commands.push(format!(
            "UID STORE {} +FLAGS.SILENT (tone/negative)",
            add.join(",")
        ));
    }
    if !take.is_empty() {
        let all: Vec<String> = TONES.iter().map(|t| format!("tone/{t}")).collect();
        commands.push(format!(
            "UID STORE {} -FLAGS.SILENT ({})",
            take.join(","),
            all.join(" ")
        ));
    }
    let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
    for reply in stack.imap_raw(SUPPORT, &commands) {
        assert!(
            reply.last().is_some_and(|l| l.contains(" OK ")),
            "{reply:?}"
        );
    }
    let corrected = add.len() + take.len();
    assert!(
        wait_until(Duration::from_secs(120), || count(
            &cfg,
            "SELECT count(*) FROM corrections WHERE field = 'tone' AND undone_at = 0"
        ) == corrected as i64),
        "the tone corrections did not all arrive:\n{}",
        d.log_text()
    );
    let correct_secs = started.elapsed().as_secs_f64();
    drop(d);

    let tones = format!("{},negative", TONES.join(","));
    let csv_learned = work.path().join("csv-negative.toml");
    let t = Instant::now();
    triaged(
        &cfg.path,
        &[
            "tune",
            "--data",
            csv.to_str().expect("utf-8 path"),
            "--text",
            "text",
            "--label",
            "airline_sentiment",
            "--tone",
            &TONES.join(","),
            "--positive",
            "negative",
            "--learn-as",
            "negative",
            "--learn",
            csv_learned.to_str().expect("utf-8 path"),
        ],
    );
    let csv_secs = t.elapsed().as_secs_f64();
    println!(
        "\ntune --store --tone against tune --data --tone: {n} airline tweets (training part) through the real stack, \
         triaged in {triage_secs:.1} s; staff add tone/negative to {} and take the pack's tones off {}, every correction \
         in the store {correct_secs:.1} s after",
        add.len(),
        take.len()
    );
    println!(
        "held out ({test_rows} test tweets; `triaged eval --tone {tones} --positive negative --part test`), negative P / R / F1:"
    );
    let (p, r, f1) = tone_held_out(&tone_config(&stack, None).path);
    println!("  {:<44} {p:.3} / {r:.3} / {f1:.3}", "the pack");
    let (p, r, f1) = tone_held_out(&tone_config(&stack, Some(&csv_learned)).path);
    println!(
        "  {:<44} {p:.3} / {r:.3} / {f1:.3}   ({csv_secs:.1} s)",
        "the pack + tune --data --learn"
    );
    for &weak in weaks {
        let learned = work.path().join(format!("store-negative-{weak}.toml"));
        let t = Instant::now();
        let report = triaged(
            &cfg.path,
            &[
                "tune",
                "--store",
                "--since",
                "1d",
                "--tone",
                &tones,
                "--positive",
                "negative",
                "--weak",
                &weak.to_string(),
                "--learn-as",
                "negative",
                "--learn",
                learned.to_str().expect("utf-8 path"),
            ],
        );
        let secs = t.elapsed().as_secs_f64();
        let (p, r, f1) = tone_held_out(&tone_config(&stack, Some(&learned)).path);
        println!(
            "  {:<44} {p:.3} / {r:.3} / {f1:.3}   ({secs:.1} s; out of fold: configured {:.3}, tuned {:.3} macro-F1)",
            format!("the pack + tune --store --weak {weak} --learn"),
            macro_f1(&report, "tone rules, configured"),
            macro_f1(&report, "rules + phrases, tuned evidence"),
        );
        if std::env::var_os("BENCH_TUNE_REPORT").is_some() {
            println!("\n{report}");
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run only when benched.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !data_file().exists() {
        println!("tune_store: skipped, no data at {}", data_file().display());
        return;
    }
    let n: usize = std::env::var("BENCH_TUNE_EMAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let weaks = numbers("BENCH_TUNE_WEAK", "0.3,0.6,1");
    let shares = numbers("BENCH_TUNE_REVIEWED", "1,0.3");
    if std::env::var("BENCH_TUNE_TONE").is_ok_and(|v| v == "only") {
        tone_replay(&weaks);
        return;
    }
    let mut train = rows(Part::Train);
    train.truncate(n);
    let n = train.len();
    let work = tempfile::tempdir().expect("tempdir");
    let csv = work.path().join("train.csv");
    write_csv(&csv, &train);
    let test = rows(Part::Test);
    let test_rows = test.len();

    // The CSV-based fit on the same rows, and the held-out yardsticks.
    let first = corrected(&train, shares.first().copied().unwrap_or(1.0));
    let csv_w = work.path().join("csv.toml");
    let t = Instant::now();
    let csv_report = triaged(
        &first.cfg.path,
        &[
            "tune",
            "--data",
            csv.to_str().expect("utf-8 path"),
            "--text",
            "subject,body",
            "--label",
            "priority",
            "--out",
            csv_w.to_str().expect("utf-8 path"),
        ],
    );
    let csv_secs = t.elapsed().as_secs_f64();
    let w_csv = weights(&csv_w);
    let shipped = held_out(&eval_config(&first.stack, None).path);
    let csv_config = eval_config(&first.stack, Some(&csv_w));
    let from_csv = held_out(&csv_config.path);
    let csv_predicted = predictions(&csv_config.path, &test);
    let shipped_same = same(
        &predictions(&eval_config(&first.stack, None).path, &test),
        &csv_predicted,
    );
    println!(
        "tune --store against tune --data: {n} labelled tickets (English, training part) through the real stack"
    );
    println!(
        "tune --data: {csv_secs:.1} s; out-of-fold macro-F1 configured {:.3} -> tuned {:.3}",
        macro_f1(&csv_report, "rules, shipped weights"),
        macro_f1(&csv_report, "rules, tuned weights")
    );
    println!(
        "held out ({test_rows} test rows no fit saw; `triaged eval --part test`), macro-F1 / high P / high R:"
    );
    for (name, (f1, p, r)) in [
        ("shipped weights", shipped),
        ("tune --data weights", from_csv),
    ] {
        println!("  {name:<38} {f1:.3} / {p:.3} / {r:.3}");
    }
    println!(
        "  (the shipped weights give {:.1} % of the held-out rows the priority the tune --data weights give)",
        shipped_same * 100.0
    );
    // How much the CSV fit moves by itself: the same rows, other fold seeds (the folds
    // choose L2, so the weights can move far while the figures barely do).
    for seed in ["2", "3"] {
        let other = work.path().join(format!("csv-seed{seed}.toml"));
        let report = triaged(
            &first.cfg.path,
            &[
                "tune",
                "--data",
                csv.to_str().expect("utf-8 path"),
                "--text",
                "subject,body",
                "--label",
                "priority",
                "--seed",
                seed,
                "--out",
                other.to_str().expect("utf-8 path"),
            ],
        );
        let (_, r, signs, mad) = agreement(&w_csv, &weights(&other));
        let other_config = eval_config(&first.stack, Some(&other));
        let (f1, p, rec) = held_out(&other_config.path);
        let agree = same(&predictions(&other_config.path, &test), &csv_predicted);
        println!(
            "  tune --data --seed {seed} against --seed 1: Pearson r {r:.3}, signs of the 10 weightiest kept {signs}/10, \
             mean |difference| {mad:.3}; out of fold {:.3}; held out {f1:.3} / {p:.3} / {rec:.3}; \
             the seed-1 fit's priority on {:.1} % of the held-out rows",
            macro_f1(&report, "rules, tuned weights"),
            agree * 100.0
        );
    }

    let mut stores = vec![first];
    for &share in shares.iter().skip(1) {
        stores.push(corrected(&train, share));
    }
    for (c, share) in stores.iter().zip(&shares) {
        println!(
            "\nstaff review {:.0} % of the emails ({} of {n}; {} triaged as customer email in {:.1} s, their words kept in {} KB) and re-flag {} over IMAP ({} UID STORE pairs); every correction in the store {:.1} s after",
            share * 100.0,
            c.reviewed,
            c.triaged,
            c.triage_secs,
            c.text_bytes / 1024,
            c.reflagged,
            c.pairs,
            c.correct_secs
        );
        for &weak in &weaks {
            let out = work.path().join(format!("store-{share}-{weak}.toml"));
            let t = Instant::now();
            let report = triaged(
                &c.cfg.path,
                &[
                    "tune",
                    "--store",
                    "--since",
                    "1d",
                    "--weak",
                    &weak.to_string(),
                    "--out",
                    out.to_str().expect("utf-8 path"),
                ],
            );
            let secs = t.elapsed().as_secs_f64();
            let w = weights(&out);
            let (both, r, signs, mad) = agreement(&w_csv, &w);
            let store_config = eval_config(&c.stack, Some(&out));
            let (f1, p, rec) = held_out(&store_config.path);
            let agree = same(&predictions(&store_config.path, &test), &csv_predicted);
            println!(
                "  tune --store --weak {weak}: {secs:.1} s; against the CSV fit: {both} rules fitted by both \
                 ({} / {} listed), Pearson r {r:.3}, signs of its 10 weightiest kept {signs}/10, \
                 mean |difference| {mad:.3}",
                w.len(),
                w_csv.len()
            );
            println!(
                "    out of fold configured {:.3} -> tuned {:.3}; held out {f1:.3} / {p:.3} / {rec:.3}; \
                 the CSV fit's priority on {:.1} % of the held-out rows",
                macro_f1(&report, "rules, configured weights"),
                macro_f1(&report, "rules, tuned weights"),
                agree * 100.0
            );
            if std::env::var_os("BENCH_TUNE_REPORT").is_some() {
                println!("\n{report}");
            }
        }
    }
    if std::env::var("BENCH_TUNE_TONE").is_ok_and(|v| v == "0") {
        return;
    }
    if tweets_file().exists() {
        tone_replay(&weaks);
    } else {
        println!("tones: skipped, no data at {}", tweets_file().display());
    }
}
