//! Sending over SMTP with lettre: TLS modes, AUTH, and errors sorted into "retry" and "give up".

use std::sync::Arc;

use anyhow::{Context, Result};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{self, Login, SmtpConfig};

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
    /// Our own account was refused (530/534/535, "authentication"), even with a credential
    /// read again, or the credential cannot be read: nothing is wrong with this email, all
    /// sending waits until the account works.
    #[error("SMTP login failing: {0}")]
    Account(String),
}

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// A configured SMTP transport (pooled connections) and the account's credential. Cheap to
/// clone. The transport is built at the first send and rebuilt when the credential changes: a
/// token past its lifetime, or a credential the server refused.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    port: u16,
    tls: Tls,
    timeout: std::time::Duration,
    username: Option<String>,
    login: Option<Login>,
    current: tokio::sync::Mutex<Option<Current>>,
}

/// The transport in use and the secret it was built with.
#[derive(Clone)]
struct Current {
    transport: Arc<Transport>,
    secret: Option<String>,
    /// Built from a secret read just now: a refusal is final, not a stale cache.
    fresh: bool,
}

impl Sender {
    /// Prepare the transport; the credential is read at the first send.
    pub fn new(cfg: &SmtpConfig) -> Result<Sender> {
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
        let login = match (&cfg.username, &cfg.credential) {
            (Some(_), Some(c)) => Some(Login::new(c.clone())),
            _ => None,
        };
        Ok(Sender {
            inner: Arc::new(Inner {
                host: cfg.host.clone(),
                port: cfg.port,
                tls,
                timeout: cfg.timeout,
                username: cfg.username.clone(),
                login,
                current: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// Read the credential now (at start-up), so a missing password is reported before the
    /// first email needs it.
    pub async fn check_credential(&self) -> Result<()> {
        self.current()
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Send one message to the recipients in its headers. A refusal of our account with a
    /// credential from a cache (a token, a password read at an earlier send) is retried once
    /// with the credential read again.
    pub async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let current = self.current().await?;
        let first = match current.transport.send(msg.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) => classify(&e),
        };
        if !matches!(first, SendError::Account(_)) || current.fresh {
            return Err(first);
        }
        tracing::info!("SMTP refused the cached credential; reading it again");
        self.forget(&current).await;
        let again = self.current().await?;
        match again.transport.send(msg.clone()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(&e)),
        }
    }

    /// The transport to send with: built now when there is none yet, or when the token moved on.
    async fn current(&self) -> Result<Current, SendError> {
        let inner = &self.inner;
        let mut slot = inner.current.lock().await;
        let fetched = match &inner.login {
            None => None,
            // A password is read once per transport (and again after a refusal).
            Some(l) if l.mechanism().is_none() && slot.is_some() => None,
            Some(l) => Some(l.get().await.map_err(|e| {
                SendError::Account(format!("Reading the SMTP {}: {e:#}", l.credential.noun()))
            })?),
        };
        if let Some(cur) = slot.as_ref()
            && fetched
                .as_ref()
                .is_none_or(|f| cur.secret.as_deref() == Some(f.secret.expose()))
        {
            return Ok(Current {
                fresh: false,
                ..cur.clone()
            });
        }
        let mut b = Transport::builder_dangerous(inner.host.clone())
            .port(inner.port)
            .tls(inner.tls.clone())
            .timeout(Some(inner.timeout));
        if let (Some(user), Some(f), Some(login)) = (&inner.username, &fetched, &inner.login) {
            b = b.credentials(Credentials::new(
                user.clone(),
                f.secret.expose().to_string(),
            ));
            if login.mechanism().is_some() {
                b = b.authentication(vec![Mechanism::Xoauth2]);
            }
        }
        let cur = Current {
            transport: Arc::new(b.build()),
            secret: fetched.as_ref().map(|f| f.secret.expose().to_string()),
            fresh: fetched.as_ref().is_some_and(|f| f.fresh),
        };
        *slot = Some(cur.clone());
        Ok(cur)
    }

    /// Drop the transport built from a refused credential (and the token it came from).
    async fn forget(&self, refused: &Current) {
        let mut slot = self.inner.current.lock().await;
        if slot
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.transport, &refused.transport))
        {
            *slot = None;
        }
        if let (Some(l), Some(secret)) = (&self.inner.login, &refused.secret) {
            l.forget(&crate::config::Secret::new(secret.clone())).await;
        }
    }
}

/// Whether an SMTP error is the server refusing our account rather than this email.
pub fn refuses_account(error: &str) -> bool {
    let lower = error.to_ascii_lowercase();
    [
        "(530)",
        "(534)",
        "(535)",
        "5.7.8",
        "5.7.9",
        "5.7.139",
        "authentication required",
        "authentication failed",
        "authentication failure",
        "authentication unsuccessful",
        "authentication credentials",
        // Gmail answers a bad XOAUTH2 token with a 334 JSON challenge, which lettre refuses.
        "does not expect a challenge",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// 5xx is permanent; everything else (4xx, I/O, TLS hiccups, timeouts) is worth a retry;
/// either, when it says "rate", "quota" or "too many", is the provider pushing back; and a
/// refusal of our own login ([`refuses_account`]) is about the account, not the email.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let mut text = one_line(&format!("{e}"));
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&one_line(&s.to_string()));
        source = s.source();
    }
    let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
    match classify_reply(code, &text, e.is_permanent()) {
        SendError::Permanent(t) | SendError::Transient(t) if refuses_account(&t) => {
            SendError::Account(t)
        }
        other => other,
    }
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
    fn a_refusal_of_the_account_is_told_from_a_refused_recipient() {
        for us in [
            "permanent error (535): 5.7.8 Username and Password not accepted",
            "permanent error (530): 5.7.0 Authentication required",
            "permanent error (534): 5.7.9 Please log in with your web browser",
            "permanent error (535): 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant",
            "internal client error: This mechanism does not expect a challenge",
            "transient error (454): 4.7.0 Temporary authentication failure",
        ] {
            assert!(refuses_account(us), "{us}");
        }
        for them in [
            "permanent error (550): 5.1.1 <x@example.com>: Recipient address rejected",
            "permanent error (552): 5.2.2 Mailbox full",
            "permanent error (550): 5.7.26 Unauthenticated email is not accepted, see https://support.google.com/mail/answer/81126#authentication",
        ] {
            assert!(!refuses_account(them), "{them}");
        }
    }

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
                SendError::Account(_) => "account",
            };
            assert_eq!(got, *want, "{text}");
        }
    }
}
