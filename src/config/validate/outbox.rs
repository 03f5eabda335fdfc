//! `[outbox]`: retries, concurrency, and what proves a send went out.

use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::config::{MAX_SEND_CONCURRENCY, MailboxConfig, OutboxConfig, SmtpConfig, Witness, raw};

/// SMTP hosts known to file what their accounts send in the Sent folder.
const FILES_SENT: &[&str] = &[
    "smtp.gmail.com",
    "smtp.googlemail.com",
    "smtp.office365.com",
    "smtp-mail.outlook.com",
];

impl Validator<'_> {
    pub(super) fn outbox(
        &mut self,
        outbox: raw::Outbox,
        mailboxes: &[MailboxConfig],
        smtp: Option<&SmtpConfig>,
    ) -> OutboxConfig {
        let retry_initial = self.duration(&outbox.retry_initial, Duration::from_secs(30));
        let retry_max = self.duration(&outbox.retry_max, Duration::from_secs(3600));
        // At least a second: a refused account must not be hammered.
        let account_retry = self
            .duration(&outbox.account_retry, Duration::from_secs(60))
            .max(Duration::from_secs(1));
        let concurrency = match &outbox.concurrency {
            Some(c) if *c.get_ref() == 0 || *c.get_ref() > MAX_SEND_CONCURRENCY => {
                self.err(
                    c,
                    format!("concurrency is 1 to {MAX_SEND_CONCURRENCY} (SMTP transactions in flight at once)"),
                );
                3
            }
            Some(c) => *c.get_ref() as usize,
            None => 3,
        };
        let watches_sent = mailboxes.iter().any(|m| m.sent_folder.is_some());
        let files_sent =
            smtp.is_some_and(|s| FILES_SENT.iter().any(|h| s.host.eq_ignore_ascii_case(h)));
        let witness = self.witness(outbox.witness.as_ref(), files_sent, watches_sent);
        let witness_grace = self.duration(&outbox.witness_grace, Duration::from_secs(120));
        OutboxConfig {
            max_attempts: outbox.max_attempts.unwrap_or(10).max(1),
            retry_initial,
            retry_max,
            account_retry,
            concurrency,
            witness,
            witness_grace,
        }
    }

    /// `witness`: "auto" (the default) is the Sent folder where the provider files copies
    /// itself and a mailbox watches it, a Bcc to ourselves otherwise.
    fn witness(
        &mut self,
        value: Option<&Spanned<String>>,
        files_sent: bool,
        watches_sent: bool,
    ) -> Witness {
        match value.map(|w| (w, w.get_ref().as_str())) {
            None | Some((_, "auto")) if files_sent && watches_sent => Witness::Sent,
            None | Some((_, "auto" | "bcc")) => Witness::Bcc,
            Some((w, "sent")) => {
                if !watches_sent {
                    self.err(
                        w,
                        "witness = \"sent\" needs a [mailbox] sent_folder to look for the copies in",
                    );
                }
                Witness::Sent
            }
            Some((_, "none")) => Witness::Off,
            Some((w, other)) => {
                self.err(
                    w,
                    format!(
                        "witness = {other:?}: expected \"auto\", \"bcc\", \"sent\" or \"none\""
                    ),
                );
                Witness::Off
            }
        }
    }
}
