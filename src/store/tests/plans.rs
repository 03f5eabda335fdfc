//! Flat cost (issue 15): what the daemon runs per email and per timer must not read the whole
//! history. A representative workload — a fetch batch, emails of every kind recorded, flags
//! set, the outbox loop claiming and recording sends, the snooze, health, digest and
//! status-server timers — runs with SQLite's trace hook on, so every statement it executes is
//! caught, including ones added later; then
//! - each statement's `EXPLAIN QUERY PLAN` is checked: no table that grows with the history is
//!   scanned (a `SCAN` without an index, or a walk of a whole index without a `LIMIT` to stop
//!   it), and no `LIMIT` is reached by sorting a growing set first;
//! - the same workload runs again on a store with a year of history in it, and each
//!   statement's VM steps (SQLite's count of bytecode operations, which does not depend on
//!   timing or on the depth of a B-tree) must be the same give or take [`SLACK`]: a read that
//!   touched the history would cost at least one step per history row.
//!
//! Query plans do not depend on the number of rows here (the daemon never runs `ANALYZE`,
//! so the planner has no statistics), but the second run also checks them on the full store.

use std::cell::RefCell;
use std::collections::BTreeMap;

use rusqlite::trace::{TraceEvent, TraceEventCodes};

use super::*;
use crate::alerts::Condition;
use crate::config::RateLimit;

/// Tables that stay small whatever the history: one row (or two) per watched folder, a few durable
/// flags, the emails of the fetch batch in flight, one count per state and kind.
const SMALL: [&str; 6] = [
    "folder_state",
    "kv",
    "triage_starts",
    "tally",
    "folder_modseq",
    "folder_arrivals",
];

/// VM steps a statement may differ by between the empty and the full store (the workload's
/// own rows, e.g. a longer ticket tag). History adds at least one step per row it touches.
const SLACK: i64 = 200;

/// Tickets of history (each with 2–3 emails, its outbox rows and events).
const HISTORY_TICKETS: i64 = 40_000;

thread_local! {
    /// Per statement text: the most VM steps seen (a cached statement's counter adds up its
    /// runs, which are the same in both workloads).
    static SEEN: RefCell<BTreeMap<String, i64>> = const { RefCell::new(BTreeMap::new()) };
}

fn seen(e: TraceEvent<'_>) {
    if let TraceEvent::Profile(stmt, _) = e {
        let sql = stmt.sql().to_string();
        let steps = i64::from(stmt.get_status(rusqlite::StatementStatus::VmStep));
        SEEN.with(|s| {
            let mut s = s.borrow_mut();
            let e = s.entry(sql).or_default();
            *e = (*e).max(steps);
        });
    }
}

/// Run the workload on `t` with the trace hook on; returns what it executed.
fn traced(t: &mut T) -> BTreeMap<String, i64> {
    SEEN.with(|s| s.borrow_mut().clear());
    t.store
        .conn()
        .trace_v2(TraceEventCodes::SQLITE_TRACE_PROFILE, Some(seen));
    workload(t);
    t.store.conn().trace_v2(TraceEventCodes::empty(), None);
    SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()))
        .into_iter()
        .filter(|(sql, _)| {
            let head = sql.trim_start().to_ascii_uppercase();
            ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"]
                .iter()
                .any(|k| head.starts_with(k))
        })
        .collect()
}

/// Ack id of the ticket `tag`.
fn ack_id(t: &T, tag: &str) -> String {
    t.store
        .conn()
        .query_row(
            "SELECT o.out_message_id FROM outbox o JOIN tickets t ON t.id = o.ticket_id
             WHERE t.tag = ?1 AND o.kind = 'ack'",
            [tag],
            |r| r.get(0),
        )
        .unwrap_or_default()
}

fn tag_of(r: &Recorded) -> String {
    match r {
        Recorded::New {
            ticket: Some(tag), ..
        } => tag.clone(),
        other => panic!("expected a new ticket, got {other:?}"),
    }
}

/// What the daemon does for a fetch batch of emails and on its timers, in the order it does.
pub(super) fn workload(t: &mut T) {
    let run = "run-1";
    let window = 30 * 86_400;
    t.store
        .recover_interrupted_sends(t.now, true)
        .expect("recover");
    t.store
        .resolve_unconfirmed(120, |_| true, t.now)
        .expect("settle");
    t.store
        .expire_held(t.now - 2 * 86_400, t.now)
        .expect("expire held");
    t.store
        .begin_triage_batch("INBOX", 1, &(1..=10).collect::<Vec<_>>(), run, t.now)
        .expect("batch");
    let record = |t: &mut T, uid: u32, e: &Email, role: Role, alert: bool| {
        let at = Location {
            folder: "INBOX",
            uidvalidity: 1,
            uid,
        };
        t.store.begin_triage(&at, run, t.now).expect("begin");
        t.store.history(e, t.now, window).expect("history");
        t.alert = if alert {
            vec!["legal-threat (\u{201c}lawyer\u{201d})".into()]
        } else {
            vec![]
        };
        let guard = match role {
            Role::Staff => Err(Refusal::StaffSender),
            Role::Robot => Err(Refusal::AutoSubmitted),
            Role::Customer => Ok(()),
        };
        let now = t.now;
        t.put_as(1, uid, e, Priority::Urgent, now, guard, role)
    };

    // Two customers open tickets (one alert-worthy, routed to a team with its own alert
    // recipients); one writes again in the thread.
    t.route = Some(crate::route::Routed {
        team: "billing".into(),
        reason: "intent refund".into(),
    });
    t.asks = vec!["invoice".into()];
    let ada = record(
        t,
        1,
        &email("w-a1@x", "ada@w.example", "Login broken"),
        Role::Customer,
        true,
    );
    let ada = tag_of(&ada);
    t.route = None;
    t.asks = vec![];
    let bob = record(
        t,
        2,
        &email("w-b1@x", "bob@w.example", "Refund"),
        Role::Customer,
        false,
    );
    let bob = tag_of(&bob);
    let mut again = email("w-a2@x", "ada@w.example", "Re: Login broken");
    again.in_reply_to = vec![ack_id(t, &ada)];
    record(t, 3, &again, Role::Customer, false);
    // Staff answer Ada under the tag (and re-route her ticket), and snooze Bob's ticket by
    // email command.
    let mut answer = email(
        "w-s1@x",
        "alice@support.example",
        &format!("Re: [#{ada}] Login"),
    );
    answer.body_text = "#team technical\nFixed, please try again.".into();
    answer.to = vec![crate::parse::Address {
        name: None,
        email: "ada@w.example".into(),
    }];
    record(t, 4, &answer, Role::Staff, false);
    let mut snooze = email(
        "w-s2@x",
        "alice@support.example",
        &format!("Re: [#{bob}] Refund"),
    );
    snooze.body_text = "#snooze 1h".into();
    record(t, 5, &snooze, Role::Staff, false);
    // A bounce of Bob's acknowledgement; a second copy of Ada's first email; an email too large.
    t.bounced = vec![ack_id(t, &bob)];
    record(
        t,
        6,
        &email("w-r1@x", "mailer-daemon@w.example", "Undelivered"),
        Role::Robot,
        false,
    );
    t.bounced = vec![];
    record(
        t,
        7,
        &email("w-a1@x", "ada@w.example", "Login broken"),
        Role::Customer,
        false,
    );
    let big = Content::Skipped {
        reason: "too_large",
        detail: "30 MB".into(),
        size: 30 << 20,
        flag: true,
    };
    let at = Location {
        folder: "INBOX",
        uidvalidity: 1,
        uid: 8,
    };
    t.store
        .record(&at, &big, t.now, &t.policy, t.now)
        .expect("skipped");
    // A new customer, and Ada's first email again after a UIDVALIDITY change.
    record(
        t,
        9,
        &email("w-c1@x", "cy@w.example", "Question"),
        Role::Customer,
        false,
    );
    t.put_at(
        2,
        1,
        &email("w-a1@x", "ada@w.example", "Login broken"),
        Priority::Urgent,
        NOW,
    );
    let at = Location {
        folder: "INBOX",
        uidvalidity: 1,
        uid: 10,
    };
    t.store.forget_triage_start(&at).expect("forget");
    t.store.forget_triage_starts(run).expect("forget all");

    // Staff correct Ada's priority by email command.
    let mut relabel = email(
        "w-s3@x",
        "alice@support.example",
        &format!("Re: [#{ada}] Login"),
    );
    relabel.body_text = "#priority high".into();
    record(t, 11, &relabel, Role::Staff, false);

    // The watcher sets keywords.
    let tasks = t.store.pending_flags("INBOX", 1).expect("flags");
    let rows: Vec<i64> = tasks.iter().map(|f| f.row).collect();
    t.store.mark_flagged(&rows).expect("flagged");

    // ... and reads back the keywords staff changed: the latest emails' (no CONDSTORE), or
    // what changed since the folder's HIGHESTMODSEQ (the same statements).
    let names = crate::corrections::KeywordNames {
        priority: Priority::ALL
            .into_iter()
            .map(|p| (p, format!("triage/{}", p.as_str())))
            .collect(),
        tone_prefix: "tone/".into(),
    };
    t.store.highest_modseq("INBOX", 1).expect("modseq");
    let read: Vec<(u32, Vec<String>)> = t
        .store
        .recent_uids("INBOX", 1, crate::store::RECENT_EMAILS)
        .expect("recent")
        .into_iter()
        .map(|uid| (uid, vec!["triage/low".into(), "tone/meek".into()]))
        .collect();
    let first = t.store.note_keywords("INBOX", 1, &read, &names, t.now);
    let again = t.store.note_keywords("INBOX", 1, &read, &names, t.now);
    assert!(
        first.expect("keywords").len() > 2 && again.expect("keywords again").is_empty(),
        "the workload's staff correct in the mailbox, once"
    );
    t.store
        .set_highest_modseq("INBOX", 1, 42)
        .expect("set modseq");

    // ... and looks into the priority folders: the daemon's own filings, then what arrived
    // (its own, one it did not file, one it does not know).
    let filed: Vec<i64> = rows.iter().copied().take(3).collect();
    t.store
        .note_filing("Triage/Normal", &filed, t.now)
        .expect("filing");
    t.store
        .forget_filing("Triage/Normal", &filed[..1])
        .expect("forget filing");
    t.store.folder_mark("Triage/Normal").expect("mark");
    let arrived: Vec<(u32, String)> = ["w-a1@x", "w-b1@x", "w-c1@x", "nobody@x"]
        .iter()
        .enumerate()
        .map(|(i, id)| (i as u32 + 1, id.to_string()))
        .collect();
    // A folder of two priorities: the same statements, and no ticket changes its priority.
    t.store
        .note_arrivals(
            "Triage/Normal",
            &arrived,
            &[Priority::Urgent, Priority::High],
            t.now,
        )
        .expect("arrivals");
    t.store
        .set_folder_mark(
            "Triage/Normal",
            crate::corrections::FolderMark::At {
                uidvalidity: 3,
                uid_next: 5,
            },
        )
        .expect("set mark");

    // The outbox loop, now and again after the follow-ups fall due.
    let limits = [RateLimit {
        max: 30,
        per: Duration::from_secs(60),
    }];
    for round in 0..2 {
        if round == 1 {
            t.now += 10 * 86_400;
        }
        for n in 0..20 {
            let now = t.now;
            t.store.next_due_at().expect("next due");
            t.store
                .rate_limited_until(&limits, now * 1000, 1)
                .expect("rate limit");
            t.store.get_kv(crate::outbox::PAUSED_UNTIL).expect("paused");
            if t.store
                .notice_due_at()
                .expect("notice due")
                .is_some_and(|d| d <= now)
                && let Some(c) = t.store.claim_notice(now, 10, None).expect("claim notice")
            {
                if n % 2 == 0 {
                    t.store.notice_sent(&c.ids, now * 1000).expect("sent");
                } else {
                    t.store
                        .notice_retry(&c.ids, now, "451 try later", now)
                        .expect("retry");
                }
                continue;
            }
            let Some(item) = t.store.claim_next_due(now).expect("claim") else {
                break;
            };
            match n % 5 {
                1 => t
                    .store
                    .mark_retry(item.id, now, "451 busy", now)
                    .expect("retry"),
                2 => t
                    .store
                    .mark_deferred(item.id, now, "customer-facing hours", now)
                    .expect("defer"),
                3 => {
                    t.store
                        .mark_failed(item.id, "550 no such user", now)
                        .expect("failed");
                    t.store
                        .cancel_followups_of(item.id, "undeliverable", now)
                        .expect("cancel");
                }
                _ => t
                    .store
                    .mark_sent(item.id, now * 1000, Some(now + 3600))
                    .expect("sent"),
            }
        }
    }

    // Timers: snoozes, health, digests, the status server.
    let now = t.now;
    let policy = t.policy.clone();
    t.store.wake_snoozed(now, &policy).expect("wake");
    t.store.health_facts(now, now - 600).expect("health");
    t.store.open_incidents().expect("incidents");
    let id = t
        .store
        .open_incident(
            Condition::Smtp,
            now,
            "refused",
            &notice("health", "", now),
            now,
        )
        .expect("open incident");
    t.store
        .resolve_incident(id, &notice("health", "", now), now)
        .expect("resolve");
    t.store.digest_last_slot("team").expect("slot");
    t.store
        .record_first_start("team", now)
        .expect("first start");
    let themes: HashMap<String, String> = [("r_old".to_string(), "billing".to_string())].into();
    t.store
        .digest_snapshot(now - 86_400, now - 2 * 86_400, now - 7 * 86_400, &themes)
        .expect("digest");
    let mail = notice("digest", &format!("digest:team:{now}"), now);
    t.store
        .record_digest("team", now, Some(&mail), &mail, now)
        .expect("record digest");
    t.store.outbox_depth().expect("depth");
    t.store.open_ticket_counts().expect("open counts");
    t.store
        .open_tickets(crate::http::PAGE_ROWS_PER_GROUP)
        .expect("open tickets");
}

/// A year of mail before `NOW - 30 days`, closed and sent long ago, from other customers,
/// and a busy last day of acknowledgements to them: nothing the workload needs to read.
pub(super) fn fill_history(conn: &Connection) {
    let base = NOW - 400 * 86_400;
    let day = NOW - 20 * 3600;
    conn.execute_batch(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {HISTORY_TICKETS})
         INSERT INTO tickets (id, tag, customer, subject, state, priority, created_at, updated_at,
                              first_response_at, last_customer_at, last_staff_at, closed_at)
         SELECT 100000 + i, 'T-' || (101000 + i), 'h' || (i % 1500) || '@history.example', 'Old',
                'closed', CASE i % 4 WHEN 0 THEN 'urgent' WHEN 1 THEN 'high' WHEN 2 THEN 'normal' ELSE 'low' END,
                {base} + i * 600, {base} + i * 600 + 86400, {base} + i * 600 + 3600, {base} + i * 600,
                {base} + i * 600 + 3600, {base} + i * 600 + 86400
         FROM n;
         INSERT INTO messages (dedup_key, message_id, folder, uidvalidity, uid, ticket_id, status, ack,
                               sender, subject, priority, received_at, processed_at, flags_state,
                               intents, excerpt, role)
         SELECT 'h-c-' || id, 'h-c-' || id, 'INBOX', 7, id * 3, id, 'triaged', 'queued', customer, subject,
                priority, created_at, created_at + 1, 'done', 'refund', 'Old text', 'customer'
         FROM tickets WHERE id > 100000
         UNION ALL
         SELECT 'h-s-' || id, 'h-s-' || id, 'INBOX', 7, id * 3 + 1, id, 'triaged', 'staff',
                'agent@support.example', 'Re: ' || subject, 'normal', created_at + 3600, created_at + 3601,
                'done', '', '', 'staff'
         FROM tickets WHERE id > 100000
         UNION ALL
         SELECT 'loc:INBOX:7:' || (id * 3 + 2), '', 'INBOX', 7, id * 3 + 2, NULL, 'skipped', 'skipped',
                '', '', '', created_at, created_at, 'done', '', '', ''
         FROM tickets WHERE id > 100000 AND id % 10 = 0;
         UPDATE messages SET skip_reason = 'too_large' WHERE status = 'skipped';
         INSERT INTO hits (message_row, rule, field, matched, weight)
         SELECT id, 'r_old', 'body', 'refund', 2.0 FROM messages WHERE role = 'customer' AND uidvalidity = 7
         UNION ALL
         SELECT id, 'r_other', 'body', 'broken', 1.0 FROM messages WHERE role = 'customer' AND uidvalidity = 7;
         INSERT INTO outbox (kind, ticket_id, message_row, seq, recipient, priority_rank, out_message_id,
                             due_at, state, attempts, last_error, created_at, updated_at, sent_at)
         SELECT 'ack', m.ticket_id, m.id, 0, m.sender, 2, 'h-ack-' || m.id, m.processed_at,
                CASE m.ticket_id % 50 WHEN 0 THEN 'failed' ELSE 'sent' END, 1,
                CASE m.ticket_id % 50 WHEN 0 THEN '550 no such user' ELSE '' END,
                m.processed_at, m.processed_at + 1, m.processed_at + 1
         FROM messages m WHERE m.role = 'customer' AND m.uidvalidity = 7
         UNION ALL
         SELECT 'holding', m.ticket_id, m.id, 1, m.sender, 12, 'h-hold-' || m.id, m.processed_at + 14400,
                'cancelled', 0, 'staff replied', m.processed_at, m.processed_at + 3600, 0
         FROM messages m WHERE m.role = 'customer' AND m.uidvalidity = 7
         UNION ALL
         SELECT 'survey', m.ticket_id, m.id, 1, m.sender, 12, 'h-survey-' || m.id, m.processed_at + 90000,
                'sent', 1, '', m.processed_at + 86400, m.processed_at + 90000, m.processed_at + 90000
         FROM messages m WHERE m.role = 'customer' AND m.uidvalidity = 7;
         -- A busy last day: acknowledgements to other customers, within the per-sender window.
         INSERT INTO outbox (kind, ticket_id, message_row, seq, recipient, priority_rank, out_message_id,
                             due_at, state, attempts, last_error, created_at, updated_at, sent_at)
         SELECT 'ack', m.ticket_id, m.id, 1, m.sender, 2, 'h-ack-day-' || m.id, {day} + m.id % 68400,
                'sent', 1, '', {day} + m.id % 68400, {day} + m.id % 68400 + 1, {day} + m.id % 68400 + 1
         FROM messages m WHERE m.role = 'customer' AND m.uidvalidity = 7 AND m.ticket_id % 3 = 0;
         INSERT INTO ticket_events (ticket_id, at, event, from_state, to_state, message_row, detail)
         SELECT id, created_at, 'opened', '', 'new', NULL, customer FROM tickets WHERE id > 100000
         UNION ALL
         SELECT id, created_at + 1, 'ack_sent', 'new', 'acknowledged', NULL, customer FROM tickets WHERE id > 100000
         UNION ALL
         SELECT id, created_at + 3600, 'staff_replied', 'acknowledged', 'answered', NULL, '' FROM tickets WHERE id > 100000
         UNION ALL
         SELECT id, created_at + 60, 'bounced', 'acknowledged', 'acknowledged', NULL, '' FROM tickets
             WHERE id > 100000 AND id % 40 = 0
         UNION ALL
         SELECT id, closed_at, 'close', 'answered', 'closed', NULL, 'cli' FROM tickets WHERE id > 100000;
         INSERT INTO notices (kind, key, recipients, subject, ticket_id, due_at, state, attempts, batch,
                              created_at, updated_at, sent_at)
         SELECT 'alert', 'alert:' || tag, 'lead@example.test', '', id, created_at, 'sent', 1, id,
                created_at, created_at, created_at + 5
         FROM tickets WHERE id > 100000 AND priority = 'urgent'
         UNION ALL
         SELECT 'digest', 'digest:team:' || created_at, 'lead@example.test', 'digest', NULL, created_at,
                'sent', 1, 0, created_at, created_at, created_at
         FROM tickets WHERE id > 100000 AND id % 8 = 0;
         INSERT INTO incidents (condition, started_at, detail, resolved_at)
         SELECT 'smtp', created_at, 'refused', created_at + 600 FROM tickets WHERE id > 100000 AND id % 400 = 0;"
    ))
    .expect("history");
}

/// The plan lines of `sql` that read a growing table without bounds.
fn unbounded(conn: &Connection, sql: &str) -> Vec<String> {
    let plan: Vec<String> = {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let n = stmt.parameter_count();
        stmt.query_map(
            rusqlite::params_from_iter(vec![rusqlite::types::Null; n]),
            |r| r.get::<_, String>(3),
        )
        .expect("plan")
        .collect::<rusqlite::Result<_>>()
        .expect("plan rows")
    };
    let upper = sql.to_ascii_uppercase();
    let limited = upper.contains(" LIMIT ");
    // The plan of an `INSERT ... VALUES` lists, as scans, the foreign-key check SQLite makes
    // of the tables that point at the new row; it runs only while some row points at a row
    // that does not exist (the foreign-key violation counter is not 0), which no statement of
    // the daemon leaves behind (the VM steps below would show it).
    let row_insert = upper.trim_start().starts_with("INSERT") && !upper.contains("SELECT");
    let mut bad = Vec::new();
    for step in &plan {
        let Some(rest) = step.strip_prefix("SCAN ") else {
            continue;
        };
        if row_insert {
            continue;
        }
        let table = rest.split_whitespace().next().unwrap_or_default();
        // Subqueries and constant rows are read from memory; the small tables are small.
        if table.starts_with('(') || table == "CONSTANT" || SMALL.contains(&table) {
            continue;
        }
        // Walking an index in order is bounded only when a LIMIT stops the walk.
        if !(limited && rest.contains(" USING ") && rest.contains("INDEX")) {
            bad.push(step.clone());
        }
    }
    // A LIMIT reached by sorting everything first reads everything.
    if limited && plan.iter().any(|s| s.contains("TEMP B-TREE FOR ORDER BY")) {
        bad.push(format!("sorts before its LIMIT: {plan:?}"));
    }
    bad
}

fn store_path(t: &T) -> std::path::PathBuf {
    t._dir.path().join("s.sqlite")
}

fn workload_store() -> T {
    let mut t = T::with_followups();
    t.policy.alerts = Some(alerts_on(10, None));
    t.policy.teams = [
        ("billing".to_string(), vec!["billing@example.test".into()]),
        ("technical".to_string(), vec![]),
    ]
    .into();
    t
}

#[test]
fn what_runs_per_email_and_per_timer_reads_no_history() {
    let mut empty = workload_store();
    let small = traced(&mut empty);

    let mut full = workload_store();
    fill_history(&Connection::open(store_path(&full)).expect("side connection"));
    let large = traced(&mut full);

    // The workload did what the daemon does: every kind of statement ran.
    for needle in [
        "INSERT INTO messages",
        "INSERT INTO outbox",
        "UPDATE outbox SET state = 'sent'",
        "FROM notices",
        "FROM ticket_events",
        "INSERT INTO ticket_events",
        "max(processed_at)",
        "INDEXED BY tickets_open",
    ] {
        assert!(
            large.keys().any(|sql| sql.contains(needle)),
            "the workload ran nothing with {needle:?}: {:#?}",
            large.keys()
        );
    }
    let mut problems = Vec::new();
    for (sql, steps) in &large {
        for bad in unbounded(full.store.conn(), sql) {
            problems.push(format!("{sql}\n    {bad}"));
        }
        let before = small.get(sql).copied().unwrap_or(0);
        if *steps > before + SLACK {
            problems.push(format!(
                "{sql}\n    {before} VM steps on an empty store, {steps} with {HISTORY_TICKETS} tickets of history"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} statements read the history:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_tallies_match_the_rows_after_every_kind_of_change() {
    let mut t = workload_store();
    fill_history(&Connection::open(store_path(&t)).expect("side connection"));
    workload(&mut t);
    // And changes made outside the daemon's functions (a row removed by hand).
    t.store
        .conn()
        .execute_batch(
            "DELETE FROM outbox WHERE id = (SELECT max(id) FROM outbox);
             UPDATE tickets SET priority = 'low' WHERE id = (SELECT min(id) FROM tickets);
             DELETE FROM hits WHERE message_row = (SELECT max(id) FROM messages);
             DELETE FROM messages WHERE id = (SELECT max(id) FROM messages)
                 AND id NOT IN (SELECT message_row FROM outbox)
                 AND id NOT IN (SELECT message_row FROM ticket_events WHERE message_row IS NOT NULL);",
        )
        .expect("by hand");
    let counted = |sql: &str| -> Vec<(String, i64)> {
        let mut stmt = t.store.conn().prepare(sql).expect("prep");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("q")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    };
    let (messages, acks, outbox) = t.store.summary().expect("summary");
    assert_eq!(
        messages,
        counted(
            "SELECT CASE status WHEN 'skipped' THEN 'skipped:' || skip_reason ELSE priority END, count(*)
             FROM messages GROUP BY 1 ORDER BY 1"
        )
    );
    assert_eq!(
        acks,
        counted("SELECT ack, count(*) FROM messages GROUP BY 1 ORDER BY 1")
    );
    assert_eq!(
        outbox,
        counted("SELECT state, count(*) FROM outbox GROUP BY 1 ORDER BY 1")
    );
    assert!(outbox.iter().any(|(s, _)| s == "failed"), "{outbox:?}");
    let open: Vec<(String, i64)> = t
        .store
        .open_ticket_counts()
        .expect("open")
        .into_iter()
        .map(|(p, n)| (p.as_str().to_string(), n))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(
        open,
        counted(
            "SELECT priority, count(*) FROM tickets WHERE state != 'closed' GROUP BY 1
             ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END"
        )
    );
    let (depth, first) = t.store.outbox_depth().expect("depth");
    assert_eq!(
        depth.into_iter().collect::<Vec<_>>(),
        counted("SELECT kind, count(*) FROM outbox WHERE state = 'pending' GROUP BY 1 ORDER BY 1")
    );
    assert_eq!(
        first,
        t.store
            .conn()
            .query_row(
                "SELECT min(due_at) FROM outbox WHERE state = 'pending'",
                [],
                |r| r.get(0)
            )
            .expect("first")
    );
}

#[test]
fn ticket_lists_walk_an_index_in_their_order_and_stop_at_the_limit() {
    let mut t = workload_store();
    fill_history(&Connection::open(store_path(&t)).expect("side connection"));
    workload(&mut t);
    let open: Vec<State> = State::ALL
        .into_iter()
        .filter(|s| *s != State::Closed)
        .collect();
    let cases: [(&[State], Option<Priority>, Option<&str>); 7] = [
        (&[], None, None),
        (&open, None, None),
        (&open, Some(Priority::Urgent), None),
        (&[State::Closed], Some(Priority::High), None),
        (&[State::Snoozed, State::New], None, None),
        (&open, None, Some("technical")),
        // Ada's ticket: routed to technical, its priority then corrected by staff (last to low).
        (&[], Some(Priority::Low), Some("technical")),
    ];
    for (states, priority, team) in cases {
        SEEN.with(|s| s.borrow_mut().clear());
        t.store
            .conn()
            .trace_v2(TraceEventCodes::SQLITE_TRACE_PROFILE, Some(seen));
        let filter = TicketFilter {
            states,
            priority,
            team,
        };
        let list = t.store.tickets(&filter, Some(3)).expect("list");
        t.store.conn().trace_v2(TraceEventCodes::empty(), None);
        for sql in SEEN
            .with(|s| std::mem::take(&mut *s.borrow_mut()))
            .into_keys()
        {
            let bad = unbounded(t.store.conn(), &sql);
            assert!(bad.is_empty(), "{sql}: {bad:?}");
        }
        // The same rows and count as sorting the whole table.
        let wanted = |state: State, p: Priority, with: &str| {
            (states.is_empty() || states.contains(&state))
                && priority.is_none_or(|want| want == p)
                && team.is_none_or(|want| want == with)
        };
        let mut all: Vec<(i64, i64, i64, String)> = {
            let mut stmt = t
                .store
                .conn()
                .prepare("SELECT priority, created_at, id, tag, state, team FROM tickets")
                .expect("prep");
            stmt.query_map([], |r| {
                Ok((
                    r.get::<_, Priority>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, State>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .expect("q")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows")
            .into_iter()
            .filter(|(p, _, _, _, state, with)| wanted(*state, *p, with))
            .map(|(p, created, id, tag, _, _)| (tickets::rank(p), created, id, tag))
            .collect()
        };
        all.sort();
        if team.is_some() {
            assert!(!all.is_empty(), "the workload routes a ticket to {team:?}");
        }
        let tags: Vec<String> = list.rows.iter().map(|r| r.tag.clone()).collect();
        let expected: Vec<String> = all.iter().take(3).map(|r| r.3.clone()).collect();
        assert_eq!(tags, expected, "{states:?} {priority:?} {team:?}");
        assert_eq!(
            list.total,
            all.len() as i64,
            "{states:?} {priority:?} {team:?}"
        );
        // The status page's list: the first of each priority, from the open ones.
        if states == open.as_slice() && priority.is_none() && team.is_none() {
            let page = t.store.open_tickets(1).expect("open tickets");
            let page_tags: Vec<String> = page.rows.iter().map(|r| r.tag.clone()).collect();
            let first_of_each: Vec<String> = Priority::ALL
                .iter()
                .filter_map(|p| {
                    all.iter()
                        .find(|r| r.0 == tickets::rank(*p))
                        .map(|r| r.3.clone())
                })
                .collect();
            assert_eq!(page_tags, first_of_each);
            assert_eq!(page.open.values().sum::<i64>(), all.len() as i64);
        }
    }
}
