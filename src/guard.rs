//! Auto-reply safety: may an automatic email go to the sender of this message at all?
//! Pure: a function of the email and the configuration; history-based limits live elsewhere.

use crate::parse::Email;

/// What the guard needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    /// The support address(es), lower-cased.
    pub support_addresses: Vec<String>,
    /// Staff addresses, lower-cased.
    pub staff_addresses: Vec<String>,
    /// The domain of this daemon's own Message-IDs (e.g. `support.example.com`).
    pub own_domain: String,
    /// Refuse when no support address is among To/Cc (implicit delivery, Bcc, lists).
    pub require_addressed: bool,
}

/// Name of the loop-marker header every automatic email of this daemon carries.
pub const LOOP_HEADER: &str = "X-Triaged-Loop";

/// Why no automatic reply may go out. Each has a stable code stored with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    Placeholder,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        "placeholder"
    }
}

/// `Ok(())` when an automatic reply is allowed, else the first reason it is not.
pub fn check(email: &Email, cfg: &GuardConfig) -> Result<(), Refusal> {
    let _ = (email, cfg);
    todo!("guard")
}
