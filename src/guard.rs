//! Auto-reply safety: may an automatic email go to the sender of this message at all?
//! Pure: a function of the email and the configuration; history-based limits live in the store.
//!
//! The checks are the union of what RFC 3834, Sieve vacation, RT, osTicket, Zammad, FreeScout and
//! Znuny look at, plus sender display names and subject prefixes, because many real bounces carry
//! no header signal at all (see `tests/it/corpus.rs`).

use crate::parse::{Address, Email};

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

/// Local part prefix of this daemon's own Message-IDs (`triaged.<tag>.<kind>.<n>@<domain>`).
pub const OWN_ID_PREFIX: &str = "triaged.";

/// Why no automatic reply may go out. Each has a stable code stored with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// No usable sender address.
    NoSender,
    /// Our own loop marker or Message-ID: this is our own mail coming back.
    OwnLoop,
    /// From a support address of ours.
    OwnAddress,
    /// From a configured staff address.
    StaffSender,
    /// `Return-Path: <>`: the null sender of bounces and auto-replies.
    NullSender,
    /// `Auto-Submitted` present and not `no` (RFC 3834).
    AutoSubmitted,
    /// `X-Auto-Response-Suppress` asks for no automatic replies (Exchange).
    AutoResponseSuppress,
    /// `X-Autoreply`, `X-Autorespond`, `X-Loop` and friends.
    AutoreplyHeader,
    /// `Precedence` / `X-Precedence` bulk, junk, list or auto_reply.
    Precedence,
    /// `List-Id`, `List-Unsubscribe` and the other list headers.
    ListHeader,
    /// A delivery-status, disposition or feedback report, `X-Failed-Recipients`, or a part only
    /// mail servers generate (`message/external-body`, used by announcement robots).
    DeliveryReport,
    /// A robot sender: mailer-daemon, postmaster, no-reply, list software, bounce addresses.
    RobotSender,
    /// Subject starts like a bounce or an out-of-office reply.
    AutoSubject,
    /// No support address among To/Cc while `require_addressed` is on.
    NotAddressed,
    /// The reply address is not one SMTP can deliver to (spaces, control characters, two
    /// addresses in one, an over-long part): an acknowledgement could never be sent.
    InvalidAddress,
}

impl Refusal {
    pub const ALL: [Refusal; 15] = [
        Refusal::NoSender,
        Refusal::OwnLoop,
        Refusal::OwnAddress,
        Refusal::StaffSender,
        Refusal::NullSender,
        Refusal::AutoSubmitted,
        Refusal::AutoResponseSuppress,
        Refusal::AutoreplyHeader,
        Refusal::Precedence,
        Refusal::ListHeader,
        Refusal::DeliveryReport,
        Refusal::RobotSender,
        Refusal::AutoSubject,
        Refusal::NotAddressed,
        Refusal::InvalidAddress,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Refusal::NoSender => "no_sender",
            Refusal::OwnLoop => "own_loop",
            Refusal::OwnAddress => "own_address",
            Refusal::StaffSender => "staff_sender",
            Refusal::NullSender => "null_sender",
            Refusal::AutoSubmitted => "auto_submitted",
            Refusal::AutoResponseSuppress => "auto_response_suppress",
            Refusal::AutoreplyHeader => "autoreply_header",
            Refusal::Precedence => "precedence",
            Refusal::ListHeader => "list_header",
            Refusal::DeliveryReport => "delivery_report",
            Refusal::RobotSender => "robot_sender",
            Refusal::AutoSubject => "auto_subject",
            Refusal::NotAddressed => "not_addressed",
            Refusal::InvalidAddress => "invalid_address",
        }
    }
}

const AUTOREPLY_HEADERS: &[&str] = &[
    "x-autoreply",
    "x-autorespond",
    "x-autoresponse",
    "x-autoreply-from",
    "x-mail-autoreply",
    "x-auto-reply",
    "x-loop",
    "x-no-loop",
];

const LIST_HEADERS: &[&str] = &[
    "list-id",
    "list-unsubscribe",
    "list-post",
    "list-owner",
    "list-subscribe",
    "list-help",
    "list-archive",
    "mailing-list",
    "x-mailing-list",
];

const REPORT_TYPES: &[&str] = &[
    "message/delivery-status",
    "message/disposition-notification",
    "message/feedback-report",
    "message/global-delivery-status",
    "message/external-body",
];

/// Subject prefixes of bounces and automatic replies (lower-case; compared after trimming).
const AUTO_SUBJECT_PREFIXES: &[&str] = &[
    "undeliverable",
    "undelivered mail",
    "undelivered message",
    "delivery status notification",
    "delivery notification",
    "delivery failure",
    "delivery report",
    "delivery status",
    "mail delivery failed",
    "mail delivery failure",
    "message delivery has failed",
    "returned mail",
    "mail system error",
    "failure notice",
    "delayed mail",
    "postmaster notify",
    "non-delivery",
    "nondeliverable",
    "warning: could not send message",
    "complaint about message from",
    "email feedback report",
    "auto reply",
    "auto-reply",
    "autoreply",
    "automatic reply",
    "auto response",
    "automatic response",
    "out of office",
    "out of the office",
    "abwesenheitsnotiz",
    "automatische antwort",
    "réponse automatique",
    "respuesta automática",
];

/// Display names that only mail systems use.
const ROBOT_NAMES: &[&str] = &[
    "mail delivery",
    "mailer daemon",
    "mailer-daemon",
    "postmaster",
    "mail deliver system",
];

/// Whether SMTP can deliver to `address` as we hold it (the addr-spec, unquoted): a dot-atom
/// local part of at most 64 octets, `@`, and a domain of labels (letters, digits, hyphens, or
/// non-ASCII letters of an internationalised name) of at most 253 octets, or an address
/// literal. RFC 5321 allows a quoted local part too, but the parser hands it over unquoted, so
/// what reaches here with a space or a quote in it is not what the customer wrote.
pub fn deliverable(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    // Non-ASCII letters and digits are allowed (internationalised addresses); not symbols,
    // format characters (bidi overrides) or U+FFFD, where a server or the parser replaced a
    // byte it could not read (a NUL, broken UTF-8).
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let dot_atom =
        |s: &str| !s.is_empty() && s.split('.').all(|a| !a.is_empty() && a.chars().all(atext));
    if local.len() > 64 || !dot_atom(local) {
        return false;
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return literal.parse::<std::net::IpAddr>().is_ok()
            || literal
                .strip_prefix("ipv6:")
                .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok());
    }
    domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
                })
        })
}

/// `Ok(())` when an automatic reply is allowed, else the first reason it is not.
pub fn check(email: &Email, cfg: &GuardConfig) -> Result<(), Refusal> {
    let Some(reply_to) = email.reply_address().filter(|a| a.email.contains('@')) else {
        return Err(Refusal::NoSender);
    };
    if email.header(LOOP_HEADER).is_some() || is_own_id(&email.message_id, &cfg.own_domain) {
        return Err(Refusal::OwnLoop);
    }
    // A control character in an address header (RFC 5322 allows none) is dropped or kept by
    // the parser at will: what is left is not surely the address the customer wrote.
    let controls = |name: &str| {
        email
            .header(name)
            .is_some_and(|v| v.chars().any(|c| c.is_control() && c != '\t'))
    };
    if !deliverable(&reply_to.email) || controls("from") || controls("reply-to") {
        return Err(Refusal::InvalidAddress);
    }
    let senders: Vec<&Address> = [email.from.as_ref(), email.sender.as_ref(), Some(reply_to)]
        .into_iter()
        .flatten()
        .collect();
    if senders
        .iter()
        .any(|a| cfg.support_addresses.contains(&a.email))
    {
        return Err(Refusal::OwnAddress);
    }
    if senders
        .iter()
        .any(|a| cfg.staff_addresses.contains(&a.email))
    {
        return Err(Refusal::StaffSender);
    }
    if email.return_path.as_deref() == Some("") {
        return Err(Refusal::NullSender);
    }
    if let Some(v) = email.header("auto-submitted") {
        let kind = v.split(';').next().unwrap_or("").trim();
        if !kind.eq_ignore_ascii_case("no") {
            return Err(Refusal::AutoSubmitted);
        }
    }
    if let Some(v) = email.header("x-auto-response-suppress") {
        let suppress = v.split([',', ' ']).map(str::trim).any(|t| {
            ["all", "oof", "autoreply"]
                .iter()
                .any(|s| t.eq_ignore_ascii_case(s))
        });
        if suppress {
            return Err(Refusal::AutoResponseSuppress);
        }
    }
    let has = |name: &str| email.headers.iter().any(|(n, _)| n == name);
    if AUTOREPLY_HEADERS.iter().any(|h| has(h))
        || email
            .header("x-autogenerated")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("reply"))
    {
        return Err(Refusal::AutoreplyHeader);
    }
    for name in ["precedence", "x-precedence"] {
        if let Some(v) = email.header(name) {
            let v = v.trim().to_ascii_lowercase();
            if ["bulk", "junk", "list", "auto_reply", "auto-reply"].contains(&v.as_str()) {
                return Err(Refusal::Precedence);
            }
        }
    }
    if LIST_HEADERS.iter().any(|h| has(h)) {
        return Err(Refusal::ListHeader);
    }
    if email.content_type == "multipart/report"
        || email
            .part_types
            .iter()
            .any(|t| REPORT_TYPES.contains(&t.as_str()))
        || has("x-failed-recipients")
    {
        return Err(Refusal::DeliveryReport);
    }
    let return_path = email.return_path.as_deref().map(|rp| Address {
        name: None,
        email: rp.to_string(),
    });
    if senders
        .iter()
        .copied()
        .chain(return_path.as_ref())
        .any(is_robot)
    {
        return Err(Refusal::RobotSender);
    }
    let subject = email.subject.trim().to_lowercase();
    let subject = subject.trim_start_matches(|c: char| !c.is_alphanumeric());
    if AUTO_SUBJECT_PREFIXES.iter().any(|p| subject.starts_with(p)) {
        return Err(Refusal::AutoSubject);
    }
    if cfg.require_addressed
        && !email
            .to
            .iter()
            .chain(&email.cc)
            .any(|a| cfg.support_addresses.contains(&a.email))
    {
        return Err(Refusal::NotAddressed);
    }
    Ok(())
}

/// One of this daemon's own Message-IDs.
pub fn is_own_id(message_id: &str, own_domain: &str) -> bool {
    match message_id.rsplit_once('@') {
        Some((local, domain)) => {
            local.starts_with(OWN_ID_PREFIX) && domain.eq_ignore_ascii_case(own_domain)
        }
        None => false,
    }
}

/// Addresses that only mail systems and list software write from.
fn is_robot(a: &Address) -> bool {
    let local = a.local_part();
    let exact = [
        "mailer-daemon",
        "mailer_daemon",
        "mailerdaemon",
        "postmaster",
        "post_master",
        "listserv",
        "majordomo",
        "abuse",
        "root",
        "mail.delivery.system",
    ];
    let robot_local = exact.contains(&local)
        || local.contains("ostmaster")
        || [
            "noreply",
            "no-reply",
            "no_reply",
            "donotreply",
            "do-not-reply",
            "do_not_reply",
            "bounce",
        ]
        .iter()
        .any(|p| local.starts_with(p))
        || local.ends_with("-request")
        || local.ends_with("-bounces")
        || local.starts_with("owner-")
        || local.ends_with("-owner");
    let name = a.name.as_deref().unwrap_or("").to_lowercase();
    robot_local || ROBOT_NAMES.iter().any(|n| name.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{ParseLimits, parse};

    fn cfg() -> GuardConfig {
        GuardConfig {
            support_addresses: vec!["support@example.com".into()],
            staff_addresses: vec!["alice@example.com".into()],
            own_domain: "support.example.com".into(),
            require_addressed: false,
        }
    }

    fn verdict(headers: &str, body_ct: &str) -> Result<(), Refusal> {
        let raw = format!("{headers}\r\n{body_ct}\r\n\r\nbody\r\n");
        let email = parse(raw.as_bytes(), &ParseLimits { max_size: 1 << 20 }).expect("parses");
        check(&email, &cfg())
    }

    const HUMAN: &str = "From: Ada <ada@customer.example>\r\nTo: support@example.com\r\nSubject: Help\r\nMessage-ID: <m1@customer.example>";

    #[test]
    fn each_signal_refuses() {
        let ct = "Content-Type: text/plain";
        let cases: Vec<(&str, String, &str, Refusal)> = vec![
            (
                "no from",
                "To: support@example.com\r\nSubject: x".into(),
                ct,
                Refusal::NoSender,
            ),
            (
                "loop header",
                format!("{HUMAN}\r\nX-Triaged-Loop: T-1001"),
                ct,
                Refusal::OwnLoop,
            ),
            (
                "own message id",
                HUMAN.replace(
                    "<m1@customer.example>",
                    "<triaged.t-1.ack.4@support.example.com>",
                ),
                ct,
                Refusal::OwnLoop,
            ),
            (
                "own address",
                HUMAN.replace("ada@customer.example", "Support@Example.com"),
                ct,
                Refusal::OwnAddress,
            ),
            (
                "staff",
                HUMAN.replace("ada@customer.example", "alice@example.com"),
                ct,
                Refusal::StaffSender,
            ),
            (
                "null return path",
                format!("Return-Path: <>\r\n{HUMAN}"),
                ct,
                Refusal::NullSender,
            ),
            (
                "auto-submitted",
                format!("{HUMAN}\r\nAuto-Submitted: auto-replied; owner-email=x@y"),
                ct,
                Refusal::AutoSubmitted,
            ),
            (
                "auto-submitted generated",
                format!("{HUMAN}\r\nAuto-Submitted: Auto-Generated"),
                ct,
                Refusal::AutoSubmitted,
            ),
            (
                "exchange suppress",
                format!("{HUMAN}\r\nX-Auto-Response-Suppress: DR, OOF"),
                ct,
                Refusal::AutoResponseSuppress,
            ),
            (
                "x-autoreply",
                format!("{HUMAN}\r\nX-Autoreply: yes"),
                ct,
                Refusal::AutoreplyHeader,
            ),
            (
                "x-loop",
                format!("{HUMAN}\r\nX-Loop: helpdesk"),
                ct,
                Refusal::AutoreplyHeader,
            ),
            (
                "x-autogenerated",
                format!("{HUMAN}\r\nX-Autogenerated: Reply"),
                ct,
                Refusal::AutoreplyHeader,
            ),
            (
                "precedence",
                format!("{HUMAN}\r\nPrecedence: Bulk"),
                ct,
                Refusal::Precedence,
            ),
            (
                "x-precedence",
                format!("{HUMAN}\r\nX-Precedence: auto_reply"),
                ct,
                Refusal::Precedence,
            ),
            (
                "list-id",
                format!("{HUMAN}\r\nList-Id: <l.example>"),
                ct,
                Refusal::ListHeader,
            ),
            (
                "list-unsubscribe",
                format!("{HUMAN}\r\nList-Unsubscribe: <mailto:u@l>"),
                ct,
                Refusal::ListHeader,
            ),
            (
                "report",
                HUMAN.to_string(),
                "Content-Type: multipart/report; report-type=delivery-status; boundary=b",
                Refusal::DeliveryReport,
            ),
            (
                "failed recipients",
                format!("{HUMAN}\r\nX-Failed-Recipients: x@y"),
                ct,
                Refusal::DeliveryReport,
            ),
            (
                "mailer-daemon",
                HUMAN.replace("Ada <ada@customer.example>", "MAILER-DAEMON@mx.example"),
                ct,
                Refusal::RobotSender,
            ),
            (
                "no-reply",
                HUMAN.replace("ada@customer.example", "no-reply@shop.example"),
                ct,
                Refusal::RobotSender,
            ),
            (
                "list request",
                HUMAN.replace("ada@customer.example", "users-request@lists.example"),
                ct,
                Refusal::RobotSender,
            ),
            (
                "owner-",
                HUMAN.replace("ada@customer.example", "owner-users@lists.example"),
                ct,
                Refusal::RobotSender,
            ),
            (
                "bounces",
                HUMAN.replace("ada@customer.example", "bounces+123@mailer.example"),
                ct,
                Refusal::RobotSender,
            ),
            (
                "delivery system name",
                HUMAN.replace(
                    "Ada <ada@customer.example>",
                    "Mail Delivery Subsystem <xyz@mx.example>",
                ),
                ct,
                Refusal::RobotSender,
            ),
            (
                "bounce subject",
                HUMAN.replace("Subject: Help", "Subject: Undeliverable: Help"),
                ct,
                Refusal::AutoSubject,
            ),
            (
                "auto reply subject",
                HUMAN.replace("Subject: Help", "Subject: Auto reply: Help"),
                ct,
                Refusal::AutoSubject,
            ),
            (
                "out of office",
                HUMAN.replace("Subject: Help", "Subject: Out of Office: Re: Help"),
                ct,
                Refusal::AutoSubject,
            ),
            (
                "hotmail feedback loop",
                HUMAN.replace(
                    "Subject: Help",
                    "Subject: complaint about message from 192.0.2.1",
                ),
                ct,
                Refusal::AutoSubject,
            ),
            (
                "external-body announcement",
                HUMAN.to_string(),
                "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/external-body; access-type=mail-server\r\n\r\nx\r\n--b--",
                Refusal::DeliveryReport,
            ),
        ];
        for (name, headers, ct, want) in cases {
            assert_eq!(verdict(&headers, ct), Err(want), "{name}");
        }
    }

    #[test]
    fn humans_pass() {
        let ct = "Content-Type: text/plain";
        let cases: Vec<(&str, String)> = vec![
            ("plain", HUMAN.to_string()),
            (
                "auto-submitted no means a human",
                format!("{HUMAN}\r\nAuto-Submitted: no"),
            ),
            (
                "vacation photos",
                HUMAN.replace("Subject: Help", "Subject: Re: my vacation photos"),
            ),
            (
                "asks about bounces",
                HUMAN.replace("Subject: Help", "Subject: Why are my emails undeliverable?"),
            ),
            (
                "reply to an undeliverable thread",
                HUMAN.replace("Subject: Help", "Subject: Re: Undeliverable: invoice"),
            ),
            (
                "a person named Root Beer",
                HUMAN.replace(
                    "Ada <ada@customer.example>",
                    "Root Beer <rootbeer@customer.example>",
                ),
            ),
            (
                "precedence first-class",
                format!("{HUMAN}\r\nPrecedence: first-class"),
            ),
            (
                "suppress only read receipts",
                format!("{HUMAN}\r\nX-Auto-Response-Suppress: RN, NRN"),
            ),
            (
                "undisclosed recipients",
                HUMAN.replace("To: support@example.com", "To: undisclosed-recipients:;"),
            ),
            (
                "customer on our domain, their own Message-ID",
                HUMAN.replace("<m1@customer.example>", "<CAF123@support.example.com>"),
            ),
        ];
        for (name, headers) in cases {
            assert_eq!(verdict(&headers, ct), Ok(()), "{name}");
        }
    }

    #[test]
    fn require_addressed() {
        let raw = HUMAN.replace("To: support@example.com", "To: someone@else.example");
        let email = parse(
            format!("{raw}\r\n\r\nbody").as_bytes(),
            &ParseLimits { max_size: 1 << 20 },
        )
        .expect("parses");
        assert_eq!(check(&email, &cfg()), Ok(()));
        let strict = GuardConfig {
            require_addressed: true,
            ..cfg()
        };
        assert_eq!(check(&email, &strict), Err(Refusal::NotAddressed));
    }

    #[test]
    fn addresses_smtp_cannot_deliver_to_are_refused() {
        for ok in [
            "ada@customer.example",
            "first.last+tag@mail.example.co.uk",
            "o'brien@example.ie",
            "user@localhost",
            "jörg@müller.example",
            "x@[192.0.2.1]",
        ] {
            assert!(deliverable(ok), "{ok}");
        }
        for bad in [
            "john smith@example.test",
            "a@example.test b@example.test",
            "nul\u{0}@example.test",
            "no-domain",
            "@example.test",
            "a..b@example.test",
            ".a@example.test",
            "a@",
            "a@-bad.example",
            "a@exa_mple.example",
            "a@[not-an-ip]",
            "\"quoted\"@example.test",
            "hostile\u{fffd}nul@example.test",
            "\u{202e}@example.test",
            "a\u{200b}b@example.test",
        ] {
            assert!(!deliverable(bad), "{bad:?}");
        }
        assert!(!deliverable(&format!("{}@example.test", "l".repeat(65))));
        assert!(!deliverable(&format!("a@{}.example", "d".repeat(64))));
        // Through the parser: what it makes of mangled From lines is refused, with its code.
        for from in [
            "From: \"john smith\"@example.test",
            "From: a@example.test b@example.test",
            "From: <nul\u{0}x@example.test>",
        ] {
            let headers = HUMAN.replace("From: Ada <ada@customer.example>", from);
            let got = verdict(&headers, "Content-Type: text/plain");
            assert!(
                matches!(got, Err(Refusal::InvalidAddress | Refusal::NoSender)),
                "{from:?}: {got:?}"
            );
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<&str> = Refusal::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Refusal::ALL.len());
    }
}
