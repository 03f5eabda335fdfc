//! The credential of `[mailbox]` or `[smtp]`: a password source or an OAuth2 token command.

use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::config::{Credential, OAuthMechanism, SecretSource};

/// The credential keys of `[mailbox]` or `[smtp]`, as written.
pub(super) struct RawCredential<'r> {
    pub(super) auth: Option<&'r Spanned<String>>,
    pub(super) env: Option<&'r Spanned<String>>,
    pub(super) command: Option<&'r Spanned<String>>,
    pub(super) token_command: Option<&'r Spanned<String>>,
    pub(super) token_lifetime: Option<&'r Spanned<String>>,
    /// The username, when one is set: a credential is then required.
    pub(super) required_at: Option<&'r Spanned<String>>,
    /// Whether OAUTHBEARER is offered (IMAP) or only XOAUTH2 (SMTP through lettre).
    pub(super) oauthbearer: bool,
}

impl Validator<'_> {
    /// The credential of `[section]`: `auth` (default "password", or "xoauth2" when a
    /// token_command is set), and exactly one source for it. `required_at` is the username
    /// when one is set (a credential is needed); without it none may be given.
    pub(super) fn credential(&mut self, section: &str, c: RawCredential<'_>) -> Option<Credential> {
        let auth = match c.auth {
            Some(a) => a.get_ref().as_str(),
            None if c.token_command.is_some() => "xoauth2",
            None => "password",
        };
        let mechanism = match auth {
            "password" => None,
            "xoauth2" => Some(OAuthMechanism::Xoauth2),
            "oauthbearer" if c.oauthbearer => Some(OAuthMechanism::Oauthbearer),
            other => {
                let choices = if c.oauthbearer {
                    "\"password\", \"xoauth2\" or \"oauthbearer\""
                } else {
                    "\"password\" or \"xoauth2\""
                };
                if let Some(at) = c.auth {
                    self.err(at, format!("unknown auth {other:?}: use {choices}"));
                }
                return None;
            }
        };
        match mechanism {
            None => self.password(section, &c),
            Some(mechanism) => self.token(section, auth, mechanism, &c),
        }
    }

    /// `auth = "password"`: exactly one of password_env and password_command.
    fn password(&mut self, section: &str, c: &RawCredential<'_>) -> Option<Credential> {
        if let Some(t) = c.token_command.or(c.token_lifetime) {
            self.err(
                t,
                format!("[{section}] token_command and token_lifetime need auth = \"xoauth2\" (or \"oauthbearer\")"),
            );
        }
        match (c.env, c.command) {
            (Some(e), None) => Some(Credential::Password(SecretSource::Env(e.get_ref().clone()))),
            (None, Some(cmd)) => Some(Credential::Password(SecretSource::Command(
                cmd.get_ref().clone(),
            ))),
            (Some(_), Some(cmd)) => {
                self.err(
                    cmd,
                    format!("[{section}] has both password_env and password_command: keep one"),
                );
                None
            }
            (None, None) => {
                if let Some(at) = c.required_at {
                    self.err(
                        at,
                        format!(
                            "[{section}] needs a password source: set password_env = \"VAR\" or password_command = \"cmd\" (never the password itself), or token_command for OAuth2"
                        ),
                    );
                }
                None
            }
        }
    }

    /// An OAuth2 `auth`: a token_command (and no password source).
    fn token(
        &mut self,
        section: &str,
        auth: &str,
        mechanism: OAuthMechanism,
        c: &RawCredential<'_>,
    ) -> Option<Credential> {
        if let Some(p) = c.env.or(c.command) {
            self.err(
                p,
                format!("[{section}] uses auth = \"{auth}\": the token comes from token_command, drop the password source"),
            );
        }
        let lifetime = self.duration(&c.token_lifetime.cloned(), Duration::from_secs(50 * 60));
        if lifetime < Duration::from_secs(10)
            && let Some(at) = c.token_lifetime
        {
            self.err(at, "token_lifetime must be at least 10s");
        }
        let Some(command) = c.token_command else {
            let at = c.auth.or(c.required_at);
            if let Some(at) = at {
                self.err(
                    at,
                    format!("[{section}] auth = \"{auth}\" needs token_command = \"cmd\": a command that prints a fresh access token"),
                );
            }
            return None;
        };
        if c.required_at.is_none() && section == "smtp" {
            self.err(
                command,
                "[smtp] token_command needs username (the account the token is for)",
            );
        }
        Some(Credential::Token {
            mechanism,
            command: command.get_ref().clone(),
            lifetime,
        })
    }
}
