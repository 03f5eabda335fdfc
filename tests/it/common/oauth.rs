//! An OAuth2 token-introspection endpoint (RFC 7662) on loopback, in threads: Dovecot's oauth2
//! passdb and the SMTP server ask it whether a bearer token is active, and the test issues and
//! revokes tokens.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::MailStack;

/// One question the introspection endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub token: String,
    /// What it answered.
    pub active: bool,
    /// Who asked: the HTTP User-Agent, `dovecot-oauth2-passdb/2.3.19.1` for IMAP logins,
    /// `triaged-test-smtp` for SMTP AUTH.
    pub agent: String,
}

// `from_*`: who the question came from, not a conversion.
#[allow(clippy::wrong_self_convention)]
impl Introspection {
    pub fn from_imap(&self) -> bool {
        self.agent.starts_with("dovecot")
    }
    pub fn from_smtp(&self) -> bool {
        self.agent == "triaged-test-smtp"
    }
}

struct TokenInfo {
    user: String,
    active: bool,
}

#[derive(Default)]
struct OauthState {
    tokens: HashMap<String, TokenInfo>,
    seen: Vec<Introspection>,
}

/// A minimal RFC 7662 token-introspection endpoint on a loopback port, in threads: one request
/// per connection (it answers `Connection: close`).
pub struct OauthServer {
    pub port: u16,
    state: Arc<Mutex<OauthState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OauthServer {
    pub fn start() -> OauthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind introspection endpoint");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(OauthState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || {
                        if let Err(e) = serve_introspection(conn, &state) {
                            eprintln!("introspection endpoint: {e}");
                        }
                    });
                }
            })
        };
        OauthServer {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for OauthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_introspection(conn: TcpStream, state: &Mutex<OauthState>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    let mut request_line = String::new();
    if r.read_line(&mut request_line)? == 0 {
        return Ok(()); // the wake-up connection of Drop
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (mut length, mut agent) = (0usize, String::new());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "user-agent" => agent = value.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let form = if method == "POST" {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        query.to_string()
    };
    let token = form
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| form_decode(v));
    let (status, json) = match (path, token) {
        ("/introspect", Some(token)) => {
            let mut st = state.lock().expect("lock");
            let user = st
                .tokens
                .get(&token)
                .filter(|t| t.active)
                .map(|t| t.user.clone());
            st.seen.push(Introspection {
                token,
                active: user.is_some(),
                agent,
            });
            let json = match user {
                Some(u) => serde_json::json!({
                    "active": true,
                    "username": u,
                    "token_type": "Bearer",
                    "scope": "IMAP.AccessAsUser.All SMTP.Send",
                }),
                None => serde_json::json!({ "active": false }),
            };
            ("200 OK", json)
        }
        ("/introspect", None) => (
            "400 Bad Request",
            serde_json::json!({ "error": "invalid_request" }),
        ),
        _ => ("404 Not Found", serde_json::json!({ "error": "not_found" })),
    };
    let body = json.to_string();
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

/// application/x-www-form-urlencoded value decoding.
fn form_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            x => out.push(x),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl MailStack {
    fn oauth_server(&self) -> &OauthServer {
        self.oauth
            .as_ref()
            .expect("the stack runs without OAuth (StackOptions { oauth: true, .. })")
    }

    /// The token-introspection endpoint (RFC 7662: POST `token=…`, answers
    /// `{"active":true,"username":…}` or `{"active":false}`), when `oauth` is on.
    pub fn introspection_url(&self) -> Option<String> {
        self.oauth
            .as_ref()
            .map(|o| format!("http://127.0.0.1:{}/introspect", o.port))
    }

    /// A new random opaque bearer token, active for `user` until revoked.
    pub fn issue_token(&self, user: &str) -> String {
        let token = format!("tok-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        self.oauth_server()
            .state
            .lock()
            .expect("lock")
            .tokens
            .insert(
                token.clone(),
                TokenInfo {
                    user: user.to_string(),
                    active: true,
                },
            );
        token
    }

    /// From now on the endpoint answers `active: false` for this token (Dovecot caches nothing,
    /// so the next login with it fails).
    pub fn revoke_token(&self, token: &str) {
        if let Some(t) = self
            .oauth_server()
            .state
            .lock()
            .expect("lock")
            .tokens
            .get_mut(token)
        {
            t.active = false;
        }
    }

    /// Every question the introspection endpoint answered, oldest first (IMAP and SMTP alike;
    /// see `Introspection::agent`). One per login attempt with a token: nothing is cached.
    pub fn introspections(&self) -> Vec<Introspection> {
        self.oauth_server().state.lock().expect("lock").seen.clone()
    }
}
