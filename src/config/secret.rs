//! Credentials: passwords from the environment or a command, OAuth2 access tokens from a token
//! command — never from the config file. [`Login`] is the runtime handle that reads them, caches
//! tokens for their lifetime, and forgets a token the server refused.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Where a password is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A shell command whose first line of output is the secret (e.g. `pass show mail/support`).
    Command(String),
}

/// The SASL mechanism that carries an OAuth2 access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthMechanism {
    /// Google's and Microsoft's `XOAUTH2`.
    Xoauth2,
    /// RFC 7628 `OAUTHBEARER`.
    Oauthbearer,
}

impl OAuthMechanism {
    /// The SASL name.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthMechanism::Xoauth2 => "XOAUTH2",
            OAuthMechanism::Oauthbearer => "OAUTHBEARER",
        }
    }
}

/// How an account authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A password (IMAP LOGIN, SMTP PLAIN/LOGIN).
    Password(SecretSource),
    /// An OAuth2 access token printed by `command` (the convention of mbsync, aerc and
    /// himalaya), run again when the token is older than `lifetime` or the server refused it.
    Token {
        mechanism: OAuthMechanism,
        command: String,
        lifetime: Duration,
    },
}

impl Credential {
    /// What the secret is called in messages: "password" or "token".
    pub fn noun(&self) -> &'static str {
        match self {
            Credential::Password(_) => "password",
            Credential::Token { .. } => "token",
        }
    }
}

/// A secret value that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value read elsewhere (e.g. the secret a transport was built with).
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl SecretSource {
    /// Read the secret now. Errors name the source, never the value.
    pub async fn resolve(&self) -> anyhow::Result<Secret> {
        match self {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Secret(v)),
                Ok(_) => bail!("Environment variable {var} is empty"),
                Err(_) => bail!("Environment variable {var} is not set"),
            },
            SecretSource::Command(cmd) => first_line_of("password_command", cmd).await,
        }
    }
}

/// Run `cmd` with `sh -c` and return the first line it printed. `key` names the setting in
/// errors ("password_command", "token_command").
async fn first_line_of(key: &str, cmd: &str) -> anyhow::Result<Secret> {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(COMMAND_TIMEOUT, out).await {
        Ok(r) => r.with_context(|| format!("Running {key} {cmd:?}"))?,
        Err(_) => bail!(
            "{key} {cmd:?} did not finish within {}s",
            COMMAND_TIMEOUT.as_secs()
        ),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
        bail!("{key} {cmd:?} failed ({}): {err}", out.status);
    }
    let text = String::from_utf8(out.stdout).with_context(|| format!("{key} printed non-UTF-8"))?;
    let line = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .trim()
        .to_string();
    if line.is_empty() {
        bail!("{key} {cmd:?} printed nothing");
    }
    Ok(Secret(line))
}

/// How long a password or token command may run (an OAuth helper may talk to the provider).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The runtime handle of one account's credential. Clones share the token cache, so the inbox
/// and Sent watchers of one mailbox run the token command once between them.
#[derive(Debug, Clone)]
pub struct Login {
    pub credential: Credential,
    /// Held across a fetch, so watchers starting together run the command once.
    cached: Arc<tokio::sync::Mutex<Option<(Secret, Instant)>>>,
}

/// A secret as read for one login attempt.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub secret: Secret,
    /// Read just now (not from the cache): a refusal cannot be cured by reading it again.
    pub fresh: bool,
}

impl Login {
    pub fn new(credential: Credential) -> Login {
        Login {
            credential,
            cached: Arc::default(),
        }
    }

    /// The OAuth mechanism, when the account uses a token.
    pub fn mechanism(&self) -> Option<OAuthMechanism> {
        match self.credential {
            Credential::Token { mechanism, .. } => Some(mechanism),
            Credential::Password(_) => None,
        }
    }

    /// The secret to log in with. A password is read every time (a rotated one is picked up
    /// at the next connection); a token is reused until it is `lifetime` old.
    pub async fn get(&self) -> anyhow::Result<Fetched> {
        match &self.credential {
            Credential::Password(src) => Ok(Fetched {
                secret: src.resolve().await?,
                fresh: true,
            }),
            Credential::Token {
                command, lifetime, ..
            } => {
                let mut cached = self.cached.lock().await;
                if let Some((secret, at)) = cached.as_ref()
                    && at.elapsed() < *lifetime
                {
                    return Ok(Fetched {
                        secret: secret.clone(),
                        fresh: false,
                    });
                }
                let secret = first_line_of("token_command", command).await?;
                tracing::debug!("Fetched a new OAuth2 access token");
                *cached = Some((secret.clone(), Instant::now()));
                Ok(Fetched {
                    secret,
                    fresh: true,
                })
            }
        }
    }

    /// The server refused `refused`: the next [`Login::get`] runs the command again (unless
    /// another login already replaced that token).
    pub async fn forget(&self, refused: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|(s, _)| s.expose() == refused.expose())
        {
            *cached = None;
        }
    }
}

/// The SASL initial response for an OAuth2 token (RFC 7628 for OAUTHBEARER; Google's XOAUTH2).
pub fn sasl_token_response(
    mechanism: OAuthMechanism,
    user: &str,
    host: &str,
    port: u16,
    token: &str,
) -> String {
    match mechanism {
        OAuthMechanism::Xoauth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
        OAuthMechanism::Oauthbearer => {
            format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_login(dir: &std::path::Path, lifetime: Duration) -> Login {
        let counter = dir.join("n");
        Login::new(Credential::Token {
            mechanism: OAuthMechanism::Xoauth2,
            command: format!(
                "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo tok-$n",
                c = counter.display()
            ),
            lifetime,
        })
    }

    #[tokio::test]
    async fn tokens_are_cached_for_their_lifetime_and_forgotten_on_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let login = token_login(dir.path(), Duration::from_secs(3600));
        let a = login.get().await.unwrap();
        assert_eq!((a.secret.expose(), a.fresh), ("tok-1", true));
        let b = login.get().await.unwrap();
        assert_eq!((b.secret.expose(), b.fresh), ("tok-1", false));
        // A clone shares the cache.
        assert_eq!(login.clone().get().await.unwrap().secret.expose(), "tok-1");
        // Forgetting a token that is no longer the cached one changes nothing.
        login.forget(&Secret("tok-0".into())).await;
        assert_eq!(login.get().await.unwrap().secret.expose(), "tok-1");
        login.forget(&b.secret).await;
        assert_eq!(login.get().await.unwrap().secret.expose(), "tok-2");
    }

    #[tokio::test]
    async fn an_expired_token_is_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let login = token_login(dir.path(), Duration::ZERO);
        assert_eq!(login.get().await.unwrap().secret.expose(), "tok-1");
        let again = login.get().await.unwrap();
        assert_eq!((again.secret.expose(), again.fresh), ("tok-2", true));
    }

    #[tokio::test]
    async fn a_failing_token_command_is_one_readable_line() {
        let login = Login::new(Credential::Token {
            mechanism: OAuthMechanism::Xoauth2,
            command: "echo 'refresh token revoked' >&2\necho more >&2; exit 3".into(),
            lifetime: Duration::from_secs(60),
        });
        let e = format!("{:#}", login.get().await.unwrap_err());
        assert!(!e.contains('\n') || e.contains("\\n"), "{e}");
        assert!(
            e.contains("token_command") && e.contains("refresh token revoked more"),
            "{e}"
        );
    }

    #[test]
    fn sasl_responses() {
        assert_eq!(
            sasl_token_response(OAuthMechanism::Xoauth2, "u@x", "h", 993, "T"),
            "user=u@x\x01auth=Bearer T\x01\x01"
        );
        assert_eq!(
            sasl_token_response(OAuthMechanism::Oauthbearer, "u@x", "h", 993, "T"),
            "n,a=u@x,\x01host=h\x01port=993\x01auth=Bearer T\x01\x01"
        );
    }
}
