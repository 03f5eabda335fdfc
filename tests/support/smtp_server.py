"""A real SMTP server for tests (aiosmtpd): accepts mail, delivers it into Dovecot over LMTP, logs
every message to received.jsonl, and refuses on demand (the file smtp_mode in its directory).

usage: smtp_server.py DIR PORT LMTP_PORT
modes: accept (default), tempfail (451), ratelimit (421), permfail (550)
"""

import asyncio
import json
import os
import smtplib
import sys
import time
from email.parser import BytesHeaderParser

from aiosmtpd.smtp import SMTP

DIR, PORT, LMTP_PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


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


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        m = mode()
        if m in REFUSALS:
            append("refused.jsonl", {"mode": m, "rcpt": address, "ts": time.time()})
            return REFUSALS[m]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        headers = BytesHeaderParser().parsebytes(envelope.content)
        undelivered = []
        for rcpt in envelope.rcpt_tos:
            try:
                with smtplib.LMTP("127.0.0.1", LMTP_PORT) as lmtp:
                    lmtp.sendmail(envelope.mail_from, [rcpt], envelope.content)
            except (smtplib.SMTPException, OSError) as e:
                undelivered.append(f"{rcpt}: {e}")
        append(
            "received.jsonl",
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "message_id": headers.get("Message-ID", ""),
                "in_reply_to": headers.get("In-Reply-To", ""),
                "subject": headers.get("Subject", ""),
                "undelivered": undelivered,
                "ts": time.time(),
            },
        )
        return "250 OK delivered"


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Handler(), hostname="smtp.test", enable_SMTPUTF8=True),
        host="127.0.0.1",
        port=PORT,
    )
    async with server:
        await server.serve_forever()


asyncio.run(main())
