//! `[support]`: our own addresses and domain, and who counts as staff.

use super::Validator;
use crate::config::{SupportConfig, raw};

impl Validator<'_> {
    pub(super) fn support(&mut self, support: raw::Support) -> SupportConfig {
        let addresses: Vec<String> = support.addresses.iter().map(|a| self.address(a)).collect();
        let staff: Vec<String> = support.staff.iter().map(|a| self.address(a)).collect();
        if addresses.is_empty() {
            self.err_file("[support] addresses is empty: list the support address(es)");
        }
        let domain = support.domain.get_ref().trim().to_ascii_lowercase();
        if domain.is_empty()
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            self.err(
                &support.domain,
                "domain must be a DNS name such as \"support.example.com\"",
            );
        }
        SupportConfig {
            addresses,
            staff,
            domain,
            require_addressed: support.require_addressed.unwrap_or(false),
        }
    }
}
