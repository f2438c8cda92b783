"""RFC 3461 delivery status notification parameters, with Exim 4.96's numbers.

Exim keeps a recipient's NOTIFY= as bits (written in the -H file's recipient list) and
MAIL's RET= as a number (``-dsn_ret``); ENVID= and ORCPT= are kept as the client sent them
(xtext).  This module holds those encodings and nothing else, so the SMTP server, the
spool, the smtp transport and delivery all use one definition.
"""
from __future__ import annotations

from pymta.xtext import xtext_decode

NOTIFY_NEVER = 0x02
NOTIFY_SUCCESS = 0x04
NOTIFY_FAILURE = 0x08
NOTIFY_DELAY = 0x10
#: All the NOTIFY bits (Exim's rf_dsnflags).
NOTIFY_MASK = NOTIFY_NEVER | NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY
#: Set on an address whose router has dsn_lasthop (Exim's rf_dsnlasthop).
DSN_LASTHOP = 0x20

RET_FULL = 1
RET_HDRS = 2

_NOTIFY_NAMES = (("NEVER", NOTIFY_NEVER), ("SUCCESS", NOTIFY_SUCCESS),
                 ("FAILURE", NOTIFY_FAILURE), ("DELAY", NOTIFY_DELAY))


def parse_notify(value: str) -> int | None:
    """NOTIFY='s bits, or None when Exim would refuse the value: NEVER alone, or a comma
    list of SUCCESS, FAILURE, DELAY (any case).  An empty value is 0 (nothing asked for),
    and so is one trailing comma, as Exim reads them."""
    if value.upper() == "NEVER":
        return NOTIFY_NEVER
    bits = 0
    items = value.split(",")
    if items and items[-1] == "":
        items.pop()             # Exim stops at the end of the text after a comma
    named = dict(_NOTIFY_NAMES)
    for item in items:
        bit = named.get(item.upper())
        if bit is None or bit == NOTIFY_NEVER:
            return None
        bits |= bit
    return bits


def notify_text(flags: int) -> str:
    """The NOTIFY= value for ``flags`` as the smtp transport sends it ("" for none)."""
    return ",".join(name for name, bit in _NOTIFY_NAMES if flags & bit)


def parse_ret(value: str) -> int | None:
    """RET='s number (FULL or HDRS, any case); None for anything else."""
    return {"FULL": RET_FULL, "HDRS": RET_HDRS}.get(value.upper())


def ret_text(ret: int) -> str:
    """The RET= value for Exim's number ("" when unset)."""
    return {RET_FULL: "FULL", RET_HDRS: "HDRS"}.get(ret, "")


def wants_failure(flags: int) -> bool:
    """Whether a failure report (a bounce) is wanted: no NOTIFY=, or one with FAILURE."""
    return not flags & NOTIFY_MASK or bool(flags & NOTIFY_FAILURE)


def wants_delay(flags: int) -> bool:
    """Whether a delay warning is wanted: no NOTIFY=, or one with DELAY."""
    return not flags & NOTIFY_MASK or bool(flags & NOTIFY_DELAY)


def wants_success(flags: int) -> bool:
    """Whether a success report is wanted (NOTIFY=SUCCESS)."""
    return bool(flags & NOTIFY_SUCCESS)


def report_text(value: str) -> str | None:
    """An xtext value (ENVID=, or ORCPT='s address part) decoded for a report field, as
    RFC 3461 asks; None when it is not valid xtext or decodes to something that cannot
    stand in a report field (anything but printable ASCII: line breaks, controls, 8-bit)."""
    decoded = xtext_decode(value)
    if decoded is None or any(not 32 <= ord(c) < 127 for c in decoded):
        return None
    return decoded


def original_recipient(orcpt: str) -> str:
    """The Original-Recipient field's value for an ORCPT= parameter: the address type,
    ";", the address decoded from xtext (the raw parameter when it does not decode)."""
    kind, sep, addr = orcpt.partition(";")
    decoded = report_text(addr) if sep else None
    return f"{kind};{decoded}" if decoded is not None else orcpt
