//! Sending over SMTP: lettre's SMTP client on connections we open ourselves, TLS modes, AUTH,
//! and errors sorted into "retry", "pause all sending" and "give up".
//!
//! Why our own connections rather than lettre's transport and pool: lettre's `timeout` bounds
//! only the TCP connect, so a server that stops answering at MAIL FROM or after DATA would
//! stall every send, and a pooled connection abandoned mid-command would go back to its pool
//! and answer the next transaction with the old reply. It also leaves Nagle's algorithm on, so
//! the last line of each command (the final `.` of DATA above all) waits for the server's
//! delayed ACK: about 22 messages a second on loopback, whatever the server. Here every step
//! has a deadline (`[smtp] timeout`), the transaction has one (`transaction_timeout`), the
//! socket has TCP_NODELAY, and a connection goes back to the pool only after a transaction
//! that completed; any failure or timeout closes it.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lettre::Message;
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::net::TcpStream;

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

/// An idle connection older than this is closed, not reused: servers drop idle clients
/// (lettre's pool uses the same bound).
const IDLE_FOR: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept (one per send that ran at the same time).
const IDLE_MAX: usize = 32;

/// A configured SMTP account: where and how to connect, its credential, and a pool of open
/// connections. Cheap to clone; clones share the pool, and sends may run at the same time
/// (each on a connection of its own). The credential is read at the first send, and the pool
/// is started afresh when the credential changes: a token past its lifetime, or a credential
/// the server refused.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    port: u16,
    security: Security,
    /// Each step: connect, TLS, greeting, STARTTLS, AUTH, each command's reply.
    timeout: Duration,
    /// The whole transaction; the reply to the end of data may use all of it.
    transaction_timeout: Duration,
    username: Option<String>,
    login: Option<Login>,
    current: tokio::sync::Mutex<Option<Current>>,
}

enum Security {
    None,
    /// STARTTLS after the greeting, refused if the server does not offer it (lettre upgrades
    /// the socket).
    Starttls(TlsParameters),
    /// TLS from the first byte.
    Implicit {
        connector: tokio_rustls::TlsConnector,
        name: rustls_pki_types::ServerName<'static>,
    },
}

/// The pool in use and the secret it logs in with.
#[derive(Clone)]
struct Current {
    pool: Arc<Pool>,
    secret: Option<String>,
    /// Built from a secret read just now: a refusal is final, not a stale cache.
    fresh: bool,
}

/// Connections that completed a transaction and wait for the next (newest last), and the
/// login each new one makes.
struct Pool {
    auth: Option<(Credentials, Vec<Mechanism>)>,
    idle: std::sync::Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl Pool {
    fn new(auth: Option<(Credentials, Vec<Mechanism>)>) -> Pool {
        Pool {
            auth,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The most recently used open connection, if one has not idled too long.
    fn take(&self) -> Option<AsyncSmtpConnection> {
        // A panic elsewhere while holding the lock leaves a plain Vec: still usable.
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|(_, since)| since.elapsed() < IDLE_FOR);
        idle.pop().map(|(conn, _)| conn)
    }

    /// A connection whose transaction completed, ready for the next.
    fn put(&self, conn: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_MAX {
            idle.push((conn, Instant::now()));
        }
    }
}

/// The step a transaction is at, for the message when it runs out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    Connect,
    Tls,
    Greeting,
    Starttls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    EndOfData,
}

impl Step {
    const ALL: [Step; 9] = [
        Step::Connect,
        Step::Tls,
        Step::Greeting,
        Step::Starttls,
        Step::Auth,
        Step::MailFrom,
        Step::RcptTo,
        Step::Data,
        Step::EndOfData,
    ];

    fn name(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Tls => "the TLS handshake",
            Step::Greeting => "the greeting",
            Step::Starttls => "STARTTLS",
            Step::Auth => "AUTH",
            Step::MailFrom => "MAIL FROM",
            Step::RcptTo => "RCPT TO",
            Step::Data => "DATA",
            Step::EndOfData => "the end of data",
        }
    }
}

/// Where a transaction is; read after its future was dropped at the deadline.
#[derive(Default)]
struct At(AtomicU8);

impl At {
    fn set(&self, step: Step) {
        self.0.store(step as u8, Ordering::Relaxed);
    }

    fn get(&self) -> Step {
        Step::ALL[usize::from(self.0.load(Ordering::Relaxed)).min(Step::ALL.len() - 1)]
    }
}

/// How a transaction failed, before it is sorted into a [`SendError`].
enum Failure {
    /// The server answered no, or lettre's connection broke.
    Smtp(lettre::transport::smtp::Error),
    /// The server could not be reached or the TLS handshake failed.
    Io(Step, std::io::Error),
    /// What lettre's own transport refuses to send (8-bit content to a 7-bit server).
    Local(&'static str),
    /// No answer within `[smtp] timeout`.
    Timeout(Step),
}

/// A TLS stream as lettre takes one (implicit TLS is ours: lettre's would open its own
/// socket, without TCP_NODELAY).
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl tokio::io::AsyncRead for TlsTcp {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl Sender {
    /// Prepare the account; the credential is read at the first send.
    pub fn new(cfg: &SmtpConfig) -> Result<Sender> {
        let security = match cfg.tls {
            config::Tls::Implicit => Security::Implicit {
                connector: tokio_rustls::TlsConnector::from(
                    crate::tls::tls_config(cfg.ca_file.as_deref())
                        .context("Preparing TLS for SMTP")?,
                ),
                name: rustls_pki_types::ServerName::try_from(cfg.host.clone()).map_err(|e| {
                    anyhow::anyhow!(
                        "SMTP host {:?} is not a valid TLS server name: {e}",
                        cfg.host
                    )
                })?,
            },
            config::Tls::Starttls => {
                let mut b = TlsParameters::builder(cfg.host.clone());
                if let Some(ca) = &cfg.ca_file {
                    let pem = std::fs::read(ca)
                        .with_context(|| format!("Reading SMTP ca_file {}", ca.display()))?;
                    let cert = Certificate::from_pem(&pem)
                        .with_context(|| format!("Parsing SMTP ca_file {}", ca.display()))?;
                    b = b.add_root_certificate(cert);
                }
                Security::Starttls(b.build_rustls().context("Building SMTP TLS parameters")?)
            }
            config::Tls::None => Security::None,
        };
        let login = match (&cfg.username, &cfg.credential) {
            (Some(_), Some(c)) => Some(Login::new(c.clone())),
            _ => None,
        };
        Ok(Sender {
            inner: Arc::new(Inner {
                host: cfg.host.clone(),
                port: cfg.port,
                security,
                timeout: cfg.timeout,
                transaction_timeout: cfg.transaction_timeout.max(cfg.timeout),
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
        let first = match self.transaction(&current.pool, msg).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !matches!(first, SendError::Account(_)) || current.fresh {
            return Err(first);
        }
        tracing::info!("SMTP refused the cached credential; reading it again");
        self.forget(&current).await;
        let again = self.current().await?;
        self.transaction(&again.pool, msg).await
    }

    /// One SMTP transaction within `transaction_timeout`, its failure sorted.
    async fn transaction(&self, pool: &Pool, msg: &Message) -> Result<(), SendError> {
        let envelope = msg.envelope();
        let body = msg.formatted();
        let at = At::default();
        let limit = self.inner.transaction_timeout;
        // At the deadline the transaction's future is dropped, and its connection with it:
        // closed, never back in the pool with a reply still on its way.
        match tokio::time::timeout(limit, self.transact(pool, envelope, &body, &at)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Failure::Smtp(e))) => Err(classify(&e, envelope)),
            Ok(Err(Failure::Io(step, e))) => Err(SendError::Transient(format!(
                "SMTP server {}:{} at {}: {e}",
                self.inner.host,
                self.inner.port,
                step.name()
            ))),
            Ok(Err(Failure::Local(e))) => Err(SendError::Transient(e.to_string())),
            Ok(Err(Failure::Timeout(step))) => Err(SendError::Transient(format!(
                "SMTP server did not answer within {} at {}",
                seconds(self.inner.timeout),
                step.name()
            ))),
            Err(_) => {
                let step = at.get();
                let mut text = format!(
                    "SMTP transaction did not finish within {} at {}",
                    seconds(limit),
                    step.name()
                );
                if step == Step::EndOfData {
                    text.push_str("; the server may have taken the message");
                }
                Err(SendError::Transient(text))
            }
        }
    }

    /// Send on a pooled connection, or a new one. A pooled connection the server closed
    /// while it idled fails at MAIL FROM, before anything of the message went out: that one
    /// is tried once more on a new connection.
    async fn transact(
        &self,
        pool: &Pool,
        envelope: &Envelope,
        body: &[u8],
        at: &At,
    ) -> Result<(), Failure> {
        let (mut conn, pooled) = match pool.take() {
            Some(conn) => (conn, true),
            None => (self.connect(pool, at).await?, false),
        };
        let mut result = self.envelope_and_data(&mut conn, envelope, body, at).await;
        if pooled
            && at.get() == Step::MailFrom
            && matches!(&result, Err(Failure::Smtp(e)) if went_away(e))
        {
            tracing::debug!("A pooled SMTP connection was closed by the server; opening another");
            conn = self.connect(pool, at).await?;
            result = self.envelope_and_data(&mut conn, envelope, body, at).await;
        }
        match result {
            Ok(()) => pool.put(conn),
            // Refused before any command: the connection is as good as before.
            Err(Failure::Local(_)) => pool.put(conn),
            // The server answered no: say goodbye (briefly), then close.
            Err(Failure::Smtp(ref e)) if e.status().is_some() => {
                let _ = tokio::time::timeout(self.inner.timeout, conn.abort()).await;
            }
            // Broken or out of time: dropped, so closed, never reused.
            Err(_) => drop(conn),
        }
        result
    }

    /// Open, secure, greet and log in.
    async fn connect(&self, pool: &Pool, at: &At) -> Result<AsyncSmtpConnection, Failure> {
        let inner = &self.inner;
        let tcp = self
            .io(
                at,
                Step::Connect,
                TcpStream::connect((inner.host.as_str(), inner.port)),
            )
            .await?;
        // Each command's last line goes out at once instead of waiting for the server to
        // acknowledge the one before (Nagle's algorithm meeting delayed ACKs): the final "."
        // of DATA above all. See benches/smtp.rs for what it is worth.
        tcp.set_nodelay(true)
            .map_err(|e| Failure::Io(Step::Connect, e))?;
        let hello = ClientId::default();
        let stream: Box<dyn AsyncTokioStream> = match &inner.security {
            Security::Implicit { connector, name } => Box::new(TlsTcp(
                self.io(at, Step::Tls, connector.connect(name.clone(), tcp))
                    .await?,
            )),
            Security::None | Security::Starttls(_) => Box::new(tcp),
        };
        let mut conn = self
            .step(
                at,
                Step::Greeting,
                AsyncSmtpConnection::connect_with_transport(stream, &hello),
            )
            .await?;
        if let Security::Starttls(params) = &inner.security {
            self.step(at, Step::Starttls, conn.starttls(params.clone(), &hello))
                .await?;
        }
        if let Some((credentials, mechanisms)) = &pool.auth {
            self.step(at, Step::Auth, conn.auth(mechanisms, credentials))
                .await?;
        }
        Ok(conn)
    }

    /// MAIL FROM, RCPT TO for each recipient, DATA, the message, each with its deadline
    /// (what lettre's `AsyncSmtpConnection::send` does, step by step).
    async fn envelope_and_data(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        body: &[u8],
        at: &At,
    ) -> Result<(), Failure> {
        let mut options = Vec::new();
        let ascii = |a: &Address| AsRef::<str>::as_ref(a).is_ascii();
        if !(envelope.from().is_none_or(ascii) && envelope.to().iter().all(ascii)) {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(Failure::Local(
                    "Envelope contains non-ascii chars but server does not support SMTPUTF8",
                ));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !body.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(Failure::Local(
                    "Message contains non-ascii chars but server does not support 8BITMIME",
                ));
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let from = envelope.from().cloned();
        self.step(at, Step::MailFrom, conn.command(Mail::new(from, options)))
            .await?;
        for to in envelope.to() {
            self.step(
                at,
                Step::RcptTo,
                conn.command(Rcpt::new(to.clone(), vec![])),
            )
            .await?;
        }
        self.step(at, Step::Data, conn.command(Data)).await?;
        // The reply to the final "." may take what is left of the transaction: servers scan
        // the content before they answer, and giving up early would send it twice.
        at.set(Step::EndOfData);
        conn.message(body).await.map_err(Failure::Smtp)?;
        Ok(())
    }

    /// One step of lettre's within `[smtp] timeout`.
    async fn step<T>(
        &self,
        at: &At,
        step: Step,
        fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, Failure> {
        at.set(step);
        match tokio::time::timeout(self.inner.timeout, fut).await {
            Ok(r) => r.map_err(Failure::Smtp),
            Err(_) => Err(Failure::Timeout(step)),
        }
    }

    /// One socket step (connect, TLS handshake) within `[smtp] timeout`.
    async fn io<T>(
        &self,
        at: &At,
        step: Step,
        fut: impl Future<Output = std::io::Result<T>>,
    ) -> Result<T, Failure> {
        at.set(step);
        match tokio::time::timeout(self.inner.timeout, fut).await {
            Ok(r) => r.map_err(|e| Failure::Io(step, e)),
            Err(_) => Err(Failure::Timeout(step)),
        }
    }

    /// The pool to send with: started now when there is none yet, or when the token moved on.
    async fn current(&self) -> Result<Current, SendError> {
        let inner = &self.inner;
        let mut slot = inner.current.lock().await;
        let fetched = match &inner.login {
            None => None,
            // A password is read once per pool (and again after a refusal).
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
        let auth = match (&inner.username, &fetched, &inner.login) {
            (Some(user), Some(f), Some(login)) => Some((
                Credentials::new(user.clone(), f.secret.expose().to_string()),
                if login.mechanism().is_some() {
                    vec![Mechanism::Xoauth2]
                } else {
                    DEFAULT_MECHANISMS.to_vec()
                },
            )),
            _ => None,
        };
        let cur = Current {
            pool: Arc::new(Pool::new(auth)),
            secret: fetched.as_ref().map(|f| f.secret.expose().to_string()),
            fresh: fetched.as_ref().is_some_and(|f| f.fresh),
        };
        *slot = Some(cur.clone());
        Ok(cur)
    }

    /// Drop the pool built from a refused credential (and the token it came from).
    async fn forget(&self, refused: &Current) {
        let mut slot = self.inner.current.lock().await;
        if slot
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.pool, &refused.pool))
        {
            *slot = None;
        }
        if let (Some(l), Some(secret)) = (&self.inner.login, &refused.secret) {
            l.forget(&crate::config::Secret::new(secret.clone())).await;
        }
    }
}

/// Whether a pooled connection failed because the server had closed it while it idled: the
/// socket broke or was closed, or the server's idle timeout left a 421 in the socket.
fn went_away(e: &lettre::transport::smtp::Error) -> bool {
    let status = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
    status == Some(421) || (status.is_none() && !e.is_client())
}

/// `30 s`, `1.5 s`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
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

/// Sorts an SMTP error: by the reply's code and enhanced status code first
/// ([`classify_reply`]: pushback, 4xx retry, 5xx give up), then by what a refusal is about:
/// our own login ([`refuses_account`]) or our sender address ([`refuses_sender`]) is about the
/// account, not the email, and a permanent refusal of the recipient ([`refuses_recipient`]) is
/// told from one of the message.
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

/// The pure part of `classify`: the reply code (when the server answered), its text, and
/// whether lettre called it permanent. Pushback (pause all sending, then retry) is what the
/// provider says about our account or our rate, never about one recipient, and it is read
/// only from the reply's own words and codes: never from an address or a domain name in it
/// (a customer at `corporate.example` or `wascl.example` is no rate limit).
///
/// In order:
/// 1. A provider's known throttling or quota wording (`provider_throttling`).
/// 2. 421: the server closes the channel (Gmail's 4.7.28 rate limits, Yahoo's `[TSS04]`
///    deferrals, a server shutting down): come back later.
/// 3. The enhanced status code (RFC 3463): a 4xx about the recipient (x.1.x but the sender's
///    x.1.7/x.1.8, x.2.x the mailbox: "4.2.2 over quota", "4.1.2 domain not found", "4.2.1
///    receiving mail too quickly") retries that email only, whatever its wording; 4.7.x
///    (a policy deferral, how Microsoft and Google throttle: "451 4.7.500 Server busy"),
///    4.4.5 (congestion) and 4.5.3 ("452 4.5.3 too many recipients") push back; 5.4.5 is
///    Gmail's daily sending quota (the account's, not a failure of the email); a 5xx about
///    the recipient or their mailbox ("552 5.2.2 over quota") never pushes back.
/// 4. Otherwise the words: a 4xx saying "rate", "quota", "throttled", "too many", "slow
///    down" or "limit exceeded", a 5xx saying so about a quota or limit.
pub fn classify_reply(code: Option<u16>, text: &str, permanent: bool) -> SendError {
    let lower = text.to_ascii_lowercase();
    let own = own_tokens(&lower);
    let plain = own.join(" ");
    let words = reply_words(&own);
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
    let status = code.and_then(|c| status_code(&own, c / 100));
    let pushback = if code.is_some() && provider_throttling(&plain, &words) {
        true
    } else {
        match (code, status) {
            (Some(421), _) => true,
            (Some(400..=499), Some(s)) if s.about_recipient() => false,
            (Some(400..=499), Some(Status(_, 7, _) | Status(_, 4, 5) | Status(_, 5, 3))) => true,
            (Some(400..=499), _) => wording,
            (Some(500..=599), Some(Status(_, 4, 5))) => true,
            (Some(500..=599), Some(s)) if s.about_recipient() => false,
            (Some(500..=599), _) => {
                wording
                    && words
                        .iter()
                        .any(|w| w.contains("quota") || w.contains("limit"))
            }
            _ => false,
        }
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

/// Providers' own words for "this account sends too much", whatever the status code:
/// - Gmail (support.google.com/a/answer/3726730): "550 5.4.5 Daily user sending limit
///   exceeded", "Daily user sending quota exceeded", "450 4.2.1 Peak SMTP relay limit
///   exceeded for customer" (the customer is us, the Workspace account).
/// - Microsoft 365 / Outlook.com (learn.microsoft.com, SMTP AUTH submission limits):
///   "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException", the
///   outbound-spam verdicts "OutboundSpamException; ... WASCL UserAction verdict is not None.
///   Actual verdict is RefuseQuota" (or Suspend, HipNotify), "RecipientThrottled", "550
///   5.2.25x Sender throttled due to continuous ... errors" (but 5.2.252, the send-as
///   refusal, is about our sender address), and our own mailbox full, which stops all
///   submission ("554 5.2.2 mailbox full; STOREDRV.Submission.Exception:
///   QuotaExceededException").
/// - Yahoo (senders.yahooinc.com/smtp-error-codes): "421 4.7.0 [TSS04] Messages from ...
///   temporarily deferred due to unexpected volume or user complaints".
fn provider_throttling(plain: &str, words: &[&str]) -> bool {
    let has = |w: &str| words.contains(&w);
    let says = |p: &str| plain.contains(p);
    says("sending quota")
        || says("sending limit")
        || says("submission quota")
        || says("relay limit exceeded")
        || says("submissionquotaexceeded")
        || says("submission.exception:quotaexceededexception")
        || says("outboundspamexception")
        || says("recipientthrottled")
        || (says("sender throttled") && !says("send as"))
        || says("unexpected volume")
        || has("wascl")
        || words.iter().any(|w| w.starts_with("tss0"))
}

/// An enhanced status code (RFC 3463): class, subject, detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Status(u16, u16, u16);

impl Status {
    /// About the recipient's address (x.1.x, but x.1.7 and x.1.8 are the sender's) or their
    /// mailbox (x.2.x).
    fn about_recipient(self) -> bool {
        matches!(self, Status(_, 1, d) if d != 7 && d != 8) || self.1 == 2
    }
}

/// The reply's status code: the first enhanced code of the reply code's class.
fn status_code(own: &[&str], class: u16) -> Option<Status> {
    own.iter()
        .flat_map(|t| t.split(|c: char| !c.is_ascii_digit() && c != '.'))
        .filter_map(|w| {
            let parts: Vec<u16> = w
                .trim_matches('.')
                .split('.')
                .map(|p| if p.len() <= 3 { p.parse().ok() } else { None })
                .collect::<Option<_>>()?;
            match parts[..] {
                [c, s, d] if c == class => Some(Status(c, s, d)),
                _ => None,
            }
        })
        .next()
}

/// The reply's own tokens (lower-cased, trimmed of brackets and punctuation), leaving out
/// every one a customer can write: an address (`<a@corporate.example>`), a URL, a domain
/// name (`rate.example`). A provider's dotted identifiers with other characters in them
/// (`STOREDRV.Submission.Exception:SubmissionQuotaExceededException`) stay.
fn own_tokens(lower: &str) -> Vec<&str> {
    lower
        .split_whitespace()
        .map(|t| t.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|t| {
            let domain = t.contains('.')
                && t.bytes().any(|b| b.is_ascii_alphabetic())
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            !t.is_empty() && !t.contains('@') && !t.contains("://") && !domain
        })
        .collect()
}

/// The words of the reply's own tokens (runs of letters and digits), from tokens without a
/// dot between letters (enhanced codes such as 4.7.0 have none).
fn reply_words<'a>(own: &[&'a str]) -> Vec<&'a str> {
    own.iter()
        .filter(|t| !(t.contains('.') && t.chars().any(|c| c.is_ascii_alphabetic())))
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
            // One recipient's mailbox takes mail slowly: that email waits, nothing else.
            (
                Some(450),
                "450 4.2.1 The user is receiving mail at a rate that prevents additional messages",
                false,
                "transient",
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

    /// Real replies of the big providers, as lettre shows them ("transient error (CODE): TEXT",
    /// several lines joined), with a customer address and domain that spell pushback words.
    #[test]
    fn provider_replies_are_sorted_by_code_then_words() {
        let cases: &[(u16, &str, &str)] = &[
            // Gmail (support.google.com/a/answer/3726730).
            (
                421,
                "4.7.28 [203.0.113.42] Our system has detected an unusual rate of 4.7.28 unsolicited mail originating from your IP address. To protect our 4.7.28 users from spam, mail sent from your IP address has been temporarily 4.7.28 rate limited. Please visit 4.7.28 https://support.google.com/mail/?p=UnsolicitedRateLimitError to 4.7.28 review our Bulk Email Senders Guidelines. - gsmtp",
                "pushback",
            ),
            (
                451,
                "4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your DKIM domain. - gsmtp",
                "pushback",
            ),
            (
                550,
                "5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to 5.4.5 https://support.google.com/a/answer/166852 - gsmtp",
                "pushback",
            ),
            (
                550,
                "5.4.5 Daily user sending quota exceeded. - gsmtp",
                "pushback",
            ),
            (
                452,
                "4.5.3 Your message has too many recipients. For more information regarding Google's sending limits, review this article. - gsmtp",
                "pushback",
            ),
            (
                452,
                "4.5.3 Domain policy size per transaction exceeded, please try this recipient in a separate transaction. - gsmtp",
                "pushback",
            ),
            (
                450,
                "4.2.1 Peak SMTP relay limit exceeded for customer. This is a temporary error. - gsmtp",
                "pushback",
            ),
            (
                421,
                "4.4.5 Server busy, try again later. - gsmtp",
                "pushback",
            ),
            (
                421,
                "4.7.0 Try again later, closing connection. (EHLO) - gsmtp",
                "pushback",
            ),
            // Gmail, about one recipient: that email retries, nothing pauses.
            (
                452,
                "4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp",
                "transient",
            ),
            (
                450,
                "4.2.1 The user you are trying to contact is receiving mail too quickly. Please resend your message at a later time. - gsmtp",
                "transient",
            ),
            // Microsoft 365 / Outlook.com (SMTP AUTH submission).
            (
                451,
                "4.7.500 Server busy. Please try again later from [203.0.113.5]. (S77719) [Hostname=AM6PR01MB1234.eurprd01.prod.exchangelabs.com]",
                "pushback",
            ),
            (
                554,
                "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message Cannot submit message.",
                "pushback",
            ),
            (
                554,
                "5.2.0 STOREDRV.Submission.Exception:OutboundSpamException; Failed to process message due to a permanent exception with message WASCL UserAction verdict is not None. Actual verdict is RefuseQuota, ShowTierUpgrade. OutboundSpamException: WASCL UserAction verdict is not None. Actual verdict is RefuseQuota, ShowTierUpgrade. [Hostname=VI1PR05MB5405.eurprd05.prod.outlook.com]",
                "pushback",
            ),
            (
                550,
                "5.2.0 STOREDRV.Submission.Exception:RecipientThrottledException; Failed to process message due to a permanent exception",
                "pushback",
            ),
            (
                550,
                "5.2.254 Sender throttled due to continuous too many recipients errors.",
                "pushback",
            ),
            // Our own mailbox is full (submitted mail is kept in Sent Items): no email goes,
            // and it is not the recipient's mailbox.
            (
                554,
                "5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded",
                "pushback",
            ),
            // Microsoft's send-as refusal, even when it says "throttled", is our sender address.
            (
                550,
                "5.2.252 Sender throttled due to continuous send as denied errors.",
                "sender",
            ),
            // Yahoo (senders.yahooinc.com/smtp-error-codes).
            (
                421,
                "4.7.0 [TSS04] Messages from 203.0.113.5 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
                "pushback",
            ),
            // About one recipient, with a customer whose address or domain spells pushback.
            (
                450,
                "4.1.2 <ana@corporate.example>: Recipient address rejected: Domain not found",
                "transient",
            ),
            (
                452,
                "4.2.2 <ana@ratelimit.example>: Recipient address rejected: Mailbox full, over quota",
                "transient",
            ),
            (
                450,
                "4.1.1 <quota@wascl.example>: Recipient address rejected: unverified address: host wascl.example said: 550 too many recipients",
                "transient",
            ),
            (
                451,
                "Temporary lookup failure for tss04.example (throttled.example)",
                "transient",
            ),
            (
                550,
                "5.1.1 <sending-quota@submissionquotaexceeded.example>: Recipient address rejected: User unknown",
                "recipient",
            ),
            // Not about our rate at all.
            (451, "4.3.0 Temporary failure, try again later", "transient"),
            (
                550,
                "5.7.1 [203.0.113.5] Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
                "permanent",
            ),
        ];
        for (code, text, want) in cases {
            let permanent = *code >= 500;
            let reply = format!(
                "{} error ({code}): {text}",
                if permanent { "permanent" } else { "transient" }
            );
            let got = sort(
                classify_reply(Some(*code), &reply, permanent),
                "support@example.test",
                &["ana@corporate.example"],
            );
            assert_eq!(kind(&got), *want, "{reply}");
        }
    }

    #[test]
    fn enhanced_codes_are_read_from_the_reply_not_from_addresses() {
        let status = |text: &str, class| status_code(&own_tokens(text), class);
        assert_eq!(
            status("421-4.7.28 [1.2.3.4] rate limited", 4),
            Some(Status(4, 7, 28))
        );
        assert_eq!(
            status("(450): 4.1.2 <a@b.example>: rejected", 4),
            Some(Status(4, 1, 2))
        );
        // A numeric domain in an address or on its own, an IP, a version: no code.
        assert_eq!(status("<x@4.7.28.example> 4.16.55.1 203.0.113.5", 4), None);
        assert_eq!(status("4.7.28.example said no", 4), None);
        // The first of the reply's own class.
        assert_eq!(
            status("5.7.57 Error: 535 5.7.139 x", 5),
            Some(Status(5, 7, 57))
        );
        assert_eq!(status("4.7.0 then 5.1.1", 5), Some(Status(5, 1, 1)));
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
