//! Digest speed, run with `cargo bench --bench digest`: how long one digest takes from the store
//! (snapshot query, build, render of text and HTML) when 500, 2,000 and 5,000 tickets wait for
//! staff — the cost the scheduler pays at each digest time, and `triaged digest --preview`.
//!
//! The store is a real SQLite file in a temp dir, filled through the same `Store::record` path
//! the daemon uses, with the sample emails in examples/mail (each from a different customer,
//! so each opens a ticket), scored with the shipped rules. The config is the shipped example.

use std::path::PathBuf;
use std::time::Instant;

use triaged::config::Config;
use triaged::notices::{build_digest, render_digest};
use triaged::parse::{ParseLimits, parse};
use triaged::score::{History, score};
use triaged::store::{Content, Location, Policy, Store};
use triaged::tickets::Role;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let mut config =
        Config::load(&repo().join("config/triaged.toml")).unwrap_or_else(|e| panic!("{e:?}"));
    let mails: Vec<Vec<u8>> = std::fs::read_dir(repo().join("examples/mail"))
        .expect("examples/mail")
        .flatten()
        .map(|e| std::fs::read(e.path()).expect("read"))
        .collect();
    let now = jiff::Timestamp::now().as_second();
    println!(
        "tickets waiting | digest (snapshot + build + render) | entries listed | text KB | HTML KB"
    );
    for n in [500usize, 2_000, 5_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        config.store.path = dir.path().join("bench.sqlite");
        let mut store = Store::open(&config.store.path).expect("store");
        let policy = Policy::from_config(&config);
        let limits = ParseLimits { max_size: 1 << 20 };
        for i in 0..n {
            let raw = &mails[i % mails.len()];
            let text = String::from_utf8_lossy(raw)
                .replacen(
                    "From:",
                    &format!("From: c{i}@customers.example\r\nX-Orig-From:"),
                    1,
                )
                .replacen(
                    "Message-ID:",
                    &format!("Message-ID: <bench-{i}@x>\r\nX-Orig-Id:"),
                    1,
                );
            let email = parse(text.as_bytes(), &limits).expect("parse");
            let verdict = score(
                &email,
                &config.rules,
                &config.thresholds,
                &History::default(),
                now,
            );
            let at = Location {
                folder: "INBOX",
                uidvalidity: 1,
                uid: i as u32 + 1,
            };
            let content = Content::Triaged {
                email: &email,
                verdict: &verdict,
                guard: Ok(()),
                role: Role::Customer,
                bounced: &[],
                alert: &[],
                route: None,
                asks: &[],
            };
            // Spread over the last ten days.
            let t = now - (n - i) as i64 * 864_000 / n as i64;
            store.record(&at, &content, t, &policy, t).expect("record");
        }
        let d = &config.digests[0];
        let mut best = f64::MAX;
        let mut last = None;
        for _ in 0..5 {
            let started = Instant::now();
            let digest = build_digest(&config, &store, d, now, now - 86_400).expect("digest");
            let mail = render_digest(&config.templates, &digest).expect("render");
            best = best.min(started.elapsed().as_secs_f64());
            last = Some((digest, mail));
        }
        let (digest, mail) = last.expect("ran");
        let listed: usize = digest.sections.iter().map(|s| s.entries.len()).sum();
        println!(
            "{:>15} | {:>31.1} ms | {:>14} | {:>7.1} | {:>7.1}",
            digest.waiting,
            best * 1000.0,
            listed,
            mail.text.len() as f64 / 1024.0,
            mail.html.len() as f64 / 1024.0
        );
    }
}
