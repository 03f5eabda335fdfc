//! A configuration can never take the daemon down: `triaged check` answers every hostile
//! config below within seconds with a `file:line:col` error (exit 1) instead of hanging or
//! overflowing its stack, and a SIGHUP reload of such a config on a running daemon is refused
//! with the same error while the running configuration keeps working.
//!
//! Every input is generated here. The 30 s bound is a hang check (the child is killed when it
//! passes), not a timing test: each case takes well under a second in release.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::MailStack;
use crate::daemon;
use crate::daemon::{Daemon, DaemonConfig, count, customer_email, wait_until};

const HANG: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"
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

const OUTAGE: &str = "[[rule]]\nid = \"a\"\nkeywords = [\"outage\"]\nweight = 5.0\n";

/// A config directory: `config` (with `mailbox_extra` lines added to [mailbox]), one rule
/// file `rules/pack.toml`, the shipped templates with `templates` written over them.
fn setup(mailbox_extra: &str, rules: &str, templates: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(d.path().join("rules")).expect("mkdir");
    let config = CONFIG.replacen(
        "password_env = \"PW\"\n",
        &format!("password_env = \"PW\"\n{mailbox_extra}"),
        1,
    );
    std::fs::write(d.path().join("triaged.toml"), config).expect("write");
    std::fs::write(d.path().join("rules/pack.toml"), rules).expect("write");
    daemon::copy_dir(
        &daemon::repo().join("templates"),
        &d.path().join("templates"),
    );
    for (name, body) in templates {
        std::fs::write(d.path().join("templates").join(name), body).expect("write");
    }
    d
}

/// `triaged check` on the config in `dir`, killed if it runs past [`HANG`]: exit status,
/// stdout, stderr, and how long it took. Output goes to files, so a long error list cannot
/// fill a pipe and block the child.
fn check(dir: &Path) -> (ExitStatus, String, String, Duration) {
    let out = dir.join("check.out");
    let err = dir.join("check.err");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_triaged"))
        .arg("check")
        .arg("--config")
        .arg(dir.join("triaged.toml"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn triaged check");
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "triaged check did not answer within {HANG:?} on {}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status, read(&out), read(&err), started.elapsed())
}

/// Check `dir` and expect exit 1 with a line that starts with `file` (relative to `dir`) and
/// contains `message`.
fn refused(name: &str, dir: &Path, file: &str, message: &str) {
    let (status, out, err, took) = check(dir);
    assert_eq!(
        status.code(),
        Some(1),
        "{name}: exit {status} after {took:?}\nstdout: {out}\nstderr: {err}"
    );
    let prefix = format!("{}:", dir.join(file).display());
    assert!(
        err.lines()
            .any(|l| l.starts_with(&prefix) && l.contains(message)),
        "{name}: no line starting {prefix:?} with {message:?} in:\n{err}"
    );
    eprintln!("{name}: refused in {took:?}");
}

fn meta_rule(expr: &str) -> String {
    format!("{OUTAGE}[[rule]]\nid = \"m\"\nmeta = \"{expr}\"\nweight = 1.0\n")
}

fn parens(n: usize) -> String {
    format!("{}a{}", "(".repeat(n), ")".repeat(n))
}

/// `n` keyword rules, one keyword each.
fn many_rules(n: usize) -> String {
    (0..n)
        .map(|i| format!("[[rule]]\nid = \"r{i}\"\nkeywords = [\"w{i}x\"]\nweight = 1.0\n"))
        .collect()
}

/// r0 a keyword rule, then r1 = "r0", r2 = "r1", ... up to r(n-1).
fn meta_chain(n: usize) -> String {
    let mut out = String::from("[[rule]]\nid = \"r0\"\nkeywords = [\"outage\"]\nweight = 1.0\n");
    for i in 1..n {
        out.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\nmeta = \"r{}\"\nweight = 0.001\n",
            i - 1
        ));
    }
    out
}

const NESTED_RANGES: &str =
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
const HUGE_OUTPUT: &str = "{% for i in range(100) %}{{ 'x' * 50000000 }}{% endfor %}";

#[test]
fn check_refuses_every_hostile_config_quickly_with_its_file_and_place() {
    let pack = "rules/pack.toml";
    let deep = "nested more than 64 deep (parentheses and 'not')";
    for n in [10_000, 20_000] {
        let d = setup("", &meta_rule(&parens(n)), &[]);
        refused(
            &format!("meta nested {n} deep"),
            d.path(),
            &format!("{pack}:7:73"),
            deep,
        );
    }
    let d = setup("", &meta_rule(&format!("{}a", "not ".repeat(10_000))), &[]);
    refused("10,000 nots", d.path(), &format!("{pack}:7:265"), deep);

    let keywords: Vec<String> = (0..100_000).map(|i| format!("\"w{i}x\"")).collect();
    let d = setup(
        "",
        &format!(
            "[[rule]]\nid = \"a\"\nkeywords = [{}]\nweight = 1.0\n",
            keywords.join(", ")
        ),
        &[],
    );
    // Named at the 50,001st: `keywords = [` and the 50,000 before it, each with ", ".
    let col = 13
        + keywords[..50_000]
            .iter()
            .map(|k| k.len() + 2)
            .sum::<usize>();
    refused(
        "100,000 keywords",
        d.path(),
        &format!("{pack}:3:{col}"),
        "more than 50000 keywords, senders and regexes in all rule files",
    );

    let d = setup("", &many_rules(20_000), &[]);
    refused(
        "20,000 rules",
        d.path(),
        &format!("{pack}:20002:6"),
        "more than 5000 rules in all rule files",
    );
    let d = setup("", &meta_chain(20_000), &[]);
    refused(
        "a chain of 20,000 meta rules",
        d.path(),
        &format!("{pack}:20002:6"),
        "more than 5000 rules",
    );

    let d = setup(
        "",
        &format!(
            "[[rule]]\nid = \"a\"\nkeywords = [\"{}\"]\nweight = 1.0\n",
            "ab ".repeat(3_400).trim_end()
        ),
        &[],
    );
    refused(
        "a 10 KB keyword",
        d.path(),
        &format!("{pack}:3:13"),
        "keyword is 10199 characters long; the limit is 200",
    );

    let regexes: String = (0..40)
        .map(|i| format!("[[rule]]\nid = \"x{i}\"\nregex = '\\w{{50}}z{i}'\nweight = 1.0\n"))
        .collect();
    let d = setup("", &regexes, &[]);
    refused(
        "regexes too large together",
        d.path(),
        pack,
        "compile to more than 16 MiB together",
    );
    // 5,000 regex rules each too large alone: compiling stops when the budget is spent.
    let regexes: String = (0..5_000)
        .map(|i| format!("[[rule]]\nid = \"x{i}\"\nregex = '\\w{{500}}z{i}'\nweight = 1.0\n"))
        .collect();
    let d = setup("", &regexes, &[]);
    refused(
        "5,000 regexes too large",
        d.path(),
        &format!("{pack}:3:9"),
        "regex compiles to more than 4 MiB (the limit)",
    );

    let groups: String = (0..100_000)
        .map(|i| format!("[[group]]\nid = \"g{i}\"\nmax = 1.0\n"))
        .collect();
    let d = setup("", &format!("{groups}{OUTAGE}"), &[]);
    refused(
        "100,000 groups",
        d.path(),
        &format!("{pack}:3002:6"),
        "more than 1000 groups",
    );
    let examples = vec!["\"outage\""; 1_000_000].join(", ");
    let d = setup("", &format!("{OUTAGE}examples.match = [{examples}]\n"), &[]);
    refused(
        "1,000,000 inline examples",
        d.path(),
        &format!("{pack}:5:{}", 19 + 10_000 * "\"outage\", ".len()),
        "more than 10000 inline examples",
    );

    let d = setup("", OUTAGE, &[("ack.txt", NESTED_RANGES)]);
    refused(
        "nested ranges",
        d.path(),
        "templates/ack.txt:1:1",
        "runs more than 20000000 template steps (the limit)",
    );
    let d = setup("", OUTAGE, &[("ack.html", HUGE_OUTPUT)]);
    refused(
        "huge output",
        d.path(),
        "templates/ack.html",
        "renders to more than 4 MiB (the limit)",
    );

    let d = setup("max_message_size = \"10GB\"\n", OUTAGE, &[]);
    refused(
        "max_message_size 10GB",
        d.path(),
        "triaged.toml:7:20",
        "max_message_size = \"10GB\" is outside 1KB to 64MB",
    );
    for (bad, shown) in [("1000000", "1000000"), ("0", "0")] {
        let d = setup(&format!("batch_size = {bad}\n"), OUTAGE, &[]);
        refused(
            &format!("batch_size {bad}"),
            d.path(),
            "triaged.toml:7:14",
            &format!("batch_size = {shown} is outside 1 to 1000"),
        );
    }
}

#[test]
fn check_accepts_what_is_large_but_within_the_limits() {
    // At the limits, each loads: 5,000 rules; a chain of 5,000 meta rules (as deep as it is
    // long, ordered without recursion); meta nested 64 deep; a 200-character keyword.
    let keyword = "ab ".repeat(67)[..200].to_string();
    let cases: Vec<(&str, String)> = vec![
        ("5,000 rules", many_rules(5_000)),
        ("a chain of 5,000 meta rules", meta_chain(5_000)),
        ("meta nested 64 deep", meta_rule(&parens(64))),
        (
            "a 200-character keyword",
            format!("[[rule]]\nid = \"a\"\nkeywords = [\"{keyword}\"]\nweight = 1.0\n"),
        ),
    ];
    for (name, rules) in cases {
        let d = setup("", &rules, &[]);
        let (status, out, err, took) = check(d.path());
        assert!(status.success(), "{name}: {status}\n{err}");
        assert!(out.contains(": OK ("), "{name}: {out}");
        eprintln!("{name}: OK in {took:?}");
    }
}

/// A daemon on the real mail stack with rules and templates of its own to break.
struct Running {
    stack: MailStack,
    cfg: DaemonConfig,
    daemon: Daemon,
    rules: PathBuf,
    templates: PathBuf,
}

impl Running {
    fn start() -> Running {
        let stack = MailStack::start();
        let cfg = DaemonConfig::of(&stack).own_rules_and_templates().write();
        let (rules, templates) = (cfg.rules(), cfg.templates());
        let daemon = Daemon::start(&cfg);
        Running {
            stack,
            cfg,
            daemon,
            rules,
            templates,
        }
    }

    /// Deliver a new customer email; its Message-ID.
    fn deliver(&self, n: u32) -> String {
        let id = format!("hostile-{n}@customers.example.test");
        self.stack.deliver(
            "support@example.test",
            &customer_email(
                &format!("customer+{n}@example.test"),
                &id,
                "A question about the zorblax widget",
                "Hello, how do I set up the zorblax widget? Thanks.",
            ),
        );
        id
    }

    fn acked(&self, id: &str) -> bool {
        count(
            &self.cfg,
            &format!(
                "SELECT count(*) FROM outbox o JOIN messages m ON m.id = o.message_row
                 WHERE m.message_id = '{id}' AND o.kind = 'ack' AND o.state = 'sent'"
            ),
        ) == 1
    }

    fn alive(&mut self) -> bool {
        self.daemon
            .child
            .as_mut()
            .expect("running")
            .try_wait()
            .expect("wait")
            .is_none()
    }

    /// SIGHUP, and wait for refusal number `n`; the log's lines that name `problem`.
    fn hup_refused(&mut self, n: usize, problem: &str) -> Vec<String> {
        self.daemon.hup();
        assert!(
            wait_until(HANG, || self
                .daemon
                .log_text()
                .matches("Reload refused")
                .count()
                == n),
            "refusal {n} not logged:\n{}",
            self.daemon.log_text()
        );
        assert!(self.alive(), "the daemon died:\n{}", self.daemon.log_text());
        self.daemon
            .log_text()
            .lines()
            .filter(|l| l.contains(problem))
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_hostile_config_is_refused_and_the_daemon_keeps_working() {
    let mut r = Running::start();
    let first = r.deliver(1);
    assert!(
        wait_until(HANG, || r.acked(&first)),
        "first email not acknowledged:\n{}",
        r.daemon.log_text()
    );

    // A meta rule nested 20,000 deep: it used to overflow the 2 MiB stack of the reload.
    let deep = r.rules.join("zz-deep.toml");
    std::fs::write(&deep, meta_rule(&parens(20_000))).expect("write rule");
    let lines = r.hup_refused(1, "nested more than 64 deep");
    assert_eq!(lines.len(), 1, "one error line:\n{lines:#?}");
    assert!(
        lines[0].contains(&format!("{}:7:73: ", deep.display())),
        "{}",
        lines[0]
    );
    std::fs::remove_file(&deep).expect("rm");

    // A template that never ends, then one that writes gigabytes.
    let ack_txt = r.templates.join("ack.txt");
    let shipped_txt = std::fs::read_to_string(&ack_txt).expect("ack.txt");
    std::fs::write(&ack_txt, NESTED_RANGES).expect("write template");
    let lines = r.hup_refused(2, "template steps (the limit)");
    assert_eq!(lines.len(), 1, "one error line:\n{lines:#?}");
    assert!(
        lines[0].contains(&format!("{}:1:1: ", ack_txt.display())),
        "{}",
        lines[0]
    );
    std::fs::write(&ack_txt, &shipped_txt).expect("restore");
    let ack_html = r.templates.join("ack.html");
    std::fs::write(&ack_html, HUGE_OUTPUT).expect("write template");
    let lines = r.hup_refused(3, "renders to more than 4 MiB");
    assert_eq!(lines.len(), 1, "one error line:\n{lines:#?}");
    assert!(
        lines[0].contains(&format!("{}: ", ack_html.display())),
        "{}",
        lines[0]
    );
    assert!(
        !r.daemon.log_text().contains("Configuration reloaded"),
        "nothing was applied:\n{}",
        r.daemon.log_text()
    );

    // The running configuration still works: a new email is acknowledged, with the old
    // (shipped) template, not the broken one on disk.
    let second = r.deliver(2);
    assert!(
        wait_until(HANG, || r.acked(&second)),
        "second email not acknowledged after the refused reloads:\n{}",
        r.daemon.log_text()
    );
    let acks = r.stack.fetch_all("customer@example.test", "INBOX").await;
    let to_second = acks
        .iter()
        .map(|m| String::from_utf8_lossy(&m.raw).to_string())
        .find(|raw| raw.contains("customer+2@example.test"))
        .expect("the second acknowledgement arrived");
    assert!(
        to_second.contains("zorblax") && !to_second.contains("xxxxxxxxxx"),
        "{to_second}"
    );
    assert!(r.alive());
    let st = r.daemon.terminate();
    assert!(st.success(), "{}", r.daemon.log_text());
}
