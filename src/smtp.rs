//! Sending over SMTP with lettre: TLS modes, AUTH, and errors sorted into "retry" and "give up".

use std::sync::Arc;

use anyhow::{Context, Result};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{self, SmtpConfig};

/// Why a send failed, as the outbox needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 4xx, a dropped connection, a timeout: try this message again later.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The provider says "slow down" or "quota exceeded": pause all sending, then retry.
    #[error("provider pushback: {0}")]
    Pushback(String),
    /// 5xx: the server will never take this message; do not retry.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// A configured SMTP transport (pooled connections). Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    transport: Arc<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Sender {
    /// Build the transport. `password` comes from the configured secret source.
    pub fn new(cfg: &SmtpConfig, password: Option<&config::Secret>) -> Result<Sender> {
        let tls_params = || -> Result<TlsParameters> {
            let mut b = TlsParameters::builder(cfg.host.clone());
            if let Some(ca) = &cfg.ca_file {
                let pem = std::fs::read(ca)
                    .with_context(|| format!("Reading SMTP ca_file {}", ca.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .with_context(|| format!("Parsing SMTP ca_file {}", ca.display()))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().context("Building SMTP TLS parameters")
        };
        let tls = match cfg.tls {
            config::Tls::Implicit => Tls::Wrapper(tls_params()?),
            config::Tls::Starttls => Tls::Required(tls_params()?),
            config::Tls::None => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(cfg.timeout));
        if let (Some(user), Some(pw)) = (&cfg.username, password) {
            b = b.credentials(Credentials::new(user.clone(), pw.expose().to_string()));
        }
        Ok(Sender {
            transport: Arc::new(b.build()),
        })
    }

    /// Send one message to the recipients in its headers.
    pub async fn send(&self, msg: &Message) -> Result<(), SendError> {
        match self.transport.send(msg.clone()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// 5xx is permanent; everything else (4xx, I/O, TLS hiccups, timeouts) is worth a retry; and
/// either, when it says "rate", "quota" or "too many", is the provider pushing back.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let mut text = one_line(&format!("{e}"));
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&one_line(&s.to_string()));
        source = s.source();
    }
    let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
    classify_reply(code, &text, e.is_permanent())
}

/// The pure part of [`classify`]: the reply code (when the server answered), its text, and
/// whether lettre called it permanent.
pub fn classify_reply(code: Option<u16>, text: &str, permanent: bool) -> SendError {
    let lower = text.to_ascii_lowercase();
    let wording = [
        "rate",
        "quota",
        "too many",
        "slow down",
        "throttl",
        "limit exceeded",
        "sending limit",
    ]
    .iter()
    .any(|w| lower.contains(w));
    // Enhanced status codes: 4.7.x is a policy deferral (how Microsoft and Google throttle),
    // x.4.5 congestion or quota ("5.4.5 Daily sending quota exceeded").
    let enhanced = |prefix: &str| {
        lower.split_whitespace().any(|w| {
            w.trim_matches(|c: char| !c.is_ascii_digit() && c != '.')
                .starts_with(prefix)
        })
    };
    let pushback = match code {
        Some(421) => true,
        Some(400..=499) => wording || enhanced("4.7.") || enhanced("4.4.5"),
        Some(500..=599) => {
            enhanced("5.4.5") || (wording && (lower.contains("quota") || lower.contains("limit")))
        }
        _ => false,
    };
    let text = text.to_string();
    if pushback {
        SendError::Pushback(text)
    } else if permanent {
        SendError::Permanent(text)
    } else {
        SendError::Transient(text)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_sorted() {
        let cases: &[(Option<u16>, &str, bool, &str)] = &[
            (
                Some(421),
                "421 4.7.0 Too many messages, slow down",
                false,
                "pushback",
            ),
            (
                Some(421),
                "421 Service not available, closing channel",
                false,
                "pushback",
            ),
            (
                Some(451),
                "451 4.3.0 Temporary failure, try again later",
                false,
                "transient",
            ),
            (
                Some(451),
                "451 4.7.500 Server busy. Please try again later",
                false,
                "pushback",
            ),
            (
                Some(452),
                "452 4.5.3 Too many recipients",
                false,
                "pushback",
            ),
            (
                Some(450),
                "450 4.2.1 The user is receiving mail at a rate that prevents additional messages",
                false,
                "pushback",
            ),
            (
                Some(450),
                "450 4.2.0 Mailbox unavailable",
                false,
                "transient",
            ),
            (
                Some(550),
                "550 5.4.5 Daily user sending quota exceeded",
                true,
                "pushback",
            ),
            (
                Some(554),
                "554 5.2.0 SubmissionQuotaExceededException; message submission quota exceeded",
                true,
                "pushback",
            ),
            (
                Some(550),
                "550 5.1.1 Mailbox unavailable",
                true,
                "permanent",
            ),
            (Some(550), "550 5.7.1 Relaying denied", true, "permanent"),
            (None, "connection refused", false, "transient"),
        ];
        for (code, text, permanent, want) in cases {
            let got = match classify_reply(*code, text, *permanent) {
                SendError::Pushback(_) => "pushback",
                SendError::Transient(_) => "transient",
                SendError::Permanent(_) => "permanent",
            };
            assert_eq!(got, *want, "{text}");
        }
    }
}
