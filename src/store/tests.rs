use std::time::Duration;

use super::*;
use crate::parse::Address;
use crate::score::Verdict;
use crate::tickets::Role;

const NOW: i64 = 1_800_000_000;

fn email(id: &str, from: &str, subject: &str) -> Email {
    Email {
        message_id: id.into(),
        message_id_synthesized: false,
        from: Some(Address {
            name: Some("Ada Customer".into()),
            email: from.into(),
        }),
        sender: None,
        reply_to: None,
        to: vec![Address {
            name: None,
            email: "support@example.test".into(),
        }],
        cc: vec![],
        subject: subject.into(),
        date: None,
        in_reply_to: vec![],
        references: vec![],
        body_text: "hello".into(),
        headers: vec![],
        content_type: "text/plain".into(),
        return_path: None,
        part_types: vec![],
        size: 100,
    }
}

fn verdict(p: Priority) -> Verdict {
    Verdict {
        score: 1.0,
        priority: p,
        tones: vec!["angry".into()],
        intents: vec!["cancel".into(), "refund".into()],
        hits: vec![],
        caps: vec![],
    }
}

fn policy() -> AckPolicy {
    AckPolicy {
        enabled: true,
        max_age: Duration::from_secs(2 * 86_400),
        per_sender_limit: 3,
        per_sender_window: Duration::from_secs(86_400),
        circuit_breaker_per_minute: 60,
        domain: "support.example.test".into(),
    }
}

struct T {
    _dir: tempfile::TempDir,
    store: Store,
}

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.sqlite")).expect("open");
        T { _dir: dir, store }
    }

    fn put(&mut self, uid: u32, e: &Email, p: Priority) -> Recorded {
        self.put_at(1, uid, e, p, NOW)
    }

    fn put_at(
        &mut self,
        uidvalidity: u32,
        uid: u32,
        e: &Email,
        p: Priority,
        received: i64,
    ) -> Recorded {
        self.put_as(uidvalidity, uid, e, p, received, Ok(()), Role::Customer)
    }

    #[allow(clippy::too_many_arguments)]
    fn put_as(
        &mut self,
        uidvalidity: u32,
        uid: u32,
        e: &Email,
        p: Priority,
        received: i64,
        guard: Result<(), Refusal>,
        role: Role,
    ) -> Recorded {
        let v = verdict(p);
        let at = Location {
            folder: "INBOX",
            uidvalidity,
            uid,
        };
        let content = Content::Triaged {
            email: e,
            verdict: &v,
            guard,
            role,
        };
        self.store
            .record(&at, &content, received, &policy(), NOW)
            .expect("record")
    }

    fn ticket(&self, tag: &str) -> (String, i64, i64) {
        self.store
            .conn()
            .query_row(
                "SELECT state, first_response_at, snoozed_until FROM tickets WHERE tag = ?1",
                [tag],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("ticket")
    }

    fn count(&self, sql: &str) -> i64 {
        self.store
            .conn()
            .query_row(sql, [], |r| r.get(0))
            .expect("count")
    }
}

fn ack_of(r: &Recorded) -> (&str, Option<&str>) {
    match r {
        Recorded::New { ack, ticket, .. } => (ack.as_str(), ticket.as_deref()),
        other => panic!("expected a new row, got {other:?}"),
    }
}

#[test]
fn new_email_opens_ticket_queues_ack_and_moves_checkpoint() {
    let mut t = T::new();
    let r = t.put(7, &email("a@x", "ada@example.com", "Help"), Priority::High);
    assert_eq!(ack_of(&r), ("queued", Some("T-1001")));
    assert_eq!(
        t.store.folder_state("INBOX").expect("state"),
        Some(FolderState {
            uidvalidity: 1,
            last_uid: 7
        })
    );
    assert_eq!(
        t.count("SELECT count(*) FROM outbox WHERE kind = 'ack' AND state = 'pending'"),
        1
    );
    // The same location again is a no-op.
    let again = t.put(7, &email("a@x", "ada@example.com", "Help"), Priority::High);
    assert!(matches!(again, Recorded::AlreadyDone { .. }), "{again:?}");
    assert_eq!(t.count("SELECT count(*) FROM outbox"), 1);
}

#[test]
fn replies_join_their_ticket_without_a_second_ack() {
    let mut t = T::new();
    t.put(
        1,
        &email("first@x", "ada@example.com", "Help"),
        Priority::Normal,
    );
    let ack_id: String = t
        .store
        .conn()
        .query_row("SELECT out_message_id FROM outbox", [], |r| r.get(0))
        .expect("ack id");

    let mut by_ref = email("second@x", "ada@example.com", "Re: Help");
    by_ref.in_reply_to = vec!["first@x".into()];
    assert_eq!(
        ack_of(&t.put(2, &by_ref, Priority::Urgent)),
        ("reply_in_ticket", Some("T-1001"))
    );

    let mut to_our_ack = email("third@x", "ada@example.com", "Re: Help [#T-1001]");
    to_our_ack.references = vec![ack_id];
    assert_eq!(
        ack_of(&t.put(3, &to_our_ack, Priority::Low)),
        ("reply_in_ticket", Some("T-1001"))
    );

    let by_tag = email("fourth@x", "ada@example.com", "Still broken [#T-1001]");
    assert_eq!(
        ack_of(&t.put(4, &by_tag, Priority::Low)),
        ("reply_in_ticket", Some("T-1001"))
    );

    // A tag forwarded by someone else opens a new ticket.
    let stranger = email("fifth@x", "eve@example.org", "Fwd: [#T-1001]");
    assert_eq!(
        ack_of(&t.put(5, &stranger, Priority::Low)),
        ("queued", Some("T-1002"))
    );

    assert_eq!(t.count("SELECT count(*) FROM outbox"), 2);
    // The angrier reply raised the ticket's priority.
    let p: String = t
        .store
        .conn()
        .query_row(
            "SELECT priority FROM tickets WHERE tag = 'T-1001'",
            [],
            |r| r.get(0),
        )
        .expect("p");
    assert_eq!(p, "urgent");
}

#[test]
fn uidvalidity_change_relocates_without_reacknowledging() {
    let mut t = T::new();
    let e = email("a@x", "ada@example.com", "Help");
    t.put_at(1, 10, &e, Priority::Normal, NOW);
    t.store.mark_flagged(&[1]).expect("flag");
    let r = t.put_at(2, 3, &e, Priority::Normal, NOW);
    assert!(matches!(r, Recorded::Relocated { .. }), "{r:?}");
    assert_eq!(t.count("SELECT count(*) FROM outbox"), 1);
    assert_eq!(t.count("SELECT count(*) FROM messages"), 1);
    // Re-flag at the new location.
    let pending = t.store.pending_flags("INBOX", 2).expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].uid, 3);
}

#[test]
fn a_second_copy_of_the_same_email_is_recorded_as_duplicate() {
    let mut t = T::new();
    let e = email("a@x", "ada@example.com", "Help");
    t.put(1, &e, Priority::Normal);
    let r = t.put(2, &e, Priority::Normal);
    assert_eq!(ack_of(&r), ("skipped", None));
    assert_eq!(
        t.count("SELECT count(*) FROM messages WHERE skip_reason = 'duplicate'"),
        1
    );
    assert_eq!(t.count("SELECT count(*) FROM outbox"), 1);
}

#[test]
fn per_sender_limit_and_stale_mail() {
    let mut t = T::new();
    for uid in 1..=4 {
        t.put(
            uid,
            &email(
                &format!("m{uid}@x"),
                "ada@example.com",
                &format!("Topic {uid}"),
            ),
            Priority::Normal,
        );
    }
    let acks: Vec<String> = {
        let mut stmt = t
            .store
            .conn()
            .prepare("SELECT ack FROM messages ORDER BY uid")
            .expect("prep");
        stmt.query_map([], |r| r.get(0))
            .expect("q")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    };
    assert_eq!(acks, ["queued", "queued", "queued", "sender_limit"]);

    let old = t.put_at(
        1,
        5,
        &email("old@x", "bob@example.com", "Old"),
        Priority::Urgent,
        NOW - 3 * 86_400,
    );
    assert_eq!(ack_of(&old), ("stale", Some("T-1005")));
}

#[test]
fn skipped_messages_are_recorded_with_reason() {
    let mut t = T::new();
    let at = Location {
        folder: "INBOX",
        uidvalidity: 1,
        uid: 9,
    };
    let content = Content::Skipped {
        reason: "too_large",
        detail: "big".into(),
        size: 99_999_999,
    };
    t.store
        .record(&at, &content, NOW, &policy(), NOW)
        .expect("record");
    assert_eq!(
        t.count(
            "SELECT count(*) FROM messages WHERE status = 'skipped' AND skip_reason = 'too_large'"
        ),
        1
    );
    assert_eq!(
        t.store
            .folder_state("INBOX")
            .expect("state")
            .map(|s| s.last_uid),
        Some(9)
    );
    assert!(
        t.store
            .pending_flags("INBOX", 1)
            .expect("pending")
            .is_empty()
    );
}

#[test]
fn outbox_sends_urgent_first_and_never_resends_an_interrupted_row() {
    let mut t = T::new();
    t.put(
        1,
        &email("n@x", "a@example.com", "normal"),
        Priority::Normal,
    );
    t.put(
        2,
        &email("u@x", "b@example.com", "urgent"),
        Priority::Urgent,
    );
    t.put(3, &email("l@x", "c@example.com", "low"), Priority::Low);

    let first = t.store.claim_next_due(NOW).expect("claim").expect("due");
    assert_eq!((first.subject.as_str(), first.attempts), ("urgent", 1));
    assert_eq!(first.in_reply_to, "u@x");
    t.store.mark_sent(first.id, NOW * 1000).expect("sent");
    let state: String = t
        .store
        .conn()
        .query_row(
            "SELECT state FROM tickets WHERE customer = 'b@example.com'",
            [],
            |r| r.get(0),
        )
        .expect("t");
    assert_eq!(state, "acknowledged");

    let second = t.store.claim_next_due(NOW).expect("claim").expect("due");
    assert_eq!(second.subject, "normal");
    // Crash while sending: the row must not come back.
    assert_eq!(t.store.recover_interrupted_sends(NOW).expect("recover"), 1);
    let third = t.store.claim_next_due(NOW).expect("claim").expect("due");
    assert_eq!(third.subject, "low");
    t.store
        .mark_retry(third.id, NOW + 60, "451 busy", NOW)
        .expect("retry");
    assert!(
        t.store.claim_next_due(NOW).expect("claim").is_none(),
        "retry is not due yet"
    );
    assert_eq!(t.store.next_due_at().expect("next"), Some(NOW + 60));
    let again = t
        .store
        .claim_next_due(NOW + 60)
        .expect("claim")
        .expect("due");
    assert_eq!((again.id, again.attempts), (third.id, 2));
    t.store
        .mark_failed(again.id, "550 no such user", NOW)
        .expect("failed");
    assert_eq!(
        t.count("SELECT count(*) FROM outbox WHERE state = 'uncertain'"),
        1
    );
    assert_eq!(
        t.count("SELECT count(*) FROM outbox WHERE state = 'failed'"),
        1
    );
}

#[test]
fn migrations_are_idempotent_and_refuse_newer_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sqlite");
    drop(Store::open(&path).expect("first open"));
    drop(Store::open(&path).expect("second open"));
    let s = Store::open(&path).expect("open");
    s.conn()
        .pragma_update(None, "user_version", 99)
        .expect("bump");
    drop(s);
    let err = Store::open(&path).err().expect("newer schema is refused");
    assert!(
        format!("{err:#}").contains("newer than this triaged knows"),
        "{err:#}"
    );
}

#[test]
fn history_counts_earlier_contacts_in_the_window_and_intents_are_recorded() {
    let mut t = T::new();
    let ada = |id: &str| email(id, "ada@customer.example", "Help");
    t.put_at(1, 1, &ada("a1@x"), Priority::Normal, NOW - 10 * 86_400);
    t.put_at(1, 2, &ada("a2@x"), Priority::Normal, NOW - 2 * 86_400);
    t.put_at(1, 3, &ada("a3@x"), Priority::Normal, NOW - 3600);
    t.put_at(
        1,
        4,
        &email("b1@x", "bob@other.example", "Hi"),
        Priority::Low,
        NOW - 60,
    );
    let next = ada("a4@x");
    let h = t.store.history(&next, NOW, 7 * 86_400).expect("history");
    assert_eq!(h.earlier_contacts, vec![NOW - 2 * 86_400, NOW - 3600]);
    assert!(!h.reply_to_answered);
    let none = t.store.history(&next, NOW, 0).expect("history");
    assert!(
        none.earlier_contacts.is_empty(),
        "a zero window skips the lookup"
    );
    assert_eq!(
        t.count("SELECT count(*) FROM messages WHERE intents = 'cancel,refund'"),
        4
    );
    // A reply to a ticket staff answered.
    t.store
        .conn()
        .execute(
            "UPDATE tickets SET state = 'answered' WHERE id = (SELECT ticket_id FROM messages WHERE message_id = 'a3@x')",
            [],
        )
        .expect("answer");
    let mut reply = ada("a5@x");
    reply.in_reply_to = vec!["a3@x".into()];
    assert!(
        t.store
            .history(&reply, NOW, 0)
            .expect("history")
            .reply_to_answered
    );
    assert!(
        !t.store
            .history(&next, NOW, 0)
            .expect("history")
            .reply_to_answered
    );
}

#[test]
fn staff_replies_answer_customers_reopen_robots_move_nothing_and_commands_apply() {
    let mut t = T::new();
    t.put(
        1,
        &email("c1@x", "ada@customer.example", "Broken"),
        Priority::High,
    );
    assert_eq!(t.ticket("T-1001").0, "new");
    let reply_to = |id: &str, from: &str, to: &str, body: &str| {
        let mut e = email(id, from, "Re: Broken");
        e.in_reply_to = vec![to.into()];
        e.body_text = body.into();
        e
    };
    // An out-of-office from the customer joins the thread but changes nothing.
    let ooo = reply_to("ooo@x", "ada@customer.example", "c1@x", "I am away");
    t.put_as(
        1,
        2,
        &ooo,
        Priority::Low,
        NOW,
        Err(Refusal::AutoSubmitted),
        Role::Robot,
    );
    assert_eq!(t.ticket("T-1001").0, "new");

    // Staff answer from their own address: answered, first response recorded once.
    let staff = reply_to("s1@x", "alice@support.example", "c1@x", "Fixed it.");
    t.put_as(
        1,
        3,
        &staff,
        Priority::Low,
        NOW,
        Err(Refusal::StaffSender),
        Role::Staff,
    );
    assert_eq!(t.ticket("T-1001"), ("answered".into(), NOW, 0));

    // The customer writes back: reopened, and the ticket's priority can only rise.
    let again = reply_to("c2@x", "ada@customer.example", "s1@x", "Still broken!");
    t.put_as(1, 4, &again, Priority::Urgent, NOW, Ok(()), Role::Customer);
    assert_eq!(t.ticket("T-1001").0, "reopened");
    assert_eq!(
        t.count("SELECT count(*) FROM tickets WHERE tag = 'T-1001' AND priority = 'urgent'"),
        1
    );

    // Staff snooze by email, under the tag only (no threading headers), from another address.
    let mut snooze = email("s2@x", "bob@support.example", "Re: Broken [#T-1001]");
    snooze.body_text = "#snooze 2d\nWaiting for the vendor.".into();
    t.put_as(
        1,
        5,
        &snooze,
        Priority::Low,
        NOW,
        Err(Refusal::StaffSender),
        Role::Staff,
    );
    assert_eq!(
        t.ticket("T-1001"),
        ("snoozed".into(), NOW, NOW + 2 * 86_400)
    );

    // A customer cannot join someone else's ticket by its tag.
    let stranger = email("x1@x", "eve@elsewhere.example", "Re: Broken [#T-1001]");
    t.put(6, &stranger, Priority::Normal);
    assert_eq!(t.ticket("T-1001").0, "snoozed");
    assert_eq!(t.count("SELECT count(*) FROM tickets"), 2);

    let mut close = reply_to("s3@x", "alice@support.example", "c2@x", "#close");
    close.subject = "Re: Broken".into();
    t.put_as(
        1,
        7,
        &close,
        Priority::Low,
        NOW,
        Err(Refusal::StaffSender),
        Role::Staff,
    );
    assert_eq!(t.ticket("T-1001").0, "closed");
    let events: Vec<String> = {
        let mut stmt = t
            .store
            .conn()
            .prepare("SELECT event || ':' || to_state FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id WHERE t.tag = 'T-1001' ORDER BY e.id")
            .expect("prep");
        stmt.query_map([], |r| r.get(0))
            .expect("q")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(
        events,
        [
            "opened:new",
            "staff_replied:answered",
            "customer_wrote:reopened",
            "staff_replied:answered",
            "snooze:snoozed",
            "staff_replied:answered",
            "close:closed"
        ]
    );
}
