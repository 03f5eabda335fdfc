//! The guard and the parser over real-world mail (../shared/eval/mime): no robot is ever
//! answered, at most one human is refused, and nothing crashes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use triaged::guard::{self, GuardConfig};
use triaged::parse::{self, ParseLimits};

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/mime");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("TRIAGED_ALLOW_MISSING_EVAL").is_ok_and(|v| v == "1"),
        "evaluation corpus missing at {}: it must sit beside the repository (set TRIAGED_ALLOW_MISSING_EVAL=1 to skip)",
        dir.display()
    );
    None
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "eml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn cfg() -> GuardConfig {
    GuardConfig {
        support_addresses: vec!["support@example.test".into()],
        staff_addresses: vec!["staff@example.test".into()],
        own_domain: "triaged.example.test".into(),
        require_addressed: false,
    }
}

const LIMITS: ParseLimits = ParseLimits {
    max_size: 25 * 1024 * 1024,
};

struct Tally {
    files: usize,
    refused: usize,
    skipped: usize,
    allowed: Vec<String>,
    refused_list: Vec<String>,
    reasons: BTreeMap<&'static str, usize>,
}

fn run(dir: &Path) -> Tally {
    let mut t = Tally {
        files: 0,
        refused: 0,
        skipped: 0,
        allowed: vec![],
        refused_list: vec![],
        reasons: BTreeMap::new(),
    };
    for f in files(dir) {
        let raw = std::fs::read(&f).expect("read");
        t.files += 1;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parsed = std::panic::catch_unwind(|| parse::parse(&raw, &LIMITS))
            .unwrap_or_else(|_| panic!("parser panicked on {name}"));
        match parsed {
            Err(skip) => {
                t.skipped += 1;
                *t.reasons.entry(skip.code()).or_default() += 1;
            }
            Ok(email) => match guard::check(&email, &cfg()) {
                Ok(()) => t.allowed.push(format!(
                    "{name}: from {:?} subject {:?}",
                    email.from.map(|a| a.email),
                    email.subject
                )),
                Err(r) => {
                    t.refused += 1;
                    *t.reasons.entry(r.code()).or_default() += 1;
                    t.refused_list.push(format!(
                        "{name}: {} (from {:?}, subject {:?})",
                        r.code(),
                        email.from.map(|a| a.email),
                        email.subject
                    ));
                }
            },
        }
    }
    eprintln!(
        "{:<16} files {:>4}  refused {:>4}  allowed {:>4}  skipped {:>3}  reasons {:?}",
        dir.strip_prefix(dir.parent().and_then(Path::parent).unwrap_or(dir))
            .unwrap_or(dir)
            .display(),
        t.files,
        t.refused,
        t.allowed.len(),
        t.skipped,
        t.reasons
    );
    t
}

#[test]
fn no_robot_is_ever_answered() {
    let Some(root) = corpus() else { return };
    let mut total = 0;
    for kind in ["bounce", "autoreply", "feedback", "list"] {
        let t = run(&root.join("auto").join(kind));
        assert!(t.files > 0, "no files in auto/{kind}");
        assert!(
            t.allowed.is_empty(),
            "auto/{kind}: {} robots would be answered:\n{}",
            t.allowed.len(),
            t.allowed.join("\n")
        );
        total += t.files;
    }
    assert!(total >= 160, "expected the whole auto/ corpus, saw {total}");
}

/// Files in `human/` that a person reading them finds to be robots: list software, a bug
/// tracker relaying with X-Loop, a cron job as root, a no-reply password reset. They must be
/// refused; they do not count as humans.
const ROBOTS_IN_HUMAN: &[(&str, &str)] = &[
    ("mailbox__mbox.src_18.eml", "autoreply_header"),
    ("mailbox__mbox.src_36.eml", "robot_sender"),
    ("mailbox__mbox.src_37.eml", "robot_sender"),
    (
        "rspamd__test__functional__messages__ics.eml",
        "robot_sender",
    ),
    (
        "rspamd__test__functional__messages__transactional.eml",
        "robot_sender",
    ),
];

#[test]
fn at_most_one_human_is_refused() {
    let Some(root) = corpus() else { return };
    let t = run(&root.join("human"));
    assert!(t.files >= 130);
    for (file, code) in ROBOTS_IN_HUMAN {
        let line = t.refused_list.iter().find(|l| l.starts_with(file));
        assert!(
            line.is_some_and(|l| l.contains(&format!(": {code} "))),
            "{file} must be refused as {code}: {line:?}"
        );
    }
    // No sender address at all (test fragments without From, or a From with no address): there is
    // nobody to acknowledge, so these are not wrong refusals either.
    let unanswerable = t
        .refused_list
        .iter()
        .filter(|l| l.contains(": no_sender "))
        .count();
    let wrong: Vec<&String> = t
        .refused_list
        .iter()
        .filter(|l| {
            !l.contains(": no_sender ") && !ROBOTS_IN_HUMAN.iter().any(|(f, _)| l.starts_with(f))
        })
        .collect();
    eprintln!(
        "human: {} refused = {} robots in the folder + {unanswerable} without a sender address + {} wrong",
        t.refused,
        ROBOTS_IN_HUMAN.len(),
        wrong.len()
    );
    assert!(
        wrong.len() <= 1,
        "{} humans wrongly refused:\n{wrong:#?}",
        wrong.len()
    );
    // The one file that does not parse is a list digest's body without any header.
    assert!(t.skipped <= 1, "human mail must parse");
}

#[test]
fn malformed_and_spam_mail_never_crash() {
    let Some(root) = corpus() else { return };
    let m = run(&root.join("malformed"));
    assert!(m.files >= 50);
    let s = run(&root.join("spam"));
    assert!(s.files > 0);
}
