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
    /// 4xx, a dropped connection, a timeout: try again later.
    #[error("temporary failure: {0}")]
    Transient(String),
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

/// 5xx is permanent; everything else (4xx, I/O, TLS hiccups, timeouts) is worth a retry.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let text = one_line(&format!("{e}"));
    if e.is_permanent() {
        SendError::Permanent(text)
    } else {
        SendError::Transient(text)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
