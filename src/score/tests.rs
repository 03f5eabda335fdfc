use std::path::Path;

use super::*;
use crate::parse::Address;

fn email(subject: &str, body: &str) -> Email {
    let mut e = text_email(subject, body);
    e.from = Some(Address {
        name: Some("Ada".into()),
        email: "ada@mail.customer.example".into(),
    });
    e
}

const TH: Thresholds = Thresholds {
    urgent: 8.0,
    high: 4.0,
    normal: 1.0,
    no_evidence: Priority::Normal,
};

fn run(e: &Email, rules: &RuleSet) -> Verdict {
    score(e, rules, &TH, &History::default(), 1_000_000)
}

/// Load rule files from strings; errors come back as `file:line:col: message` with the temp
/// directory stripped.
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
    let prefix = format!("{}/", d.path().display());
    let r = RuleSet::load(&refs).map_err(|e| {
        e.iter()
            .map(|d| d.to_string().replace(&prefix, ""))
            .collect()
    });
    (d, r)
}

fn rules(text: &str) -> RuleSet {
    let (_d, r) = load_str(&[("r.toml", text)]);
    r.unwrap_or_else(|e| panic!("{e:?}"))
}

fn default_pack() -> RuleSet {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules/default.toml");
    RuleSet::load(&[&p]).unwrap_or_else(|e| panic!("{e:?}"))
}

fn fired(v: &Verdict) -> Vec<&str> {
    v.hits.iter().map(|h| h.rule.as_str()).collect()
}

#[test]
fn broken_rules_are_located() {
    let kw = "keywords = [\"x\"]\nweight = 1.0\n";
    let cases: Vec<(String, &str)> = vec![
        (format!("[[rule]]\nid = \"a\"\n{kw}foo = 1\n"), "r.toml:5:1: unknown field `foo`"),
        ("[[rule]]\nid = \"a\"\nregex = \"(x\"\nweight = 1.0\n".into(), "r.toml:3:10: rule \"a\": regex does not compile"),
        ("[[rule]]\nid = \"a\"\nregex = 'ab(?z)'\nweight = 1.0\n".into(), "r.toml:3:14: rule \"a\": regex does not compile: error: unrecognized flag"),
        ("[[rule]]\nid = \"a\"\nregex = \"x?\"\nweight = 1.0\n".into(), "r.toml:3:9: rule \"a\": regex matches empty text"),
        ("[[rule]]\nid = \"a\"\nregex = 'Urgent'\nweight = 1.0\n".into(), "r.toml:3:9: rule \"a\": regex has upper-case 'U'"),
        ("[[rule]]\nid = \"a\"\nweight = 1.0\n".into(), "r.toml:1:1: rule \"a\" needs one of keywords"),
        ("[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nregex = \"y\"\nweight = 1.0\n".into(), "r.toml:4:9: rule \"a\" has keywords and regex"),
        ("[[rule]]\nid = \"a\"\nkeywords = []\nweight = 1.0\n".into(), "r.toml:3:12: rule \"a\": keywords is empty"),
        ("[[rule]]\nid = \"a\"\nkeywords = [\"x\", \"X\"]\nweight = 1.0\n".into(), "r.toml:3:18: rule \"a\": keyword \"X\" is listed twice"),
        ("[[rule]]\nid = \"Bad Id\"\nkeywords = [\"x\"]\nweight = 1.0\n".into(), "r.toml:2:6: rule id \"Bad Id\" must be"),
        (format!("[[rule]]\nid = \"a\"\n{kw}in = [\"subject\", \"bdy\"]\n"), "r.toml:5:18: rule \"a\": unknown target \"bdy\""),
        ("[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = nan\n".into(), "r.toml:4:10: rule \"a\": weight must be a finite number"),
        (format!("[[rule]]\nid = \"a\"\n{kw}tone = \"Angry!\"\n"), "r.toml:5:8: rule \"a\": tone"),
        (format!("[[rule]]\nid = \"a\"\n{kw}group = \"calm\"\n"), "r.toml:5:9: rule \"a\": unknown group \"calm\""),
        ("[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\n".into(), "r.toml:2:6: rule \"a\" has no weight, tone or intent"),
        ("[[rule]]\nid = \"a\"\nmeta = \"b and\"\nweight = 1.0\n".into(), "r.toml:3:14: rule \"a\": meta: the expression ends too early"),
        ("[[rule]]\nid = \"a\"\nmeta = \"b or c\"\nweight = 1.0\n".into(), "r.toml:3:8: meta rule \"a\" refers to unknown rule \"b\""),
        (format!("[[rule]]\nid = \"b\"\n{kw}[[rule]]\nid = \"a\"\nmeta = \"b and not b\"\nweight = 1.0\n"), "r.toml:7:8: meta rule \"a\" can never fire"),
        ("[[rule]]\nid = \"a\"\nmeta = \"b\"\nweight = 1.0\n[[rule]]\nid = \"b\"\nmeta = \"a\"\nweight = 1.0\n".into(), "r.toml:1:1: meta rules form a cycle: a -> b -> a"),
        ("[[rule]]\nid = \"a\"\nsignal = \"caps\"\nat_least = 1\nweight = 1.0\n".into(), "r.toml:3:10: rule \"a\": unknown signal \"caps\""),
        ("[[rule]]\nid = \"a\"\nsignal = \"words\"\nat_least = 10\nat_most = 5\nweight = 1.0\n".into(), "r.toml:4:12: rule \"a\" can never fire: at_least 10 is above at_most 5"),
        ("[[rule]]\nid = \"a\"\nsignal = \"words\"\nweight = 1.0\n".into(), "r.toml:3:10: rule \"a\": a signal rule needs at_least"),
        ("[[rule]]\nid = \"a\"\nsenders = [\"nobody\"]\nweight = 1.0\n".into(), "r.toml:3:12: rule \"a\": \"nobody\" is neither an address nor a domain"),
        (format!("[[rule]]\nid = \"a\"\n{kw}examples.match = [\"y\"]\n"), "r.toml:5:19: rule \"a\" does not match its example \"y\""),
        (format!("[[rule]]\nid = \"a\"\n{kw}examples.no_match = [\"an x\"]\n"), "r.toml:5:22: rule \"a\" matches its no_match example \"an x\""),
        (format!("[[rule]]\nid = \"a\"\n{kw}negation = true\n"), "r.toml:5:12: rule \"a\": negation = true, but this file has no [negation]"),
        ("[[rule]\n".into(), "r.toml:1:"),
    ];
    for (text, want) in &cases {
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
        errs[0].starts_with("b.toml:2:6: duplicate rule id \"dup\" (first defined at "),
        "{errs:?}"
    );
}

#[test]
fn phrases_match_whole_words_after_normalisation() {
    let r = rules(
        "[[rule]]\nid = \"down\"\nkeywords = [\"is down\", \"urgent\", \"C++\", \"can't log in\"]\nweight = 3.0\ntone = \"angry\"\n",
    );
    let cases = [
        ("the site is down", true),
        ("the site IS\n  DOWN today", true),
        ("ＵＲＧＥＮＴ please", true),
        ("this is downgraded", false),
        ("non-urgently", false),
        ("about c++ builds", true),
        ("I can’t log in", true),
    ];
    for (text, want) in cases {
        let v = run(&email("", text), &r);
        assert_eq!(!v.hits.is_empty(), want, "{text:?}");
        if want {
            assert_eq!(v.tones, ["angry"]);
            assert_eq!(v.hits[0].target, "body");
        }
    }
}

#[test]
fn negation_guards_cancel_nearby_matches_only() {
    let r = rules(
        "[negation]\nphrases = [\"not\", \"no\", \"don't\"]\nwindow = 3\n\
         [[rule]]\nid = \"urgency\"\nkeywords = [\"urgent\", \"rush\"]\nweight = 2.0\n\
         [[rule]]\nid = \"raw\"\nkeywords = [\"urgent\"]\nnegation = false\nweight = 1.0\n",
    );
    let cases: &[(&str, &[&str])] = &[
        ("this is urgent", &["urgency", "raw"]),
        ("this is not urgent", &["raw"]),
        ("no rush", &[]),
        ("not sure why, but this is urgent", &["urgency", "raw"]),
        ("I don't think it's urgent", &["raw"]),
        ("I don't think it's very urgent", &["urgency", "raw"]),
        (
            "not that I care but the matter is urgent",
            &["urgency", "raw"],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(fired(&run(&email("", text), &r)), *want, "{text:?}");
    }
}

#[test]
fn topic_rules_are_immune_to_negation_unless_they_opt_in() {
    // A rule with an intent names a topic: "I have not received a refund" is about a refund.
    // Urgency and tone words are negated; a topic rule may opt in (a wish to cancel).
    let r = rules(
        "[negation]\nphrases = [\"not\", \"isn't\", \"don't\"]\n\
         [[rule]]\nid = \"refund\"\nkeywords = [\"refund\"]\nweight = 2.0\nintent = \"refund\"\n\
         [[rule]]\nid = \"cancel\"\nkeywords = [\"cancel\"]\nintent = \"cancel\"\nnegation = true\n\
         [[rule]]\nid = \"angry\"\nkeywords = [\"angry\"]\ntone = \"angry\"\n",
    );
    let cases: &[(&str, &[&str])] = &[
        ("I have not received a refund", &["refund"]),
        ("Why isn't my refund showing up?", &["refund"]),
        ("I don't want to cancel", &[]),
        ("please cancel", &["cancel"]),
        ("I am not angry", &[]),
        ("I am angry", &["angry"]),
    ];
    for (text, want) in cases {
        assert_eq!(fired(&run(&email("", text), &r)), *want, "{text:?}");
    }
}

#[test]
fn forms_match_inflections_and_gaps_match_a_few_words() {
    let r = rules(
        "[[rule]]\nid = \"refund\"\nkeywords = [\"refund\", \"charge back\", \"steal\"]\nforms = true\nweight = 1.0\n\
         [[rule]]\nid = \"plain\"\nkeywords = [\"refund\"]\nweight = 1.0\n\
         [[rule]]\nid = \"locked\"\nkeywords = [\"lock ~2 out\"]\nforms = true\nweight = 1.0\n\
         [[rule]]\nid = \"exact-gap\"\nkeywords = [\"locked ~1 out\"]\nweight = 1.0\n\
         [[rule]]\nid = \"many-forms\"\nkeywords = [\"internal server error\"]\nforms = true\nweight = 1.0\n",
    );
    let cases: &[(&str, &[&str])] = &[
        ("where are my refunds", &["refund"]),
        ("it was refunded", &["refund"]),
        ("a refund please", &["refund", "plain"]),
        ("they charged it back", &[]),
        ("I will have it charged back", &["refund"]),
        ("charges back", &["refund"]),
        ("someone stole my card", &["refund"]),
        ("I locked myself out", &["locked", "exact-gap"]),
        ("we are locked out", &["locked", "exact-gap"]),
        ("it keeps locking me out", &["locked"]),
        ("I locked my wife and kids out", &[]),
        ("locked myself, out", &[]),
        ("a refundable fee", &[]),
        ("the internal servers errored", &["many-forms"]),
        ("internal server error", &["many-forms"]),
        // A gap phrase's regex is skipped in ASCII text without its later words; beyond ASCII
        // it decides (its word boundary is ASCII: "out" ends before "é").
        ("locked myself in, then out", &[]),
        ("locked myself outé", &["locked", "exact-gap"]),
        ("locked myself outside", &[]),
        ("étais locked myself out", &["locked", "exact-gap"]),
    ];
    for (text, want) in cases {
        assert_eq!(fired(&run(&email("", text), &r)), *want, "{text:?}");
    }
    // explain shows the inflected word and the gap's words.
    let v = run(&email("", "I locked myself out and was refunded"), &r);
    let matched: Vec<&str> = v.hits.iter().map(|h| h.matched.as_str()).collect();
    assert_eq!(
        matched,
        ["refunded", "locked myself out", "locked myself out"]
    );
    // Errors: a bad gap, a form listed again, too many forms, forms on a regex rule.
    let cases = [
        (
            "keywords = [\"a ~0 b\"]\nweight = 1.0\n",
            "r.toml:3:13: rule \"a\": keyword \"a ~0 b\": a gap is 1 to 8 words",
        ),
        (
            "keywords = [\"~2 out\"]\nweight = 1.0\n",
            "r.toml:3:13: rule \"a\": keyword \"~2 out\": a gap stands between two words",
        ),
        (
            "keywords = [\"refund\", \"refunds\"]\nforms = true\nweight = 1.0\n",
            "r.toml:3:23: rule \"a\": keyword \"refunds\" is already a form of an earlier keyword",
        ),
        (
            "regex = \"x\"\nforms = true\nweight = 1.0\n",
            "r.toml:4:9: rule \"a\": forms does not apply to a regex rule",
        ),
    ];
    for (body, want) in cases {
        let (_d, r) = load_str(&[("r.toml", &format!("[[rule]]\nid = \"a\"\n{body}"))]);
        let errs = r.expect_err(want);
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "want {want:?}, got {errs:?}"
        );
    }
}

#[test]
fn evidence_adds_up_to_a_label() {
    let r = rules(
        "[[rule]]\nid = \"late\"\nkeywords = [\"late\"]\ntone = \"negative\"\nevidence = 0.6\n\
         [[rule]]\nid = \"hours\"\nkeywords = [\"hours\"]\ntone = \"negative\"\nevidence = 0.5\n\
         [[rule]]\nid = \"thanks\"\nkeywords = [\"thanks\"]\ntone = \"negative\"\nevidence = -0.4\n\
         [[rule]]\nid = \"refund\"\nkeywords = [\"refund\"]\nintent = \"refund\"\nevidence = 1.0\nweight = 2.0\n",
    );
    let v = run(&email("", "late again"), &r);
    assert!(v.tones.is_empty());
    assert_eq!(v.evidence[0].sum, 0.6);
    assert!(!v.evidence[0].given);
    let v = run(&email("", "late by hours"), &r);
    assert_eq!(v.tones, ["negative"]);
    assert!(v.evidence[0].given);
    let v = run(&email("", "late by hours, thanks"), &r);
    assert!(v.tones.is_empty(), "{:?}", v.evidence);
    let v = run(&email("", "a refund"), &r);
    assert_eq!(v.intents, ["refund"]);
    assert_eq!(v.score, 2.0);
    // Every label spoken for, by kind and then label; one no rule spoke for is not listed.
    let v = run(&email("", "late for a refund"), &r);
    let listed: Vec<(&str, &str, f64)> = v
        .evidence
        .iter()
        .map(|e| (e.kind, e.label.as_str(), e.sum))
        .collect();
    assert_eq!(
        listed,
        [("intent", "refund", 1.0), ("tone", "negative", 0.6)]
    );
    assert!(run(&email("", "nothing"), &r).evidence.is_empty());
    // explain shows the sum and the bar.
    let text = explain_text(&run(&email("", "late by hours"), &r), &r, &TH);
    assert!(
        text.contains("tone negative: evidence 1.10 >= 1 (given)"),
        "{text}"
    );
    let cases = [
        (
            "evidence = nan\ntone = \"x\"\n",
            "r.toml:5:12: rule \"a\": evidence must be a finite number",
        ),
        (
            "evidence = 1.0\n",
            "r.toml:5:12: rule \"a\": evidence counts towards one label",
        ),
        (
            "evidence = 1.0\ntone = \"x\"\nintent = \"y\"\n",
            "r.toml:5:12: rule \"a\": evidence counts towards one label",
        ),
    ];
    for (body, want) in cases {
        let text = format!("[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = 1.0\n{body}");
        let (_d, r) = load_str(&[("r.toml", &text)]);
        let errs = r.expect_err(want);
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "want {want:?}, got {errs:?}"
        );
    }
}

#[test]
fn no_evidence_has_its_own_priority() {
    let r = rules(
        "[[rule]]\nid = \"calm\"\nkeywords = [\"no rush\"]\nweight = -2.0\n\
         [[rule]]\nid = \"topic\"\nkeywords = [\"invoice\"]\nintent = \"billing\"\n",
    );
    // Nothing matched, or only rules without weight: the no-evidence priority (normal).
    assert_eq!(
        run(&email("", "the exported file is empty"), &r).priority,
        Priority::Normal
    );
    assert_eq!(
        run(&email("", "about my invoice"), &r).priority,
        Priority::Normal
    );
    // Low takes evidence.
    assert_eq!(run(&email("", "no rush"), &r).priority, Priority::Low);
    let low = Thresholds {
        no_evidence: Priority::Low,
        ..TH
    };
    let v = score(&email("", "nothing here"), &r, &low, &History::default(), 0);
    assert_eq!(v.priority, Priority::Low);
}

#[test]
fn a_flood_of_negated_matches_costs_a_bounded_look() {
    let r = rules(
        "[negation]\nphrases = [\"not\"]\nwindow = 2\n\
         [[rule]]\nid = \"outage\"\nkeywords = [\"outage\"]\nweight = 2.0\nmax_hits = 1\n",
    );
    // A few negated matches, then a real one: still counted (the budget is max_hits + 16).
    let text = format!("{}but this is an outage", "not outage, ".repeat(10));
    assert_eq!(fired(&run(&email("", &text), &r)), ["outage"]);
    // Thousands of negated matches: looked at up to the budget, the rest not at all, so the
    // real one at the end is not reached either. That is the price of bounded work.
    let text = format!("{}but this is an outage", "not outage, ".repeat(10_000));
    assert!(fired(&run(&email("", &text), &r)).is_empty());
}

#[test]
fn counted_hits_groups_and_caps() {
    let r = rules(
        "[[group]]\nid = \"calm\"\nmin = -2.0\n\
         [[rule]]\nid = \"bang\"\nkeywords = [\"bad\"]\nweight = 2.0\nmax_hits = 3\n\
         [[rule]]\nid = \"thanks\"\nkeywords = [\"thanks\"]\nweight = -2.0\ngroup = \"calm\"\n\
         [[rule]]\nid = \"regards\"\nkeywords = [\"regards\"]\nweight = -2.0\ngroup = \"calm\"\n",
    );
    let v = run(&email("bad", "bad bad bad bad"), &r);
    assert_eq!((v.hits[0].count, v.score), (3, 6.0));
    let v = run(&email("", "bad. thanks, regards"), &r);
    assert_eq!(v.score, 0.0, "the calm group adds -4 but is capped at -2");
    assert_eq!(
        v.caps,
        vec![CapApplied {
            group: "calm".into(),
            raw: -4.0,
            capped: -2.0
        }]
    );
    // Two phrases of one rule over the same words count once.
    let r = rules(
        "[[rule]]\nid = \"c\"\nkeywords = [\"cancel my\", \"cancel my plan\"]\nmax_hits = 5\nweight = 1.0\n",
    );
    assert_eq!(run(&email("", "cancel my plan"), &r).hits[0].count, 1);
}

#[test]
fn targets_senders_signals_and_meta() {
    let r = rules(
        r#"
[[rule]]
id = "subj"
keywords = ["invoice"]
in = ["subject"]
weight = 1.0
[[rule]]
id = "dom"
keywords = ["customer.example"]
in = ["from.domain"]
weight = 1.0
[[rule]]
id = "hdr"
regex = 'high'
in = ["header:X-Priority"]
weight = 1.0
[[rule]]
id = "vip"
senders = ["customer.example", "boss@elsewhere.example"]
weight = 3.0
[[rule]]
id = "caps"
signal = "caps_ratio"
at_least = 0.6
min_letters = 10
weight = 1.0
tone = "angry"
[[rule]]
id = "bangs"
signal = "punctuation_run"
at_least = 3
weight = 1.0
[[rule]]
id = "chronic"
signal = "earlier_contacts"
within = "2d"
at_least = 2
weight = 2.0
[[rule]]
id = "angry-vip"
meta = "vip and 1 of [caps, bangs]"
weight = 2.0
intent = "escalate"
"#,
    );
    let mut e = email("INVOICE IS WRONG!!!", "WHERE IS MY MONEY");
    e.headers.push(("X-Priority".into(), "1 (High)".into()));
    let now = 1_000_000;
    let history = History {
        earlier_contacts: vec![now - 3 * 86_400, now - 3600, now - 60],
        reply_to_answered: false,
    };
    let v = score(&e, &r, &TH, &history, now);
    assert_eq!(
        fired(&v),
        [
            "subj",
            "dom",
            "hdr",
            "vip",
            "caps",
            "bangs",
            "chronic",
            "angry-vip"
        ]
    );
    assert_eq!(v.score, 12.0);
    assert_eq!(v.intents, ["escalate"]);
    let chronic = &v.hits[6];
    assert_eq!(
        (chronic.target.as_str(), chronic.matched.as_str()),
        ("signal:earlier_contacts", "earlier_contacts=2")
    );
    assert_eq!(v.hits[7].matched, "vip + caps + bangs");
    for signal in [
        Signal::CapsRatio { min_letters: 1 },
        Signal::PunctuationRun,
        Signal::Words,
        Signal::EarlierContacts { within_secs: 1 },
        Signal::ReplyToAnswered,
    ] {
        assert_eq!(signal.target(), format!("signal:{}", signal.name()));
    }
    // The subject rule does not read the body; the sender rule needs the domain or a subdomain.
    let mut quiet = email("hello", "invoice attached");
    quiet.from = Some(Address {
        name: None,
        email: "x@notcustomer.example".into(),
    });
    assert!(
        fired(&run(&quiet, &r)).is_empty(),
        "{:?}",
        run(&quiet, &r).hits
    );
}

#[test]
fn quoted_text_is_not_scored() {
    let r = rules("[[rule]]\nid = \"a\"\nkeywords = [\"unacceptable\"]\nweight = 2.0\n");
    let reply = "Thanks, that fixed it.\n\nOn Monday you wrote:\n> This is unacceptable\n";
    assert!(run(&email("Re: help", reply), &r).hits.is_empty());
}

#[test]
fn weights_can_be_replaced_by_id() {
    let r = rules("[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = 1.0\n");
    let w = std::collections::BTreeMap::from([("a".to_string(), 5.5)]);
    let tuned = r.with_weights(&w).expect("known id");
    assert_eq!(run(&email("", "x"), &tuned).score, 5.5);
    let bad = std::collections::BTreeMap::from([("zz".to_string(), 1.0)]);
    assert_eq!(r.with_weights(&bad).expect_err("unknown"), ["zz"]);
}

#[test]
fn default_pack_scores_realistic_email() {
    let r = default_pack();
    assert!(r.len() >= 25);
    // (subject, body, priority, tones that must be there, intents that must be there)
    type Case<'a> = (&'a str, &'a str, Priority, &'a [&'a str], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            "Your service is DOWN again - this is unacceptable",
            "None of my team can log in. This is the third time this month and I need this fixed today!!!",
            Priority::Urgent,
            &["angry", "frustrated"],
            &["outage"],
        ),
        (
            "Charged twice",
            "I was charged twice for my invoice, please refund the duplicate payment.",
            Priority::High,
            &[],
            &["billing", "refund"],
        ),
        (
            "Account hacked?",
            "Someone logged into my account and my data was exposed. I will contact my lawyer.",
            Priority::Urgent,
            &["angry", "anxious"],
            &["legal-threat", "security"],
        ),
        (
            "Question about exports",
            "Sorry to bother you - is there a way to export as CSV? No rush at all.",
            Priority::Low,
            &["polite"],
            &[],
        ),
        (
            "Thanks!",
            "Thank you, great work on the new release. Keep up the good work!",
            Priority::Low,
            &["happy"],
            &["praise"],
        ),
        (
            "Cancel",
            "Please cancel my subscription.",
            Priority::Normal,
            &[],
            &["cancel"],
        ),
        (
            "Still waiting",
            "I am still waiting for an answer about my order. Very disappointed.",
            Priority::High,
            &["frustrated"],
            &[],
        ),
        (
            "Not urgent",
            "Not urgent, but the export button is not working for me.",
            Priority::Low,
            &[],
            &[],
        ),
        // Issue 14's list, item by item (more in the pack's inline examples).
        (
            "",
            "If this keeps happening we will have to cancel our contract.",
            Priority::High,
            &["frustrated"],
            &["churn-risk"],
        ),
        (
            "Export",
            "The exported file is empty since Monday.",
            Priority::Normal,
            &[],
            &[],
        ),
        (
            "Complaint",
            "I want to file a complaint about the way my claim was handled. I have sent numerous \
             disputes and nothing is being done. Thank you for your prompt attention to this matter.",
            Priority::Normal,
            &["frustrated", "polite"],
            &["complaint"],
        ),
        (
            "",
            "I did not make this payment, someone stole my card details",
            Priority::High,
            &["anxious"],
            &["security", "billing"],
        ),
        (
            "stuck",
            "Hi, I'm stuck on the setup and lost my data. Sorry.",
            Priority::High,
            &["meek", "anxious"],
            &["data-loss"],
        ),
    ];
    for (subject, body, want, tones, intents) in cases {
        let v = run(&email(subject, body), &r);
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
        for i in *intents {
            assert!(
                v.intents.iter().any(|x| x == i),
                "{subject:?}: intent {i} missing from {:?}",
                v.intents
            );
        }
    }
}

#[test]
fn the_default_pack_tells_a_threat_from_a_request_and_a_closing_from_praise() {
    let r = default_pack();
    let v = run(
        &email(
            "",
            "If this keeps happening we will have to cancel our contract.",
        ),
        &r,
    );
    assert!(
        v.intents.contains(&"churn-risk".to_string()),
        "{:?}",
        v.intents
    );
    assert!(
        !v.intents.contains(&"cancel".to_string()),
        "{:?}",
        v.intents
    );
    let v = run(&email("", "Please cancel my subscription."), &r);
    assert_eq!(v.intents, ["cancel"]);
    let complaint = "Your courier lost my parcel and nobody answered my emails.";
    let closing = format!("{complaint} Thank you for your prompt attention to this matter.");
    let (a, b) = (
        run(&email("", complaint), &r),
        run(&email("", &closing), &r),
    );
    assert_eq!(a.score, b.score, "a closing is not praise: {:?}", b.hits);
    assert!(!b.tones.contains(&"happy".to_string()));
    let v = run(&email("", "Switching to pro account"), &r);
    assert!(v.intents.is_empty(), "{:?}", v.intents);
    let v = run(&email("", "I entered my PIN wrong too many times"), &r);
    assert!(!fired(&v).contains(&"repeat-contact"), "{:?}", v.hits);
    let v = run(&email("", "Top up is not working"), &r);
    assert!(!v.intents.contains(&"outage".to_string()), "{:?}", v.hits);
}

#[test]
fn explanations_show_every_hit_and_the_running_score() {
    let r = rules(
        "[[group]]\nid = \"calm\"\nmin = -1.0\n\
         [[rule]]\nid = \"down\"\nkeywords = [\"down\"]\nweight = 5.0\nintent = \"outage\"\n\
         [[rule]]\nid = \"thanks\"\nkeywords = [\"thanks\", \"cheers\"]\nweight = -1.0\nmax_hits = 2\ngroup = \"calm\"\ntone = \"polite\"\n",
    );
    let v = run(&email("Site down", "thanks, cheers"), &r);
    let text = explain_text(&v, &r, &TH);
    let want = "\
priority high (score 4.0; urgent >= 8, high >= 4, normal >= 1, else low; no weighted rule: normal)
tone     polite
intents  outage

rule    target   matched   weight  score  labels
down    subject  \"down\"      +5.0    5.0  intent:outage
thanks  body     \"thanks\"  -1.0x2    3.0  tone:polite group:calm

cap: group calm added -2.0, capped to -1.0 (+1.0) -> score 4.0
";
    assert_eq!(text, want, "\n{text}");
    let json = explain_json(&v, &r, &TH);
    assert_eq!(json["priority"], "high");
    assert_eq!(json["hits"][1]["count"], 2);
    assert_eq!(json["hits"][1]["group"], "calm");
    assert_eq!(json["caps"][0]["capped"], -1.0);
}

/// A pack of `n` keyword rules (`k` keywords each), as an operator would write it.
fn generated(n: usize, k: usize, from: usize) -> String {
    let mut out = String::new();
    for i in from..from + n {
        let kws: Vec<String> = (0..k).map(|j| format!("\"w{i}x{j}\"")).collect();
        out.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\nkeywords = [{}]\nweight = 1.0\n",
            kws.join(", ")
        ));
    }
    out
}

#[test]
fn rule_and_keyword_limits_are_located_where_they_are_passed() {
    use super::load::{MAX_KEYWORD_CHARS, MAX_KEYWORDS, MAX_RULES};
    // 3,000 + 2,001 rules: the 5,001st, line 4 x 2,000 + 2 of the second file, is named.
    let (_d, r) = load_str(&[
        ("a.toml", &generated(3_000, 1, 0)),
        ("b.toml", &generated(MAX_RULES - 3_000 + 1, 1, 3_000)),
    ]);
    let errs = r.expect_err("too many rules");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "b.toml:8002:6: more than 5000 rules in all rule files (the limit; this is rule 5001)"
        ),
        "{errs:?}"
    );
    // Exactly at the limit: loads.
    let (_d, r) = load_str(&[("a.toml", &generated(MAX_RULES, 1, 0))]);
    assert_eq!(r.expect("5,000 rules load").len(), MAX_RULES);

    // 50,001 keywords: the first over the limit is the first of rule r500's.
    let (_d, r) = load_str(&[("a.toml", &generated(MAX_KEYWORDS / 100 + 1, 100, 0))]);
    let errs = r.expect_err("too many keywords");
    assert_eq!(errs.len(), 1, "{errs:?}");
    let line = 4 * (MAX_KEYWORDS / 100) + 3;
    assert!(
        errs[0].starts_with(&format!(
            "a.toml:{line}:13: more than 50000 keywords, senders and regexes"
        )),
        "{errs:?}"
    );
    let (_d, r) = load_str(&[("a.toml", &generated(MAX_KEYWORDS / 100, 100, 0))]);
    assert!(r.is_ok(), "50,000 keywords load");

    // A keyword of 201 characters; 200 is fine.
    let long = |n: usize| {
        format!(
            "[[rule]]\nid = \"a\"\nkeywords = [\"x\", \"{}\"]\nweight = 1.0\n",
            "ab ".repeat(n / 3 + 1)[..n].trim_end()
        )
    };
    assert!(
        load_str(&[("r.toml", &long(MAX_KEYWORD_CHARS - 1))])
            .1
            .is_ok()
    );
    let (_d, r) = load_str(&[("r.toml", &long(10_000))]);
    let errs = r.expect_err("a 10 KB keyword");
    assert!(
        errs[0].starts_with(
            "r.toml:3:18: rule \"a\": keyword is 10000 characters long; the limit is 200"
        ),
        "{errs:?}"
    );
}

#[test]
fn meta_limits_are_located_and_chains_load_without_recursion() {
    let base = "[[rule]]\nid = \"a\"\nkeywords = [\"outage\"]\nweight = 1.0\n";
    // Too deep: named at the 65th opening, for parentheses and `not` alike, at any depth.
    for n in [65, 10_000, 20_000] {
        let parens = format!(
            "{base}[[rule]]\nid = \"m\"\nmeta = \"{}a{}\"\nweight = 1.0\n",
            "(".repeat(n),
            ")".repeat(n)
        );
        let (_d, r) = load_str(&[("r.toml", &parens)]);
        let errs = r.expect_err("deep parentheses");
        assert!(
            errs[0].starts_with("r.toml:7:73: rule \"m\": meta: nested more than 64 deep"),
            "{errs:?}"
        );
        let nots = format!(
            "{base}[[rule]]\nid = \"m\"\nmeta = \"{}a\"\nweight = 1.0\n",
            "not ".repeat(n)
        );
        let (_d, r) = load_str(&[("r.toml", &nots)]);
        let errs = r.expect_err("deep nots");
        assert!(
            errs[0].starts_with(&format!(
                "r.toml:7:{}: rule \"m\": meta: nested more than 64 deep",
                9 + 4 * 64
            )),
            "{errs:?}"
        );
    }
    // Long but flat: refused for its length, not its depth.
    let flat = format!(
        "{base}[[rule]]\nid = \"m\"\nmeta = \"{}\"\nweight = 1.0\n",
        vec!["a"; 3_000].join(" or ")
    );
    let (_d, r) = load_str(&[("r.toml", &flat)]);
    let errs = r.expect_err("long meta");
    assert!(
        errs[0].starts_with("r.toml:7:8: rule \"m\": meta is longer than 10000 characters"),
        "{errs:?}"
    );

    // A chain r1 = r0, r2 = r1, ... as long as the rule limit allows: it loads, and the last
    // fires when the first does.
    let mut chain = String::from("[[rule]]\nid = \"r0\"\nkeywords = [\"outage\"]\nweight = 1.0\n");
    for i in 1..super::load::MAX_RULES {
        chain.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\nmeta = \"r{}\"\nweight = 0.001\n",
            i - 1
        ));
    }
    let (_d, r) = load_str(&[("r.toml", &chain)]);
    let set = r.unwrap_or_else(|e| panic!("{:?}", &e[..e.len().min(3)]));
    let v = run(&email("outage", ""), &set);
    assert!(fired(&v).contains(&"r4999"), "{:?}", fired(&v).len());
    assert!(run(&email("hello", ""), &set).hits.is_empty());
}

#[test]
fn regex_errors_name_their_file_and_rule() {
    // Each regex fits alone; together they pass the budget for all regexes. The error names
    // the rule and file where that happens, not the first file loaded, and is said once.
    let regex =
        |i: usize| format!("[[rule]]\nid = \"x{i}\"\nregex = '\\w{{50}}z{i}'\nweight = 1.0\n");
    let small = "[[rule]]\nid = \"a\"\nkeywords = [\"outage\"]\nweight = 1.0\n";
    let many: String = (0..60).map(regex).collect();
    let (_d, r) = load_str(&[("a.toml", small), ("b.toml", &many)]);
    let errs = r.expect_err("regexes too large together");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("b.toml:") && errs[0].contains(":9: rule \"x"),
        "{errs:?}"
    );
    assert!(
        errs[0].contains(
            "regex does not compile: the regexes of all rules up to this one compile to more than 16 MiB together"
        ) && errs[0].contains("(?-u:\\w)"),
        "{errs:?}"
    );
    // Regexes too large alone: each named at its regex while the budget lasts (what they used
    // before they were stopped counts), then once for the rest.
    let big: String = (0..6)
        .map(|i| format!("[[rule]]\nid = \"big{i}\"\nregex = '\\w{{2000}}{i}'\nweight = 1.0\n"))
        .collect();
    let (_d, r) = load_str(&[("c.toml", &big)]);
    let errs = r.expect_err("regexes too large");
    assert_eq!(errs.len(), 5, "{errs:?}");
    for (i, e) in errs.iter().take(4).enumerate() {
        assert!(
            e.starts_with(&format!(
                "c.toml:{}:9: rule \"big{i}\": regex does not compile: regex compiles to more than 4 MiB",
                4 * i + 3
            )),
            "{errs:?}"
        );
    }
    assert!(
        errs[4].starts_with("c.toml:19:9: rule \"big4\": regex does not compile: the regexes of all rules up to this one"),
        "{errs:?}"
    );
}

#[test]
fn negation_and_file_size_limits() {
    let phrases: Vec<String> = (0..101).map(|i| format!("\"no{i}\"")).collect();
    let text = format!(
        "[negation]\nphrases = [{}]\n[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = 1.0\n",
        phrases.join(", ")
    );
    let (_d, r) = load_str(&[("r.toml", &text)]);
    let errs = r.expect_err("too many negation phrases");
    assert!(
        errs[0].starts_with("r.toml:2:") && errs[0].contains("more than 100 phrases"),
        "{errs:?}"
    );
    let mut big = String::from("[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = 1.0\n");
    big.push_str(&"# padding\n".repeat((16 << 20) / 10 + 1));
    let (_d, r) = load_str(&[("r.toml", &big)]);
    let errs = r.expect_err("file too large");
    assert_eq!(
        errs,
        ["r.toml: rule file is larger than 16 MiB (the limit): split it, or keep what decides"]
    );
}

#[test]
fn large_keyword_sets_still_match_whole_words() {
    // 14,000 phrases of 20 bytes (a byte automaton of them would be megabytes).
    let kws: Vec<String> = (0..14_000)
        .map(|i| format!("\"phrase number {i:06}\""))
        .collect();
    let text = format!(
        "[[rule]]\nid = \"a\"\nkeywords = [{}]\nweight = 2.0\n",
        kws.join(", ")
    );
    let set = rules(&text);
    assert_eq!(
        fired(&run(&email("", "see phrase number 004711 now"), &set)),
        ["a"]
    );
    for miss in [
        "phrase number 0047111",
        "phrase-number 004711",
        "xphrase number 004711",
    ] {
        assert!(run(&email("", miss), &set).hits.is_empty(), "{miss}");
    }
}

#[test]
fn a_written_weights_file_reads_back() {
    let r = rules(
        "[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = 1.0\n\n[[rule]]\nid = \"learned.refund.rule.a\"\nkeywords = [\"y\"]\nweight = 1.0\n",
    );
    let th = Thresholds {
        urgent: 6.0004,
        high: 3.5,
        normal: 1.25,
        ..Thresholds::DEFAULT
    };
    let text = weights_file(
        "tuned on tickets\nsecond line",
        &th,
        &[("learned.refund.rule.a".into(), -0.5), ("a".into(), 2.0004)],
    );
    assert!(
        text.starts_with("# tuned on tickets\n# second line\n"),
        "{text}"
    );
    let d = tempfile::tempdir().expect("tempdir");
    let path = d.path().join("weights.toml");
    std::fs::write(&path, &text).expect("write");
    let (tuned, read) = load_weights(&path, &r).expect("reads back");
    let read = read.expect("thresholds written");
    assert_eq!((read.urgent, read.high, read.normal), (6.0, 3.5, 1.25));
    let weights: Vec<(&str, f64)> = tuned
        .rules()
        .iter()
        .map(|r| (r.id.as_str(), r.weight))
        .collect();
    assert_eq!(weights, vec![("a", 2.0), ("learned.refund.rule.a", -0.5)]);
}

#[test]
fn weights_file_errors_are_located_even_in_a_large_file() {
    let r = rules("[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = 1.0\n");
    let d = tempfile::tempdir().expect("tempdir");
    let path = d.path().join("weights.toml");
    // 20,000 unknown ids, then a weight that is not a number: each named at its line.
    let mut text = String::from("[weights]\na = nan\n");
    for i in 0..20_000 {
        text.push_str(&format!("gone{i} = 1.0\n"));
    }
    std::fs::write(&path, &text).expect("write");
    let errs = load_weights(&path, &r).expect_err("refused");
    assert_eq!(errs.len(), 20_001);
    let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let file = path.display().to_string();
    assert!(
        shown.contains(&format!("{file}:2:5: weight must be a finite number")),
        "{:?}",
        &shown[..3]
    );
    assert!(
        shown.iter().any(|e| e.starts_with(&format!(
            "{file}:20002:1: no rule \"gone19999\" in the rule files"
        ))),
        "{:?}",
        &shown[..3]
    );
}

#[test]
fn group_and_example_limits_are_located_where_they_are_passed() {
    use super::load::{MAX_EXAMPLES, MAX_GROUPS};
    // 1,001 groups (3 lines each): the 1,001st is named; a duplicate check over many groups
    // stays linear.
    let mut text: String = (0..=MAX_GROUPS)
        .map(|i| format!("[[group]]\nid = \"g{i}\"\nmax = 1.0\n"))
        .collect();
    text.push_str("[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = 1.0\ngroup = \"g1\"\n");
    let (_d, r) = load_str(&[("r.toml", &text)]);
    let errs = r.expect_err("too many groups");
    assert_eq!(
        errs,
        [format!(
            "r.toml:{}:6: more than 1000 groups in all rule files (the limit; this is group 1001): a group caps a few related rules",
            3 * MAX_GROUPS + 2
        )]
    );
    // 10,001 examples: the 10,001st is named, the ones before are checked.
    let examples = vec!["\"an x\""; MAX_EXAMPLES + 1].join(", ");
    let text = format!(
        "[[rule]]\nid = \"a\"\nkeywords = [\"x\"]\nweight = 1.0\nexamples.match = [{examples}]\n"
    );
    let (_d, r) = load_str(&[("r.toml", &text)]);
    let errs = r.expect_err("too many examples");
    let col = 19 + MAX_EXAMPLES * "\"an x\", ".len();
    assert_eq!(errs.len(), 1, "{:?}", &errs[..errs.len().min(3)]);
    assert!(
        errs[0].starts_with(&format!(
            "r.toml:5:{col}: more than 10000 inline examples in all rule files"
        )),
        "{errs:?}"
    );
}

/// Evidence hits for a label left off the verdict stay in the table up to `FOLD_OVER` of them;
/// beyond that they are summed up on the label's evidence line (JSON keeps every hit).
#[test]
fn many_evidence_hits_for_a_label_not_given_are_summed_up() {
    let pack = |n: usize| {
        let mut s = String::from(
            "[[rule]]\nid = \"refund\"\nkeywords = [\"refund\"]\nintent = \"refund\"\nevidence = 1.0\nweight = 2.0\n",
        );
        for i in 0..n {
            let e = if i == 0 { -0.3 } else { 0.1 + 0.01 * i as f64 };
            s.push_str(&format!(
                "[[rule]]\nid = \"l.billing.w{i}\"\nkeywords = [\"w{i}\"]\nintent = \"billing\"\nevidence = {e}\n"
            ));
        }
        rules(&s)
    };
    let body = |n: usize| {
        let words: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
        format!("refund please {}", words.join(" "))
    };
    let r = pack(explain::FOLD_OVER);
    let text = explain_text(&run(&email("", &body(explain::FOLD_OVER)), &r), &r, &TH);
    assert!(text.contains("l.billing.w0"), "{text}");
    assert!(
        text.contains("intent billing: evidence -0.07 < 1 (not given)\n"),
        "{text}"
    );

    let n = explain::FOLD_OVER + 2;
    let r = pack(n);
    let v = run(&email("", &body(n)), &r);
    let text = explain_text(&v, &r, &TH);
    assert!(!text.lines().any(|l| l.starts_with("l.billing")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("refund ")),
        "the given label's hit stays: {text}"
    );
    assert!(
        text.contains(
            "intent billing: evidence 0.20 < 1 (not given; 5 hits not in the table, \
             strongest for l.billing.w4 \"w4\" +0.14, strongest against l.billing.w0 \"w0\" -0.30)"
        ),
        "{text}"
    );
    assert_eq!(
        explain_json(&v, &r, &TH)["hits"].as_array().map(Vec::len),
        Some(n + 1)
    );
}
