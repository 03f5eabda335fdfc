//! `[store]`: the SQLite file, how long a write waits for a lock, and whether the customers'
//! own words are kept for `triaged tune --store --learn`.

use super::Validator;
use crate::config::{StoreConfig, raw};

impl Validator<'_> {
    pub(super) fn store(&mut self, store: raw::Store) -> StoreConfig {
        let busy_timeout = self.duration_where(
            &store.busy_timeout,
            crate::config::DEFAULT_BUSY_TIMEOUT,
            |d| !d.is_zero(),
            "busy_timeout must be more than 0: a write would fail at the first lock another task holds",
        );
        StoreConfig {
            path: self.resolve(&store.path),
            busy_timeout,
            keep_text: store.keep_text.unwrap_or(true),
        }
    }
}
