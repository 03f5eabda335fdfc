//! Scoring speed on one core, run with `cargo bench --bench scoring`: messages/s and MB/s for
//! ~4 KB messages with the shipped default pack, and with the pack plus generated keyword rules
//! (500 and 2,000 in all), so the cost's growth with the number of rules is visible.
//!
//! The messages are built from the English support tickets in
//! ../shared/eval/data/tobi_bueck_tickets_multi-lang-4-20k.head.csv when that file is there
//! (several tickets per message until it is ~4 KB), else from the sample mail in examples/mail.
//! Nothing is written. Environment: BENCH_SCORING_SECS (seconds per measurement, default 3);
//! BENCH_SCORING_PASSES=N scores the corpus exactly N times instead (for instruction counts
//! under `valgrind --tool=callgrind`, which do not depend on what else the machine does);
//! BENCH_SCORING_ONLY=default skips the generated-rule sets; BENCH_SCORING_RULES=a.toml,b.toml
//! also measures the default pack with those files (learned packs from `triaged tune --learn`).
//! Each set's line is followed by the resident memory its loading added (VmRSS before and
//! after, so an upper bound on the compiled rules' own size; a set loaded after another may
//! reuse memory the earlier one freed, and show less). Besides messages per second of wall
//! time, a line says messages per second the thread ran on a CPU (Linux): on a busy shared
//! machine the wall clock also counts the time other processes had the core.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use triaged::score::{History, Priority, RuleSet, Thresholds, score, text_email};

const TARGET_SIZE: usize = 4096;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Text pieces to build messages from.
fn pieces() -> Vec<String> {
    let data = repo().join("../shared/eval/data/tobi_bueck_tickets_multi-lang-4-20k.head.csv");
    if let Ok(text) = std::fs::read_to_string(&data) {
        // Good enough for a benchmark: the quoted body column of English rows.
        let mut out = Vec::new();
        for rec in text.split("\n").filter(|l| l.contains(",en,")) {
            if let Some(body) = rec.split('"').nth(1)
                && body.len() > 80
            {
                out.push(body.to_string());
            }
        }
        if out.len() > 100 {
            return out;
        }
    }
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(repo().join("examples/mail")) {
        for e in dir.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path())
                && let Some((_, body)) = t.split_once("\n\n")
            {
                out.push(body.to_string());
            }
        }
    }
    out
}

/// (subject, body) pairs of about 4 KB each.
fn corpus(n: usize) -> Vec<(String, String)> {
    let p = pieces();
    assert!(!p.is_empty(), "no text to build messages from");
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n {
        let subject = p[i % p.len()].chars().take(60).collect::<String>();
        let mut body = String::new();
        while body.len() < TARGET_SIZE {
            body.push_str(&p[i % p.len()]);
            body.push_str("\n\n");
            i += 1;
        }
        out.push((subject, body));
    }
    out
}

/// `n` extra keyword rules of eight phrases each, written like an operator's pack.
fn extra_rules(n: usize, dir: &Path) -> PathBuf {
    let words = [
        "invoice",
        "delivery",
        "parcel",
        "warranty",
        "printer",
        "router",
        "laptop",
        "license",
        "upgrade",
        "migration",
        "backup",
        "calendar",
        "report",
        "export",
        "import",
        "webhook",
        "token",
        "session",
        "browser",
        "android",
        "iphone",
        "tablet",
        "monitor",
        "driver",
    ];
    let mut text = String::new();
    for r in 0..n {
        let phrases: Vec<String> = (0..8)
            .map(|k| {
                format!(
                    "\"{} {} {r}x{k}\"",
                    words[(r + k) % words.len()],
                    words[(r * 7 + k * 3) % words.len()]
                )
            })
            .collect();
        text.push_str(&format!(
            "[[rule]]\nid = \"extra-{r}\"\nkeywords = [{}]\nweight = 0.5\n\n",
            phrases.join(", ")
        ));
    }
    let path = dir.join("zz-extra.toml");
    std::fs::write(&path, text).expect("write extra rules");
    path
}

fn measure(name: &str, rules: &RuleSet, msgs: &[(String, String)], secs: f64) {
    let th = Thresholds {
        urgent: 8.0,
        high: 4.0,
        normal: 1.0,
        no_evidence: Priority::Normal,
    };
    let emails: Vec<_> = msgs.iter().map(|(s, b)| text_email(s, b)).collect();
    let bytes: usize = msgs.iter().map(|(s, b)| s.len() + b.len()).sum();
    let history = History::default();
    // Warm up, then count whole passes over the corpus until the time is used.
    let mut sink = 0.0;
    for e in &emails {
        sink += score(e, rules, &th, &history, 0).score;
    }
    let (start, cpu_start) = (Instant::now(), cpu_time());
    let mut passes = 0u64;
    let fixed: Option<u64> = std::env::var("BENCH_SCORING_PASSES")
        .ok()
        .and_then(|s| s.parse().ok());
    while match fixed {
        Some(n) => passes < n,
        None => start.elapsed() < Duration::from_secs_f64(secs),
    } {
        for e in &emails {
            sink += score(e, rules, &th, &history, 0).score;
        }
        passes += 1;
    }
    let t = start.elapsed().as_secs_f64();
    let n = passes as f64 * emails.len() as f64;
    let on_cpu = match (cpu_start, cpu_time()) {
        (Some(a), Some(b)) if b > a => {
            format!("  {:>8.0} per CPU-second", n / (b - a).as_secs_f64())
        }
        _ => String::new(),
    };
    println!(
        "{name:<34} {:>5} rules  {:>8.0} messages/s{on_cpu}  {:>6.1} MB/s  ({:.0} bytes/message, checksum {sink:.0})",
        rules.len(),
        n / t,
        passes as f64 * bytes as f64 / t / 1e6,
        bytes as f64 / emails.len() as f64
    );
}

/// Time this thread has run on a CPU (Linux; `None` elsewhere).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Resident memory of this process in KiB (Linux), 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Load a rule set and say what resident memory the loading added.
fn load(files: &[&Path]) -> RuleSet {
    let before = rss_kib();
    let set = RuleSet::load(files).unwrap_or_else(|e| panic!("{e:?}"));
    let after = rss_kib();
    println!(
        "  loaded {} rules from {} file(s): +{} KiB resident",
        set.len(),
        files.len(),
        after.saturating_sub(before)
    );
    set
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run only when benched.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs: f64 = std::env::var("BENCH_SCORING_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let msgs = corpus(500);
    let pack = repo().join("config/rules/default.toml");
    println!("scoring on one core, {} messages of ~4 KB", msgs.len());
    let default = load(&[&pack]);
    measure("default pack", &default, &msgs, secs);
    if let Ok(extra) = std::env::var("BENCH_SCORING_RULES") {
        let mut files = vec![pack.clone()];
        files.extend(
            extra
                .split(',')
                .filter(|f| !f.is_empty())
                .map(PathBuf::from),
        );
        let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let set = load(&refs);
        measure("default pack + BENCH_SCORING_RULES", &set, &msgs, secs);
    }
    // Everything the example config loads: the default pack and any other shipped file
    // (a learned pack), in file-name order as the daemon reads them.
    let mut shipped: Vec<PathBuf> = std::fs::read_dir(repo().join("config/rules"))
        .expect("config/rules")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    shipped.sort();
    if shipped.len() > 1 {
        let refs: Vec<&Path> = shipped.iter().map(PathBuf::as_path).collect();
        let set = load(&refs);
        measure("shipped rules (config/rules)", &set, &msgs, secs);
    }
    if std::env::var("BENCH_SCORING_ONLY").is_ok_and(|v| v == "default") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for total in [500, 2000] {
        let extra = extra_rules(total - default.len(), dir.path());
        let set = load(&[&pack, &extra]);
        measure("default pack + generated rules", &set, &msgs, secs);
    }
}
