//! The read-only HTTP server: `/healthz` for probes, `/metrics` for Prometheus, and `/`, a
//! status page for people (open tickets by priority with their SLA clocks).
//!
//! hyper's HTTP/1.1 server does the parsing; this module bounds what a client may cost: the
//! request head must arrive within [`App::read_timeout`] and fit in [`MAX_REQUEST_HEAD`] bytes
//! (hyper answers 431 past that), a connection lives at most [`CONNECTION_DEADLINE`], carries
//! one request (no keep-alive), and at most [`MAX_CONNECTIONS`] are served at once. Only GET
//! and HEAD are answered; nothing is written anywhere.
//!
//! The store is read through [`StatusSource`], on the blocking pool: SQLite calls block.
//! [`StoreSource`] is the real one. `/healthz` never reads the store ([`health`]): it answers
//! at once whatever the store does.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alerts::Condition;
use crate::clock::Clock;
use crate::health::HealthBoard;
use crate::metrics::{LiveFacts, Metrics};
use crate::score::Priority;
use crate::sla::SlaConfig;
use crate::store::{Store, TicketRow};
use crate::tickets::State;
use crate::tools::tickets::{age, clip, when};

/// Largest request head (request line and headers) read; hyper's minimum is 8 KiB.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Longest a connection may live, however slowly the client reads or writes.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 64;
/// Tickets listed per priority on the status page; the rest are counted.
pub const PAGE_ROWS_PER_GROUP: usize = 200;
/// How long requests in flight may take to finish after cancellation.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// What is wrong with the daemon, one line per problem; empty when healthy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub problems: Vec<String>,
}

impl Health {
    /// Nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A ticket that is not closed, with when staff owe a reply.
#[derive(Debug, Clone)]
pub struct OpenTicket {
    pub ticket: TicketRow,
    /// When staff owe a reply on the business clock; `None` when the ticket does not wait for
    /// staff (answered, snoozed).
    pub due: Option<i64>,
}

/// Where the server reads the store's figures. Called on the blocking pool.
pub trait StatusSource: Send + Sync {
    /// Outbox depth, the oldest due row's age and open tickets at `now`; `start_time` is
    /// filled in by the server.
    fn live_facts(&self, now: i64) -> Result<LiveFacts>;
    /// Tickets not closed: the first [`PAGE_ROWS_PER_GROUP`] of each priority, most urgent
    /// and oldest first, and how many are open.
    fn open_tickets(&self) -> Result<OpenTickets>;
}

/// Open tickets as the status page shows them.
#[derive(Debug, Clone, Default)]
pub struct OpenTickets {
    /// At most [`PAGE_ROWS_PER_GROUP`] per priority, most urgent and oldest first.
    pub listed: Vec<OpenTicket>,
    /// How many tickets are open, per priority (listed or not).
    pub open: BTreeMap<Priority, i64>,
}

/// The health check behind `/healthz` and the status page's header. It runs on the server's
/// worker, so it must not block: the daemon's reads only memory ([`health`]).
pub type HealthCheck = Box<dyn Fn() -> Health + Send + Sync>;

/// What the routes need.
pub struct App {
    pub metrics: Metrics,
    pub source: Arc<dyn StatusSource>,
    pub health: HealthCheck,
    pub clock: Clock,
    /// When the daemon started (seconds since the epoch), for `triaged_start_time_seconds`.
    pub started_at: i64,
    /// How long a client may take to send its request head.
    pub read_timeout: Duration,
}

impl App {
    /// Started now, with a 10 s limit on reading a request head.
    pub fn new(
        metrics: Metrics,
        source: Arc<dyn StatusSource>,
        health: HealthCheck,
        clock: Clock,
    ) -> App {
        App {
            metrics,
            source,
            health,
            started_at: clock.now(),
            clock,
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// The store as a [`StatusSource`], with the SLA configuration its clocks run on.
pub struct StoreSource {
    inner: Mutex<(Store, SlaConfig)>,
}

impl StoreSource {
    /// Open the store at `path` (its own connection: WAL lets it read beside the daemon).
    pub fn open(path: &Path, sla: SlaConfig) -> Result<StoreSource> {
        let store = Store::open(path).context("Opening the store for the status server")?;
        Ok(StoreSource::new(store, sla))
    }

    /// Read `store` (a connection of its own).
    pub fn new(store: Store, sla: SlaConfig) -> StoreSource {
        StoreSource {
            inner: Mutex::new((store, sla)),
        }
    }

    /// Use `sla` from now on (after a configuration reload).
    pub fn set_sla(&self, sla: SlaConfig) {
        self.lock().1 = sla;
    }

    /// The store lock. Its users only read, so a panic while holding it leaves nothing half
    /// done: a poisoned lock is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, (Store, SlaConfig)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What `/healthz` and the status page say, from memory only (never the store, which may be
/// locked for as long as another process likes): IMAP sources `metrics` saw disconnected, the
/// store as the tasks find it, and the open health incidents as the health monitor last read
/// them (kept only with `[alerts.health]` on).
pub fn health(board: &HealthBoard, metrics: &Metrics) -> Health {
    let mut problems: Vec<String> = metrics
        .disconnected_sources()
        .into_iter()
        .map(|s| format!("IMAP {s}: not connected"))
        .collect();
    let store = board.failures(Condition::Store);
    for cause in &store {
        problems.push(format!("{}: {cause}", Condition::Store.title()));
    }
    for i in board.incidents() {
        // The store's own line says it better while it lasts.
        if i.condition == Condition::Store && !store.is_empty() {
            continue;
        }
        let mut line = format!("{} since {}", i.condition.title(), when(i.started_at));
        if !i.detail.is_empty() {
            let _ = write!(line, ": {}", i.detail.replace('\n', " "));
        }
        problems.push(line);
    }
    Health { problems }
}

impl StatusSource for StoreSource {
    fn live_facts(&self, now: i64) -> Result<LiveFacts> {
        let guard = self.lock();
        let store = &guard.0;
        let (depth, first_due) = store.outbox_depth()?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(LiveFacts {
            outbox_depth: depth.into_iter().map(|(k, n)| (k, count(n))).collect(),
            oldest_due_seconds: first_due.filter(|d| *d <= now).map_or(0, |d| now - d),
            open_tickets: store
                .open_ticket_counts()?
                .into_iter()
                .map(|(p, n)| (p.as_str().to_string(), count(n)))
                .collect(),
            ..LiveFacts::default()
        })
    }

    fn open_tickets(&self) -> Result<OpenTickets> {
        let guard = self.lock();
        let (store, sla) = &*guard;
        let list = store.open_tickets(PAGE_ROWS_PER_GROUP)?;
        Ok(OpenTickets {
            listed: list
                .rows
                .into_iter()
                .map(|t| OpenTicket {
                    due: crate::tools::tickets::due(sla, &t),
                    ticket: t,
                })
                .collect(),
            open: list.open,
        })
    }
}

/// [`serve`] on a runtime of its own, on the calling thread (the daemon gives it one of the
/// blocking pool): `/healthz` answers even while every worker of the daemon's runtime waits on
/// a locked store. Returns when `cancel` is cancelled and the requests in flight are done.
pub fn serve_apart(
    listener: std::net::TcpListener,
    app: Arc<App>,
    cancel: CancellationToken,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("Starting the HTTP server's runtime")?;
    rt.block_on(async move {
        let listener =
            TcpListener::from_std(listener).context("Listening for HTTP on its own runtime")?;
        serve(listener, app, cancel).await;
        Ok(())
    })
}

/// Serve `listener` until `cancel`; requests in flight then get `SHUTDOWN_GRACE` to finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, cancel: CancellationToken) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.read_timeout)
        // At least hyper's minimum of 8 KiB (it asserts that): a constant, so this cannot panic.
        .max_buf_size(MAX_REQUEST_HEAD)
        .keep_alive(false);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "HTTP connection refused: too many open");
            continue;
        };
        let app = app.clone();
        let cancel = cancel.clone();
        let builder = builder.clone();
        tracker.spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| handle(app.clone(), req));
            let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
            let outcome = tokio::select! {
                r = tokio::time::timeout(CONNECTION_DEADLINE, conn.as_mut()) => r,
                () = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await
                }
            };
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTP connection ended"),
                Err(_) => tracing::debug!(%peer, "HTTP connection timed out"),
            }
        });
    }
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::debug!("HTTP connections still open at shutdown are dropped");
    }
}

/// A response before the HEAD/GET distinction.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn text(status: StatusCode, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    /// The store could not be read: the detail goes to the log, not to the client.
    fn unavailable(what: &str, e: &anyhow::Error) -> Reply {
        tracing::warn!(error = %format!("{e:#}"), "{what} failed");
        Reply::text(StatusCode::INTERNAL_SERVER_ERROR, "store unavailable\n")
    }
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let head = req.method() == Method::HEAD;
    let reply = if req.method() != Method::GET && !head {
        Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
    } else {
        match req.uri().path() {
            // From memory only: answered here, never behind a store query.
            "/healthz" => healthz(&app),
            "/metrics" => blocking(app, metrics).await,
            "/" => blocking(app, status).await,
            _ => Reply::text(StatusCode::NOT_FOUND, "not found\n"),
        }
    };
    Ok(respond(reply, head))
}

/// Run `f` on the blocking pool: it reads SQLite.
async fn blocking(app: Arc<App>, f: fn(&App) -> Reply) -> Reply {
    match tokio::task::spawn_blocking(move || f(&app)).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %e, "HTTP handler panicked");
            Reply::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}

fn respond(reply: Reply, head: bool) -> Response<Full<Bytes>> {
    let len = reply.body.len();
    let body = if head {
        Full::default()
    } else {
        Full::new(Bytes::from(reply.body))
    };
    let mut r = Response::new(body);
    *r.status_mut() = reply.status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    // hyper keeps an explicit length on HEAD answers, whose body is empty.
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    if reply.status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    r
}

fn healthz(app: &App) -> Reply {
    let health = (app.health)();
    if health.is_ok() {
        return Reply::text(StatusCode::OK, "ok\n");
    }
    let mut body = String::new();
    for p in &health.problems {
        let _ = writeln!(body, "{p}");
    }
    Reply::text(StatusCode::SERVICE_UNAVAILABLE, body)
}

fn metrics(app: &App) -> Reply {
    match app.source.live_facts(app.clock.now()) {
        Ok(mut live) => {
            live.start_time = app.started_at;
            Reply {
                status: StatusCode::OK,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: app.metrics.render(&live),
            }
        }
        Err(e) => Reply::unavailable("Reading metrics from the store", &e),
    }
}

fn status(app: &App) -> Reply {
    let health = (app.health)();
    match app.source.open_tickets() {
        Ok(tickets) => Reply {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            body: status_page(&health, &tickets, app.clock.now()),
        },
        Err(e) => Reply::unavailable("Reading tickets for the status page", &e),
    }
}

/// `s` safe inside HTML text and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The SLA clock in the digest's words: "reply due in 3h", "reply late by 1d 2h".
fn sla_words(t: &OpenTicket, now: i64) -> String {
    match t.due {
        Some(d) => crate::wording::reply_due(d, now),
        None if t.ticket.state == State::Snoozed => {
            format!("snoozed until {}", when(t.ticket.snoozed_until))
        }
        None => "waiting for the customer".into(),
    }
}

/// The status page's template (minijinja, HTML auto-escaped). Built in: the page is the
/// daemon's own, not one of the operator's templates.
const STATUS_TEMPLATE: &str = include_str!("status.html");

/// What the status page shows.
#[derive(serde::Serialize)]
struct StatusView<'a> {
    problems: &'a [String],
    open: usize,
    late: usize,
    /// More tickets are open than listed: the late count is of those listed.
    partial: bool,
    as_of: String,
    /// A listed ticket has a team: the tables have a team column.
    teams: bool,
    groups: Vec<GroupView>,
}

#[derive(serde::Serialize)]
struct GroupView {
    name: &'static str,
    total: usize,
    rows: Vec<RowView>,
    more: usize,
}

#[derive(serde::Serialize)]
struct RowView {
    late: bool,
    tag: String,
    customer: String,
    /// Empty: "(no subject)".
    subject: String,
    state: &'static str,
    age: String,
    sla: String,
    /// Empty: none.
    team: String,
}

/// The status page's template, compiled once (the page is asked for every few seconds).
fn status_env() -> &'static minijinja::Environment<'static> {
    static ENV: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        // Escaped as the rest of this module escapes (`&#39;`, `/` as is).
        env.set_formatter(|out, _state, value| {
            if value.is_safe() {
                out.write_str(&value.to_string())?;
            } else {
                out.write_str(&escape_html(&value.to_string()))?;
            }
            Ok(())
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_fuel(Some(crate::templates::FUEL));
        // A template that does not compile shows as the failure text of every render.
        let _ = env.add_template("status", STATUS_TEMPLATE);
        env
    })
}

/// The status page: health, then open tickets grouped by priority, late ones highlighted.
/// Each group lists what `tickets.listed` holds of it (the oldest [`PAGE_ROWS_PER_GROUP`]) and
/// counts the rest; late tickets are counted among those listed.
pub fn status_page(health: &Health, tickets: &OpenTickets, now: i64) -> String {
    let view = status_view(health, tickets, now);
    status_env()
        .get_template("status")
        .and_then(|t| t.render(&view))
        .unwrap_or_else(|e| {
            // The template is ours and tested; say so rather than serve nothing.
            format!(
                "<!doctype html><p>The status page failed: {}</p>",
                escape_html(&e.to_string())
            )
        })
}

fn status_view<'a>(health: &'a Health, tickets: &OpenTickets, now: i64) -> StatusView<'a> {
    let listed = &tickets.listed;
    let group = |p: Priority| -> Vec<&OpenTicket> {
        listed.iter().filter(|t| t.ticket.priority == p).collect()
    };
    // Listed, or counted open: a ticket that arrived between the two reads is not lost.
    let open_in = |p: Priority| -> usize {
        let counted = tickets.open.get(&p).copied().unwrap_or(0);
        usize::try_from(counted).unwrap_or(0).max(group(p).len())
    };
    let open: usize = Priority::ALL.into_iter().map(open_in).sum();
    let late = listed
        .iter()
        .filter(|t| t.due.is_some_and(|d| d <= now))
        .count();
    let groups = Priority::ALL
        .into_iter()
        .filter(|p| open_in(*p) > 0)
        .map(|p| {
            let rows = group(p);
            let total = open_in(p);
            let shown = rows.len().min(PAGE_ROWS_PER_GROUP);
            GroupView {
                name: p.as_str(),
                total,
                rows: rows.iter().take(shown).map(|t| row(t, now)).collect(),
                more: total - shown,
            }
        })
        .collect();
    StatusView {
        problems: &health.problems,
        open,
        late,
        partial: open > listed.len(),
        as_of: when(now),
        teams: listed.iter().any(|t| !t.ticket.team.is_empty()),
        groups,
    }
}

fn row(t: &OpenTicket, now: i64) -> RowView {
    let k = &t.ticket;
    RowView {
        late: t.due.is_some_and(|d| d <= now),
        tag: k.tag.clone(),
        customer: clip(&k.customer, 80),
        subject: if k.subject.trim().is_empty() {
            String::new()
        } else {
            clip(&k.subject, 160)
        },
        state: k.state.as_str(),
        age: age(k.created_at, now),
        sla: sla_words(t, now),
        team: clip(&k.team, 40),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn ticket(
        tag: &str,
        priority: Priority,
        state: State,
        subject: &str,
        due: Option<i64>,
    ) -> OpenTicket {
        OpenTicket {
            ticket: TicketRow {
                tag: tag.into(),
                state,
                priority,
                customer: "ada@example.test".into(),
                subject: subject.into(),
                created_at: NOW - 2 * 3600,
                updated_at: NOW,
                first_response_at: 0,
                snoozed_until: 0,
                last_customer_at: NOW - 2 * 3600,
                messages: 1,
                intents: String::new(),
                team: String::new(),
                route_reason: String::new(),
            },
            due,
        }
    }

    /// Every ticket listed, the counts made from them.
    fn all_listed(tickets: &[OpenTicket]) -> OpenTickets {
        let mut open = BTreeMap::new();
        for t in tickets {
            *open.entry(t.ticket.priority).or_default() += 1;
        }
        OpenTickets {
            listed: tickets.to_vec(),
            open,
        }
    }

    /// What `/healthz` says comes from memory: the store's trouble as the tasks report it, once
    /// per cause, and open incidents (a store incident is not said twice while it lasts).
    #[test]
    fn health_names_store_trouble_as_a_store_problem() {
        let board = HealthBoard::default();
        let metrics = Metrics::default();
        metrics.imap_state("INBOX", true);
        assert!(health(&board, &metrics).is_ok());
        board.fail(Condition::Store, "INBOX", "disk full under /srv");
        board.fail(Condition::Store, "outbox", "disk full under /srv");
        board.set_incidents_for_test(vec![
            crate::alerts::Incident {
                id: 1,
                condition: Condition::Store,
                started_at: NOW,
                detail: "disk full under /srv".into(),
            },
            crate::alerts::Incident {
                id: 2,
                condition: Condition::Smtp,
                started_at: NOW,
                detail: "421 busy\nlater".into(),
            },
        ]);
        let h = health(&board, &metrics);
        assert_eq!(h.problems.len(), 2, "{h:?}");
        assert_eq!(h.problems[0], "Store unavailable: disk full under /srv");
        assert!(
            h.problems[1].starts_with("SMTP sending failing since "),
            "{h:?}"
        );
        assert!(h.problems[1].ends_with(": 421 busy later"), "{h:?}");
        assert!(!h.problems.iter().any(|p| p.contains("IMAP")), "{h:?}");
        board.ok(Condition::Store, "INBOX");
        board.ok(Condition::Store, "outbox");
        let h = health(&board, &metrics);
        assert!(
            h.problems[0].starts_with("Store unavailable since "),
            "{h:?}"
        );
    }

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        for (raw, escaped) in [
            ("plain", "plain"),
            (
                "<script>alert(1)</script>",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
            ),
            ("a & b", "a &amp; b"),
            (r#"say "hi" it's"#, "say &quot;hi&quot; it&#39;s"),
        ] {
            assert_eq!(escape_html(raw), escaped);
        }
    }

    #[test]
    fn sla_clock_reads_like_the_digest() {
        for (due, state, words) in [
            (Some(NOW + 80 * 60), State::New, "reply due in 1h"),
            (
                Some(NOW - (2 * 86_400 + 3 * 3600)),
                State::New,
                "reply late by 2d 3h",
            ),
            (Some(NOW), State::New, "reply late by 0m"),
            (None, State::Answered, "waiting for the customer"),
            (None, State::Snoozed, "snoozed until -"),
        ] {
            let t = ticket("T-1", Priority::High, state, "s", due);
            assert_eq!(sla_words(&t, NOW), words, "{due:?} {state:?}");
        }
    }

    #[test]
    fn page_groups_by_priority_highlights_late_and_escapes() {
        let tickets = [
            ticket(
                "T-2",
                Priority::Urgent,
                State::New,
                "<b>down</b>",
                Some(NOW - 60),
            ),
            ticket(
                "T-3",
                Priority::Low,
                State::Acknowledged,
                "",
                Some(NOW + 3600),
            ),
            ticket("T-1", Priority::High, State::Answered, "invoice", None),
        ];
        let page = status_page(&Health::default(), &all_listed(&tickets), NOW);
        let urgent = page.find("<h2>urgent (1)").expect("urgent group");
        let high = page.find("<h2>high (1)").expect("high group");
        let low = page.find("<h2>low (1)").expect("low group");
        assert!(urgent < high && high < low);
        assert!(!page.contains("<h2>normal"));
        assert!(page.contains("&lt;b&gt;down&lt;/b&gt;"));
        assert!(!page.contains("<b>down"));
        assert!(page.contains("(no subject)"));
        assert_eq!(page.matches("<tr class=\"late\">").count(), 1);
        assert!(page.contains("3 open tickets, 1 late"));
        assert!(page.contains("Mailbox healthy"));
    }

    #[test]
    fn a_team_column_shows_once_a_listed_ticket_has_a_team() {
        let mut tickets = vec![
            ticket("T-1", Priority::High, State::New, "charged twice", None),
            ticket("T-2", Priority::High, State::New, "hello", None),
        ];
        let without = status_page(&Health::default(), &all_listed(&tickets), NOW);
        assert!(!without.contains("Team") && !without.contains("nth-child(7)"));
        tickets[0].ticket.team = "billing".into();
        let with = status_page(&Health::default(), &all_listed(&tickets), NOW);
        assert!(with.contains("<th>Reply</th><th>Team</th></tr>"), "{with}");
        assert!(with.contains("th:nth-child(7){width:8em}"));
        assert!(with.contains(r#"<td class="team" data-label="Team">billing</td></tr>"#));
        assert!(with.contains(
            r#"<td class="team" data-label="Team"><span class="muted">none</span></td></tr>"#
        ));
        // Only the column and its width are new: the rest of the page is the same.
        let rest = with
            .replace("th:nth-child(7){width:8em}\n", "")
            .replace("<th>Team</th>", "")
            .replace(r#"<td class="team" data-label="Team">billing</td>"#, "")
            .replace(
                r#"<td class="team" data-label="Team"><span class="muted">none</span></td>"#,
                "",
            );
        assert_eq!(rest, without);
    }

    #[test]
    fn page_lists_problems_and_caps_long_groups() {
        let health = Health {
            problems: vec!["IMAP <INBOX>: not connected".into()],
        };
        // The store lists the first PAGE_ROWS_PER_GROUP and counts the rest.
        let many = OpenTickets {
            listed: (0..PAGE_ROWS_PER_GROUP)
                .map(|i| {
                    ticket(
                        &format!("T-{i}"),
                        Priority::Normal,
                        State::New,
                        "x",
                        Some(NOW - 1),
                    )
                })
                .collect(),
            open: [(Priority::Normal, PAGE_ROWS_PER_GROUP as i64 + 7)].into(),
        };
        let page = status_page(&health, &many, NOW);
        assert!(page.contains("<li>IMAP &lt;INBOX&gt;: not connected</li>"));
        assert_eq!(page.matches("<tr").count(), PAGE_ROWS_PER_GROUP + 1);
        assert!(page.contains("and 7 more"));
        assert!(page.contains(&format!("<h2>normal ({})", PAGE_ROWS_PER_GROUP + 7)));
        assert!(page.contains(&format!(
            "{} open tickets, {PAGE_ROWS_PER_GROUP} late among those listed",
            PAGE_ROWS_PER_GROUP + 7
        )));
        let empty = status_page(&Health::default(), &OpenTickets::default(), NOW);
        assert!(empty.contains("No open tickets."));
        assert!(empty.contains("<title>triaged — status</title>"));
    }
}
