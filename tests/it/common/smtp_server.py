"""A real SMTP server for tests (aiosmtpd): accepts mail, delivers it into Dovecot over LMTP, logs
every message to received.jsonl, and refuses on demand (the file smtp_mode in its directory).

usage: smtp_server.py DIR PORT LMTP_PORT [INTROSPECTION_URL]
modes: accept (default), tempfail (451), ratelimit (421), permfail (550) refuse every RCPT;
sender_refused refuses every MAIL FROM as Postfix refuses an address the account may not send as
(553 5.7.1 <addr>: Sender address rejected: not owned by user), until the mode changes back;
strict accepts, but refuses a message with a line over 998 octets after DATA (500 5.5.2 Line too
long), as strict servers do (aiosmtpd itself only refuses lines over 1001 octets).
hang_rcpt answers MAIL FROM, then never answers RCPT TO; hang_data takes the whole message, then
never answers its final "."; both until the mode changes, and then refuse (451) instead of
delivering: the client has given up on that transaction.
Every refusal (and every hang) is logged to refused.jsonl.

DIR/rcpt_replies.json ({"address": "reply", ...}, read at each RCPT) refuses those recipients with
the reply given, whatever the mode, and logs it to refused.jsonl with mode "rcpt_reply".

SMTP_TLS=implicit in the environment serves TLS from the first byte, SMTP_TLS=starttls offers and
requires STARTTLS; both with DIR/server.crt and DIR/server.key.

With INTROSPECTION_URL (the harness's OAuth2 token-introspection endpoint) the server requires AUTH
on the plain connection: PLAIN and LOGIN for the users in DIR/passwd, XOAUTH2 and OAUTHBEARER with a
bearer token that the endpoint reports active for that user (535 5.7.8 otherwise). Every accepted
AUTH is logged to smtp_auths.jsonl, and received.jsonl records the authenticated user. Without it
there is no AUTH at all.
"""

import asyncio
import json
import os
import smtplib
import ssl
import sys
import time
import urllib.parse
import urllib.request
from base64 import b64decode
from email.parser import BytesHeaderParser

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

DIR, PORT, LMTP_PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
INTROSPECTION_URL = sys.argv[4] if len(sys.argv) > 4 else None


def mode():
    try:
        with open(os.path.join(DIR, "smtp_mode")) as f:
            return f.read().strip() or "accept"
    except FileNotFoundError:
        return "accept"


def append(name, record):
    with open(os.path.join(DIR, name), "a") as f:
        f.write(json.dumps(record) + "\n")


REFUSALS = {
    "tempfail": "451 4.3.0 Temporary failure, try again later",
    "ratelimit": "421 4.7.0 Too many messages, slow down",
    "permfail": "550 5.1.1 Mailbox unavailable",
}


SENDER_REFUSED = "553 5.7.1 <{0}>: Sender address rejected: not owned by user {0}"

# RFC 5322 2.1.1: at most 998 characters a line, without the CRLF.
LINE_MAX = 998


def rcpt_replies():
    try:
        with open(os.path.join(DIR, "rcpt_replies.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


async def hang(name, record):
    """Answer nothing while the mode is `name`; then refuse (the client has gone)."""
    append("refused.jsonl", {"mode": name, **record, "ts": time.time()})
    while mode() == name:
        await asyncio.sleep(0.05)
    return "451 4.3.0 Too late, try again"


class Handler:
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if mode() == "sender_refused":
            append("refused.jsonl", {"mode": "sender_refused", "mail_from": address, "ts": time.time()})
            return SENDER_REFUSED.format(address)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        m = mode()
        if m == "hang_rcpt":
            return await hang(m, {"rcpt": address})
        reply = rcpt_replies().get(address)
        if reply:
            append("refused.jsonl", {"mode": "rcpt_reply", "rcpt": address, "ts": time.time()})
            return reply
        if m in REFUSALS:
            append("refused.jsonl", {"mode": m, "rcpt": address, "ts": time.time()})
            return REFUSALS[m]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if mode() == "hang_data":
            return await hang("hang_data", {"rcpt_tos": envelope.rcpt_tos})
        if mode() == "strict":
            longest = max((len(l) for l in envelope.original_content.split(b"\r\n")), default=0)
            if longest > LINE_MAX:
                append("refused.jsonl", {"mode": "strict", "line": longest, "ts": time.time()})
                return "500 5.5.2 Line too long"
        headers = BytesHeaderParser().parsebytes(envelope.content)
        undelivered = []
        # "sink": recorded, delivered nowhere (a benchmark of the sender, not of LMTP).
        for rcpt in envelope.rcpt_tos if mode() != "sink" else []:
            try:
                with smtplib.LMTP("127.0.0.1", LMTP_PORT) as lmtp:
                    lmtp.sendmail(envelope.mail_from, [rcpt], envelope.content)
            except (smtplib.SMTPException, OSError) as e:
                undelivered.append(f"{rcpt}: {e}")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "message_id": headers.get("Message-ID", ""),
            "in_reply_to": headers.get("In-Reply-To", ""),
            "subject": headers.get("Subject", ""),
            "undelivered": undelivered,
            "ts": time.time(),
        }
        if INTROSPECTION_URL:
            record["auth_user"] = (session.auth_data or {}).get("user")
        append("received.jsonl", record)
        return "250 OK delivered"


# --- AUTH (only with an introspection URL) ---

TEMPFAIL_AUTH = "454 4.7.0 Temporary authentication failure"


def passwords():
    out = {}
    with open(os.path.join(DIR, "passwd")) as f:
        for line in f:
            user, _, rest = line.strip().partition(":")
            if rest.startswith("{PLAIN}"):
                out[user] = rest[len("{PLAIN}"):].split(":", 1)[0]
    return out


def introspect(token):
    """The endpoint's verdict on a token, as the IMAP server asks for it (POST, form body)."""
    req = urllib.request.Request(
        INTROSPECTION_URL,
        data=urllib.parse.urlencode({"token": token}).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "triaged-test-smtp",
        },
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def password_authenticator(server, session, envelope, mechanism, auth_data):
    user = auth_data.login.decode("utf-8", "replace")
    password = auth_data.password.decode("utf-8", "replace")
    if passwords().get(user) != password:
        return AuthResult(success=False, handled=False)
    append("smtp_auths.jsonl", {"user": user, "mechanism": mechanism, "token": None, "ts": time.time()})
    return AuthResult(success=True, auth_data={"user": user})


class AuthHandler(Handler):
    """Handler methods named auth_<MECHANISM> add SASL mechanisms to aiosmtpd."""

    async def _initial_response(self, server, args):
        if len(args) == 1:
            blob = await server.challenge_auth("")
            return None if blob is MISSING else blob
        try:
            return b64decode(args[1].encode(), validate=True)
        except Exception:
            await server.push("501 5.5.2 Can't decode base64")
            return None

    async def _bearer(self, server, mechanism, user, token):
        if not user or not token:
            return AuthResult(success=False, handled=False)
        try:
            verdict = await asyncio.to_thread(introspect, token)
        except Exception as e:  # the endpoint is down or answered nonsense
            print(f"introspection failed: {e}", file=sys.stderr, flush=True)
            return AuthResult(success=False, handled=False, message=TEMPFAIL_AUTH)
        if verdict.get("active") is not True or verdict.get("username", "").lower() != user.lower():
            # Default message: 535 5.7.8 Authentication credentials invalid
            return AuthResult(success=False, handled=False)
        append("smtp_auths.jsonl", {"user": user, "mechanism": mechanism, "token": token, "ts": time.time()})
        return AuthResult(success=True, auth_data={"user": user})

    async def auth_XOAUTH2(self, server, args):
        # user=U ^A auth=Bearer T ^A ^A
        blob = await self._initial_response(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        fields = dict(
            p.split("=", 1) for p in blob.decode("utf-8", "replace").split("\x01") if "=" in p
        )
        auth = fields.get("auth", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        return await self._bearer(server, "XOAUTH2", fields.get("user", ""), token)

    async def auth_OAUTHBEARER(self, server, args):
        # n,a=U, ^A auth=Bearer T ^A ^A  (RFC 7628)
        blob = await self._initial_response(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        parts = blob.decode("utf-8", "replace").split("\x01")
        user = next((g[2:] for g in parts[0].split(",") if g.startswith("a=")), "")
        auth = next((p[5:] for p in parts[1:] if p.startswith("auth=")), "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        return await self._bearer(server, "OAUTHBEARER", user, token)


TLS = os.environ.get("SMTP_TLS", "none")


def tls_context():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(DIR, "server.crt"), os.path.join(DIR, "server.key"))
    return ctx


def make_server():
    tls = {"tls_context": tls_context(), "require_starttls": True} if TLS == "starttls" else {}
    if not INTROSPECTION_URL:
        return SMTP(Handler(), hostname="smtp.test", enable_SMTPUTF8=True, **tls)
    return SMTP(
        AuthHandler(),
        hostname="smtp.test",
        enable_SMTPUTF8=True,
        authenticator=password_authenticator,
        auth_required=True,
        auth_require_tls=False,
        **tls,
    )


async def main():
    loop = asyncio.get_running_loop()
    implicit = tls_context() if TLS == "implicit" else None
    server = await loop.create_server(make_server, host="127.0.0.1", port=PORT, ssl=implicit)
    async with server:
        await server.serve_forever()


asyncio.run(main())
