//! A store with a year of history, written with direct SQL inserts (a 100k-email store takes a
//! few seconds; triaging that much through the daemon would take minutes, and before the
//! indexes of issue 15 hours).
//!
//! The rows are the ones the daemon writes, in the proportions of a support desk where staff
//! answer: each conversation opens with a customer email (its rule hits, an acknowledgement
//! sent, the holding note cancelled or sent), 30% have a second customer email, 65% a staff
//! reply, a few a bounce; 3% of emails are skipped. Conversations older than a week are
//! closed (survey sent); the last week's are open, answered or waiting, with their follow-ups
//! pending and due after the benchmark ends. Staff mail: two digests a day, an alert for each
//! urgent ticket, a few health incidents. The send log keeps the last week, as the daemon does.

use std::path::Path;

use rusqlite::{Connection, params};

const DAY: i64 = 86_400;

/// Fill a new store at `path` with `emails` emails spread over the year before `now`.
/// The rows use folder `INBOX` at UIDVALIDITY 1 and no checkpoint, so a daemon started on
/// the store fetches its mailbox from the start.
pub fn fill(path: &Path, emails: usize, now: i64) {
    // Migrated by the code under test, so the schema is the daemon's.
    drop(triaged::store::Store::open(path).expect("store"));
    if emails == 0 {
        return;
    }
    let mut conn = Connection::open(path).expect("open");
    conn.pragma_update(None, "synchronous", "OFF")
        .expect("pragma");
    let tx = conn.transaction().expect("tx");
    let mut g = Gen::new(&tx, emails, now);
    while g.messages < emails {
        g.conversation();
    }
    g.staff_mail();
    drop(g);
    tx.commit().expect("commit");
}

struct Gen<'c> {
    tx: &'c Connection,
    rng: fastrand::Rng,
    emails: usize,
    now: i64,
    start: i64,
    messages: usize,
    tickets: i64,
    uid: u32,
    urgent: Vec<(i64, String, i64)>,
}

const PRIORITIES: [(&str, i64); 4] = [("urgent", 0), ("high", 1), ("normal", 2), ("low", 3)];
const SUBJECTS: [&str; 6] = [
    "Refund for my order",
    "Cannot log in since this morning",
    "Invoice shows the wrong amount",
    "Package never arrived",
    "How do I change my plan?",
    "Your app keeps crashing",
];
const EXCERPT: &str = "Hello, I was charged twice for my order last week and I still have not \
    received a refund. The page showed an error 500 when I tried to pay. Could you look into \
    it and tell me when the money will be back on my card? Thank you.";

impl<'c> Gen<'c> {
    fn new(tx: &'c Connection, emails: usize, now: i64) -> Gen<'c> {
        Gen {
            tx,
            rng: fastrand::Rng::with_seed(15),
            emails,
            now,
            start: now - 365 * DAY,
            messages: 0,
            tickets: 0,
            uid: 0,
            urgent: Vec::new(),
        }
    }

    /// When the n-th email arrived: evenly over the year, the last an hour ago.
    fn time_of(&self, n: usize) -> i64 {
        self.start + (n as i64 * (365 * DAY - 3600)) / self.emails as i64
    }

    #[allow(clippy::too_many_arguments)]
    fn message(
        &mut self,
        ticket: Option<i64>,
        sender: &str,
        subject: &str,
        priority: &str,
        role: &str,
        ack: &str,
        at: i64,
        skipped: bool,
    ) -> i64 {
        self.uid += 1;
        self.messages += 1;
        let uid = self.uid;
        let mid = format!("gen-{uid}@customers.example");
        let (status, reason, tones, intents, excerpt) = if skipped {
            ("skipped", "too_large", "", "", "")
        } else if role == "customer" {
            let tones = ["", "angry", "frustrated", "", "polite"][uid as usize % 5];
            let intents = ["refund", "billing", "", "login", "cancel", ""][uid as usize % 6];
            ("triaged", "", tones, intents, EXCERPT)
        } else {
            ("triaged", "", "", "", "")
        };
        self.tx
            .prepare_cached(
                "INSERT INTO messages (dedup_key, message_id, folder, uidvalidity, uid, ticket_id, status,
                     skip_reason, ack, sender, sender_name, subject, refs, score, priority, tones, size,
                     received_at, processed_at, flags_state, intents, excerpt, role)
                 VALUES (?1, ?1, 'INBOX', 1, ?2, ?3, ?4, ?5, ?6, ?7, 'A Customer', ?8, ?9, ?10, ?11, ?12,
                     4400, ?13, ?14, 'done', ?15, ?16, ?17)",
            )
            .expect("prepare message")
            .execute(params![
                if skipped { format!("loc:INBOX:1:{uid}") } else { mid.clone() },
                uid,
                ticket,
                status,
                reason,
                ack,
                sender,
                subject,
                format!("<{mid}>"),
                2.5,
                if skipped { "" } else { priority },
                tones,
                at,
                at + 1,
                intents,
                excerpt,
                role,
            ])
            .expect("insert message");
        let row = self.tx.last_insert_rowid();
        if !skipped && role == "customer" {
            for (rule, weight) in [("refund", 2.0), ("charged-twice", 1.5), ("error-code", 1.0)] {
                self.tx
                    .prepare_cached(
                        "INSERT INTO hits (message_row, rule, field, matched, weight)
                         VALUES (?1, ?2, 'body', ?2, ?3)",
                    )
                    .expect("prepare hit")
                    .execute(params![row, rule, weight])
                    .expect("insert hit");
            }
        }
        row
    }

    fn event(&self, ticket: i64, at: i64, event: &str, from: &str, to: &str, row: Option<i64>) {
        self.tx
            .prepare_cached(
                "INSERT INTO ticket_events (ticket_id, at, event, from_state, to_state, message_row, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, '')",
            )
            .expect("prepare event")
            .execute(params![ticket, at, event, from, to, row])
            .expect("insert event");
    }

    #[allow(clippy::too_many_arguments)]
    fn outbox(
        &self,
        ticket: i64,
        tag: &str,
        kind: &str,
        row: i64,
        to: &str,
        rank: i64,
        due: i64,
        state: &str,
        created: i64,
    ) {
        let sent_at = if state == "sent" { due } else { 0 };
        self.tx
            .prepare_cached(
                "INSERT INTO outbox (kind, ticket_id, message_row, seq, recipient, priority_rank,
                     out_message_id, due_at, state, attempts, created_at, updated_at, sent_at)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .expect("prepare outbox")
            .execute(params![
                kind,
                ticket,
                row,
                to,
                rank,
                format!(
                    "triaged.{}.{kind}.{row}@support.example.test",
                    tag.to_lowercase()
                ),
                due,
                state,
                i64::from(state == "sent"),
                created,
                if state == "pending" { created } else { due },
                sent_at,
            ])
            .expect("insert outbox");
        if state == "sent" && sent_at > self.now - 7 * DAY {
            self.tx
                .prepare_cached("INSERT INTO send_log (at_ms, outbox_id) VALUES (?1, ?2)")
                .expect("prepare send log")
                .execute(params![sent_at * 1000, self.tx.last_insert_rowid()])
                .expect("insert send log");
        }
    }

    /// One conversation: its ticket, emails, outbox rows and history.
    fn conversation(&mut self) {
        let at = self.time_of(self.messages);
        if self.rng.u8(..100) < 3 {
            let sender = format!("c{}@customers.example", self.rng.u32(..10_000));
            self.message(
                None,
                &sender,
                "big attachment",
                "",
                "customer",
                "skipped",
                at,
                true,
            );
            return;
        }
        self.tickets += 1;
        let id = self.tickets;
        let tag = triaged::tickets::tag_for(id);
        let customer = format!(
            "c{}@customers.example",
            self.rng.u32(..(self.emails as u32 / 3).max(1))
        );
        let (priority, rank) = match self.rng.u8(..100) {
            0..5 => PRIORITIES[0],
            5..20 => PRIORITIES[1],
            20..80 => PRIORITIES[2],
            _ => PRIORITIES[3],
        };
        let subject = SUBJECTS[self.rng.usize(..SUBJECTS.len())];
        let recent = at > self.now - 7 * DAY;
        let again = self.rng.u8(..100) < 30;
        let staff = self.rng.u8(..100) < 65;
        let bounce = self.rng.u8(..100) < 4;
        let state = match (recent, staff) {
            (false, _) => "closed",
            (true, true) => "answered",
            (true, false) if again => "reopened",
            (true, false) => "acknowledged",
        };
        let staff_at = at + 3 * 3600;
        self.tx
            .prepare_cached(
                "INSERT INTO tickets (id, tag, customer, subject, state, priority, created_at, updated_at,
                     first_response_at, last_customer_at, last_staff_at, closed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .expect("prepare ticket")
            .execute(params![
                id,
                tag,
                customer,
                subject,
                state,
                priority,
                at,
                at + 3 * DAY,
                if staff { staff_at } else { 0 },
                if again { at + 2 * 3600 } else { at },
                if staff { staff_at } else { 0 },
                if state == "closed" { at + 3 * DAY } else { 0 },
            ])
            .expect("insert ticket");
        let first = self.message(
            Some(id),
            &customer,
            subject,
            priority,
            "customer",
            "queued",
            at,
            false,
        );
        self.event(id, at, "opened", "", "new", Some(first));
        self.outbox(id, &tag, "ack", first, &customer, rank, at + 1, "sent", at);
        self.event(id, at + 1, "ack_sent", "new", "acknowledged", None);
        if rank == 0 {
            self.urgent.push((id, tag.clone(), at));
        }
        // Holding note: cancelled by the staff reply, else sent (old) or waiting (recent).
        let holding = match (staff, recent) {
            (true, _) => "cancelled",
            (false, false) => "sent",
            (false, true) => "pending",
        };
        let due = if holding == "pending" {
            self.now + 2 * DAY
        } else {
            at + DAY
        };
        self.outbox(
            id,
            &tag,
            "holding",
            first,
            &customer,
            10 + rank,
            due,
            holding,
            at,
        );
        self.event(id, at, "holding_queued", "new", "new", None);
        if again && self.messages < self.emails {
            let row = self.message(
                Some(id),
                &customer,
                &format!("Re: {subject}"),
                priority,
                "customer",
                "reply_in_ticket",
                at + 2 * 3600,
                false,
            );
            self.event(
                id,
                at + 2 * 3600,
                "customer_wrote",
                "acknowledged",
                "reopened",
                Some(row),
            );
        }
        if staff && self.messages < self.emails {
            let row = self.message(
                Some(id),
                "agent@example.test",
                &format!("Re: [#{tag}] {subject}"),
                "normal",
                "staff",
                "staff",
                staff_at,
                false,
            );
            self.event(
                id,
                staff_at,
                "staff_replied",
                "acknowledged",
                "answered",
                Some(row),
            );
            let verify = if recent { "pending" } else { "sent" };
            let due = if recent {
                self.now + 3 * DAY
            } else {
                at + 2 * DAY
            };
            self.outbox(
                id,
                &tag,
                "verify",
                first,
                &customer,
                10 + rank,
                due,
                verify,
                staff_at,
            );
        }
        if bounce && self.messages < self.emails {
            let row = self.message(
                Some(id),
                "mailer-daemon@customers.example",
                "Undelivered Mail Returned to Sender",
                "low",
                "robot",
                "auto_submitted",
                at + 60,
                false,
            );
            self.event(
                id,
                at + 60,
                "bounced",
                "acknowledged",
                "acknowledged",
                Some(row),
            );
        }
        if state == "closed" {
            self.event(id, at + 3 * DAY, "close", "answered", "closed", None);
            self.outbox(
                id,
                &tag,
                "survey",
                first,
                &customer,
                10 + rank,
                at + 3 * DAY + 60,
                "sent",
                at + 3 * DAY,
            );
        }
    }

    /// Digests twice a day, an alert per urgent ticket, an incident a month.
    fn staff_mail(&mut self) {
        let insert = |kind: &str, key: String, ticket: Option<i64>, at: i64| {
            self.tx
                .prepare_cached(
                    "INSERT INTO notices (kind, key, recipients, subject, body_text, ticket_id, due_at, state,
                         attempts, created_at, updated_at, sent_at)
                     VALUES (?1, ?2, 'staff@example.test', 'digest', 'text', ?3, ?4, 'sent', 1, ?4, ?4, ?4)",
                )
                .expect("prepare notice")
                .execute(params![kind, key, ticket, at])
                .expect("insert notice");
        };
        let mut t = self.start;
        while t < self.now - DAY {
            insert("digest", format!("digest:team:{t}"), None, t);
            insert(
                "digest",
                format!("digest:team:{}", t + 6 * 3600),
                None,
                t + 6 * 3600,
            );
            t += DAY;
        }
        for (id, tag, at) in std::mem::take(&mut self.urgent) {
            insert("alert", format!("alert:{tag}"), Some(id), at + 5);
        }
        let mut t = self.start;
        while t < self.now - 30 * DAY {
            self.tx
                .execute(
                    "INSERT INTO incidents (condition, started_at, detail, resolved_at)
                     VALUES ('smtp', ?1, 'connection refused', ?2)",
                    params![t, t + 600],
                )
                .expect("insert incident");
            t += 30 * DAY;
        }
    }
}
