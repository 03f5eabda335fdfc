//! What the log may say, whatever `RUST_LOG` asks for.
//!
//! At `trace`, async-imap logs every line it sends and receives through the `log` crate
//! (bridged into tracing): the `LOGIN` command with the password, the base64 of
//! `AUTHENTICATE XOAUTH2` with the token, and every customer email it fetches. lettre (with its
//! `tracing` feature) logs the SMTP wire at `debug`, `AUTH` lines included; rustls logs the
//! handshake at `trace`. None of that helps an operator, and a log is read by more people than
//! the password is. [`wire_cap`] is a filter layered over the `RUST_LOG` one: these crates are
//! never logged below `info`, so even `RUST_LOG=trace` (or `RUST_LOG=async_imap=trace`) prints
//! no wire. Their warnings and errors still come through.

use tracing_subscriber::filter::{LevelFilter, Targets};

/// The crates that log what goes over the wire, by target prefix (which also covers their
/// modules, and `rustls_*` helper crates).
pub const WIRE_TARGETS: &[&str] = &[
    "async_imap",
    "imap_proto",
    "lettre",
    "rustls",
    "tokio_rustls",
];

/// The filter that caps [`WIRE_TARGETS`] at `info` and lets everything else through (the
/// `RUST_LOG` filter decides the rest).
pub fn wire_cap() -> Targets {
    WIRE_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, target| t.with_target(*target, LevelFilter::INFO),
    )
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn the_wire_is_never_logged_and_everything_else_is_left_to_rust_log() {
        let cap = wire_cap();
        let cases = [
            ("async_imap::imap_stream", Level::TRACE, false),
            ("async_imap::imap_stream", Level::DEBUG, false),
            ("async_imap", Level::INFO, true),
            ("imap_proto::parser", Level::TRACE, false),
            (
                "lettre::transport::smtp::client::async_connection",
                Level::DEBUG,
                false,
            ),
            ("lettre::transport::smtp::pool", Level::WARN, true),
            ("rustls::client::hs", Level::TRACE, false),
            ("tokio_rustls", Level::DEBUG, false),
            ("rustls", Level::ERROR, true),
            ("triaged::pipeline", Level::TRACE, true),
            ("triaged::imap::watch", Level::DEBUG, true),
            ("hyper", Level::DEBUG, true),
        ];
        for (target, level, want) in cases {
            assert_eq!(cap.would_enable(target, &level), want, "{target} {level}");
        }
    }
}
