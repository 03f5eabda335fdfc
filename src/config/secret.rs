//! Passwords come from the environment or a command, never from the config file by necessity.

use std::fmt;

use anyhow::{Context, bail};

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A shell command whose first line of output is the secret (e.g. `pass show mail/support`).
    Command(String),
}

/// A secret value that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
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
            SecretSource::Command(cmd) => {
                let out = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .await
                    .with_context(|| format!("Running password_command {cmd:?}"))?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr);
                    bail!(
                        "password_command {cmd:?} failed ({}): {}",
                        out.status,
                        err.trim()
                    );
                }
                let text = String::from_utf8(out.stdout)
                    .context("password_command printed non-UTF-8 output")?;
                let line = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('\r')
                    .to_string();
                if line.is_empty() {
                    bail!("password_command {cmd:?} printed nothing");
                }
                Ok(Secret(line))
            }
        }
    }
}
