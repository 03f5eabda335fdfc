//! The pure parts of `tune --store`: labels and their weights, the classes fitted, stored hits
//! as features, re-scoring them as the scorer does, and the difference reported.

use std::path::Path;

use super::*;
use crate::score::{self, History, RuleSet};
use Priority::{High, Low, Normal, Urgent};

fn rules_of(text: &str) -> (tempfile::TempDir, RuleSet) {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("r.toml");
    std::fs::write(&p, text).expect("write");
    let r = RuleSet::load(&[&p]).unwrap_or_else(|e| panic!("{e:?}"));
    (d, r)
}

fn default_pack() -> RuleSet {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules/default.toml");
    RuleSet::load(&[&p]).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn a_correction_is_a_label_of_weight_one_and_a_verdict_left_a_weak_one() {
    for (verdict, staff, weak, want) in [
        (
            Normal,
            Some(Urgent),
            0.3,
            Label {
                priority: Urgent,
                weight: 1.0,
                corrected: true,
            },
        ),
        (
            Normal,
            None,
            0.3,
            Label {
                priority: Normal,
                weight: 0.3,
                corrected: false,
            },
        ),
        // --weak 0: only corrections are fitted.
        (
            High,
            None,
            0.0,
            Label {
                priority: High,
                weight: 0.0,
                corrected: false,
            },
        ),
        // A correction weighs 1 whatever --weak says.
        (
            High,
            Some(Low),
            0.0,
            Label {
                priority: Low,
                weight: 1.0,
                corrected: true,
            },
        ),
    ] {
        assert_eq!(Label::of(verdict, staff, weak), want);
    }
}

#[test]
fn the_classes_are_the_priorities_present_and_a_rare_end_joins_its_neighbour() {
    let many = |p: Priority, n: usize| vec![p; n];
    let labels = [many(Low, 5), many(Normal, 9), many(Urgent, 4)].concat();
    let (order, notes) = classes(&labels).expect("classes");
    assert_eq!(order, vec![Low, Normal, Urgent]);
    assert!(notes.is_empty());

    // Two urgent emails: counted as high; one low: counted as normal.
    let labels = [
        many(Low, 1),
        many(Normal, 9),
        many(High, 4),
        many(Urgent, 2),
    ]
    .concat();
    let (order, notes) = classes(&labels).expect("classes");
    assert_eq!(order, vec![Normal, High]);
    assert_eq!(
        notes,
        vec![
            "low (1 email) counted as normal: too few for a threshold of its own",
            "urgent (2 emails) counted as high: too few for a threshold of its own"
        ]
    );
    assert_eq!(class_of(Low, &order), 0);
    assert_eq!(class_of(Urgent, &order), 1);
    assert_eq!(class_of(High, &order), 1);
    assert_eq!(class_of(Normal, &order), 0);

    // Rare ends merged inward until the end classes have enough: two left.
    let labels = [
        many(Low, 2),
        many(Normal, 2),
        many(High, 2),
        many(Urgent, 2),
    ]
    .concat();
    let (order, _) = classes(&labels).expect("classes");
    assert_eq!(order.len(), 2, "{order:?}");

    for bad in [
        many(Normal, 30),
        [many(Normal, 30), many(Urgent, 1)].concat(),
        vec![],
    ] {
        let err = classes(&bad).expect_err("one class").to_string();
        assert!(err.contains("at least two priorities"), "{err}");
    }
}

#[test]
fn stored_hits_are_features_of_the_configured_rules() {
    let (_d, rules) = rules_of(
        "[[rule]]\nid = \"outage\"\nkeywords = [\"outage\"]\nweight = 2.0\nmax_hits = 3\n\
         [[rule]]\nid = \"angry\"\nkeywords = [\"furious\"]\ntone = \"angry\"\n",
    );
    let r = rules.rules();
    let index: HashMap<&str, usize> = r
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let hit = |rule: &str, count: u32, weight: f64| StoredHit {
        rule: rule.into(),
        count,
        weight,
    };
    assert_eq!(
        hit_counts(
            &[
                hit("outage", 2, 4.0),
                hit("angry", 1, 0.0),
                // A rule no longer configured.
                hit("gone", 1, 5.0),
            ],
            r,
            &index
        ),
        vec![(0, 2.0), (1, 1.0)]
    );
    // Stored before counts were: the weight at the time over the weight now, within 1 and
    // max_hits; a rule without weight counts once.
    assert_eq!(
        hit_counts(&[hit("outage", 0, 6.0), hit("angry", 0, 0.0)], r, &index),
        vec![(0, 3.0), (1, 1.0)]
    );
    assert_eq!(
        hit_counts(&[hit("outage", 0, 40.0)], r, &index),
        vec![(0, 3.0)]
    );
    assert_eq!(
        hit_counts(&[hit("outage", 0, 0.5)], r, &index),
        vec![(0, 1.0)]
    );
}

#[test]
fn stored_hits_rescored_under_the_configured_weights_give_the_scorers_verdict() {
    // The default pack has capped groups (calm, ...), meta rules, tone-only rules; each text
    // is scored, and its hits re-scored as `tune --store` does: the same score and priority.
    let rules = default_pack();
    let th = Thresholds::DEFAULT;
    let index: HashMap<&str, usize> = rules
        .rules()
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let texts = [
        (
            "Outage",
            "The dashboard is down and we are losing money. URGENT!!! Fix it now.",
        ),
        (
            "Thanks",
            "Thank you so much, you are wonderful, no rush at all, whenever you can.",
        ),
        ("Question", "Where can I download my invoices?"),
        (
            "Refund",
            "I have not received a refund. This is the third time I write. I will post a review and call my lawyer.",
        ),
        ("Hi", ""),
        // low-urgency, feature-request and praise: -5, capped at the calm group's -3.
        (
            "Idea",
            "Not urgent, just a feature request: great job on the new release, amazing work.",
        ),
    ];
    let mut capped = 0;
    for (subject, body) in texts {
        let v = score::score(
            &score::text_email(subject, body),
            &rules,
            &th,
            &History::default(),
            0,
        );
        capped += v.caps.len();
        let stored: Vec<StoredHit> = v
            .hits
            .iter()
            .map(|h| StoredHit {
                rule: h.rule.to_string(),
                count: h.count,
                weight: h.weight,
            })
            .collect();
        let hits = hit_counts(&stored, rules.rules(), &index);
        let r = Rescored::of(&hits, rules.rules(), rules.groups(), |i| {
            rules.rules()[i].weight
        });
        assert!(
            (r.score - v.score).abs() < 1e-9,
            "{subject}: {} vs {}",
            r.score,
            v.score
        );
        assert_eq!(r.priority(&th), v.priority, "{subject}");
    }
    assert!(capped > 0, "some text met a group cap");
}

#[test]
fn rescoring_caps_groups_and_an_email_no_weighted_rule_hit_has_no_evidence() {
    let (_d, rules) = rules_of(
        "[[group]]\nid = \"calm\"\nmin = -2.0\n\
         [[rule]]\nid = \"thanks\"\nkeywords = [\"thanks\"]\nweight = -1.5\ngroup = \"calm\"\n\
         [[rule]]\nid = \"patience\"\nkeywords = [\"no rush\"]\nweight = -1.5\ngroup = \"calm\"\n\
         [[rule]]\nid = \"outage\"\nkeywords = [\"outage\"]\nweight = 5.0\n\
         [[rule]]\nid = \"angry\"\nkeywords = [\"furious\"]\ntone = \"angry\"\n",
    );
    let (r, g) = (rules.rules(), rules.groups());
    let th = Thresholds {
        no_evidence: Normal,
        ..Thresholds::DEFAULT
    };
    let w = |i: usize| r[i].weight;
    let calm = Rescored::of(&[(0, 1.0), (1, 1.0)], r, g, w);
    assert_eq!(
        calm,
        Rescored {
            score: -2.0,
            weighed: true
        },
        "capped at -2, not -3"
    );
    assert_eq!(calm.priority(&th), Low);
    let both = Rescored::of(&[(0, 1.0), (1, 1.0), (2, 1.0)], r, g, w);
    assert_eq!(both.score, 3.0);
    // Only a tone rule: no evidence, whatever the score.
    let tone = Rescored::of(&[(3, 1.0)], r, g, w);
    assert!(!tone.weighed);
    assert_eq!(tone.priority(&th), Normal);
    assert_eq!(Rescored::of(&[], r, g, w).priority(&th), Normal);
    // Under other weights; and learned phrases on top.
    let doubled = Rescored::of(&[(2, 1.0)], r, g, |i| 2.0 * r[i].weight);
    assert_eq!(doubled.priority(&th), Urgent);
    assert_eq!(tone.plus(4.5).priority(&th), High);
}

#[test]
fn moves_say_whether_an_email_reaches_its_label_or_leaves_it() {
    let label = |p, corrected| Label {
        priority: p,
        weight: if corrected { 1.0 } else { 0.3 },
        corrected,
    };
    let old = [Normal, Normal, High, Low, Urgent, Normal];
    let new = [Urgent, Normal, Normal, High, High, High];
    let labels = [
        label(Urgent, true), // to staff's label
        label(Normal, false),
        label(High, false),  // away from the verdict staff left
        label(Normal, true), // from low to high: neither
        label(High, true),   // to staff's label
        label(Urgent, true), // neither
    ];
    let received = [10, 20, 30, 40, 50, 60];
    let labels: Vec<Priority> = labels.iter().map(|l| l.priority).collect();
    let m = moves(&old, &new, &labels, &received);
    let got: Vec<(usize, Toward)> = m.iter().map(|m| (m.email, m.toward)).collect();
    assert_eq!(
        got,
        vec![
            (4, Toward::Label),
            (0, Toward::Label),
            (2, Toward::Away),
            (5, Toward::Other),
            (3, Toward::Other),
        ],
        "to the label first, then away, then the rest; newest first in each"
    );
    assert_eq!((m[0].from, m[0].to), (Urgent, High));
}

#[test]
fn the_rules_that_change_most_come_first_and_unchanged_ones_are_left_out() {
    let c = |rule: &str, configured, tuned| RuleChange {
        rule: rule.into(),
        configured,
        tuned,
        emails: 1,
        corrected: 0,
    };
    let got: Vec<String> = rule_changes(vec![
        c("same", 2.0, 2.001),
        c("up", 1.0, 3.0),
        c("down", 4.0, 1.0),
        c("b-tie", 0.0, -1.0),
        c("a-tie", 1.0, 2.0),
    ])
    .into_iter()
    .map(|c| c.rule)
    .collect();
    assert_eq!(got, vec!["down", "up", "a-tie", "b-tie"]);
}

#[test]
fn the_fitted_cuts_become_the_thresholds_of_the_priorities_they_separate() {
    let th = Thresholds::DEFAULT; // normal 1, high 4, urgent 8
    let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
    for (order, cuts, want, notes) in [
        // Every class: the normal..high gap of the fit reads as the configured 3.
        (
            &[Low, Normal, High, Urgent][..],
            &[0.0, 1.0, 2.0][..],
            (0.0, 3.0, 6.0),
            0,
        ),
        // No high: fitted normal and urgent (gap 7); high's range is empty.
        (&[Low, Normal, Urgent], &[0.0, 1.0], (0.0, 7.0, 7.0), 1),
        // No low: normal lies the configured gap below high.
        (&[Normal, High, Urgent], &[0.0, 1.0], (-3.0, 0.0, 4.0), 1),
        // No urgent: the configured gap above high.
        (&[Low, Normal, High], &[0.0, 2.0], (0.0, 3.0, 7.0), 1),
        // Two classes: a unit of the fit is the normal..high gap.
        (&[Low, Normal], &[0.5], (1.5, 4.5, 8.5), 2),
    ] {
        let (scale, t, said) = place_thresholds(&th, cuts, order);
        assert!(
            near(t.normal, want.0) && near(t.high, want.1) && near(t.urgent, want.2),
            "{order:?} {cuts:?}: {t:?} (scale {scale})"
        );
        assert_eq!(said.len(), notes, "{order:?}: {said:?}");
        assert!(t.normal <= t.high && t.high <= t.urgent);
        assert_eq!(t.no_evidence, th.no_evidence);
    }
    let (_, _, said) = place_thresholds(&th, &[0.0, 1.0], &[Low, Normal, Urgent]);
    assert_eq!(
        said,
        vec![
            "high is no class of the fit: its threshold (7.00) is placed at urgent's: the fit puts no \
             email between, so nothing is high with these thresholds (set it by hand to keep one)"
        ]
    );
}

#[test]
fn learning_takes_the_latest_emails_within_the_text_budget() {
    let rows = [0, 2, 3, 5, 8];
    let size = |i: usize| i * 10;
    // From the newest: 80, +50 = 130, +30 = 160 > 150.
    assert_eq!(latest_within(&rows, size, 150), vec![5, 8]);
    assert_eq!(latest_within(&rows, size, 1000), rows.to_vec());
    // One email over the budget is still one to learn from.
    assert_eq!(latest_within(&rows, size, 10), vec![8]);
    assert!(latest_within(&[], size, 10).is_empty());
}
