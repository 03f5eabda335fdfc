//! The guard and the parser over real-world mail (../shared/eval/mime): no robot is ever
//! answered, at most one human is refused, and nothing crashes.

use std::collections::BTreeMap;

use triaged::guard::{self, GuardConfig};
use triaged::parse::{self, ParseLimits};

use crate::common;

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

fn run(sub: &str) -> Tally {
    let files = common::eval_mime(sub).unwrap_or_default();
    let mut t = Tally {
        files: 0,
        refused: 0,
        skipped: 0,
        allowed: vec![],
        refused_list: vec![],
        reasons: BTreeMap::new(),
    };
    for f in files {
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
        sub,
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
    if common::eval_mime("").is_none() {
        return;
    }
    let mut total = 0;
    for kind in ["bounce", "autoreply", "feedback", "list"] {
        let t = run(&format!("auto/{kind}"));
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
    if common::eval_mime("").is_none() {
        return;
    }
    let t = run("human");
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
    if common::eval_mime("").is_none() {
        return;
    }
    let m = run("malformed");
    assert!(m.files >= 50);
    let s = run("spam");
    assert!(s.files > 0);
}
