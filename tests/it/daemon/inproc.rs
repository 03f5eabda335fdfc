//! Running the daemon in the test's own process, on a clock the test moves, and reading what
//! it sent.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use triaged::clock::Clock;
use triaged::config::Config;

use super::DaemonConfig;
use crate::common::Fetched;

/// How long any one wait may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// Log the in-process daemon into the test's captured output. One subscriber serves the whole
/// process, and every integration test runs in this one: the first call installs it, later calls
/// find it there (same filter for all).
pub fn logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,triaged=debug")
        .with_test_writer()
        .try_init();
}

impl DaemonConfig {
    /// The config, loaded, for a daemon in this process (build it with `password_command`:
    /// in-process, the daemon does not see the variables a child process would get).
    pub fn load(&self) -> Config {
        Config::load(&self.path).unwrap_or_else(|e| panic!("{e:?}"))
    }
}

/// 09:29 (or `hour:minute`) on a Monday in `zone` at least a week ago: every real arrival time
/// the IMAP server stamps lies after it (a clock in the past sees no mail as stale), and the
/// days a test moves through are working days.
pub fn past_monday(zone: &str, hour: i8, minute: i8) -> (jiff::civil::Date, i64) {
    let tz = jiff::tz::TimeZone::get(zone).expect("zone");
    let mut day = jiff::Timestamp::now().to_zoned(tz.clone()).date() - jiff::Span::new().days(7);
    while day.weekday() != jiff::civil::Weekday::Monday {
        day = day.yesterday().expect("a day");
    }
    let t = day
        .at(hour, minute, 0, 0)
        .to_zoned(tz)
        .expect("the time exists")
        .timestamp()
        .as_second();
    (day, t)
}

/// The daemon as a task of this test, on `clock`.
pub struct InProcess {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub fn start(config: &Config, clock: &Clock) -> InProcess {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(triaged::daemon::run(
            config.clone(),
            clock.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        InProcess {
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task
            .await
            .expect("daemon task")
            .expect("daemon stops cleanly");
    }
}

/// Wait (without blocking the runtime the daemon runs on) until `cond` holds.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn text_of(m: &Fetched) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(&m.raw)
        .expect("a parseable email");
    parsed
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default()
}

pub fn header(m: &Fetched, name: &str) -> String {
    let raw = String::from_utf8_lossy(&m.raw);
    let head = raw.split("\r\n\r\n").next().unwrap_or("").to_string();
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

pub fn email(
    from: &str,
    id: &str,
    in_reply_to: Option<&str>,
    subject: &str,
    body: &str,
) -> Vec<u8> {
    let thread = in_reply_to
        .map(|r| format!("In-Reply-To: <{r}>\r\nReferences: <{r}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: <{from}>\r\nTo: support@example.test\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{thread}\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}
