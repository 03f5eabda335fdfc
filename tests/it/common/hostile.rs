//! Hostile and odd emails, generated (never stored): each one a way a single email has cost
//! the daemon its memory, its CPU or an acknowledgement. Shared by the hostile-mail test
//! (tests/it/hostile.rs), the per-email cost bench (benches/hostile.rs) and the mutation test.
//!
//! Every case is a complete RFC 5322 message from a distinct customer address
//! (`hostile-N@example.test`), so each one opens its own ticket when it survives to triage.

/// One generated email: a short name for reports, and its bytes.
pub struct Case {
    pub name: &'static str,
    pub raw: Vec<u8>,
}

/// Headers of a plain customer email from `from`, with `extra` lines (each ending CRLF).
pub fn head(n: usize, subject: &str, extra: &str) -> String {
    format!(
        "From: Customer {n} <hostile-{n}@example.test>\r\nTo: support@example.test\r\n\
         Subject: {subject}\r\nMessage-ID: <hostile-{n}-{subject_len}@example.test>\r\n\
         Date: Wed, 02 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n{extra}",
        subject_len = subject.len()
    )
}

pub fn html(n: usize, name: &'static str, body: String) -> Case {
    let mut raw = head(n, name, "Content-Type: text/html; charset=utf-8\r\n\r\n");
    raw.push_str(&body);
    raw.push_str("\r\n");
    Case {
        name,
        raw: raw.into_bytes(),
    }
}

fn plain(n: usize, name: &'static str, extra: &str, body: &str) -> Case {
    let mut raw = head(n, name, extra);
    raw.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    raw.push_str(body);
    raw.push_str("\r\n");
    Case {
        name,
        raw: raw.into_bytes(),
    }
}

/// The whole set, each sized to hurt (a few MB at most, well under the default 25 MB limit,
/// so that the test suite stays quick; the bench scales some of them up with `scale`).
pub fn cases(scale: usize) -> Vec<Case> {
    let s = scale.max(1);
    let mut out = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };

    // HTML that made html2text allocate gigabytes or run for minutes.
    out.push(html(
        next(),
        "deep-html",
        format!(
            "<html><body>{}outage{}</body></html>",
            "<div>".repeat(100_000 * s),
            "</div>".repeat(10)
        ),
    ));
    out.push(html(
        next(),
        "wide-table",
        format!("<table><tr>{}</tr></table>", "<td>x".repeat(200_000 * s)),
    ));
    out.push(html(
        next(),
        "tall-table",
        format!(
            "<table>{}</table>",
            "<tr><td>x</td></tr>".repeat(60_000 * s)
        ),
    ));
    out.push(html(
        next(),
        "deep-lists",
        format!(
            "{}down{}",
            "<ul><li>".repeat(50_000 * s),
            "</li></ul>".repeat(5)
        ),
    ));
    out.push(html(
        next(),
        "unclosed-attribute",
        format!("<p title=\"{}>hello</p>", "a".repeat(1_000_000 * s)),
    ));
    out.push(html(next(), "comment-flood", "<!--".repeat(200_000 * s)));

    // MIME structures whose boundaries never close.
    let mut body = String::from("This is a multi-part message.\r\n");
    for i in 0..20_000 * s {
        body.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    out.push(plain_multipart(next(), "unclosed-parts", &body));
    // Parts that are multiparts themselves, none closed: each inner part's end is searched
    // for to the end of the message.
    let mut body = String::new();
    for i in 0..4_000 * s {
        body.push_str(&format!(
            "--b\r\nContent-Type: multipart/mixed; boundary=\"c{i}\"\r\n\r\n--c{i}\r\n\
             Content-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    out.push(plain_multipart(next(), "unclosed-inner-parts", &body));
    let mut body = String::new();
    for i in 0..5_000 * s {
        body.push_str(&format!(
            "--b{i}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n",
            i + 1
        ));
    }
    body.push_str("the end\r\n");
    out.push(Case {
        name: "nested-multipart",
        raw: format!(
            "{}Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n{body}",
            head(next(), "nested-multipart", "")
        )
        .into_bytes(),
    });
    let mut body = String::new();
    for _ in 0..5_000 * s {
        body.push_str("Content-Type: message/rfc822\r\n\r\nFrom: x@example.test\r\n");
    }
    out.push(Case {
        name: "nested-rfc822",
        raw: format!("{}{body}", head(next(), "nested-rfc822", "")).into_bytes(),
    });

    // Scoring: every match looked back to the clause start; negated ones never filled max_hits.
    out.push(plain(
        next(),
        "negation-flood",
        "",
        &"not outage ".repeat(25_000 * s),
    ));
    out.push(plain(
        next(),
        "one-long-clause",
        "",
        &format!("{} urgent", "word ".repeat(100_000 * s)),
    ));
    out.push(plain(
        next(),
        "keyword-flood",
        "",
        &"urgent down refund angry ".repeat(20_000 * s),
    ));

    // Headers that made an acknowledgement unsendable, or threading slow.
    let long = "x".repeat(2_000);
    out.push(Case {
        name: "long-subject",
        raw: head(
            next(),
            &long,
            "Content-Type: text/plain\r\n\r\nMy order is late.\r\n",
        )
        .into_bytes(),
    });
    let words: String = (0..100)
        .map(|_| "=?UTF-8?B?w6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6k=?=")
        .collect();
    let n1 = next();
    out.push(Case {
        name: "adjacent-encoded-words",
        raw: head(
            n1,
            &words,
            "Content-Type: text/plain\r\n\r\nHelp please.\r\n",
        )
        .into_bytes(),
    });
    let n2 = next();
    out.push(Case {
        name: "long-display-name",
        raw: format!(
            "From: \"{}\" <hostile-{n2}@example.test>\r\nTo: support@example.test\r\nSubject: name\r\n\
             Message-ID: <hostile-{n2}@example.test>\r\n\r\nMy invoice is wrong.\r\n",
            "N".repeat(3_000)
        )
        .into_bytes(),
    });
    let n3 = next();
    out.push(Case {
        name: "long-message-id",
        raw: format!(
            "From: <hostile-{n3}@example.test>\r\nTo: support@example.test\r\nSubject: id\r\n\
             Message-ID: <{}@example.test>\r\n\r\nThe site is down.\r\n",
            "i".repeat(3_000)
        )
        .into_bytes(),
    });
    let refs: String = (0..100_000 * s)
        .map(|i| format!(" <ref-{i}@example.test>"))
        .collect();
    out.push(plain(
        next(),
        "many-references",
        &format!(
            "References:{refs}\r\nIn-Reply-To:{}\r\n",
            &refs[..refs.len().min(200_000)]
        ),
        "Any news?",
    ));
    let many: String = (0..100_000 * s).map(|i| format!("X-H{i}: v\r\n")).collect();
    out.push(plain(next(), "many-headers", &many, "Hello"));
    out.push(plain(
        next(),
        "one-huge-line",
        "",
        &"a".repeat(4_000_000 * s),
    ));

    // Addresses a parser mangles.
    for (name, from) in [
        (
            "quoted-local-part",
            "\"john smith\"@example.test".to_string(),
        ),
        ("nul-in-address", "hostile\u{0}nul@example.test".to_string()),
        (
            "two-addresses-in-one",
            "a@example.test b@example.test".to_string(),
        ),
        ("no-domain", "just-a-name".to_string()),
        (
            "crlf-in-name",
            "\"Eve =?UTF-8?Q?=0D=0ABcc:_x@evil.test?=\" <eve@example.test>".to_string(),
        ),
    ] {
        let n = next();
        out.push(Case {
            name,
            raw: format!(
                "From: {from}\r\nTo: support@example.test\r\nSubject: {name}\r\n\
                 Message-ID: <hostile-{n}@example.test>\r\n\r\nPlease help, I was charged twice.\r\n"
            )
            .into_bytes(),
        });
    }
    out
}

fn plain_multipart(n: usize, name: &'static str, body: &str) -> Case {
    let mut raw = head(
        n,
        name,
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    raw.push_str(body);
    Case {
        name,
        raw: raw.into_bytes(),
    }
}
