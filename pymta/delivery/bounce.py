"""Bounce messages: RFC 3464 delivery status notifications for failed addresses.

The layout follows Exim's default bounce (multipart/report with a human-readable part, a
message/delivery-status part and the returned message); the wording of the text part is
our own.  The bounce is submitted with the null sender through
:func:`pymta.message.receive.receive_message`.
"""
from __future__ import annotations

import os
import random
import re
import time
from typing import Any

from pymta.address import Address
from pymta.config.values import main_option
from pymta.delivery.errors_copy import errors_copy_addresses
from pymta.dsn import RET_HDRS, original_recipient, report_text
from pymta.expand import ExpandError, expand_string
from pymta.message.notices import dsn_from, mailer_daemon
from pymta.osutil import resolve_group, resolve_user
from pymta.spool.files import read_body
from pymta.spool.model import SpoolMessage
from pymta.taint import taint
from pymta.xtext import xtext_decode

_FIRST_LINE = "This message was created automatically by mail delivery software.\n"
_INTRO_OTHER = ("could not be delivered to one or more of its recipients. The following\n"
                "address(es) failed:\n")
INTRO = (
    "A message that you sent could not be delivered to one or more of its\n"
    "recipients. This is a permanent error. The following address(es) failed:\n"
)

_REPLY = re.compile(r"(?:^|: )([45]\d\d[ -].*)$", re.S)


def read_template(config: Any, option: str, count: int, ctx: Any,
                  log: Any = None) -> list[str | None]:
    """The ``count`` items of a bounce_message_file / warn_message_file (separated by
    lines of four asterisks), each expanded; None for an item that is missing or empty
    (its default text is used) -- all None when the option is unset or the file cannot
    be read (which is logged)."""
    path = main_option(config, option, None)
    items: list[str | None] = [None] * count
    if not path:
        return items
    try:
        with open(str(path), encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read()
    except OSError as exc:
        if log is not None:
            log.main(f"Failed to open {option} {path}: {exc.strerror}")
            log.panic(f"Failed to open {option} {path}: {exc.strerror}")
        return items
    for i, item in enumerate(re.split(r"(?m)^\*\*\*\*\n", text)[:count]):
        if not item.strip():
            continue
        try:
            items[i] = expand_string(item, ctx) if ctx is not None else item
        except ExpandError as exc:
            if log is not None:
                log.panic(f"Failed to expand {option} item {i + 1}: {exc}")
    return items


def notice_headers(config: Any, msg: SpoolMessage, recipient: str, ctx: Any = None,
                   log: Any = None) -> list[str]:
    """The headers every bounce and warning starts with: Auto-Submitted, From
    (dsn_from), To, Reply-To (errors_reply_to) and References (the message's id)."""
    out = ["Auto-Submitted: auto-replied\n",
           f"From: {dsn_from(config, ctx, log)}\n", f"To: {recipient}\n"]
    reply_to = main_option(config, "errors_reply_to", None)
    if reply_to:
        out.append(f"Reply-To: {reply_to}\n")
    msgid_hdr = _header_value(msg, "Message-ID")
    if msgid_hdr:
        out.append(f"References: {msgid_hdr}\n")
    return out


def envelope_id_lines(msg: SpoolMessage) -> list[str]:
    """The Original-Envelope-ID field of a report for MAIL's ENVID=, decoded from xtext
    (RFC 3461; left encoded when the decoded text is not printable ASCII); a value that
    is not xtext at all is named as Exim names it."""
    envid = msg.variables.get("dsn_envid")
    if not envid:
        return []
    if xtext_decode(envid) is None or any(not 32 < ord(c) < 127 for c in envid):
        return ["X-Original-Envelope-ID: error decoding xtext formatted ENVID\n"]
    return [f"Original-Envelope-ID: {report_text(envid) or envid}\n"]


def original_recipient_lines(addr: Address) -> list[str]:
    """The Original-Recipient field for an address whose RCPT had ORCPT=."""
    _flags, orcpt = addr.dsn_request()
    return [f"Original-Recipient: {original_recipient(orcpt)}\n"] if orcpt else []


def remote_mta_lines(addr: Address) -> list[str]:
    """Remote-MTA for an address a remote host was tried for, with the host's reply as
    the Diagnostic-Code when there was one (as Exim writes them)."""
    h = addr.host_used
    if h is None or not h.name:
        return []
    diag = _diagnostic(addr)
    return [f"Remote-MTA: dns; {h.name}\n"] + (
        [f"Diagnostic-Code: smtp; {diag}\n"] if diag is not None else [])


def headers_only(msg: SpoolMessage) -> bool:
    """MAIL had RET=HDRS: a report returns the message's headers only."""
    return (msg.variables.get("dsn_ret") or "").strip() == str(RET_HDRS)


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


_DELIVERY_TO = {"pipe": "pipe to ", "file": "save to ", "directory": "save to ",
                "reply": "reply to "}


def shown_address(addr: Address) -> str:
    """How a bounce names a failed address, as Exim does: a pipe or file delivery
    generated by a forward or filter file says what it was and what generated it; a
    generated address says where it came from."""
    if addr.parent is None:
        return addr.address
    top = addr.top_parent().address
    if hidden(addr):
        return f"an undisclosed address\n    (generated from {top})"
    if addr.kind in _DELIVERY_TO:
        return f"{_DELIVERY_TO[addr.kind]}{addr.address}\n    generated by {top}"
    return f"{addr.address}\n    (generated from {top})"


def hidden(addr: Address) -> bool:
    """Generated under a router with hide_child_in_errmsg: bounces do not name it."""
    if addr.parent is None:
        return False
    a: Address | None = addr
    while a is not None:
        if a.hide_in_errmsg:
            return True
        a = a.parent
    return False


def failed_recipient(addr: Address) -> str:
    """X-Failed-Recipients: a pipe or file delivery is reported as the address that
    generated it."""
    if addr.kind != "address" and addr.parent is not None:
        return addr.parent.address
    return addr.address


def failed_recipients_headers(failed: list[Address]) -> list[str]:
    """X-Failed-Recipients: as Exim writes it: one address per line, a new header every
    50 addresses, hidden ones left out (no header when all are)."""
    names = [failed_recipient(a) for a in failed if not hidden(a)]
    return ["X-Failed-Recipients: " + ",\n  ".join(names[i:i + 50]) + "\n"
            for i in range(0, len(names), 50)]


def address_block(addr: Address, shown: str, text: str | None, prefix: str = "") -> str:
    """One address in a bounce or delay warning, as Exim lists it: ``shown``, the host
    tried, then ``text`` (the error, after ``prefix``) laid out by :func:`error_lines`."""
    out = f"  {shown}"
    h = addr.host_used
    if h is not None:
        out += f"\n    host {h.name} [{h.address}]"
    if text:
        out += error_lines(text, prefix)
    return out + "\n"


def error_lines(text: str, prefix: str = "") -> str:
    """An address's error as Exim prints it under the address in a bounce or warning:
    on a line of its own after ``prefix``, a "\\n" in it (or a newline) starting a new
    line, and a line broken after a colon followed by white space once it is over 45
    characters long."""
    out, count, i, n = ["\n    ", prefix], len(prefix), 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n" or (c == "\\" and text[i + 1:i + 2] == "n"):
            out.append("\n    ")
            i += 1 if c == "\n" else 2
            count = 0
            continue
        out.append(c)
        count += 1
        i += 1
        if c == ":" and i < n and text[i].isspace() and count > 45:
            out.append("\n   ")         # the space that follows makes it four
            count = 0
    return "".join(out)


def failure_text(addr: Address) -> str:
    """The explanation printed under a failed address."""
    if addr.user_message is not None:
        return addr.user_message
    return addr.message or "Unrouteable address"


def build_bounce(config: Any, msg: SpoolMessage, failed: list[Address], recipient: str,
                 body: bytes = b"", now: float | None = None, ctx: Any = None,
                 log: Any = None) -> bytes:
    """The complete bounce message (headers and body, LF line endings).

    bounce_message_file's first three items (expanded in ``ctx`` with
    $bounce_recipient and $bounce_return_size_limit) replace the Subject:, the opening
    text and the heading of a pipe's returned output; bounce_message_text is added
    after the first line of the default text."""
    now = time.time() if now is None else now
    limit_value = int(main_option(config, "bounce_return_size_limit", 102400))
    tctx = ctx.child(bounce_recipient=recipient,
                     bounce_return_size_limit=str(limit_value)) if ctx is not None else None
    items = read_template(config, "bounce_message_file", 3, tctx, log) \
        if tctx is not None else [None, None, None]
    hostname = main_option(config, "primary_hostname", "localhost")
    boundary = f"{int(now)}-eximdsn-{random.randint(0, 2**31 - 1)}"
    # Exim lists the latest failure first (its chain of failed addresses grows at the
    # front), and the delivery-status part in the order they failed
    latest_first = failed[::-1]
    out: list[str] = [*failed_recipients_headers(latest_first),
                      *notice_headers(config, msg, recipient, ctx, log)]
    to_sender = recipient == msg.sender
    subject = items[0] if items[0] is not None else (
        "Subject: Mail delivery failed" + (": returning message to sender" if to_sender
                                           else "") + "\n")
    out += [f"Content-Type: multipart/report; report-type=delivery-status; boundary={boundary}\n",
            "MIME-Version: 1.0\n",
            subject if subject.endswith("\n") else subject + "\n",
            "\n",
            f"--{boundary}\n",
            "Content-type: text/plain; charset=us-ascii\n\n"]
    if items[1] is not None:
        out.append(items[1] if items[1].endswith("\n") else items[1] + "\n")
    else:
        text = main_option(config, "bounce_message_text", None)
        out.append(_FIRST_LINE + (f"{text}\n" if text else "\n"))
        out.append(INTRO if to_sender else
                   f"A message sent by\n\n  <{msg.sender}>\n\n{_INTRO_OTHER}")
    out.append("\n")
    for a in latest_first:
        # a hidden address is named "an undisclosed address", with no host or reason
        out.append(f"  {shown_address(a)}\n" if hidden(a) else
                   address_block(a, shown_address(a), failure_text(a)))
    returned = [a for a in failed if a.returned_output]
    if returned:
        heading = items[2] if items[2] is not None else (
            "The following text was generated during the delivery attempt"
            f"{'s' if len(returned) > 1 else ''}:\n")
        out.append("\n" + (heading if heading.endswith("\n") else heading + "\n"))
        for a in returned:
            text = a.returned_output or ""
            shown = shown_address(a).replace("\n    ", "\n       ")
            out += [f"\n------ {shown} ------\n\n", text if text.endswith("\n")
                    else text + "\n"]
    out += ["\n", f"--{boundary}\n", "Content-type: message/delivery-status\n\n",
            f"Reporting-MTA: dns; {hostname}\n", *envelope_id_lines(msg)]
    for a in failed:
        out += ["\n", *original_recipient_lines(a), "Action: failed\n",
                f"Final-Recipient: rfc822;{a.top_parent().address}\n",
                "Status: 5.0.0\n"]
        out += remote_mta_lines(a)
    out += ["\n", f"--{boundary}\n"]
    return_body = bool(main_option(config, "bounce_return_body", True)) \
        and not headers_only(msg)
    return_message = bool(main_option(config, "bounce_return_message", True))
    limit = limit_value
    headers = f"Return-path: <{msg.sender}>\n" + msg.header_text()
    if return_message and return_body:
        out += ["Content-type: message/rfc822\n\n", headers, "\n"]
        text = body.decode("utf-8", "surrogateescape")
        linesize = int(main_option(config, "bounce_return_linesize_limit", 998) or 0)
        too_long = bool(linesize) and any(len(line) > linesize
                                          for line in body.split(b"\n"))
        if (limit and len(body) > limit) or too_long:
            # bounce_return_linesize_limit: a line too long for SMTP counts as too big
            keep = min(limit or len(body), len(body))
            if too_long:
                first = next(i for i, line in enumerate(text.split("\n"))
                             if len(line.encode("utf-8", "surrogateescape")) > linesize)
                keep = min(keep, sum(len(x) + 1 for x in text.split("\n")[:first]))
            text = text[:keep]
            cut = text.rfind("\n")
            text = (text[:cut + 1] if cut >= 0 else text) + (
                f"\n------ The body of the message is {len(body)} characters long; only the"
                f" first\n------ {limit} or so are included here.\n")
        out.append(text)
    elif return_message:
        out += ["Content-type: text/rfc822-headers\n\n", headers, "\n"]
    out += ["\n", f"--{boundary}--\n"]
    return "".join(out).encode("utf-8", "surrogateescape")


def _read_body(spool_dir: str, msgid: str) -> bytes:
    try:
        return read_body(spool_dir, msgid)
    except (ImportError, OSError):
        return b""


def send_bounce(config: Any, msg: SpoolMessage, failed: list[Address], recipient: str,
                log: Any, spool_dir: str, ctx: Any = None) -> str:
    """Build the bounce for ``failed`` and submit it with the null sender; returns the new
    message id (the caller delivers it).  ``ctx``: the message's expansion context (for
    bounce_message_file)."""
    from pymta.message.receive import Envelope, receive_message
    data = build_bounce(config, msg, failed, recipient, _read_body(spool_dir, msg.id),
                        ctx=ctx, log=log)
    # A local submission (Message-ID/Date are added) whose null sender was chosen by
    # us; bounce_reference makes the <= line carry R=<original id>.
    # errors_copy: blind copies, in the envelope only
    recipients = [recipient] + [a for a in errors_copy_addresses(config, recipient)
                                if a != recipient]
    uid, gid, login = mta_identity(config)
    env = Envelope(sender="", recipients=recipients, protocol="local",
                   is_local_submission=True, sender_set_by_caller=True,
                   bounce_reference=msg.id,
                   authenticated_sender=bounce_sender_authentication(config),
                   originator_uid=uid, originator_gid=gid, originator_login=login)
    return receive_message(config, env, data, log)


def mta_identity(config: Any) -> tuple[int, int, str]:
    """Who a bounce comes from: exim_user and exim_group (Exim gives up root before it
    sends one, so its <= line says U=Debian-exim and its Received: "from Debian-exim"),
    else this process's own user."""
    import pwd
    ids = resolve_user(main_option(config, "exim_user", None))
    uid, gid = ids if ids is not None else (os.geteuid(), os.getegid())
    group = resolve_group(main_option(config, "exim_group", None)) if ids else None
    gid = group if group is not None else gid
    try:
        login = pwd.getpwuid(uid).pw_name
    except KeyError:
        login = str(uid)
    return uid, gid, login


def bounce_sender_authentication(config: Any) -> str | None:
    """The authenticated sender of bounces and delay warnings (main option
    bounce_sender_authentication): the smtp transport sends it as MAIL's AUTH= when it
    has authenticated to the server.  Exim hands it to the child that spools the
    bounce as -oMas, so the -H file marks it tainted ("--auth_sender"); so does pymta."""
    value = str(main_option(config, "bounce_sender_authentication", "") or "")
    return taint(value) if value else None


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


def auto_thaw_due(config: Any, msg: SpoolMessage, now: float) -> bool:
    """auto_thaw: a frozen message (not a bounce) is tried again this long after it was
    frozen."""
    limit = int(main_option(config, "auto_thaw", 0) or 0)
    return bool(limit and msg.sender and msg.frozen_at is not None
                and now - msg.frozen_at >= limit)


def message_age(msg: SpoolMessage, now: float | None = None) -> int:
    return int((time.time() if now is None else now) - msg.received_time)


__all__ = ["build_bounce", "send_bounce", "bounce_sender_authentication",
           "bounce_recipient", "mailer_daemon",
           "bounce_age_limit", "message_age", "auto_thaw_due"]
