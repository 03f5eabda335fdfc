//! The digest built from the fixture snapshot: its sections, order, reasons and themes. How it
//! reads rendered through the templates is tested on the staff-mail side
//! ([`crate::notices::render`]).

use super::fixture;
use super::*;

#[test]
fn fixture_digest_orders_by_what_needs_a_human() {
    let d = &samples()[0];
    let order: Vec<(&str, Vec<&str>)> = d
        .sections
        .iter()
        .map(|s| (s.id, s.entries.iter().map(|e| e.tag.as_str()).collect()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("urgent", vec!["T-1041"]),
            ("sla", vec!["T-1027", "T-1038"]),
            ("tone", vec!["T-1040"]),
            ("leave", vec!["T-1043"]),
            ("repeat", vec!["T-1039"]),
            ("vip", vec!["T-1037"]),
            ("oldest", vec!["T-1030"]),
            ("followups", vec!["T-1022"]),
            ("deliveries", vec!["T-1029"]),
        ]
    );
    assert_eq!(d.waiting, 10);
    assert_eq!(d.not_listed, 1, "T-1042 has nothing remarkable");
    let entry = |tag: &str| {
        d.sections
            .iter()
            .flat_map(|s| s.entries.iter())
            .find(|e| e.tag == tag)
            .unwrap_or_else(|| panic!("{tag} listed"))
    };
    // The customer who asks to leave has a section of their own; one who threatens to
    // (churn-risk) does not.
    assert_eq!(
        entry("T-1043").reasons[0],
        "asks to cancel: let them go, no retention offer"
    );
    // The meek customer is pointed out where a section lists them, after the reasons that
    // place them.
    let meek = entry("T-1039");
    assert_eq!(meek.tones, ["meek"]);
    assert_eq!(
        meek.reasons.last().map(String::as_str),
        Some("says little (meek): look deeper")
    );
    assert_eq!(entry("T-1038").team, "billing");
    assert_eq!(entry("T-1030").team, "", "no team");
    let late = &d.sections[1].entries[0];
    assert!(late.sla.starts_with("reply late by"), "{}", late.sla);
    assert!(
        late.reasons.iter().any(|r| r == "3rd email in 7 days"),
        "{:?}",
        late.reasons
    );
    let soon = &d.sections[1].entries[1];
    assert_eq!(soon.sla, "reply due in 1h");
    assert_eq!(
        d.sections[0].entries[0].hits,
        vec![
            "outage (\u{201c}is down\u{201d})",
            "many-affected (\u{201c}all our customers\u{201d})",
            "deadline (\u{201c}black friday\u{201d})"
        ],
        "the three strongest positive hits"
    );
    let themes: Vec<(&str, usize, usize, &str)> = d
        .themes
        .iter()
        .map(|t| (t.name.as_str(), t.now, t.before, t.change.as_str()))
        .collect();
    assert_eq!(
        themes,
        vec![
            ("access", 6, 2, "x3"),
            ("cancel", 1, 0, "new"),
            ("outage", 1, 0, "new"),
            ("billing", 3, 3, "same"),
            ("refund", 0, 2, "gone"),
        ]
    );
    assert!(
        d.subject
            .starts_with("[triaged] team digest: 1 urgent, 2 late or due soon"),
        "{}",
        d.subject
    );
    assert!(!d.empty);
    assert!(samples()[1].empty);
}

#[test]
fn filters_keep_a_team_digest_to_its_queue() {
    let sla = fixture::sla();
    let mut cfg = fixture::config();
    let ctx = Context {
        sla: &sla,
        themes_from: themes_period(&cfg, fixture::at()).0,
    };
    cfg.intents = vec!["billing".into(), "access".into()];
    let d = build(&fixture::snapshot(), fixture::at(), &cfg, &ctx);
    let tags: Vec<&str> = d
        .sections
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.tag.as_str()))
        .collect();
    assert_eq!(tags, vec!["T-1038", "T-1029"]);
    let themes: Vec<&str> = d.themes.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(themes, vec!["access", "billing"]);
    cfg.intents.clear();
    cfg.priorities = vec![Priority::Urgent];
    let d = build(&fixture::snapshot(), fixture::at(), &cfg, &ctx);
    assert_eq!(d.waiting, 1);
}

#[test]
fn a_team_digest_lists_its_tickets_and_counts_its_themes() {
    let sla = fixture::sla();
    let mut cfg = fixture::config();
    let ctx = Context {
        sla: &sla,
        themes_from: themes_period(&cfg, fixture::at()).0,
    };
    cfg.teams = vec!["billing".into()];
    let d = build(&fixture::snapshot(), fixture::at(), &cfg, &ctx);
    let listed: Vec<(&str, &str)> = d
        .sections
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| (s.id, e.tag.as_str())))
        .collect();
    assert_eq!(
        listed,
        [
            ("sla", "T-1038"),
            ("leave", "T-1043"),
            ("followups", "T-1022")
        ]
    );
    assert!(
        d.sections
            .iter()
            .flat_map(|s| &s.entries)
            .all(|e| e.team == "billing")
    );
    assert_eq!(d.waiting, 2, "T-1022 is answered");
    let themes: Vec<(&str, usize, usize)> = d
        .themes
        .iter()
        .map(|t| (t.name.as_str(), t.now, t.before))
        .collect();
    assert_eq!(
        themes,
        [("cancel", 1, 0), ("billing", 3, 3), ("refund", 0, 2)],
        "the team's emails only"
    );
    // Two teams: both queues; with intents too, both filters hold.
    cfg.teams = vec!["billing".into(), "technical".into()];
    let d = build(&fixture::snapshot(), fixture::at(), &cfg, &ctx);
    assert_eq!(d.sections.iter().map(|s| s.entries.len()).sum::<usize>(), 5);
    cfg.intents = vec!["access".into()];
    let d = build(&fixture::snapshot(), fixture::at(), &cfg, &ctx);
    let tags: Vec<&str> = d
        .sections
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.tag.as_str()))
        .collect();
    assert_eq!(tags, ["T-1029"]);
}

#[test]
fn changes_read_naturally() {
    assert_eq!(change(6, 2), "x3");
    assert_eq!(change(5, 2), "x2.5");
    assert_eq!(change(3, 2), "+1");
    assert_eq!(change(1, 4), "-75%");
    assert_eq!(change(2, 3), "-34%");
    assert_eq!(change(0, 0), "same");
    assert_eq!(ordinal(1), "1st");
    assert_eq!(ordinal(2), "2nd");
    assert_eq!(ordinal(3), "3rd");
    assert_eq!(ordinal(11), "11th");
    assert_eq!(ordinal(22), "22nd");
}

#[test]
fn the_digest_says_how_many_verdicts_staff_corrected_in_its_period() {
    let sla = fixture::sla();
    let mut cfg = fixture::config();
    let ctx = Context {
        sla: &sla,
        themes_from: themes_period(&cfg, fixture::at()).0,
    };
    // Since Friday 15:00: 11 customer emails, 5 corrected (the correction before the period
    // is not counted): enough to point at `triaged tune --store`.
    let d = build(&fixture::snapshot(), fixture::at(), &cfg, &ctx);
    assert_eq!(
        d.corrections,
        Some(Corrections {
            corrected: 5,
            verdicts: 11,
            suggest_tune: true
        })
    );
    // A team digest counts its team's emails: billing's 4, 1 corrected, no hint yet.
    cfg.teams = vec!["billing".into()];
    let d = build(&fixture::snapshot(), fixture::at(), &cfg, &ctx);
    assert_eq!(
        d.corrections,
        Some(Corrections {
            corrected: 1,
            verdicts: 4,
            suggest_tune: false
        })
    );
    // None corrected: no line.
    let mut snap = fixture::snapshot();
    for m in &mut snap.messages {
        m.corrected = false;
    }
    cfg.teams.clear();
    assert_eq!(build(&snap, fixture::at(), &cfg, &ctx).corrections, None);
    assert_eq!(
        build(&Snapshot::default(), fixture::at(), &cfg, &ctx).corrections,
        None
    );
}
