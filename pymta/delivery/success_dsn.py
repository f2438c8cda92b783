"""Success reports (RFC 3461 NOTIFY=SUCCESS): "Delivery Status Notification" to the sender
for recipients delivered here, or relayed to a host that did not take over the request
(it did not offer DSN), laid out as Exim 4.96 writes them (checked against exim4): a
multipart/report with a short text part, a message/delivery-status part with one
"Action: delivered" group per address, and the message's headers (never its body).
"""
from __future__ import annotations

import random
import time
from typing import Any

from pymta.address import Address
from pymta.config.values import main_option
from pymta.dsn import DSN_LASTHOP
from pymta.message.notices import dsn_from
from pymta.spool.model import SpoolMessage

from .bounce import envelope_id_lines, original_recipient_lines


def relay_note(a: Address) -> str:
    """Why this MTA reports the success itself (Exim's wording)."""
    if a.dsn_request()[0] & DSN_LASTHOP:
        return "via non DSN router"
    if a.dsn_aware == "no":
        return "to non-DSN-aware mailer"
    return 'via non "Remote SMTP" router'


def build_success_report(config: Any, msg: SpoolMessage, delivered: list[Address],
                         ctx: Any = None, log: Any = None, now: float | None = None) -> bytes:
    """The report for ``delivered`` (top-level addresses as they were delivered), sent to
    the message's sender (LF line endings)."""
    now = time.time() if now is None else now
    host = main_option(config, "primary_hostname", "localhost")
    boundary = f"{int(now)}-eximdsn-{random.randint(0, 2**31 - 1)}"
    out: list[str] = []
    reply_to = main_option(config, "errors_reply_to", None)
    if reply_to:
        out.append(f"Reply-To: {reply_to}\n")
    out += [f"From: {dsn_from(config, ctx, log)}\n", "Auto-Submitted: auto-generated\n",
            f"To: {msg.sender}\n", "Subject: Delivery Status Notification\n"]
    for h in msg.headers:
        if h.flag != "*" and h.text.lower().startswith("message-id:"):
            out.append(f"References: {' '.join(h.text.split(':', 1)[1].split())}\n")
            break
    out += [f"Content-Type: multipart/report; report-type=delivery-status; boundary={boundary}\n",
            "MIME-Version: 1.0\n", "\n",
            f"--{boundary}\n", "Content-type: text/plain; charset=us-ascii\n\n",
            "This message was created automatically by mail delivery software.\n",
            " ----- The following addresses had successful delivery notifications -----\n"]
    for a in delivered:
        out.append(f"<{a.top_parent().address}> (relayed {relay_note(a)})\n\n")
    out += [f"--{boundary}\n", "Content-type: message/delivery-status\n\n",
            f"Reporting-MTA: dns; {host}\n", *envelope_id_lines(msg), "\n"]
    for a in delivered:
        out += [*original_recipient_lines(a), "Action: delivered\n",
                f"Final-Recipient: rfc822;{a.top_parent().address}\n", "Status: 2.0.0\n"]
        if a.host_used is not None and a.host_used.name:
            out += [f"Remote-MTA: dns; {a.host_used.name}\n", "Diagnostic-Code: smtp; 250 Ok\n"]
        else:
            out.append("Diagnostic-Code: X-Exim; relayed via non SMTP router\n")
        out.append("\n")
    out += [f"--{boundary}\n", "Content-type: text/rfc822-headers\n\n",
            f"Return-path: <{msg.sender}>\n", msg.header_text(), "\n\n",
            f"--{boundary}--\n"]
    return "".join(out).encode("utf-8", "surrogateescape")
