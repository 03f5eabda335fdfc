//! IMAP: connecting (TLS, STARTTLS, LOGIN), and the watch loop that fetches new mail by UID,
//! hands it to the pipeline, flags it, and waits with IDLE or polling.
//!
//! Liveness: a connection that dies without a FIN (a NAT or firewall that forgot it, a host
//! that vanished, a path that blackholes) gives no error by itself. Two things find it: TCP
//! keepalive on the socket ([`KEEPALIVE_IDLE`], [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_PROBES`]:
//! the kernel gives up on a silent peer 2 minutes after its last packet), and, for a path
//! where something still acknowledges TCP (a proxy, a load balancer, a hung server process),
//! the watch loop's check every `liveness_interval`: IDLE is ended, a NOOP sent, IDLE begun
//! again, each answer awaited at most `liveness_timeout`. Worst case with the defaults: a
//! connection that goes silent just after a check is found at the next one, 4 min + 30 s later.

mod corrections;
mod folder_corrections;
mod folders;
mod watch;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use async_imap::{Client, Session};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;

pub use folders::Hierarchy;
pub use watch::{Account, Moves, Watcher, new_mail_announced};

use crate::config::{Credential, MailboxConfig, OAuthMechanism, Secret, Tls, sasl_token_response};

/// Any stream IMAP can run over: TCP, or TLS over TCP.
pub trait ImapStream: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> ImapStream for T {}

pub type ImapSession = Session<Box<dyn ImapStream>>;

/// How long one IMAP command may take before the connection is considered dead.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// TCP keepalive: the first probe after this long without a packet from the server.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// TCP keepalive: the time between unanswered probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// TCP keepalive: unanswered probes before the kernel ends the connection (so a silent peer is
/// given up 60 s + 4 x 15 s = 2 min after its last packet).
pub const KEEPALIVE_PROBES: u32 = 4;

/// Turn on TCP keepalive with the intervals above. A socket that refuses is still used (the
/// watch loop's own checks find a dead connection too).
fn keep_alive(tcp: &TcpStream) {
    let params = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&params) {
        tracing::debug!("TCP keepalive not set on the IMAP connection: {e}");
    }
}

/// SELECT `folder` with [`IO_TIMEOUT`]; a NO is [`ImapError::NoSuchFolder`]. With
/// `condstore` (the server has it), `SELECT folder (CONDSTORE)`: the answer carries the
/// folder's HIGHESTMODSEQ.
pub async fn select(
    session: &mut ImapSession,
    folder: &str,
    condstore: bool,
) -> Result<async_imap::types::Mailbox> {
    let selected = async {
        if condstore {
            session.select_condstore(folder).await
        } else {
            session.select(folder).await
        }
    };
    match tokio::time::timeout(IO_TIMEOUT, selected).await {
        Ok(Err(async_imap::error::Error::No(said))) => Err(ImapError::NoSuchFolder {
            folder: folder.to_string(),
            said,
        }
        .into()),
        Ok(r) => r.with_context(|| format!("Selecting {folder}")),
        Err(_) => bail!(
            "Selecting {folder}: no answer from the server in {}s",
            IO_TIMEOUT.as_secs()
        ),
    }
}

/// Await an IMAP operation with [`IO_TIMEOUT`].
pub async fn io<T, E>(what: &str, fut: impl Future<Output = Result<T, E>>) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(IO_TIMEOUT, fut).await {
        Ok(r) => r.with_context(|| what.to_string()),
        Err(_) => bail!(
            "{what}: no answer from the server in {}s",
            IO_TIMEOUT.as_secs()
        ),
    }
}

/// The IMAP failures callers branch on; any other error (wrapped in `anyhow`) is the
/// connection: it may pass, so it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The server refused our credentials (as opposed to not answering): a health alert of
    /// its own, because waiting will not fix it.
    #[error("{0}")]
    LoginRefused(String),
    /// The password or token could not be read (its file, command or token endpoint).
    #[error("Reading the IMAP {noun}: {detail}")]
    Credential { noun: &'static str, detail: String },
    /// SELECT answered NO: the folder does not exist, or this account may not open it.
    #[error("Selecting {folder}: the server has no such folder or refuses it ({said})")]
    NoSuchFolder { folder: String, said: String },
}

/// What an IMAP error means for whoever watches the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The login was refused or the credential is unreadable: an operator must act.
    Login,
    /// The folder cannot be selected.
    Folder,
    /// The connection: refused, dropped, timed out, or a protocol error.
    Connection,
}

impl Failure {
    pub fn of(e: &anyhow::Error) -> Failure {
        match e.downcast_ref::<ImapError>() {
            Some(ImapError::LoginRefused(_) | ImapError::Credential { .. }) => Failure::Login,
            Some(ImapError::NoSuchFolder { .. }) => Failure::Folder,
            None => Failure::Connection,
        }
    }
}

/// Connect, secure and log in: LOGIN with a password, or SASL XOAUTH2/OAUTHBEARER with an
/// access token (whichever `cfg.credential` names). Errors are one readable line.
pub async fn connect(
    cfg: &MailboxConfig,
    tls: &Arc<ClientConfig>,
    secret: &Secret,
) -> Result<ImapSession> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let tcp = io(
        &format!("Connecting to IMAP server {addr}"),
        TcpStream::connect((cfg.host.as_str(), cfg.port)),
    )
    .await?;
    tcp.set_nodelay(true).ok();
    keep_alive(&tcp);
    let server_name = || {
        rustls_pki_types::ServerName::try_from(cfg.host.clone()).map_err(|e| {
            anyhow!(
                "IMAP host {:?} is not a valid TLS server name: {e}",
                cfg.host
            )
        })
    };
    let client: Client<Box<dyn ImapStream>> = match cfg.tls {
        Tls::None => greet(Client::new(Box::new(tcp) as Box<dyn ImapStream>), &addr).await?,
        Tls::Implicit => {
            let stream = io(
                &format!("TLS handshake with {addr}"),
                TlsConnector::from(tls.clone()).connect(server_name()?, tcp),
            )
            .await?;
            greet(Client::new(Box::new(stream) as Box<dyn ImapStream>), &addr).await?
        }
        Tls::Starttls => {
            let mut plain = greet(Client::new(tcp), &addr).await?;
            io(
                &format!("STARTTLS with {addr} (does the server offer it?)"),
                plain.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            let tcp = plain.into_inner();
            let stream = io(
                &format!("TLS handshake with {addr}"),
                TlsConnector::from(tls.clone()).connect(server_name()?, tcp),
            )
            .await?;
            Client::new(Box::new(stream) as Box<dyn ImapStream>)
        }
    };
    let (login, hint) = match &cfg.credential {
        Credential::Token { mechanism, .. } => {
            let auth = TokenAuth {
                // RFC 7628: OAUTHBEARER answers the error challenge with %x01.
                after_error: if *mechanism == OAuthMechanism::Oauthbearer {
                    "\x01"
                } else {
                    ""
                },
                response: Some(sasl_token_response(
                    *mechanism,
                    &cfg.username,
                    &cfg.host,
                    cfg.port,
                    secret.expose(),
                )),
            };
            let r = tokio::time::timeout(IO_TIMEOUT, client.authenticate(mechanism.as_str(), auth))
                .await;
            (
                r,
                "check the username and that the token_command prints a valid access token for it",
            )
        }
        Credential::Password(_) => (
            tokio::time::timeout(IO_TIMEOUT, client.login(&cfg.username, secret.expose())).await,
            "check the username and password source",
        ),
    };
    match login {
        Err(_) => bail!(
            "Logging in to {addr} as {}: no answer in {}s",
            cfg.username,
            IO_TIMEOUT.as_secs()
        ),
        Ok(Err((e, _))) => Err(ImapError::LoginRefused(format!(
            "Logging in to {addr} as {} failed: {e} ({hint})",
            cfg.username
        ))
        .into()),
        Ok(Ok(session)) => Ok(session),
    }
}

/// SASL for an OAuth2 token: the initial response first; an empty one to the server's error
/// challenge (XOAUTH2 and OAUTHBEARER answer a bad token with a JSON challenge, then NO).
struct TokenAuth {
    response: Option<String>,
    after_error: &'static str,
}

impl async_imap::Authenticator for TokenAuth {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        self.response
            .take()
            .unwrap_or_else(|| self.after_error.to_string())
    }
}

async fn greet<T: AsyncRead + AsyncWrite + Unpin + Send + Debug>(
    mut client: Client<T>,
    addr: &str,
) -> Result<Client<T>> {
    match tokio::time::timeout(IO_TIMEOUT, client.read_response()).await {
        Err(_) => bail!(
            "IMAP server {addr} sent no greeting in {}s",
            IO_TIMEOUT.as_secs()
        ),
        Ok(Err(e)) => bail!("Reading the greeting of {addr}: {e}"),
        Ok(Ok(None)) => bail!("IMAP server {addr} closed the connection before its greeting"),
        Ok(Ok(Some(_))) => Ok(client),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart_through_any_context() {
        let refused: anyhow::Error = ImapError::LoginRefused("Logging in failed".into()).into();
        assert_eq!(Failure::of(&refused.context("Connecting")), Failure::Login);
        let unreadable: anyhow::Error = ImapError::Credential {
            noun: "password",
            detail: "no such file".into(),
        }
        .into();
        assert_eq!(
            unreadable.to_string(),
            "Reading the IMAP password: no such file"
        );
        assert_eq!(Failure::of(&unreadable), Failure::Login);
        let folder: anyhow::Error = ImapError::NoSuchFolder {
            folder: "Support".into(),
            said: "Mailbox doesn't exist: Support".into(),
        }
        .into();
        assert_eq!(Failure::of(&folder), Failure::Folder);
        // Text that merely reads like a login problem is still the connection.
        let other = anyhow::anyhow!("Reading the IMAP greeting: connection reset");
        assert_eq!(Failure::of(&other), Failure::Connection);
    }

    #[tokio::test]
    async fn the_imap_socket_keeps_alive_with_our_intervals() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let tcp = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        keep_alive(&tcp);
        let s = socket2::SockRef::from(&tcp);
        assert!(s.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(s.tcp_keepalive_time().expect("idle"), KEEPALIVE_IDLE);
        assert_eq!(
            s.tcp_keepalive_interval().expect("interval"),
            KEEPALIVE_INTERVAL
        );
        assert_eq!(s.tcp_keepalive_retries().expect("probes"), KEEPALIVE_PROBES);
    }
}
