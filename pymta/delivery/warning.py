"""Delay warnings (main options delay_warning, delay_warning_condition,
warn_message_file): "Warning: message ... delayed" to the sender of a message that is
still not delivered, as Exim writes them (RFC 3464 "delayed" reports).

``delay_warning`` lists the ages at which warnings go; past the last one the last
interval repeats (a single time is the interval itself).  The message's -H records how
many warnings were sent.
"""
from __future__ import annotations

import random
import time
from typing import Any

from pymta.address import Address
from pymta.config.options import parse_time
from pymta.config.values import main_option
from pymta.dsn import wants_delay
from pymta.expand import ExpandContext, ExpandError, ExpandFail, expand_string
from pymta.spool.model import SpoolMessage
from pymta.truth import exim_true

from .bounce import (
    address_block,
    envelope_id_lines,
    notice_headers,
    original_recipient_lines,
    read_template,
    remote_mta_lines,
)

DEFAULT_CONDITION = (
    "${if or {{ !eq{$h_list-id:$h_list-post:$h_list-subscribe:}{} }"
    "{ match{$h_precedence:}{(?i)bulk|list|junk} }"
    "{ match{$h_auto-submitted:}{(?i)auto-generated|auto-replied} }} {no}{yes}}")

_CLOSING = (
    "No action is required on your part. Delivery attempts will continue for\n"
    "some time, and this warning may be repeated at intervals if the message\n"
    "remains undelivered. Eventually the mail delivery software will give up,\n"
    "and when that happens, the message will be returned to you.\n")


def warning_times(config: Any) -> list[int]:
    """delay_warning as seconds (an empty list: no warnings)."""
    text = main_option(config, "delay_warning", "24h")
    if text is None:
        return []
    times = []
    for item in str(text).split(":"):
        item = item.strip()
        if item:
            times.append(parse_time(item))
    return [] if not times or times[0] <= 0 else times


def threshold(times: list[int], count: int) -> int:
    """The age at which warning number ``count`` (from 0) is due."""
    if count < len(times):
        return times[count]
    step = times[-1] - times[-2] if len(times) > 1 else times[-1]
    return times[-1] + step * (count - len(times) + 1)


def delay_text(seconds: int) -> str:
    """$warn_message_delay: "<n> minutes" or "<n> hours"."""
    if seconds < 3600:
        return f"{seconds // 60} minutes"
    return f"{seconds // 3600} hours"


def warning_due(config: Any, msg: SpoolMessage, now: float) -> tuple[int, int] | None:
    """(the delay being reported, the new warning count) when a warning is due."""
    times = warning_times(config)
    if not times or not msg.sender:
        return None
    age = int(now) - msg.received_time
    count = msg.warning_count
    if age < threshold(times, count):
        return None
    shown = threshold(times, count)
    while age >= threshold(times, count):       # one warning for every time passed
        count += 1
    return shown, count


def wanted(deferred: list[Address]) -> list[Address]:
    """The deferred addresses whose sender wants to hear of the delay (RFC 3461): no
    NOTIFY= given, or one with DELAY."""
    return [a for a in deferred if wants_delay(a.dsn_request()[0])]


def condition_allows(config: Any, ctx: ExpandContext, deferred: list[Address]) -> bool:
    """delay_warning_condition, with $domain set when every address shares a domain."""
    domains = {a.domain for a in deferred}
    text = main_option(config, "delay_warning_condition", None) or DEFAULT_CONDITION
    sub = ctx.child(domain=domains.pop() if len(domains) == 1 else "")
    try:
        return exim_true(expand_string(str(text), sub))
    except ExpandFail:
        return False
    except ExpandError:
        return True         # as Exim: an expansion error does not stop the warning


def build_warning(config: Any, msg: SpoolMessage, deferred: list[Address], recipient: str,
                  delay: int, ctx: ExpandContext, log: Any = None,
                  now: float | None = None) -> bytes:
    """The warning message (headers and body, LF line endings)."""
    now = time.time() if now is None else now
    host = main_option(config, "primary_hostname", "localhost")
    boundary = f"{int(now)}-eximdsn-{random.randint(0, 2**31 - 1)}"
    delay_shown = delay_text(delay)
    tctx = ctx.child(warn_message_delay=delay_shown, warn_message_recipients=recipient)
    items = read_template(config, "warn_message_file", 3, tctx, log)
    subject = _header(msg, "subject")
    date = _header(msg, "date")
    out = notice_headers(config, msg, recipient, ctx, log)
    out.append("Content-Type: multipart/report; report-type=delivery-status; "
               f"boundary={boundary}\nMIME-Version: 1.0\n")
    out.append(_ending(items[0]) if items[0] is not None else
               f"Subject: Warning: message {msg.id} delayed {delay_shown}\n")
    out += ["\n", f"--{boundary}\n", "Content-type: text/plain; charset=us-ascii\n\n"]
    if items[1] is not None:
        out.append(_ending(items[1]))
    else:
        who = "that you sent " if recipient == msg.sender else f"sent by\n\n  <{msg.sender}>\n\n"
        out.append("This message was created automatically by mail delivery software.\n"
                   f"A message {who}has not yet been delivered to one or more of its\n"
                   f"recipients after more than {delay_shown} on the queue on {host}.\n\n"
                   f"The message identifier is:     {msg.id}\n")
        if subject is not None:
            out.append(f"The subject of the message is: {subject}\n")
        if date is not None:
            out.append(f"The date of the message is:    {date}\n")
        out.append("\n" + ("The address to which the message has not yet been delivered "
                           "is:\n" if len(deferred) == 1 else
                           "The addresses to which the message has not yet been delivered "
                           "are:\n") + "\n")
    # as Exim: the latest deferral first (its chain grows at the front), in both parts
    deferred = deferred[::-1]
    out += [address_block(a, a.address, a.message, "Delay reason: ") for a in deferred]
    out.append("\n")
    out.append(_ending(items[2]) if items[2] is not None else _CLOSING)
    out += ["\n", f"--{boundary}\n", "Content-type: message/delivery-status\n\n",
            f"Reporting-MTA: dns; {host}\n", *envelope_id_lines(msg)]
    for a in deferred:
        out += ["\n", *original_recipient_lines(a), "Action: delayed\n",
                f"Final-Recipient: rfc822;{a.address}\n", "Status: 4.0.0\n",
                *remote_mta_lines(a)]
    out += ["\n", f"--{boundary}\n", "Content-type: text/rfc822-headers\n\n",
            f"Return-path: <{msg.sender}>\n", msg.header_text(), "\n\n",
            f"--{boundary}--\n"]
    return "".join(out).encode("utf-8", "surrogateescape")


def _header(msg: SpoolMessage, name: str) -> str | None:
    prefix = name + ":"
    for h in msg.headers:
        if h.flag != "*" and h.text.lower().startswith(prefix):
            return " ".join(h.text[len(prefix):].split())
    return None


def _ending(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"
