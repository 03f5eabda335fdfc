//! An IMAP client into the stack's Dovecot, to look at what the daemon did: login, fetch a
//! folder, wait for it to change, append; bearer-token logins; raw command sessions.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures::TryStreamExt;

use super::MailStack;

/// A message read back over IMAP.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub uid: u32,
    pub flags: Vec<String>,
    pub raw: Vec<u8>,
}

impl MailStack {
    async fn login(&self, user: &str) -> async_imap::Session<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .expect("connect imap");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("greeting")
            .expect("greeting");
        client
            .login(user, self.opts.password)
            .await
            .map_err(|(e, _)| e)
            .expect("login")
    }

    /// Every message in a folder (BODY.PEEK, so nothing is marked read).
    pub async fn fetch_all(&self, user: &str, folder: &str) -> Vec<Fetched> {
        let mut s = self.login(user).await;
        let mbox = match s.select(folder).await {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        if mbox.exists > 0 {
            let fetches: Vec<_> = s
                .uid_fetch("1:*", "(UID FLAGS BODY.PEEK[])")
                .await
                .expect("fetch")
                .try_collect()
                .await
                .expect("fetch");
            for f in fetches {
                out.push(Fetched {
                    uid: f.uid.unwrap_or(0),
                    flags: f.flags().map(|fl| flag_name(&fl)).collect(),
                    raw: f.body().unwrap_or_default().to_vec(),
                });
            }
        }
        s.logout().await.ok();
        out.sort_by_key(|f| f.uid);
        out
    }

    /// Re-read a folder until `pred` holds or `timeout` passes; returns the last state either way.
    pub async fn wait_for(
        &self,
        user: &str,
        folder: &str,
        pred: impl Fn(&[Fetched]) -> bool,
        timeout: Duration,
    ) -> Vec<Fetched> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.fetch_all(user, folder).await;
            if pred(&msgs) || Instant::now() > deadline {
                return msgs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// APPEND a message to a folder (created if missing).
    pub async fn append(&self, user: &str, folder: &str, raw: &[u8]) {
        self.append_many(user, folder, &[raw.to_vec()], None).await;
    }

    /// APPEND messages over one session, optionally with an INTERNALDATE (arrival time) such
    /// as `"\"12-Nov-2026 10:00:00 +0000\""` (quoted: async-imap sends it as given).
    pub async fn append_many(
        &self,
        user: &str,
        folder: &str,
        msgs: &[Vec<u8>],
        internaldate: Option<&str>,
    ) {
        let mut s = self.login(user).await;
        let _ = s.create(folder).await;
        for raw in msgs {
            s.append(folder, None, internaldate, raw)
                .await
                .expect("append");
        }
        s.logout().await.ok();
    }

    /// An IMAP session over `AUTHENTICATE XOAUTH2` or `AUTHENTICATE OAUTHBEARER` with a bearer
    /// token (plain text to the loopback port). A refused token is an `Err` (Dovecot answers
    /// with a JSON error challenge, to which the empty response is sent, then NO).
    pub async fn authenticate(
        &self,
        mechanism: &str,
        user: &str,
        token: &str,
    ) -> Result<async_imap::Session<tokio::net::TcpStream>, async_imap::error::Error> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .expect("connect imap");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("greeting")
            .expect("greeting");
        let initial = match mechanism {
            "XOAUTH2" => xoauth2_response(user, token),
            "OAUTHBEARER" => oauthbearer_response(user, token),
            other => panic!("not a bearer-token mechanism: {other}"),
        };
        client
            .authenticate(
                mechanism,
                BearerAuth {
                    initial: Some(initial.into_bytes()),
                },
            )
            .await
            .map_err(|(e, _)| e)
    }

    /// One plain-text IMAP session as `user` (LOGIN with the password), then each command in
    /// turn (without tag), over a blocking socket; returns, for each command, the lines the server sent for it: the
    /// untagged ones, then the tagged reply (CRLF stripped, literals inlined).
    pub fn imap_raw(&self, user: &str, commands: &[&str]) -> Vec<Vec<String>> {
        let stream = TcpStream::connect(("127.0.0.1", self.imap_port)).expect("connect imap");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut w = stream.try_clone().expect("clone");
        let mut r = BufReader::new(stream);
        let mut greeting = String::new();
        r.read_line(&mut greeting).expect("greeting");
        let mut run = |tag: &str, cmd: &str| -> Vec<String> {
            write!(w, "{tag} {cmd}\r\n").expect("write");
            let mut lines = Vec::new();
            loop {
                let line = read_imap_line(&mut r);
                let done = line.starts_with(&format!("{tag} "));
                lines.push(line);
                if done {
                    return lines;
                }
            }
        };
        let login = run("l", &format!("LOGIN \"{user}\" \"{}\"", self.opts.password));
        assert!(
            login.last().is_some_and(|l| l.starts_with("l OK")),
            "login: {login:?}"
        );
        let out = commands
            .iter()
            .enumerate()
            .map(|(i, c)| run(&format!("c{i}"), c))
            .collect();
        run("z", "LOGOUT");
        out
    }
}

/// One IMAP response line with any `{n}` literals read and inlined.
fn read_imap_line(r: &mut impl BufRead) -> String {
    let mut out = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).expect("read imap");
        assert!(n > 0, "IMAP connection closed after {out:?}");
        let line = line.trim_end_matches(['\r', '\n']);
        out.push_str(line);
        let literal = line
            .strip_suffix('}')
            .and_then(|l| l.rsplit_once('{'))
            .and_then(|(_, n)| n.trim_end_matches('+').parse::<usize>().ok());
        match literal {
            Some(n) => {
                let mut buf = vec![0; n];
                r.read_exact(&mut buf).expect("read literal");
                out.push_str(&String::from_utf8_lossy(&buf));
            }
            None => return out,
        }
    }
}

/// The XOAUTH2 initial client response (Google's and Microsoft's SASL mechanism).
fn xoauth2_response(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

/// The OAUTHBEARER initial client response (RFC 7628).
fn oauthbearer_response(user: &str, token: &str) -> String {
    format!("n,a={user},\x01auth=Bearer {token}\x01\x01")
}

/// Sends the initial response at the first (empty) challenge; answers any later challenge (the
/// JSON error a server sends before refusing a token) with the empty response SASL expects.
struct BearerAuth {
    initial: Option<Vec<u8>>,
}

impl async_imap::Authenticator for BearerAuth {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.initial.take().unwrap_or_default()
    }
}

fn flag_name(f: &async_imap::types::Flag<'_>) -> String {
    use async_imap::types::Flag;
    match f {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::MayCreate => "\\*".into(),
        Flag::Custom(s) => s.to_string(),
    }
}
