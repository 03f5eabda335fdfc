//! Faults under the daemon, survived without an exit: the real binary against the real stack
//! (Dovecot, the SMTP server) with its SQLite store a real file. Another process holds the
//! store's write lock past `[store] busy_timeout`; the disk under the store fills up (a small
//! tmpfs); SIGHUP arrives while the daemon is still starting (a slow `token_command`). Each
//! time the daemon keeps running, says what is wrong once, reports it on `/healthz` as a store
//! problem, and afterwards every email is triaged and acknowledged exactly once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{MailStack, StackOptions};
use crate::daemon::{
    ConfigBuilder, Daemon, DaemonConfig, catches_signal, count, customer_email, free_port,
    http_get, wait_until,
};

/// The longest any one awaited event may take.
const WAIT: Duration = Duration::from_secs(60);

/// A config with the status server on `port`, health alerts to staff after 1 s and a 500 ms
/// busy timeout.
fn config(stack: &MailStack, port: u16) -> ConfigBuilder {
    DaemonConfig::of(stack)
        .http(port)
        .health_alerts("1s")
        .busy_timeout("500ms")
}

/// What the SMTP server accepted for `rcpt`.
fn received_by(stack: &MailStack, rcpt: &str) -> usize {
    stack.subjects_to(|a| a == rcpt).len()
}

/// Subjects of staff mail the SMTP server accepted.
fn staff_subjects(stack: &MailStack) -> Vec<String> {
    stack.subjects_to(|a| a == "staff@example.test")
}

fn deliver(stack: &MailStack, customer: &str, n: usize) {
    stack.deliver(
        "support@example.test",
        &customer_email(
            customer,
            &format!("fault-{n}@customers.example.test"),
            &format!("Order {n} never arrived"),
            "Hello, my order has not arrived yet. Can you tell me where it is?",
        ),
    );
}

/// Every customer's email recorded once and acknowledged once (the daemon is stopped first,
/// so nothing is still on its way).
fn each_answered_once(stack: &MailStack, cfg: &DaemonConfig, customers: &[&str]) {
    assert_eq!(
        count(cfg, "SELECT count(*) FROM messages") as usize,
        customers.len(),
        "every email recorded, once"
    );
    assert_eq!(
        count(
            cfg,
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND state = 'sent'"
        ) as usize,
        customers.len()
    );
    for c in customers {
        assert_eq!(received_by(stack, c), 1, "acknowledgements to {c}");
    }
}

/// GET /healthz while the store is failing: answered at once (it reads no store), 503, and
/// the problem named as the store's.
fn healthz_names_the_store(port: u16, cause: &str) -> String {
    let asked = Instant::now();
    let (status, body) = http_get(port, "/healthz");
    let took = asked.elapsed();
    eprintln!("/healthz answered in {took:?} while the store failed ({cause})");
    assert_eq!(status, 503, "{body}");
    assert!(
        took < Duration::from_secs(2),
        "/healthz took {took:?} while the store failed"
    );
    assert!(
        body.contains(&format!("Store unavailable: {cause}")),
        "{body}"
    );
    assert!(
        !body.contains("IMAP"),
        "a store problem is not an IMAP one: {body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_locked_past_the_busy_timeout_is_waited_out_and_nothing_is_lost() {
    let stack = MailStack::start();
    let port = free_port();
    // Long retries: the first customer's acknowledgement waits, due, in the outbox when the
    // lock comes, so the outbox meets the lock with nothing in flight.
    let cfg = config(&stack, port).retries("5s", "5s").write();
    let mut d = Daemon::start(&cfg);
    d.await_log(&["IMAP connected"], WAIT);

    stack.set_smtp_mode("tempfail");
    deliver(&stack, "ada@example.test", 1);
    assert!(
        wait_until(WAIT, || count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND state = 'pending' AND attempts = 1"
        ) == 1),
        "the first acknowledgement did not wait for a retry:\n{}",
        d.log_text()
    );

    // Another process takes the write lock and keeps it (reads still work beside it).
    let lock = rusqlite::Connection::open(&cfg.store).expect("open the store");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    for (n, c) in ["bo@example.test", "cy@example.test", "di@example.test"]
        .iter()
        .enumerate()
    {
        deliver(&stack, c, n + 2);
    }
    let line = d.await_log(
        &["Store unavailable: store locked by another process"],
        WAIT,
    );
    assert!(line.contains("ERROR"), "{line}");
    // It keeps trying: the folder, the outbox (the retry falls due) and the health monitor
    // (which cannot record its incident) meet the lock again, each said at debug level only.
    d.await_log(&["Store still unavailable", "task=INBOX"], WAIT);
    d.await_log(&["Store still unavailable", "task=outbox"], WAIT);
    d.await_log(&["Store still unavailable", "task=health"], WAIT);
    healthz_names_the_store(port, "store locked by another process");
    assert!(d.is_running());
    // Nothing was marked done that was not recorded.
    assert_eq!(count(&cfg, "SELECT count(*) FROM messages"), 1);
    assert_eq!(
        count(
            &cfg,
            "SELECT max(last_uid) FROM folder_state WHERE folder = 'INBOX'"
        ),
        1
    );

    stack.set_smtp_mode("accept");
    lock.execute_batch("ROLLBACK").expect("unlock");
    drop(lock);
    d.await_log(&["Store works again"], WAIT);
    let customers = [
        "ada@example.test",
        "bo@example.test",
        "cy@example.test",
        "di@example.test",
    ];
    assert!(
        wait_until(WAIT, || customers
            .iter()
            .all(|c| received_by(&stack, c) == 1)),
        "not every customer acknowledged after the lock:\n{}",
        d.log_text()
    );
    // Staff hear of it once the store takes the incident: a problem and its recovery.
    assert!(
        wait_until(WAIT, || {
            let s = staff_subjects(&stack);
            s.iter().any(|s| s.contains("PROBLEM: Store unavailable"))
                && s.iter().any(|s| s.contains("RECOVERED: Store unavailable"))
        }),
        "no store incident mail: {:?}\n{}",
        staff_subjects(&stack),
        d.log_text()
    );
    assert!(
        wait_until(WAIT, || http_get(port, "/healthz").0 == 200),
        "{:?}",
        http_get(port, "/healthz")
    );
    assert!(d.terminate().success());
    each_answered_once(&stack, &cfg, &customers);
    assert_eq!(
        d.log_lines("Store unavailable: store locked").len(),
        1,
        "the cause is logged once:\n{}",
        d.log_text()
    );
    assert_eq!(d.log_lines("Store works again").len(), 1);
}

/// A tmpfs of `size` mounted at `at`, unmounted on drop; `None` when this process may not
/// mount (not root, or in a container without the right).
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "mount -t tmpfs refused ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs {
            at: at.to_path_buf(),
        })
    }

    /// Write zeros into `ballast` until the file system refuses more.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.at.join("ballast");
        let mut f = std::fs::File::create(&path).expect("ballast");
        for chunk in [64 * 1024, 4096, 1] {
            let zeros = vec![0u8; chunk];
            while f.write_all(&zeros).is_ok() {}
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_store_is_waited_out_and_nothing_is_lost() {
    let stack = MailStack::start();
    let port = free_port();
    let mount_dir = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount(&mount_dir.path().join("fs"), "16m") else {
        eprintln!(
            "SKIPPED a_full_disk_under_the_store_is_waited_out_and_nothing_is_lost: mounting a tmpfs is not permitted here (run the tests as root)"
        );
        return;
    };
    let store = fs.at.join("triaged.sqlite");
    let cfg = config(&stack, port).store(&store).write();
    let mut d = Daemon::start(&cfg);
    d.await_log(&["IMAP connected"], WAIT);
    // One email before: the store has its tables and some history.
    deliver(&stack, "ada@example.test", 1);
    assert!(
        wait_until(WAIT, || received_by(&stack, "ada@example.test") == 1),
        "{}",
        d.log_text()
    );

    let ballast = fs.fill();
    for (n, c) in ["bo@example.test", "cy@example.test"].iter().enumerate() {
        deliver(&stack, c, n + 2);
    }
    let cause = format!("disk full under {}", fs.at.display());
    let line = d.await_log(&[&format!("Store unavailable: {cause}")], WAIT);
    assert!(line.contains("ERROR"), "{line}");
    d.await_log(&["Store still unavailable", "task=INBOX"], WAIT);
    healthz_names_the_store(port, &cause);
    assert!(d.is_running());
    assert_eq!(count(&cfg, "SELECT count(*) FROM messages"), 1);

    std::fs::remove_file(&ballast).expect("free the space");
    d.await_log(&["Store works again"], WAIT);
    let customers = ["ada@example.test", "bo@example.test", "cy@example.test"];
    assert!(
        wait_until(WAIT, || customers
            .iter()
            .all(|c| received_by(&stack, c) == 1)),
        "not every customer acknowledged after space was freed:\n{}",
        d.log_text()
    );
    assert!(d.terminate().success());
    each_answered_once(&stack, &cfg, &customers);
    assert_eq!(
        d.log_lines("Store unavailable: disk full").len(),
        1,
        "the cause is logged once:\n{}",
        d.log_text()
    );
    drop(fs);
}

/// SIGHUP (reload) as early as it can be caught, and again while a slow SMTP `token_command`
/// holds up the start: the process lives, starts, and then reloads once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_while_starting_is_a_reload_once_running() {
    let stack = MailStack::start_with(StackOptions {
        oauth: true,
        ..Default::default()
    });
    let b = DaemonConfig::of(&stack);
    let dir = b.dir().to_path_buf();
    let (token, started, release) = (
        dir.join("smtp-token"),
        dir.join("token-started"),
        dir.join("token-release"),
    );
    std::fs::write(
        &token,
        format!("{}\n", stack.issue_token("support@example.test")),
    )
    .expect("token");
    // A token helper that waits (for the test's word) before it answers, as one asking a
    // slow identity provider would.
    let command = format!(
        "touch {started}; while [ ! -e {release} ]; do sleep 0.02; done; cat {token}",
        started = started.display(),
        release = release.display(),
        token = token.display()
    );
    let cfg = b
        .smtp_token_command("support@example.test", &command)
        .write();

    let spawned = Instant::now();
    let mut d = Daemon::start(&cfg);
    let pid = d.pid();
    // The first moment a SIGHUP can be survived at all: the handler is in place (before
    // that the process is still being loaded).
    assert!(
        wait_until(Duration::from_secs(10), || catches_signal(pid, 1)),
        "no SIGHUP handler:\n{}",
        d.log_text()
    );
    eprintln!(
        "SIGHUP handler in place {:?} after spawn",
        spawned.elapsed()
    );
    d.hup();
    assert!(
        wait_until(WAIT, || started.exists()),
        "the token command never ran:\n{}",
        d.log_text()
    );
    d.hup();
    d.await_log(&["SIGHUP while starting"], WAIT);
    assert!(d.is_running());
    assert!(
        d.log_lines("triaged running").is_empty(),
        "{}",
        d.log_text()
    );

    std::fs::write(&release, "").expect("release the token command");
    d.await_log(&["triaged running"], WAIT);
    d.await_log(
        &["reloading the configuration for the SIGHUP received while starting"],
        WAIT,
    );
    d.await_log(&["Configuration reloaded"], WAIT);
    // It runs: an email is triaged and acknowledged (over SMTP with the token).
    deliver(&stack, "ada@example.test", 1);
    assert!(
        wait_until(WAIT, || received_by(&stack, "ada@example.test") == 1),
        "{}",
        d.log_text()
    );
    // Two early SIGHUPs: said once, one reload.
    assert_eq!(d.log_lines("SIGHUP while starting").len(), 1);
    assert_eq!(d.log_lines("Configuration reloaded").len(), 1);
    // A SIGHUP now is an ordinary reload.
    d.hup();
    d.await_log(&["SIGHUP: reloading the configuration"], WAIT);
    assert!(
        wait_until(WAIT, || d.log_lines("Configuration reloaded").len() == 2),
        "{}",
        d.log_text()
    );
    assert!(d.terminate().success());
}
