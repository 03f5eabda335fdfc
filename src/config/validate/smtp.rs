//! `[smtp]`: the server customer mail and staff mail go out through, and its limits.

use std::time::Duration;

use toml::Spanned;

use super::Validator;
use super::credential::RawCredential;
use crate::config::{RateLimit, SmtpConfig, Tls, raw};
use crate::units::parse_duration;

/// `[smtp] transaction_timeout` unless set (or `timeout`, when that is longer).
const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest `[smtp] transaction_timeout`: a send holds its outbox row that long.
const MAX_SMTP_TIMEOUT: Duration = Duration::from_secs(3600);

impl Validator<'_> {
    /// `None` when `from` is not a mailbox (reported): nothing could be sent.
    pub(super) fn smtp(&mut self, s: raw::Smtp) -> Option<SmtpConfig> {
        let tls = self.tls(&s.tls, &s.host);
        // lettre speaks XOAUTH2 but not OAUTHBEARER; Gmail and Microsoft 365 take both.
        let credential = self.credential(
            "smtp",
            RawCredential {
                auth: s.auth.as_ref(),
                env: s.password_env.as_ref(),
                command: s.password_command.as_ref(),
                token_command: s.token_command.as_ref(),
                token_lifetime: s.token_lifetime.as_ref(),
                required_at: s.username.as_ref(),
                oauthbearer: false,
            },
        );
        let from = match s.from.get_ref().parse::<lettre::message::Mailbox>() {
            Ok(mb) => Some(mb),
            Err(e) => {
                let msg = format!(
                    "from = {:?} is not a mailbox ({e}): use \"Support <support@example.com>\"",
                    s.from.get_ref()
                );
                self.err(&s.from, msg);
                None
            }
        };
        let timeout = self.duration(&s.timeout, Duration::from_secs(30));
        let transaction_timeout =
            self.transaction_timeout(&s.transaction_timeout, timeout, &s.timeout);
        let pushback_pause = self.duration(&s.pushback_pause, Duration::from_secs(300));
        let rate_limits = self.rate_limits(s.rate_limits.as_deref().unwrap_or_default());
        from.map(|from| SmtpConfig {
            port: s.port.unwrap_or(match tls {
                Tls::Implicit => 465,
                Tls::Starttls => 587,
                Tls::None => 25,
            }),
            host: s.host.into_inner(),
            tls,
            username: s.username.map(Spanned::into_inner),
            credential,
            from,
            ca_file: s.ca_file.map(|p| self.resolve(&p)),
            timeout,
            transaction_timeout,
            rate_limits,
            pushback_pause,
        })
    }

    /// Never shorter than one step (`timeout`) unless asked, and then refused.
    fn transaction_timeout(
        &mut self,
        value: &Option<Spanned<String>>,
        step: Duration,
        step_as_written: &Option<Spanned<String>>,
    ) -> Duration {
        let d = self.duration(value, DEFAULT_TRANSACTION_TIMEOUT.max(step));
        if let Some(at) = value
            && (d < step || d > MAX_SMTP_TIMEOUT)
        {
            self.err(
                at,
                format!(
                    "transaction_timeout must be at least timeout ({}) and at most 1h",
                    step_as_written
                        .as_ref()
                        .map_or("30s", |t| t.get_ref().as_str())
                ),
            );
        }
        d
    }

    fn rate_limits(&mut self, limits: &[raw::RateLimit]) -> Vec<RateLimit> {
        let mut out = Vec::new();
        for l in limits {
            let per = match parse_duration(l.per.get_ref()) {
                Ok(d) => d,
                Err(e) => {
                    self.err(&l.per, e);
                    continue;
                }
            };
            if *l.max.get_ref() == 0 {
                self.err(
                    &l.max,
                    "max must be at least 1 (to stop sending, set [ack] enabled = false)",
                );
            } else if per.is_zero() {
                self.err(
                    &l.per,
                    "per must be a positive duration such as \"1m\" or \"1d\"",
                );
            } else {
                out.push(RateLimit {
                    max: *l.max.get_ref(),
                    per,
                });
            }
        }
        out
    }
}
