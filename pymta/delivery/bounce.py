"""Bounce messages: RFC 3464 delivery status notifications for failed addresses.

The layout follows Exim's default bounce (multipart/report with a human-readable part, a
message/delivery-status part and the returned message); the wording of the text part is
our own.  The bounce is submitted with the null sender through
:func:`pymta.message.receive.receive_message`.
"""
from __future__ import annotations

import random
import re
import time
from typing import Any

from pymta.address import Address
from pymta.config.values import main_option
from pymta.routing import support
from pymta.spool.files import read_body
from pymta.spool.model import SpoolMessage

INTRO = (
    "This message was created automatically by mail delivery software.\n"
    "\n"
    "A message that you sent could not be delivered to one or more of\n"
    "its recipients. This is a permanent error. The following address(es)\n"
    "failed:\n"
)

_REPLY = re.compile(r"(?:^|: )([45]\d\d[ -].*)$", re.S)


def mailer_daemon(config: Any) -> str:
    return f"Mailer-Daemon@{support.qualify_domain(config)}"


def _header_value(msg: SpoolMessage, name: str) -> str | None:
    prefix = name.lower() + ":"
    for h in msg.headers:
        if h.flag != "*" and h.text.lower().startswith(prefix):
            return h.text[len(prefix):].strip()
    return None


def _diagnostic(addr: Address) -> str | None:
    """The remote SMTP reply in an address's error text, if there is one."""
    if not addr.message or addr.host_used is None:
        return None
    m = _REPLY.search(addr.message)
    return m.group(1).replace("\n", " ") if m else None


def failure_text(addr: Address) -> str:
    """The explanation printed under a failed address."""
    if addr.user_message is not None:
        return addr.user_message
    return addr.message or "Unrouteable address"


def build_bounce(config: Any, msg: SpoolMessage, failed: list[Address], recipient: str,
                 body: bytes = b"", now: float | None = None) -> bytes:
    """The complete bounce message (headers and body, LF line endings)."""
    now = time.time() if now is None else now
    hostname = main_option(config, "primary_hostname", "localhost")
    boundary = f"{int(now)}-eximdsn-{random.randint(0, 2**31 - 1)}"
    failed_names = ", ".join(a.address for a in failed)
    out: list[str] = [f"X-Failed-Recipients: {failed_names}\n",
                      "Auto-Submitted: auto-replied\n",
                      f"From: Mail Delivery System <{mailer_daemon(config)}>\n",
                      f"To: {recipient}\n"]
    msgid_hdr = _header_value(msg, "Message-ID")
    if msgid_hdr:
        out.append(f"References: {msgid_hdr}\n")
    out += [f"Content-Type: multipart/report; report-type=delivery-status; boundary={boundary}\n",
            "MIME-Version: 1.0\n",
            "Subject: Mail delivery failed: returning message to sender\n",
            "\n",
            f"--{boundary}\n",
            "Content-type: text/plain; charset=us-ascii\n\n",
            INTRO, "\n"]
    for a in failed:
        out.append(f"  {a.address}\n")
        text = failure_text(a)
        for line in text.split("\n") if text else ():
            out.append(f"    {line}\n")
    returned = [a for a in failed if a.returned_output]
    if returned:
        out.append("\nThe following text was generated during the delivery attempt"
                   f"{'s' if len(returned) > 1 else ''}:\n")
        for a in returned:
            text = a.returned_output or ""
            out += [f"\n------ {a.address} ------\n\n", text if text.endswith("\n")
                    else text + "\n"]
    out += ["\n", f"--{boundary}\n", "Content-type: message/delivery-status\n\n",
            f"Reporting-MTA: dns; {hostname}\n"]
    for a in failed:
        out += ["\n", "Action: failed\n", f"Final-Recipient: rfc822;{a.address}\n",
                "Status: 5.0.0\n"]
        diag = _diagnostic(a)
        if diag is not None and a.host_used is not None:
            out.append(f"Remote-MTA: dns; {a.host_used.name}\n")
            out.append(f"Diagnostic-Code: smtp; {diag}\n")
    out += ["\n", f"--{boundary}\n"]
    return_body = bool(main_option(config, "bounce_return_body", True))
    return_message = bool(main_option(config, "bounce_return_message", True))
    limit = int(main_option(config, "bounce_return_size_limit", 102400))
    headers = f"Return-path: <{msg.sender}>\n" + msg.header_text()
    if return_message and return_body:
        out += ["Content-type: message/rfc822\n\n", headers, "\n"]
        text = body.decode("utf-8", "surrogateescape")
        if limit and len(body) > limit:
            text = text[:limit]
            cut = text.rfind("\n")
            text = (text[:cut + 1] if cut >= 0 else text) + (
                f"\n------ The body of the message is {len(body)} characters long; only the"
                f" first\n------ {limit} or so are included here.\n")
        out.append(text)
    elif return_message:
        out += ["Content-type: text/rfc822-headers\n\n", headers]
    out += ["\n", f"--{boundary}--\n"]
    return "".join(out).encode("utf-8", "surrogateescape")


def _read_body(spool_dir: str, msgid: str) -> bytes:
    try:
        return read_body(spool_dir, msgid)
    except (ImportError, OSError):
        return b""


def send_bounce(config: Any, msg: SpoolMessage, failed: list[Address], recipient: str,
                log: Any, spool_dir: str) -> str:
    """Build the bounce for ``failed`` and submit it with the null sender; returns the new
    message id (the caller delivers it)."""
    from pymta.message.receive import Envelope, receive_message
    data = build_bounce(config, msg, failed, recipient, _read_body(spool_dir, msg.id))
    # A local submission (Message-ID/Date are added) whose null sender was chosen by
    # us; bounce_reference makes the <= line carry R=<original id>.
    env = Envelope(sender="", recipients=[recipient], protocol="local",
                   is_local_submission=True, sender_set_by_caller=True,
                   bounce_reference=msg.id)
    return receive_message(config, env, data, log)


def bounce_recipient(addr: Address, msg: SpoolMessage) -> str | None:
    """Where the bounce for ``addr`` goes: errors_to of the address (or an ancestor),
    else the envelope sender; None when there is nobody (the null sender)."""
    a: Address | None = addr
    while a is not None:
        if a.errors_address is not None:
            return a.errors_address or None
        a = a.parent
    return msg.sender or None


def bounce_age_limit(config: Any) -> int:
    """ignore_bounce_errors_after in seconds (Exim's default is ten weeks)."""
    return int(main_option(config, "ignore_bounce_errors_after", 10 * 7 * 86400))


def message_age(msg: SpoolMessage, now: float | None = None) -> int:
    return int((time.time() if now is None else now) - msg.received_time)


__all__ = ["build_bounce", "send_bounce", "bounce_recipient", "mailer_daemon",
           "bounce_age_limit", "message_age"]
