//! Migration 10 on a store the previous version made and filled: every row, index, trigger
//! and count is kept, the schema is the one a new store gets, the daemon's work runs on it,
//! and the new constraints hold. A store with a value no version wrote is refused, untouched.

use rusqlite::types::Value;

use super::plans::{fill_history, workload};
use super::*;
use crate::store::schema::{MIGRATIONS, apply};

/// The schema version before typed rows.
const PREVIOUS: usize = 9;

/// A store at `dir/s.sqlite` as the previous version left it: its migrations applied, with a
/// year of history and tickets in every state.
fn previous_store(dir: &std::path::Path) -> Connection {
    let mut conn = Connection::open(dir.join("s.sqlite")).expect("open");
    conn.pragma_update(None, "foreign_keys", "ON")
        .expect("foreign keys");
    let tx = conn.transaction().expect("tx");
    for m in &MIGRATIONS[..PREVIOUS] {
        apply(&tx, m).expect("previous migration");
    }
    tx.pragma_update(None, "user_version", PREVIOUS as i64)
        .expect("version");
    tx.commit().expect("commit");
    fill_history(&conn);
    // Tickets in every state and at every priority, and a follow-up of every kind.
    conn.execute_batch(
        "UPDATE tickets SET state = CASE id % 6 WHEN 0 THEN 'new' WHEN 1 THEN 'acknowledged'
                WHEN 2 THEN 'answered' WHEN 3 THEN 'reopened' WHEN 4 THEN 'snoozed' ELSE 'closed' END
         WHERE id % 7 = 0;
         UPDATE outbox SET kind = 'verify' WHERE kind = 'holding' AND id % 3 = 0;",
    )
    .expect("every state");
    conn
}

/// Every row of `table`, in the order of its key.
fn rows(conn: &Connection, table: &str) -> Vec<Vec<Value>> {
    rows_of(conn, table, "*")
}

/// The columns `table` has in `conn`, comma-separated.
fn columns(conn: &Connection, table: &str) -> String {
    let stmt = conn
        .prepare(&format!("SELECT * FROM {table} LIMIT 0"))
        .expect("prep");
    stmt.column_names().join(", ")
}

/// Every row of `table`, `columns` of it, in the order of its key.
fn rows_of(conn: &Connection, table: &str, columns: &str) -> Vec<Vec<Value>> {
    let order = if table == "tally" {
        "what, key"
    } else {
        "rowid"
    };
    let mut stmt = conn
        .prepare(&format!("SELECT {columns} FROM {table} ORDER BY {order}"))
        .expect("prep");
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
        .expect("q")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

/// (type, name, table, sql) of every schema object but the tables, by name.
fn indexes_and_triggers(conn: &Connection) -> Vec<(String, String, String, Option<String>)> {
    let mut stmt = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE type != 'table' ORDER BY name",
        )
        .expect("prep");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("q")
        .collect::<rusqlite::Result<_>>()
        .expect("schema")
}

fn schema(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")
        .expect("prep");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("q")
        .collect::<rusqlite::Result<_>>()
        .expect("schema")
}

const TABLES: [&str; 9] = [
    "tickets",
    "messages",
    "hits",
    "outbox",
    "ticket_events",
    "notices",
    "send_log",
    "incidents",
    "tally",
];

#[test]
fn a_filled_store_of_the_previous_version_migrates_keeping_every_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (before, columns_before) = {
        let conn = previous_store(dir.path());
        let kept: Vec<Vec<Vec<Value>>> = TABLES.iter().map(|t| rows(&conn, t)).collect();
        let cols: Vec<String> = TABLES.iter().map(|t| columns(&conn, t)).collect();
        ((kept, indexes_and_triggers(&conn)), cols)
    };
    assert!(before.0[0].len() > 1000, "the store has history");

    let mut t = T::open_in(dir);
    t.policy = followups_on();
    t.policy.alerts = Some(alerts_on(10, None));
    let conn = t.store.conn();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, MIGRATIONS.len() as i64);
    // Later migrations add columns, indexes and tables (11: teams; 12: corrections); what was
    // there is kept.
    for ((table, kept), cols) in TABLES.iter().zip(&before.0).zip(&columns_before) {
        assert!(
            rows_of(conn, table, cols) == *kept,
            "the rows of {table} changed"
        );
    }
    let mut objects = indexes_and_triggers(conn);
    // 12: the tables of corrections are new, with their indexes; 14: those of corrections by
    // folder.
    let new_tables = [
        "corrections",
        "keywords_seen",
        "folder_modseq",
        "folder_arrivals",
        "daemon_filed",
    ];
    objects.retain(|o| o.1 != "tickets_team" && !new_tables.contains(&o.2.as_str()));
    assert_eq!(objects, before.1);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(check, "ok");
    assert!(
        !conn
            .prepare("PRAGMA foreign_key_check")
            .expect("prep")
            .exists([])
            .expect("fk check"),
        "rows point at rows that do not exist"
    );
    let on: bool = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .expect("fk");
    assert!(on, "foreign keys are on again after the migration");

    // The schema is a new store's.
    let fresh = T::new();
    assert_eq!(schema(t.store.conn()), schema(fresh.store.conn()));

    // The daemon works on it, and the counts the triggers keep still match the rows.
    workload(&mut t);
    let (_, _, outbox) = t.store.summary().expect("summary");
    let counted: Vec<(String, i64)> = t
        .store
        .conn()
        .prepare("SELECT state, count(*) FROM outbox GROUP BY 1 ORDER BY 1")
        .expect("prep")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("q")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    assert_eq!(outbox, counted);
    let open: i64 = t.store.open_ticket_counts().expect("open").values().sum();
    assert_eq!(
        open,
        t.count("SELECT count(*) FROM tickets WHERE state != 'closed'")
    );
    assert_eq!(
        t.store
            .tickets(&TicketFilter::default(), None)
            .expect("all tickets")
            .rows
            .len() as i64,
        t.count("SELECT count(*) FROM tickets")
    );
}

#[test]
fn the_constraints_keep_out_every_name_the_rows_cannot_be_read_as() {
    let mut t = T::new();
    t.put(1, &email("a@x", "ada@example.com", "Help"), Priority::High);
    for sql in [
        "UPDATE tickets SET priority = 'medium'",
        "UPDATE tickets SET state = 'pending'",
        "UPDATE messages SET priority = 'Urgent'",
        "UPDATE outbox SET kind = 'digest'",
        "UPDATE outbox SET priority_rank = 4",
        "UPDATE ticket_events SET to_state = ''",
        "UPDATE ticket_events SET from_state = 'open'",
    ] {
        let err = t
            .store
            .conn()
            .execute_batch(sql)
            .expect_err("the constraint refuses it");
        assert!(
            err.to_string().contains("CHECK constraint failed"),
            "{sql}: {err}"
        );
    }
    // What the store writes passes.
    t.conn_exec(
        "UPDATE tickets SET priority = 'low', state = 'snoozed';
         UPDATE messages SET priority = '';
         UPDATE outbox SET kind = 'survey', priority_rank = 13;",
    );
}

#[test]
fn a_value_no_version_wrote_stops_the_migration_and_says_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sqlite");
    {
        let conn = previous_store(dir.path());
        conn.execute_batch(
            "UPDATE tickets SET priority = 'medium' WHERE id IN (100001, 100002);
             UPDATE outbox SET kind = 'reminder' WHERE id = 1;",
        )
        .expect("hand edit");
    }
    let err = match Store::open(&path) {
        Ok(_) => panic!("a store with unknown names must not migrate"),
        Err(e) => format!("{e:#}"),
    };
    for needle in [
        "Applying migration 10",
        "tickets.priority holds 'medium' (2 rows)",
        "outbox.kind holds 'reminder' (1 rows)",
        "edited by hand",
    ] {
        assert!(err.contains(needle), "{needle:?} in {err}");
    }
    // Untouched: still the previous version, and fixed by hand it migrates.
    let conn = Connection::open(&path).expect("open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, PREVIOUS as i64);
    conn.execute_batch(
        "UPDATE tickets SET priority = 'normal' WHERE priority = 'medium';
         UPDATE outbox SET kind = 'ack' WHERE kind = 'reminder';",
    )
    .expect("fix");
    drop(conn);
    Store::open(&path).expect("migrates once fixed");
}
