//! Versioned migrations, applied in order inside one transaction. Never edit a released
//! migration: append a new one.

use anyhow::{Context, Result};
use rusqlite::{Connection, Transaction, TransactionBehavior};

/// One step of the schema.
pub enum Migration {
    /// Statements run as they are.
    Sql(&'static str),
    /// Checks first (`SELECT`s that name a problem in their first column; any row stops the
    /// migration with what it says), then tables made anew from these `CREATE TABLE`s of
    /// `NAME_new` (SQLite cannot add a constraint to a table): each keeps its name, its rows
    /// and its indexes and triggers ([`rebuild`]).
    Rebuild {
        checks: &'static [&'static str],
        tables: &'static [(&'static str, &'static str)],
    },
}

use Migration::{Rebuild, Sql};

pub const MIGRATIONS: &[Migration] = &[
    // 1: the backbone.
    Sql(r#"
CREATE TABLE folder_state (
    folder       TEXT    NOT NULL PRIMARY KEY,
    uidvalidity  INTEGER NOT NULL,
    last_uid     INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE tickets (
    id          INTEGER NOT NULL PRIMARY KEY,
    tag         TEXT    NOT NULL UNIQUE,
    customer    TEXT    NOT NULL,
    subject     TEXT    NOT NULL DEFAULT '',
    state       TEXT    NOT NULL DEFAULT 'new',
    priority    TEXT    NOT NULL DEFAULT 'normal',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE messages (
    id            INTEGER NOT NULL PRIMARY KEY,
    -- Message-ID (synthesized when missing) for mail that parsed; a location key otherwise.
    dedup_key     TEXT    NOT NULL UNIQUE,
    message_id    TEXT    NOT NULL DEFAULT '',
    folder        TEXT    NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    ticket_id     INTEGER REFERENCES tickets(id),
    status        TEXT    NOT NULL,              -- triaged | skipped
    skip_reason   TEXT    NOT NULL DEFAULT '',   -- code, when skipped
    skip_detail   TEXT    NOT NULL DEFAULT '',
    ack           TEXT    NOT NULL DEFAULT '',   -- queued, or the code of why not
    sender        TEXT    NOT NULL DEFAULT '',   -- reply address
    sender_name   TEXT    NOT NULL DEFAULT '',
    subject       TEXT    NOT NULL DEFAULT '',
    refs          TEXT    NOT NULL DEFAULT '',   -- References of a reply to this email, space-separated
    score         REAL    NOT NULL DEFAULT 0,
    priority      TEXT    NOT NULL DEFAULT '',
    tones         TEXT    NOT NULL DEFAULT '',   -- comma-separated
    size          INTEGER NOT NULL DEFAULT 0,
    received_at   INTEGER NOT NULL,
    processed_at  INTEGER NOT NULL,
    flags_state   TEXT    NOT NULL DEFAULT 'pending', -- pending | done
    UNIQUE (folder, uidvalidity, uid)
) STRICT;
CREATE INDEX messages_ticket ON messages(ticket_id);
CREATE INDEX messages_flags ON messages(folder, uidvalidity, flags_state);

CREATE TABLE hits (
    message_row  INTEGER NOT NULL REFERENCES messages(id),
    rule         TEXT    NOT NULL,
    field        TEXT    NOT NULL,
    matched      TEXT    NOT NULL DEFAULT '',
    weight       REAL    NOT NULL
) STRICT;
CREATE INDEX hits_message ON hits(message_row);

CREATE TABLE outbox (
    id              INTEGER NOT NULL PRIMARY KEY,
    kind            TEXT    NOT NULL,            -- ack
    ticket_id       INTEGER NOT NULL REFERENCES tickets(id),
    message_row     INTEGER NOT NULL REFERENCES messages(id),
    seq             INTEGER NOT NULL DEFAULT 0,
    recipient       TEXT    NOT NULL,
    priority_rank   INTEGER NOT NULL,            -- 0 urgent .. 3 low
    out_message_id  TEXT    NOT NULL UNIQUE,
    due_at          INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending', -- pending | sending | sent | failed | uncertain | cancelled | held | unconfirmed (migration 9)
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    sent_at         INTEGER NOT NULL DEFAULT 0,
    UNIQUE (ticket_id, kind, seq)
) STRICT;
CREATE INDEX outbox_due ON outbox(state, priority_rank, due_at);
CREATE INDEX outbox_recipient ON outbox(recipient, created_at);
"#),
    // 2: sending discipline: every accepted send (for rate windows that survive restarts) and
    // small durable flags such as a provider-imposed pause.
    Sql(r#"
CREATE TABLE send_log (
    at_ms      INTEGER NOT NULL,
    outbox_id  INTEGER NOT NULL
) STRICT;
CREATE INDEX send_log_at ON send_log(at_ms);

CREATE TABLE kv (
    key    TEXT NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
) STRICT;
"#),
    // 3: the sender's earlier contacts, for the history signals of scoring; the intents a
    // verdict found (cancel, refund, ...), which later stages route on.
    Sql(r#"
CREATE INDEX messages_sender ON messages(sender, received_at);
ALTER TABLE messages ADD COLUMN intents TEXT NOT NULL DEFAULT '';  -- comma-separated
"#),
    // 4: the ticket lifecycle: when staff first answered, the last word of each side, snoozes,
    // and a log of every state change with what caused it.
    Sql(r#"
ALTER TABLE tickets ADD COLUMN first_response_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN last_customer_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN last_staff_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN snoozed_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN closed_at INTEGER NOT NULL DEFAULT 0;
UPDATE tickets SET last_customer_at = created_at;
CREATE INDEX tickets_state ON tickets(state, priority);

CREATE TABLE ticket_events (
    id           INTEGER NOT NULL PRIMARY KEY,
    ticket_id    INTEGER NOT NULL REFERENCES tickets(id),
    at           INTEGER NOT NULL,
    event        TEXT    NOT NULL,            -- customer_wrote | staff_replied | ack_sent | close | snooze | reopen | opened
    from_state   TEXT    NOT NULL DEFAULT '',
    to_state     TEXT    NOT NULL,
    message_row  INTEGER REFERENCES messages(id),
    detail       TEXT    NOT NULL DEFAULT ''  -- who or what: the sender, 'cli', an email command
) STRICT;
CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id, at);
"#),
    // 5: a follow-up cancelled while the outbox has it claimed (`sending`) keeps the reason
    // here; a retry or deferral then cancels it instead of putting it back in the queue.
    Sql(r#"
ALTER TABLE outbox ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';
"#),
    // 6: staff mail: digests, instant alerts and health alerts, queued durably and sent by the
    // outbox; health incidents; the start of each email for digests and alerts.
    Sql(r#"
ALTER TABLE messages ADD COLUMN excerpt TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN role TEXT NOT NULL DEFAULT '';  -- customer | staff | robot ('' before 6)

CREATE TABLE notices (
    id           INTEGER NOT NULL PRIMARY KEY,
    kind         TEXT    NOT NULL,               -- digest | alert | health
    key          TEXT    NOT NULL UNIQUE,        -- digest:NAME:SLOT | alert:TAG | health:INCIDENT:open|resolved
    recipients   TEXT    NOT NULL,               -- comma-separated staff addresses
    subject      TEXT    NOT NULL DEFAULT '',
    body_text    TEXT    NOT NULL DEFAULT '',
    body_html    TEXT    NOT NULL DEFAULT '',
    detail       TEXT    NOT NULL DEFAULT '',    -- alert: its facts (JSON), rendered when sent
    ticket_id    INTEGER REFERENCES tickets(id),
    due_at       INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending', -- pending | sending | sent | failed | uncertain | empty
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    batch        INTEGER NOT NULL DEFAULT 0,     -- alerts sent in one email share the first one's id
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    sent_at      INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX notices_due ON notices(state, due_at);

CREATE TABLE incidents (
    id           INTEGER NOT NULL PRIMARY KEY,
    condition    TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    detail       TEXT    NOT NULL DEFAULT '',
    resolved_at  INTEGER NOT NULL DEFAULT 0
) STRICT;
"#),
    // 7: emails whose triage started and was not recorded yet, with the daemon run that
    // started it: a start by another run means the one before died on this email (a poison
    // message), counted in `crashes`. The row goes in the transaction that records the email.
    Sql(r#"
CREATE TABLE triage_starts (
    folder       TEXT    NOT NULL,
    uidvalidity  INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    run          TEXT    NOT NULL,
    crashes      INTEGER NOT NULL DEFAULT 0,
    started_at   INTEGER NOT NULL,
    PRIMARY KEY (folder, uidvalidity, uid)
) STRICT;
"#),
    // 8: flat cost (issue 15): every statement run per email or per timer reads through an
    // index, and the counts the status command, /metrics and the status page show are kept in
    // `tally` by triggers, in the transaction that changes the rows (so they cannot drift).
    // The rank expression is the one the ticket lists order by (`store::tickets::TICKET_RANK`).
    Sql(r#"
CREATE INDEX messages_processed ON messages(processed_at);   -- health: last email, breaker skips
CREATE INDEX messages_received ON messages(received_at);     -- digest: the themes' emails
CREATE INDEX outbox_pending ON outbox(state, due_at, kind);  -- next due, backlog, /metrics depth
CREATE INDEX outbox_created ON outbox(created_at);           -- acknowledgements of the last minute
-- digest: what failed lately (partial: kept only for the few rows that failed)
CREATE INDEX outbox_trouble ON outbox(state, updated_at) WHERE state IN ('failed', 'uncertain');
CREATE INDEX notices_sent ON notices(kind, state, sent_at);  -- alert emails of the last hour
CREATE INDEX incidents_open ON incidents(resolved_at);
-- digest: recent bounces (partial: kept only for bounces)
CREATE INDEX ticket_events_bounced ON ticket_events(at) WHERE event = 'bounced';
-- Open tickets, most urgent and oldest first (status page); all tickets so (`triaged tickets`).
CREATE INDEX tickets_open ON tickets(
    (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END), created_at, id)
    WHERE state != 'closed';
CREATE INDEX tickets_rank ON tickets(
    (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END), created_at, id);

-- Row counts per key: messages per 'status:skip_reason:priority', acknowledgement decisions
-- per code ('ack'), outbox rows per 'state:kind', tickets per 'state:priority'.
CREATE TABLE tally (
    what  TEXT    NOT NULL,
    key   TEXT    NOT NULL,
    n     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (what, key)
) STRICT, WITHOUT ROWID;

INSERT INTO tally (what, key, n)
    SELECT 'messages', status || ':' || skip_reason || ':' || priority, count(*) FROM messages GROUP BY 2;
INSERT INTO tally (what, key, n) SELECT 'ack', ack, count(*) FROM messages GROUP BY 2;
INSERT INTO tally (what, key, n) SELECT 'outbox', state || ':' || kind, count(*) FROM outbox GROUP BY 2;
INSERT INTO tally (what, key, n) SELECT 'tickets', state || ':' || priority, count(*) FROM tickets GROUP BY 2;

CREATE TRIGGER tally_messages_insert AFTER INSERT ON messages BEGIN
    INSERT INTO tally (what, key, n) VALUES ('messages', NEW.status || ':' || NEW.skip_reason || ':' || NEW.priority, 1)
        ON CONFLICT (what, key) DO UPDATE SET n = n + 1;
    INSERT INTO tally (what, key, n) VALUES ('ack', NEW.ack, 1)
        ON CONFLICT (what, key) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER tally_messages_update AFTER UPDATE OF status, skip_reason, priority, ack ON messages
    WHEN OLD.status IS NOT NEW.status OR OLD.skip_reason IS NOT NEW.skip_reason
      OR OLD.priority IS NOT NEW.priority OR OLD.ack IS NOT NEW.ack
BEGIN
    UPDATE tally SET n = n - 1
        WHERE what = 'messages' AND key = OLD.status || ':' || OLD.skip_reason || ':' || OLD.priority;
    INSERT INTO tally (what, key, n) VALUES ('messages', NEW.status || ':' || NEW.skip_reason || ':' || NEW.priority, 1)
        ON CONFLICT (what, key) DO UPDATE SET n = n + 1;
    UPDATE tally SET n = n - 1 WHERE what = 'ack' AND key = OLD.ack;
    INSERT INTO tally (what, key, n) VALUES ('ack', NEW.ack, 1)
        ON CONFLICT (what, key) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER tally_messages_delete AFTER DELETE ON messages BEGIN
    UPDATE tally SET n = n - 1
        WHERE what = 'messages' AND key = OLD.status || ':' || OLD.skip_reason || ':' || OLD.priority;
    UPDATE tally SET n = n - 1 WHERE what = 'ack' AND key = OLD.ack;
END;

CREATE TRIGGER tally_outbox_insert AFTER INSERT ON outbox BEGIN
    INSERT INTO tally (what, key, n) VALUES ('outbox', NEW.state || ':' || NEW.kind, 1)
        ON CONFLICT (what, key) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER tally_outbox_update AFTER UPDATE OF state, kind ON outbox
    WHEN OLD.state IS NOT NEW.state OR OLD.kind IS NOT NEW.kind
BEGIN
    UPDATE tally SET n = n - 1 WHERE what = 'outbox' AND key = OLD.state || ':' || OLD.kind;
    INSERT INTO tally (what, key, n) VALUES ('outbox', NEW.state || ':' || NEW.kind, 1)
        ON CONFLICT (what, key) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER tally_outbox_delete AFTER DELETE ON outbox BEGIN
    UPDATE tally SET n = n - 1 WHERE what = 'outbox' AND key = OLD.state || ':' || OLD.kind;
END;

CREATE TRIGGER tally_tickets_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO tally (what, key, n) VALUES ('tickets', NEW.state || ':' || NEW.priority, 1)
        ON CONFLICT (what, key) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER tally_tickets_update AFTER UPDATE OF state, priority ON tickets
    WHEN OLD.state IS NOT NEW.state OR OLD.priority IS NOT NEW.priority
BEGIN
    UPDATE tally SET n = n - 1 WHERE what = 'tickets' AND key = OLD.state || ':' || OLD.priority;
    INSERT INTO tally (what, key, n) VALUES ('tickets', NEW.state || ':' || NEW.priority, 1)
        ON CONFLICT (what, key) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER tally_tickets_delete AFTER DELETE ON tickets BEGIN
    UPDATE tally SET n = n - 1 WHERE what = 'tickets' AND key = OLD.state || ':' || OLD.priority;
END;
"#),
    // 9: acknowledgements held for staff (state `held`) when they look like a mail loop: the
    // loop pattern of the email each answers (`tickets::loop_pattern`), counted per window.
    // When the copy that proves an email went out was seen (`witnessed_at`); a send
    // interrupted by a crash waits for it as `unconfirmed`.
    Sql(r#"
ALTER TABLE outbox ADD COLUMN pattern TEXT;
CREATE INDEX outbox_pattern ON outbox(pattern, created_at) WHERE pattern IS NOT NULL;
ALTER TABLE outbox ADD COLUMN witnessed_at INTEGER NOT NULL DEFAULT 0;
"#),
    // 10: priorities (and the outbox's priority ranks), ticket states and outbox kinds are
    // typed in rows (`store::rows`); these constraints keep every other value out, so reading
    // one back cannot meet a name it does not know. No version of triaged wrote another
    // value: one found here came from a hand edit, and the migration stops and says where
    // instead of guessing what it meant.
    Rebuild {
        checks: &[
            "SELECT 'tickets.priority holds ' || quote(priority) || ' (' || count(*) || ' rows)'
             FROM tickets WHERE priority NOT IN ('urgent', 'high', 'normal', 'low') GROUP BY priority",
            "SELECT 'tickets.state holds ' || quote(state) || ' (' || count(*) || ' rows)' FROM tickets
             WHERE state NOT IN ('new', 'acknowledged', 'answered', 'reopened', 'snoozed', 'closed')
             GROUP BY state",
            "SELECT 'messages.priority holds ' || quote(priority) || ' (' || count(*) || ' rows)'
             FROM messages WHERE priority NOT IN ('', 'urgent', 'high', 'normal', 'low') GROUP BY priority",
            "SELECT 'outbox.kind holds ' || quote(kind) || ' (' || count(*) || ' rows)' FROM outbox
             WHERE kind NOT IN ('ack', 'holding', 'verify', 'survey') GROUP BY kind",
            "SELECT 'outbox.priority_rank holds ' || priority_rank || ' (' || count(*) || ' rows)'
             FROM outbox WHERE priority_rank NOT IN (0, 1, 2, 3, 10, 11, 12, 13) GROUP BY priority_rank",
            "SELECT 'ticket_events.from_state holds ' || quote(from_state) || ' (' || count(*) || ' rows)'
             FROM ticket_events
             WHERE from_state NOT IN ('', 'new', 'acknowledged', 'answered', 'reopened', 'snoozed', 'closed')
             GROUP BY from_state",
            "SELECT 'ticket_events.to_state holds ' || quote(to_state) || ' (' || count(*) || ' rows)'
             FROM ticket_events
             WHERE to_state NOT IN ('new', 'acknowledged', 'answered', 'reopened', 'snoozed', 'closed')
             GROUP BY to_state",
        ],
        tables: &[
            (
                "tickets",
                r#"
CREATE TABLE tickets_new (
    id                 INTEGER NOT NULL PRIMARY KEY,
    tag                TEXT    NOT NULL UNIQUE,
    customer           TEXT    NOT NULL,
    subject            TEXT    NOT NULL DEFAULT '',
    state              TEXT    NOT NULL DEFAULT 'new'
        CHECK (state IN ('new', 'acknowledged', 'answered', 'reopened', 'snoozed', 'closed')),
    priority           TEXT    NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('urgent', 'high', 'normal', 'low')),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    first_response_at  INTEGER NOT NULL DEFAULT 0,
    last_customer_at   INTEGER NOT NULL DEFAULT 0,
    last_staff_at      INTEGER NOT NULL DEFAULT 0,
    snoozed_until      INTEGER NOT NULL DEFAULT 0,
    closed_at          INTEGER NOT NULL DEFAULT 0
) STRICT;
"#,
            ),
            (
                "messages",
                r#"
CREATE TABLE messages_new (
    id            INTEGER NOT NULL PRIMARY KEY,
    -- Message-ID (synthesized when missing) for mail that parsed; a location key otherwise.
    dedup_key     TEXT    NOT NULL UNIQUE,
    message_id    TEXT    NOT NULL DEFAULT '',
    folder        TEXT    NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    ticket_id     INTEGER REFERENCES tickets(id),
    status        TEXT    NOT NULL,              -- triaged | skipped
    skip_reason   TEXT    NOT NULL DEFAULT '',   -- code, when skipped
    skip_detail   TEXT    NOT NULL DEFAULT '',
    ack           TEXT    NOT NULL DEFAULT '',   -- queued, or the code of why not
    sender        TEXT    NOT NULL DEFAULT '',   -- reply address
    sender_name   TEXT    NOT NULL DEFAULT '',
    subject       TEXT    NOT NULL DEFAULT '',
    refs          TEXT    NOT NULL DEFAULT '',   -- References of a reply to this email, space-separated
    score         REAL    NOT NULL DEFAULT 0,
    priority      TEXT    NOT NULL DEFAULT ''    -- '' when skipped
        CHECK (priority IN ('', 'urgent', 'high', 'normal', 'low')),
    tones         TEXT    NOT NULL DEFAULT '',   -- comma-separated
    size          INTEGER NOT NULL DEFAULT 0,
    received_at   INTEGER NOT NULL,
    processed_at  INTEGER NOT NULL,
    flags_state   TEXT    NOT NULL DEFAULT 'pending', -- pending | done
    intents       TEXT    NOT NULL DEFAULT '',   -- comma-separated
    excerpt       TEXT    NOT NULL DEFAULT '',
    role          TEXT    NOT NULL DEFAULT '',   -- customer | staff | robot ('' before 6)
    UNIQUE (folder, uidvalidity, uid)
) STRICT;
"#,
            ),
            (
                "outbox",
                r#"
CREATE TABLE outbox_new (
    id              INTEGER NOT NULL PRIMARY KEY,
    kind            TEXT    NOT NULL CHECK (kind IN ('ack', 'holding', 'verify', 'survey')),
    ticket_id       INTEGER NOT NULL REFERENCES tickets(id),
    message_row     INTEGER NOT NULL REFERENCES messages(id),
    seq             INTEGER NOT NULL DEFAULT 0,
    recipient       TEXT    NOT NULL,
    priority_rank   INTEGER NOT NULL             -- 0 urgent .. 3 low; follow-ups 10 + that
        CHECK (priority_rank IN (0, 1, 2, 3, 10, 11, 12, 13)),
    out_message_id  TEXT    NOT NULL UNIQUE,
    due_at          INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending', -- pending | sending | sent | failed | uncertain | cancelled | held | unconfirmed
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    sent_at         INTEGER NOT NULL DEFAULT 0,
    cancel_reason   TEXT    NOT NULL DEFAULT '',
    pattern         TEXT,
    witnessed_at    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (ticket_id, kind, seq)
) STRICT;
"#,
            ),
            (
                "ticket_events",
                r#"
CREATE TABLE ticket_events_new (
    id           INTEGER NOT NULL PRIMARY KEY,
    ticket_id    INTEGER NOT NULL REFERENCES tickets(id),
    at           INTEGER NOT NULL,
    event        TEXT    NOT NULL,            -- customer_wrote | staff_replied | ack_sent | close | ... | opened
    from_state   TEXT    NOT NULL DEFAULT ''  -- '' for `opened`
        CHECK (from_state IN ('', 'new', 'acknowledged', 'answered', 'reopened', 'snoozed', 'closed')),
    to_state     TEXT    NOT NULL
        CHECK (to_state IN ('new', 'acknowledged', 'answered', 'reopened', 'snoozed', 'closed')),
    message_row  INTEGER REFERENCES messages(id),
    detail       TEXT    NOT NULL DEFAULT ''  -- who or what: the sender, 'cli', an email command
) STRICT;
"#,
            ),
        ],
    },
    // 11: teams (`[[team]]`): the team a ticket is routed to and why (the evidence, or who
    // re-routed it); the clarifying questions (`[[ask]]` ids) decided for an email, which its
    // acknowledgement asks.
    Sql(r#"
ALTER TABLE tickets ADD COLUMN team TEXT NOT NULL DEFAULT '';
ALTER TABLE tickets ADD COLUMN route_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN asks TEXT NOT NULL DEFAULT '';  -- comma-separated [[ask]] ids
CREATE INDEX tickets_team ON tickets(team, state) WHERE team != '';
"#),
    // 12: staff corrections of verdicts (issue 18): each is a label staff gave an email (by
    // changing its triage keyword, by a `#priority`/`#tone` email command, or with `triaged
    // ticket relabel`) beside the verdict's. One is in force per email and field
    // (`undone_at = 0`); one undone or replaced by a later one keeps its row. The triage
    // keywords an email showed when last read, where that is not what the daemon wrote; the
    // HIGHESTMODSEQ of each folder read with CONDSTORE (the next read asks what changed since).
    Sql(r#"
CREATE TABLE corrections (
    id           INTEGER NOT NULL PRIMARY KEY,
    message_row  INTEGER NOT NULL REFERENCES messages(id),
    ticket_id    INTEGER REFERENCES tickets(id),
    field        TEXT    NOT NULL CHECK (field IN ('priority', 'tone')),
    old_value    TEXT    NOT NULL,            -- the verdict's label: a priority, or tones comma-separated
    new_value    TEXT    NOT NULL,            -- staff's label, in the same form
    source       TEXT    NOT NULL CHECK (source IN ('imap-keyword', 'imap-folder', 'email-command', 'cli')),
    who          TEXT    NOT NULL DEFAULT '', -- the staff sender of a command, 'cli (USER)'; '' over IMAP
    at           INTEGER NOT NULL,
    undone_at    INTEGER NOT NULL DEFAULT 0,  -- undone, or replaced by a later correction
    CHECK (field != 'priority' OR (old_value IN ('urgent', 'high', 'normal', 'low')
                                   AND new_value IN ('urgent', 'high', 'normal', 'low')))
) STRICT;
CREATE UNIQUE INDEX corrections_current ON corrections(message_row, field) WHERE undone_at = 0;
CREATE INDEX corrections_at ON corrections(at);

CREATE TABLE keywords_seen (
    message_row  INTEGER NOT NULL PRIMARY KEY REFERENCES messages(id),
    priorities   TEXT    NOT NULL,            -- priority keywords shown, most urgent first, comma-separated
    tones        TEXT    NOT NULL,            -- tone keywords shown, as tones, comma-separated
    at           INTEGER NOT NULL
) STRICT;

CREATE TABLE folder_modseq (
    folder          TEXT    NOT NULL PRIMARY KEY,
    uidvalidity     INTEGER NOT NULL,
    highest_modseq  INTEGER NOT NULL
) STRICT;
"#),
    // 13: what `triaged tune --store` fits to (issue 18): each rule hit's occurrence count
    // (its weight alone does not say it once the rule's weight changed; 0 in rows written
    // before), and the customer's own words of a triaged customer email, the first 4 KB
    // (`store::training::KEPT_TEXT`; '' for every other email and before), to learn phrases
    // from.
    Sql(r#"
ALTER TABLE hits ADD COLUMN count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN text TEXT NOT NULL DEFAULT '';
"#),
    // 14: corrections by folder (issue 18). What the last look at each priority folder found
    // (STATUS: UIDVALIDITY and UIDNEXT; uidvalidity 0: it did not exist), so that only the
    // emails that arrived since are looked at, across restarts; and the emails the daemon
    // itself filed into a priority folder and has not seen arrive there yet (its own moves are
    // never a correction).
    Sql(r#"
CREATE TABLE folder_arrivals (
    folder       TEXT    NOT NULL PRIMARY KEY,   -- the priority folder's store key
    uidvalidity  INTEGER NOT NULL,               -- 0: it did not exist when last looked at
    uid_next     INTEGER NOT NULL                -- the emails below were looked at
) STRICT;

CREATE TABLE daemon_filed (
    folder       TEXT    NOT NULL,               -- the priority folder's store key
    message_row  INTEGER NOT NULL REFERENCES messages(id),
    at           INTEGER NOT NULL,
    PRIMARY KEY (folder, message_row)
) STRICT;
CREATE INDEX daemon_filed_at ON daemon_filed(folder, at);
"#),
];

/// Bring the schema of `conn` up to date. A store that is up to date is only read: opening it
/// takes no write lock, so a lock another process holds (or a full disk) does not stop a task
/// from starting; its writes will wait.
///
/// Foreign keys are off while migrating (a table made anew is dropped and renamed under the
/// rows that point at it) and checked before the commit; the caller turns them on.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .context("Reading schema version")?;
    if version == known {
        return Ok(());
    }
    conn.pragma_update(None, "foreign_keys", "OFF")
        .context("Disabling foreign keys for the migration")?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("Starting migration")?;
    // Read again under the write lock: another task may have migrated meanwhile.
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .context("Reading schema version")?;
    if version > known {
        anyhow::bail!(
            "Database schema version {version} is newer than this triaged knows ({known}): upgrade triaged"
        );
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        apply(&tx, m).with_context(|| format!("Applying migration {}", i + 1))?;
    }
    let broken: Vec<String> = tx
        .prepare("PRAGMA foreign_key_check")?
        .query_map([], |r| {
            Ok(format!(
                "{}.{}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?
            ))
        })?
        .collect::<rusqlite::Result<_>>()
        .context("Checking foreign keys")?;
    if !broken.is_empty() {
        anyhow::bail!(
            "Migrating the store left rows pointing at rows that do not exist: {}",
            broken.join(", ")
        );
    }
    tx.pragma_update(None, "user_version", known)
        .context("Writing schema version")?;
    tx.commit().context("Committing migrations")
}

/// Apply one migration in `tx`.
pub(super) fn apply(tx: &Transaction<'_>, m: &Migration) -> Result<()> {
    match m {
        Sql(sql) => tx.execute_batch(sql).context("Running its statements"),
        Rebuild { checks, tables } => {
            let mut problems = Vec::new();
            for check in *checks {
                let mut stmt = tx.prepare(check).context("Preparing a check")?;
                let found = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .context("Checking the rows")?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .context("Checking the rows")?;
                problems.extend(found);
            }
            if !problems.is_empty() {
                anyhow::bail!(
                    "{}: no version of triaged writes these, so they were edited by hand; set each to a name this version knows and start again",
                    problems.join("; ")
                );
            }
            for (table, create) in *tables {
                rebuild(tx, table, create).with_context(|| format!("Rebuilding {table}"))?;
            }
            Ok(())
        }
    }
}

/// Make `table` anew from `create` (a `CREATE TABLE {table}_new` with every column `table`
/// has): its rows copied by column name, the old table dropped, the new one renamed, and the
/// old one's indexes and triggers created again as they were. Rows keep their ids, so what
/// points at them still does. The counts the triggers keep do not move: the copy goes into a
/// table without triggers, and dropping a table fires none.
fn rebuild(tx: &Transaction<'_>, table: &str, create: &str) -> Result<()> {
    let kept: Vec<String> = tx
        .prepare(
            "SELECT sql FROM sqlite_schema
             WHERE tbl_name = ?1 AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY rowid",
        )?
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .context("Reading its indexes and triggers")?;
    let columns: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .context("Reading its columns")?;
    let columns = columns.join(", ");
    tx.execute_batch(create).context("Creating the new table")?;
    tx.execute_batch(&format!(
        "INSERT INTO {table}_new ({columns}) SELECT {columns} FROM {table};
         DROP TABLE {table};
         ALTER TABLE {table}_new RENAME TO {table};"
    ))
    .context("Moving the rows")?;
    for sql in kept {
        tx.execute_batch(&sql)
            .with_context(|| format!("Creating again: {sql}"))?;
    }
    Ok(())
}
