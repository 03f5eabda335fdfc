//! A bounded in-tree fuzz run: seed emails (examples/mail, the shared MIME corpus when it is
//! there, small hostile cases) mutated by a seeded generator — byte flips, MIME and HTML
//! fragments, long runs, control characters, duplicated and cut slices, splices — each through
//! the whole pure path with a real store: parse -> guard -> score -> record (one transaction,
//! acknowledgement queued) -> claim -> compose the acknowledgement. Every mutant must be
//! recorded, every queued acknowledgement must compose, and every line of it must fit in
//! SMTP's 998 octets.
//!
//! Bounded by count and by time, so it runs in CI: TRIAGED_MUTANTS (default 1,500) mutants,
//! stopping early after TRIAGED_MUTATION_SECS (default 60) seconds. TRIAGED_MUTATION_SEED picks
//! another sequence (default 1); a failure prints the seed and the mutant's number.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use triaged::clock::Clock;
use triaged::config::Config;
use triaged::outbox::Outbox;
use triaged::pipeline::{Fetched, Pipeline};
use triaged::store::Store;

use crate::common::{corpus, hostile};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Up to `limit` `.eml` files under 64 KB from `dir`, by name.
fn emails_in(dir: &Path, limit: usize) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "eml"))
        .filter_map(|f| Some((f.display().to_string(), std::fs::read(&f).ok()?)))
        .filter(|(_, raw)| raw.len() < 64 * 1024)
        .take(limit)
        .collect()
}

/// The seeds, each with where it came from.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = emails_in(&repo().join("examples/mail"), 100);
    for sub in [
        "human",
        "malformed",
        "auto/bounce",
        "auto/autoreply",
        "spam",
    ] {
        out.extend(emails_in(&corpus::mime_dir(sub), 15));
    }
    // The hostile shapes, cut down to their first 20 KB (the mutator grows them again).
    for case in hostile::cases(1) {
        out.push((
            format!("hostile {}", case.name),
            case.raw[..case.raw.len().min(20_000)].to_vec(),
        ));
    }
    out
}

/// Pieces the mutator inserts: what parsers, scanners and header writers trip over.
const PIECES: &[&str] = &[
    "\r\n--b\r\n",
    "\r\n--b--\r\n",
    "Content-Type: multipart/mixed; boundary=\"b\"\r\n",
    "Content-Type: message/rfc822\r\n\r\n",
    "Content-Type: text/html\r\n\r\n<html><body>",
    "Content-Transfer-Encoding: base64\r\n",
    "Content-Transfer-Encoding: quoted-printable\r\n",
    "<div>",
    "<td>",
    "<blockquote>",
    "<!--",
    "<p title=\"",
    "&#x1b;",
    "&amp",
    "=?UTF-8?B?w6nDqcOp?=",
    "=?UTF-8?Q?=0D=0ABcc:_x@evil.test?=",
    "=?x-unknown?B?AAAA?=",
    "\0",
    "\r",
    "\n",
    "\r\n\r\n",
    "\u{1b}[2J",
    "\u{202e}",
    "not ",
    "urgent ",
    "refund ",
    "Subject: ",
    "From: \"x y\"@example.test\r\n",
    "From: a@example.test b@example.test\r\n",
    "Reply-To: <>\r\n",
    "References: <a@example.test> <b@example.test>\r\n",
    "Message-ID: <",
    "Auto-Submitted: auto-replied\r\n",
    "\u{fffd}",
    "é",
];

struct Mutator {
    rng: fastrand::Rng,
}

impl Mutator {
    fn mutate(&mut self, seeds: &[(String, Vec<u8>)], base: &[u8]) -> Vec<u8> {
        let mut m = base.to_vec();
        for _ in 0..self.rng.usize(1..=6) {
            let at = self.rng.usize(0..=m.len());
            match self.rng.u8(0..8) {
                0 => {
                    for _ in 0..self.rng.usize(1..=16) {
                        if !m.is_empty() {
                            let i = self.rng.usize(0..m.len());
                            m[i] ^= 1 << self.rng.u8(0..8);
                        }
                    }
                }
                1 | 2 => {
                    let piece = PIECES[self.rng.usize(0..PIECES.len())].as_bytes();
                    let times = if self.rng.bool() {
                        1
                    } else {
                        self.rng.usize(1..=2000)
                    };
                    let ins: Vec<u8> = piece.repeat(times);
                    m.splice(at..at, ins);
                }
                3 => {
                    // A long unbroken run (subjects, names, ids, lines).
                    let c = [b'x', b'=', b'-', b' ', b'<'][self.rng.usize(0..5)];
                    let run = vec![c; self.rng.usize(100..=20_000)];
                    m.splice(at..at, run);
                }
                4 if !m.is_empty() => {
                    // Duplicate a slice, up to a few hundred KB in all.
                    let start = self.rng.usize(0..m.len());
                    let end = (start + self.rng.usize(1..=2000)).min(m.len());
                    let slice = m[start..end].to_vec();
                    let times = self.rng.usize(1..=(200_000 / slice.len().max(1)).max(1));
                    m.splice(at..at, slice.repeat(times));
                }
                5 if !m.is_empty() => {
                    let start = self.rng.usize(0..m.len());
                    let end = (start + self.rng.usize(1..=500)).min(m.len());
                    m.drain(start..end);
                }
                6 => m.truncate(at),
                _ => {
                    let other = &seeds[self.rng.usize(0..seeds.len())].1;
                    let from = self.rng.usize(0..=other.len());
                    m.splice(at..at, other[from..].iter().copied());
                }
            }
        }
        m
    }
}

fn config(dir: &Path) -> Config {
    let text = format!(
        r#"
[mailbox]
host = "127.0.0.1"
tls = "none"
username = "support@example.test"
password_command = "echo pw"

[smtp]
host = "127.0.0.1"
port = 2525
tls = "none"
from = "Example Support <support@example.test>"

[store]
path = "{store}"

[support]
addresses = ["support@example.test"]
staff = ["staff@example.test"]
domain = "support.example.test"

[ack]
per_sender_limit = 1000000
circuit_breaker_per_minute = 1000000
max_age = "1000w"
# Mutants repeat their seeds' senders, answered at once: not the robot loop this guards.
max_unanswered_auto = 0

[scoring]
rules = "{rules}"

[templates]
dir = "{templates}"
"#,
        store = dir.join("triaged.sqlite").display(),
        rules = repo().join("config/rules").display(),
        templates = repo().join("templates").display(),
    );
    let path = dir.join("triaged.toml");
    std::fs::write(&path, text).expect("write config");
    Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn mutated_mail_is_recorded_and_every_ack_composes_within_smtp_limits() {
    let mutants = env_num("TRIAGED_MUTANTS", 1_500);
    let budget = Duration::from_secs(env_num("TRIAGED_MUTATION_SECS", 60));
    let seed = env_num("TRIAGED_MUTATION_SEED", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let clock = Clock::system();
    let store = Store::open(&config.store.path).expect("store");
    let mut pipeline = Pipeline::new(&config, clock.clone(), store, false);
    let mut outbox_store = Store::open(&config.store.path).expect("store");
    let sender = triaged::smtp::Sender::new(&config.smtp).expect("sender");
    let outbox = Outbox::new(&config, sender, clock.clone(), &Default::default());
    let seeds = seeds();
    let mut mutator = Mutator {
        rng: fastrand::Rng::with_seed(seed),
    };
    let started = Instant::now();
    let (mut done, mut composed, mut slowest) = (0u64, 0u64, (Duration::ZERO, 0u64));
    for i in 0..mutants {
        if started.elapsed() > budget {
            break;
        }
        let (origin, base) = &seeds[mutator.rng.usize(0..seeds.len())];
        // A distinct sender and Message-ID first, so most mutants open a ticket of their own
        // and get an acknowledgement to compose (the mutated headers follow).
        let mut raw = format!(
            "From: Mutant <mutant-{i}@example.test>\r\nMessage-ID: <mutant-{i}@example.test>\r\n"
        )
        .into_bytes();
        raw.extend(mutator.mutate(&seeds, base));
        let t = Instant::now();
        let fetched = Fetched {
            folder: "INBOX",
            uidvalidity: 1,
            uid: i as u32 + 1,
            raw: Some(&raw),
            size: raw.len(),
            arrived_at: Some(clock.now()),
        };
        if let Err(e) = pipeline.process(&fetched) {
            panic!("seed {seed}, mutant {i} (of {origin}): not recorded: {e:#}");
        }
        while let Some(item) = outbox_store.claim_next_due(clock.now()).expect("claim") {
            let (msg, promised) = match outbox.compose(&item) {
                Ok(m) => m,
                Err(e) => {
                    let keep = repo().join("target/mutant-failing.eml");
                    std::fs::write(&keep, &raw).ok();
                    panic!(
                        "seed {seed}, mutant {i} (of {origin}): the {} for {:?} cannot be built: {e:#} (email kept in {})",
                        item.kind,
                        item.recipient,
                        keep.display()
                    );
                }
            };
            let bytes = msg.formatted();
            if let Some(line) = bytes.split(|&b| b == b'\n').find(|l| l.len() > 998) {
                let keep = repo().join("target/mutant-failing.eml");
                std::fs::write(&keep, &raw).ok();
                panic!(
                    "seed {seed}, mutant {i} (of {origin}): a {}-octet line in the {}: {:?}… (email kept in {})",
                    line.len(),
                    item.kind,
                    String::from_utf8_lossy(&line[..80]),
                    keep.display()
                );
            }
            outbox_store
                .mark_sent(item.id, clock.now_ms(), promised)
                .expect("mark sent");
            composed += 1;
        }
        let took = t.elapsed();
        if took > slowest.0 {
            slowest = (took, i);
        }
        done += 1;
    }
    let recorded: i64 = pipeline
        .store
        .conn()
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .expect("count");
    assert_eq!(recorded as u64, done, "every mutant recorded once");
    assert!(
        done >= 100.min(mutants),
        "only {done} mutants in the time budget"
    );
    assert!(
        composed > done / 4,
        "only {composed} acknowledgements composed of {done}"
    );
    eprintln!(
        "mutation run (seed {seed}): {done} mutants in {:.1} s, {composed} acknowledgements composed, slowest mutant {} took {:?}",
        started.elapsed().as_secs_f64(),
        slowest.1,
        slowest.0
    );
}
