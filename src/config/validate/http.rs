//! `[http]`: the read-only endpoint for health, metrics and the status page.

use std::net::SocketAddr;

use super::Validator;
use crate::config::{DEFAULT_HTTP_PORT, HttpConfig, raw};

impl Validator<'_> {
    /// `None`: no `[http]`, or `enabled = false`, or a `listen` that is not an address.
    pub(super) fn http(&mut self, http: Option<raw::Http>) -> Option<HttpConfig> {
        let h = http?;
        let listen = match &h.listen {
            None => SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT)),
            Some(l) => match l.get_ref().parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => {
                    self.err(l, format!("listen = {:?} is not an address and port such as \"127.0.0.1:{DEFAULT_HTTP_PORT}\"", l.get_ref()));
                    return None;
                }
            },
        };
        if !listen.ip().is_loopback()
            && !h.allow_remote.unwrap_or(false)
            && let Some(l) = &h.listen
        {
            self.err(l, "the status page shows customers' addresses and subjects: listen on loopback (and put an authenticating proxy in front), or set allow_remote = true");
        }
        h.enabled.unwrap_or(true).then_some(HttpConfig { listen })
    }
}
