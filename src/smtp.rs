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
    /// 5xx about this message (its content, size, a line too long) or one that does not say
    /// what it refuses: the server will never take this message; do not retry. Nothing says
    /// the recipient's address refuses mail.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// 5xx refusing the recipient ("550 5.1.1 user unknown"): the address takes no mail.
    #[error("recipient refused: {0}")]
    Recipient(String),
    /// Our own account was refused (530/534/535, "authentication"), even with a credential
    /// read again, or the credential cannot be read: nothing is wrong with this email, all
    /// sending waits until the account works.
    #[error("SMTP login failing: {0}")]
    Account(String),
    /// The server refuses our sender address (MAIL FROM: "Sender address rejected: not owned
    /// by user", Microsoft's `SendAsDenied`): as with a refused login, nothing is wrong with
    /// this email, and all sending waits until the account may send as `from`.
    #[error("SMTP server refuses our sender address {from}: {reply}")]
    Sender { from: String, reply: String },
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
            Err(e) => classify(&e, msg.envelope()),
        };
        if !matches!(first, SendError::Account(_)) || current.fresh {
            return Err(first);
        }
        tracing::info!("SMTP refused the cached credential; reading it again");
        self.forget(&current).await;
        let again = self.current().await?;
        match again.transport.send(msg.clone()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(&e, msg.envelope())),
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
    // Microsoft's delivery restrictions of a group ("5.7.133 RESOLVER.RST...; authentication
    // required") are the recipient's rule, not our login.
    if lower.contains("resolver.rst") {
        return false;
    }
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
        // Microsoft 365: "530 5.7.57 Client not authenticated to send mail".
        "5.7.57",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// Whether a permanent refusal is of our own sender address (`from`, the MAIL FROM) rather
/// than of the recipient or the message. lettre does not say which command was refused, so
/// this reads the reply: wordings servers use for a sender the account may not use (Postfix's
/// `reject_sender_login_mismatch`, Exim's sender checks, Microsoft's send-as permission,
/// relays that only send from verified addresses), a sender status code (x.1.7, x.1.8), or a
/// policy refusal naming `<from>` itself. Replies about a recipient, relaying, or the
/// content (spam, DMARC, size) are never the sender's.
pub fn refuses_sender(text: &str, from: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    // Only about who we send as, whatever else the reply says.
    if has(&[
        "not owned by user",
        "send as",
        "send-as",
        "sendas",
        "5.7.60",
        "must match your authenticated",
    ]) {
        return true;
    }
    if has(&[
        "recipient",
        "rcpt",
        "relay access",
        "relaying",
        "to this group",
        "dmarc",
        "5.7.26",
        "spam",
        "unsolicited",
        "content",
        "virus",
        "size",
        "too long",
        "too big",
    ]) {
        return false;
    }
    if has(&[
        "sender address rejected",
        "sender rejected",
        "sender verify failed",
        "sender is not allowed",
        "sender not allowed",
        "sender identity",
        "domain of sender address",
        "not authorized to send",
        "not authorised to send",
        "from address is not authori",
        "email address is not verified",
        "invalid credentials for relay",
        "5.1.7",
        "5.1.8",
    ]) {
        return true;
    }
    let quoted = format!("<{}>", from.to_ascii_lowercase());
    !from.is_empty() && lower.contains(&quoted) && has(&["5.7.", "5.1."])
}

/// Whether a permanent refusal is of the recipient's address: it takes no mail from anyone,
/// or none from us ("550 5.1.1 user unknown", "mailbox unavailable", a disabled or full
/// mailbox, a group that only takes internal mail), or the reply names `<to>`. Not a refusal
/// to relay (our server's rule, not the address).
pub fn refuses_recipient(text: &str, to: &[&str]) -> bool {
    let lower = text.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&["relay"]) {
        return false;
    }
    let enhanced = enhanced_codes(&lower);
    let addressing = enhanced.iter().any(|c| {
        [
            "5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1", "5.2.2", "5.4.1",
        ]
        .contains(&c.as_str())
    });
    addressing
        || has(&[
            "recipient",
            "user unknown",
            "unknown user",
            "no such user",
            "mailbox unavailable",
            "mailbox not found",
            "mailbox is disabled",
            "account is disabled",
            "does not exist",
            "no mailbox",
            "mailbox full",
            "over quota",
            // Microsoft's delivery restrictions of a recipient or group.
            "resolver.rst",
            "to this group",
        ])
        || to
            .iter()
            .any(|t| !t.is_empty() && lower.contains(&format!("<{}>", t.to_ascii_lowercase())))
}

/// The enhanced status codes (`5.1.1`) in a reply.
fn enhanced_codes(lower: &str) -> Vec<String> {
    lower
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|w| w.trim_matches('.'))
        .filter(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..].iter().all(|p| !p.is_empty() && p.len() <= 3)
        })
        .map(str::to_string)
        .collect()
}

/// 5xx is permanent; everything else (4xx, I/O, TLS hiccups, timeouts) is worth a retry;
/// either, when it says "rate", "quota" or "too many", is the provider pushing back; a
/// refusal of our own login ([`refuses_account`]) or our sender address
/// ([`refuses_sender`]) is about the account, not the email; and a permanent refusal of the
/// recipient ([`refuses_recipient`]) is told from one of the message.
fn classify(e: &lettre::transport::smtp::Error, envelope: &lettre::address::Envelope) -> SendError {
    let mut text = one_line(&format!("{e}"));
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        // lettre's own text already carries the server's reply.
        let line = one_line(&s.to_string());
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = s.source();
    }
    let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
    let from = envelope.from().map(|a| a.to_string()).unwrap_or_default();
    let to: Vec<String> = envelope.to().iter().map(|a| a.to_string()).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    sort(classify_reply(code, &text, e.is_permanent()), &from, &to)
}

/// Sorts a reply [`classify_reply`] classified by what it refuses: our account, our sender,
/// the recipient, or the message.
pub fn sort(error: SendError, from: &str, to: &[&str]) -> SendError {
    match error {
        SendError::Permanent(t) | SendError::Transient(t) if refuses_account(&t) => {
            SendError::Account(t)
        }
        SendError::Permanent(t) if refuses_sender(&t, from) => SendError::Sender {
            from: from.to_string(),
            reply: t,
        },
        SendError::Permanent(t) if refuses_recipient(&t, to) => SendError::Recipient(t),
        other => other,
    }
}

/// The pure part of [`classify`]: the reply code (when the server answered), its text, and
/// whether lettre called it permanent.
pub fn classify_reply(code: Option<u16>, text: &str, permanent: bool) -> SendError {
    let lower = text.to_ascii_lowercase();
    // Words, not substrings, and never inside an address or a domain name: a customer at
    // `corporate.example` or `rate.example` is no rate limit.
    let words = reply_words(&lower);
    let pair = |a: &str, b: &str| words.windows(2).any(|w| w[0] == a && w[1] == b);
    let wording = words.iter().any(|w| {
        matches!(*w, "rate" | "rates")
            || w.starts_with("ratelimit")
            || w.contains("quota")
            || w.starts_with("throttl")
    }) || pair("too", "many")
        || pair("slow", "down")
        || pair("limit", "exceeded")
        || pair("sending", "limit");
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
        // A recipient's full mailbox ("5.2.2 over quota") is theirs, not our provider's.
        Some(500..=599) if enhanced("5.2.2") => false,
        Some(500..=599) => {
            enhanced("5.4.5")
                || (wording
                    && words
                        .iter()
                        .any(|w| w.contains("quota") || w.contains("limit")))
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

/// The words of a lower-cased reply (runs of letters and digits), leaving out every token
/// that is an address or a domain name (`<a@corporate.example>`, `rate.example`).
fn reply_words(lower: &str) -> Vec<&str> {
    lower
        .split_whitespace()
        .map(|t| t.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|t| {
            // A dot between letters makes a domain; enhanced codes (4.7.0) have none.
            let dotted = t.contains('.') && t.chars().any(|c| c.is_ascii_alphabetic());
            !t.contains('@') && !dotted
        })
        .flat_map(|t| t.split(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect()
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
            // A customer's domain is no rate limit, however it is spelled.
            (
                Some(450),
                "transient error (450): 4.1.2 <x@corporate.example>: Recipient address rejected: Domain not found",
                false,
                "transient",
            ),
            (
                Some(450),
                "450 4.1.2 Domain rate.example not found",
                false,
                "transient",
            ),
            (
                Some(451),
                "451 4.7.1 Ratelimit exceeded, try later",
                false,
                "pushback",
            ),
            (
                Some(450),
                "450 Requested action aborted: throttled",
                false,
                "pushback",
            ),
            (
                Some(550),
                "550 5.1.1 <x@quota-limit.example>: user unknown",
                true,
                "permanent",
            ),
        ];
        for (code, text, permanent, want) in cases {
            assert_eq!(
                kind(&classify_reply(*code, text, *permanent)),
                *want,
                "{text}"
            );
        }
    }

    fn kind(e: &SendError) -> &'static str {
        match e {
            SendError::Pushback(_) => "pushback",
            SendError::Transient(_) => "transient",
            SendError::Permanent(_) => "permanent",
            SendError::Recipient(_) => "recipient",
            SendError::Account(_) => "account",
            SendError::Sender { .. } => "sender",
        }
    }

    /// Real replies (as lettre shows them: "permanent error (CODE): TEXT"), sorted by what they
    /// refuse. Our sender is support@example.test, the recipient customer@example.test.
    #[test]
    fn refusals_are_told_apart_by_what_they_refuse() {
        let cases: &[(u16, &str, &str)] = &[
            // Our sender: Postfix (reject_sender_login_mismatch, sender restrictions).
            (
                553,
                "5.7.1 <support@example.test>: Sender address rejected: not owned by user support@example.test",
                "sender",
            ),
            (
                553,
                "5.7.1 <support@example.test>: Sender address rejected: not owned by user other@example.test",
                "sender",
            ),
            (
                553,
                "5.1.8 <support@example.test>: Sender address rejected: Domain not found",
                "sender",
            ),
            (
                554,
                "5.7.1 <support@example.test>: Sender address rejected: Access denied",
                "sender",
            ),
            // Exim (cPanel's sender check, sender verification).
            (
                550,
                "Your FROM address ( support@example.test , Example Support ) must match your authenticated email user ( other@example.test ). Treating this as a spoofed email.",
                "sender",
            ),
            (
                550,
                "Verification failed for <support@example.test> Unrouteable address Sender verify failed",
                "sender",
            ),
            // Microsoft 365.
            (
                550,
                "5.7.60 SMTP; Client does not have permissions to send as this sender",
                "sender",
            ),
            (
                554,
                "5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message Cannot submit message",
                "sender",
            ),
            (
                554,
                "5.2.252 SendAsDenied; other@example.test not allowed to send as support@example.test; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
                "sender",
            ),
            // Google Workspace SMTP relay; relays that send only from verified addresses.
            (
                550,
                "5.7.1 Invalid credentials for relay [203.0.113.5]. The IP address you've registered in your Workspace SMTP Relay service doesn't match the domain of the account this email is being sent from.",
                "sender",
            ),
            (
                554,
                "Message rejected: Email address is not verified. The following identities failed the check in region EU-WEST-1: support@example.test",
                "sender",
            ),
            (
                550,
                "The from address does not match a verified Sender Identity. Mail cannot be sent until this error is resolved.",
                "sender",
            ),
            (553, "Sender is not allowed to relay emails", "sender"),
            (500, "Envelope from address is not authorised", "sender"),
            // Sendmail's access map, on the sender and on the recipient.
            (
                550,
                "5.7.1 <support@example.test>... Access denied",
                "sender",
            ),
            (
                550,
                "5.7.1 <customer@example.test>... Access denied",
                "recipient",
            ),
            // Our login, as before.
            (535, "5.7.8 Username and Password not accepted", "account"),
            (
                530,
                "5.7.57 Client not authenticated to send mail. Error: 535 5.7.139 Authentication unsuccessful",
                "account",
            ),
            // The recipient: Postfix, Gmail, Microsoft 365, Exim, the test server.
            (
                550,
                "5.1.1 <customer@example.test>: Recipient address rejected: User unknown in local recipient table",
                "recipient",
            ),
            (
                550,
                "5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos",
                "recipient",
            ),
            (
                550,
                "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
                "recipient",
            ),
            (
                550,
                "5.4.1 Recipient address rejected: Access denied. AS(201806281)",
                "recipient",
            ),
            (
                550,
                "5.2.1 The email account that you tried to reach is disabled.",
                "recipient",
            ),
            (
                552,
                "5.2.2 <customer@example.test>: user is over quota",
                "recipient",
            ),
            (550, "No Such User Here", "recipient"),
            (550, "5.1.1 Mailbox unavailable", "recipient"),
            (
                550,
                "5.7.133 RESOLVER.RST.SenderNotAuthenticatedForGroup; authentication required; Delivery restriction check failed because the sender was not authenticated when sending to this group",
                "recipient",
            ),
            // The message, or a refusal that does not say: never the sender nor the address.
            (500, "Line too long (see RFC5321 4.5.3.1.6)", "permanent"),
            (
                552,
                "5.3.4 Message size exceeds fixed maximum message size",
                "permanent",
            ),
            (554, "5.6.0 Message content rejected", "permanent"),
            (
                550,
                "5.7.26 Unauthenticated email from example.test is not accepted due to domain's DMARC policy. Please contact the administrator of example.test domain if this was a legitimate mail.",
                "permanent",
            ),
            (
                550,
                "5.7.1 [203.0.113.5] Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
                "permanent",
            ),
            (
                552,
                "5.7.0 This message was blocked because its content presents a potential security issue.",
                "permanent",
            ),
            (
                554,
                "5.7.1 <customer@example.test>: Relay access denied",
                "permanent",
            ),
            (
                554,
                "<customer@example.test>: Recipient address rejected: Relay access denied",
                "permanent",
            ),
            (554, "Transaction failed", "permanent"),
        ];
        for (code, text, want) in cases {
            let reply = format!("permanent error ({code}): {text}");
            let got = sort(
                classify_reply(Some(*code), &reply, true),
                "support@example.test",
                &["customer@example.test"],
            );
            assert_eq!(kind(&got), *want, "{reply}");
        }
        // A temporary refusal is never final, whatever it names.
        let soft = "transient error (451): 4.1.8 <support@example.test>: Sender address rejected: Domain not found";
        let got = sort(
            classify_reply(Some(451), soft, false),
            "support@example.test",
            &[],
        );
        assert_eq!(kind(&got), "transient");
    }
}
