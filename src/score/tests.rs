use std::path::Path;

use super::*;
use crate::parse::{Address, Email};

fn email(subject: &str, body: &str) -> Email {
    Email {
        message_id: "m@x".into(),
        message_id_synthesized: false,
        from: Some(Address {
            name: Some("Ada".into()),
            email: "ada@customer.example".into(),
        }),
        sender: None,
        reply_to: None,
        to: vec![],
        cc: vec![],
        subject: subject.into(),
        date: None,
        in_reply_to: vec![],
        references: vec![],
        body_text: body.into(),
        headers: vec![],
        content_type: "text/plain".into(),
        return_path: None,
        part_types: vec![],
        size: 0,
    }
}

const TH: Thresholds = Thresholds {
    urgent: 8.0,
    high: 4.0,
    normal: 1.0,
};

fn load_str(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<RuleSet, Vec<String>>) {
    let d = tempfile::tempdir().expect("tempdir");
    let paths: Vec<_> = files
        .iter()
        .map(|(name, text)| {
            let p = d.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        })
        .collect();
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let r = RuleSet::load(&refs).map_err(|e| {
        e.iter()
            .map(|d| {
                d.to_string().replace(
                    &format!(
                        "{}/",
                        d.file
                            .parent()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    ),
                    "",
                )
            })
            .collect()
    });
    (d, r)
}

fn default_pack() -> RuleSet {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules/default.toml");
    RuleSet::load(&[&p]).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn broken_rules_are_located() {
    let cases: &[(&str, &str)] = &[
        (
            "[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = 1.0\nfoo = 1\n",
            "r.toml:5:1: unknown field `foo`",
        ),
        (
            "[[rule]]\nid = \"a\"\nregex = \"(x\"\nweight = 1.0\n",
            "r.toml:3:9: rule \"a\": regex does not compile",
        ),
        (
            "[[rule]]\nid = \"a\"\nregex = \"x?\"\nweight = 1.0\n",
            "r.toml:3:9: rule \"a\": regex matches empty text",
        ),
        (
            "[[rule]]\nid = \"a\"\nweight = 1.0\n",
            "r.toml:1:1: rule \"a\" needs keywords",
        ),
        (
            "[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nregex = \"y\"\nweight = 1.0\n",
            "r.toml:4:9: rule \"a\" has both",
        ),
        (
            "[[rule]]\nid = \"a\"\nkeywords = []\nweight = 1.0\n",
            "r.toml:3:12: rule \"a\": keywords must be a non-empty list",
        ),
        (
            "[[rule]]\nid = \"Bad Id\"\nkeywords = [\"x\"]\nweight = 1.0\n",
            "r.toml:2:6: rule id \"Bad Id\" must be",
        ),
        (
            "[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nfields = [\"subject\", \"bdy\"]\nweight = 1.0\n",
            "r.toml:4:22: rule \"a\": unknown field \"bdy\"",
        ),
        (
            "[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = nan\n",
            "r.toml:4:10: rule \"a\": weight must be a finite number",
        ),
        (
            "[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = 1.0\ntone = \"Angry!\"\n",
            "r.toml:5:8: rule \"a\": tone",
        ),
        ("[[rule]\n", "r.toml:1:"),
    ];
    for (text, want) in cases {
        let (_d, r) = load_str(&[("r.toml", text)]);
        let errs = r.expect_err(want);
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "want {want:?}, got {errs:?}"
        );
    }
}

#[test]
fn duplicate_ids_across_files_point_at_the_second() {
    let rule = "[[rule]]\nid = \"dup\"\nkeywords = [\"x\"]\nweight = 1.0\n";
    let (_d, r) = load_str(&[("a.toml", rule), ("b.toml", rule)]);
    let errs = r.expect_err("duplicate");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("b.toml:2:6: duplicate rule id \"dup\""),
        "{errs:?}"
    );
}

#[test]
fn phrases_match_whole_words_after_normalisation() {
    let (_d, r) = load_str(&[(
        "r.toml",
        "[[rule]]\nid = \"down\"\nkeywords = [\"is down\", \"urgent\", \"C++\"]\nweight = 3.0\ntone = \"angry\"\n",
    )]);
    let rules = r.expect("loads");
    let cases = [
        ("the site is down", true),
        ("the site IS\n  DOWN today", true),
        ("ＵＲＧＥＮＴ please", true),
        ("this is downgraded", false),
        ("non-urgently", false),
        ("about c++ builds", true),
    ];
    for (text, want) in cases {
        let v = score(&email("", text), &rules, &TH);
        assert_eq!(!v.hits.is_empty(), want, "{text:?}");
        if want {
            assert_eq!(v.tones, ["angry"]);
            assert_eq!(v.hits[0].field, Field::Body);
        }
    }
}

#[test]
fn weights_sum_once_per_rule_and_map_to_priority() {
    let (_d, r) = load_str(&[(
        "r.toml",
        "[[rule]]\nid = \"a\"\nkeywords = [\"down\"]\nweight = 5.0\nfields = [\"subject\"]\n\
         [[rule]]\nid = \"b\"\nkeywords = [\"now\"]\nweight = 3.0\n\
         [[rule]]\nid = \"c\"\nkeywords = [\"thanks\"]\nweight = -2.0\ntone = \"polite\"\n\
         [[rule]]\nid = \"d\"\nkeywords = [\"example\"]\nweight = 1.0\nfields = [\"from\"]\n",
    )]);
    let rules = r.expect("loads");
    let v = score(&email("Down down down", "fix it now now now"), &rules, &TH);
    assert_eq!(v.score, 9.0);
    assert_eq!(v.priority, Priority::Urgent);
    assert_eq!(
        v.hits.iter().map(|h| h.rule.as_str()).collect::<Vec<_>>(),
        ["a", "b", "d"]
    );
    assert_eq!(v.hits[2].field, Field::From);
    let v = score(&email("Down", "thanks"), &rules, &TH);
    assert_eq!(
        (v.score, v.priority, v.tones.clone()),
        (4.0, Priority::High, vec!["polite".to_string()])
    );
    let v = score(&email("hello", "thanks"), &rules, &TH);
    assert_eq!(v.priority, Priority::Low);
}

#[test]
fn default_pack_scores_realistic_email() {
    let rules = default_pack();
    assert!(rules.len() >= 15);
    let cases: &[(&str, &str, Priority, &[&str])] = &[
        (
            "Your service is DOWN again - this is unacceptable",
            "None of my team can log in. This is the third time this month and I need this fixed today!!!",
            Priority::Urgent,
            &["angry", "frustrated"],
        ),
        (
            "Charged twice",
            "I was charged twice for my invoice, please refund the duplicate payment.",
            Priority::High,
            &[],
        ),
        (
            "Account hacked?",
            "Someone logged into my account and my data was exposed. I will contact my lawyer.",
            Priority::Urgent,
            &["angry", "anxious"],
        ),
        (
            "Question about exports",
            "Sorry to bother you - is there a way to export as CSV? No rush at all.",
            Priority::Low,
            &["polite"],
        ),
        (
            "Thanks!",
            "Thank you, great work on the new release. Keep up the good work!",
            Priority::Low,
            &["happy"],
        ),
        (
            "Cancel",
            "Please cancel my subscription.",
            Priority::Normal,
            &[],
        ),
        (
            "Still waiting",
            "I am still waiting for an answer about my order. Very disappointed.",
            Priority::High,
            &["frustrated"],
        ),
    ];
    for (subject, body, want, tones) in cases {
        let v = score(&email(subject, body), &rules, &TH);
        assert_eq!(
            v.priority, *want,
            "{subject:?}: score {} hits {:?}",
            v.score, v.hits
        );
        for t in *tones {
            assert!(
                v.tones.iter().any(|x| x == t),
                "{subject:?}: tone {t} missing from {:?}",
                v.tones
            );
        }
    }
}
