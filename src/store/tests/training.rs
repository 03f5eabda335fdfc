//! What `triaged tune --store` reads: the period's triaged customer emails with staff's
//! priority correction, their rule hits with counts, and the customer's own words kept; and
//! the digest's count of corrected verdicts.

use super::*;
use crate::score::Hit;

fn hit(rule: &str, count: u32, weight: f64) -> Hit {
    Hit {
        rule: rule.into(),
        target: "body".into(),
        matched: rule.into(),
        count,
        weight: weight * f64::from(count),
    }
}

impl T {
    /// Record `e` as `role` at UID `uid`, received at `received`, with a verdict of `p` and
    /// these hits.
    fn put_hits(
        &mut self,
        uid: u32,
        e: &Email,
        p: Priority,
        received: i64,
        role: Role,
        hits: Vec<Hit>,
    ) {
        let mut v = verdict(p);
        v.hits = hits;
        let at = Location {
            folder: "INBOX",
            uidvalidity: 1,
            uid,
        };
        let content = Content::Triaged {
            email: e,
            verdict: &v,
            guard: Ok(()),
            role,
            bounced: &[],
            alert: &[],
            route: None,
            asks: &[],
        };
        self.store
            .record(&at, &content, received, &self.policy, self.now)
            .expect("record");
    }
}

#[test]
fn the_period_s_customer_emails_come_with_staff_s_priority_their_hits_and_their_words() {
    let mut t = T::new();
    let mut old = email("old@x", "old@customer.example", "Long ago");
    old.body_text = "the outage".into();
    t.put_hits(
        1,
        &old,
        Priority::Normal,
        NOW - 100 * 86_400,
        Role::Customer,
        vec![hit("outage", 1, 4.0)],
    );

    let mut first = email("c1@x", "ada@customer.example", "Payroll export");
    first.body_text =
        "Hello,\nthe payroll export   failed twice.\n\n> Earlier: we are on it\n-- \nAda Lovelace"
            .into();
    t.put_hits(
        2,
        &first,
        Priority::Normal,
        NOW - 3600,
        Role::Customer,
        vec![hit("failure", 2, 1.5), hit("calm", 1, 0.0)],
    );
    let mut second = email("c2@x", "bob@customer.example", "Invoices");
    second.body_text = "Where are my invoices?".into();
    t.put_hits(
        3,
        &second,
        Priority::High,
        NOW - 60,
        Role::Customer,
        vec![hit("billing", 1, 2.0)],
    );
    // Staff's reply keeps no words and is no training email.
    let mut reply = email(
        "s1@x",
        "alice@support.example",
        "Re: Payroll export [#T-1002]",
    );
    reply.body_text = "We are looking into it.".into();
    reply.in_reply_to = vec!["c1@x".into()];
    t.put_hits(4, &reply, Priority::Normal, NOW - 30, Role::Staff, vec![]);
    assert_eq!(
        t.count("SELECT count(*) FROM messages WHERE role = 'staff' AND text = ''"),
        1
    );

    // Staff correct the first one to urgent in their mail client.
    let tasks = t.store.pending_flags("INBOX", 1).expect("flags");
    t.store
        .mark_flagged(&tasks.iter().map(|f| f.row).collect::<Vec<_>>())
        .expect("flagged");
    let names = crate::corrections::KeywordNames {
        priority: Priority::ALL
            .into_iter()
            .map(|p| (p, format!("triage/{}", p.as_str())))
            .collect(),
        tone_prefix: String::new(),
    };
    let noted = t
        .store
        .note_keywords(
            "INBOX",
            1,
            &[(2, vec!["triage/urgent".into()])],
            &names,
            NOW,
        )
        .expect("keywords");
    assert_eq!(noted.len(), 1);

    // The digest counts it as a corrected verdict among the period's.
    let snap = t
        .store
        .digest_snapshot(NOW, NOW - 86_400, NOW, &Default::default())
        .expect("snapshot");
    let mut corrected: Vec<(i64, bool)> =
        snap.messages.iter().map(|m| (m.at, m.corrected)).collect();
    corrected.sort();
    assert_eq!(corrected, vec![(NOW - 3600, true), (NOW - 60, false)]);

    // Staff say the second one is not angry (what `tune --store --tone` fits to).
    t.store
        .relabel(
            "T-1003",
            &[crate::corrections::Relabel::tone("-angry").expect("tone")],
            "cli (ops)",
            NOW,
        )
        .expect("relabel")
        .expect("a ticket");

    let got = t.store.training(NOW - 86_400).expect("training");
    assert_eq!(got.len(), 2, "{got:#?}");
    let (a, b) = (&got[0], &got[1]);
    assert_eq!(
        (a.tag.as_deref(), a.priority, a.staff_priority),
        (Some("T-1002"), Priority::Normal, Some(Priority::Urgent))
    );
    assert_eq!(
        a.hits,
        vec![
            StoredHit {
                rule: "failure".into(),
                count: 2,
                weight: 3.0
            },
            StoredHit {
                rule: "calm".into(),
                count: 1,
                weight: 0.0
            }
        ]
    );
    assert_eq!(
        a.text,
        "Payroll export\nHello, the payroll export failed twice."
    );
    assert!(a.full_text);
    assert_eq!((b.subject.as_str(), b.staff_priority), ("Invoices", None));
    assert_eq!(
        (
            a.staff_tones.as_deref(),
            b.tones.as_str(),
            b.staff_tones.as_deref()
        ),
        (None, "angry", Some("")),
        "the verdict's tones, and staff's where they corrected them"
    );
    assert_eq!(b.received_at, NOW - 60);

    // An email stored before the words were kept (migration 13): its excerpt stands in, and
    // its hits' counts are 0 (unknown).
    t.conn_exec(
        "UPDATE messages SET text = '' WHERE message_id = 'c2@x'; UPDATE hits SET count = 0",
    );
    let got = t.store.training(NOW - 86_400).expect("training");
    assert_eq!(got[1].text, "Invoices\nWhere are my invoices?");
    assert!(!got[1].full_text);
    assert!(got.iter().flat_map(|e| &e.hits).all(|h| h.count == 0));
    // Nothing in a period with no email.
    assert!(t.store.training(NOW + 1).expect("empty").is_empty());
}

/// `[store] keep_text = false`: a customer's email keeps no words of its own (its
/// 300-character excerpt, for the digest and the ticket view, as ever), and the fit reads the
/// excerpt instead, saying so (`full_text`).
#[test]
fn a_store_told_to_keep_no_text_keeps_none_of_the_customers_words() {
    let mut t = T::new();
    t.policy.keep_text = false;
    let mut e = email("c1@x", "ada@customer.example", "Payroll export");
    e.body_text = "The payroll export failed twice.".into();
    t.put_hits(1, &e, Priority::Normal, NOW - 60, Role::Customer, vec![]);
    assert_eq!(
        t.count("SELECT count(*) FROM messages WHERE text = '' AND excerpt != ''"),
        1
    );
    t.policy.keep_text = true;
    let mut e = email("c2@x", "bob@customer.example", "Invoices");
    e.body_text = "Where are my invoices?".into();
    t.put_hits(2, &e, Priority::Normal, NOW - 30, Role::Customer, vec![]);
    let got = t.store.training(NOW - 86_400).expect("training");
    let kept: Vec<(bool, &str)> = got.iter().map(|e| (e.full_text, e.text.as_str())).collect();
    assert_eq!(
        kept,
        [
            (false, "Payroll export\nThe payroll export failed twice."),
            (true, "Invoices\nWhere are my invoices?")
        ]
    );
}
