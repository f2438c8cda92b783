"""RFC 3461 DSN parameters the smtp transport adds to MAIL and RCPT when the server
offers DSN: RET= and ENVID= from the message, NOTIFY= and ORCPT= from each recipient,
passed on as they were received (as Exim does)."""
from __future__ import annotations

from pymta.address import Address
from pymta.dsn import DSN_LASTHOP, NOTIFY_MASK, notify_text, ret_text
from pymta.spool.model import SpoolMessage


def _word(value: str | None) -> str | None:
    """A value fit to be one parameter word (no space or control: a -H file written by
    hand could hold anything)."""
    if not value or any(ord(c) <= 32 or ord(c) == 127 for c in value):
        return None
    return value


def mail_dsn_param(msg: SpoolMessage, addrs: list[Address]) -> str:
    """"RET=... ENVID=..." for MAIL ("" when neither, or when every address was routed
    by a dsn_lasthop router)."""
    if all(a.dsn_request()[0] & DSN_LASTHOP for a in addrs):
        return ""
    out = []
    number = (msg.variables.get("dsn_ret") or "").strip()
    ret = ret_text(int(number)) if number.isascii() and number.isdigit() else ""
    if ret:
        out.append(f"RET={ret}")
    envid = _word(msg.variables.get("dsn_envid"))
    if envid:
        out.append(f"ENVID={envid}")
    return " ".join(out)


def rcpt_dsn_param(a: Address) -> str:
    """"NOTIFY=... ORCPT=..." for one recipient's RCPT ("" when there is nothing)."""
    flags, orcpt = a.dsn_request()
    if flags & DSN_LASTHOP:
        return ""
    out = []
    if flags & NOTIFY_MASK:
        out.append(f"NOTIFY={notify_text(flags)}")
    word = _word(orcpt)
    if word:
        out.append(f"ORCPT={word}")
    return " ".join(out)


def passed_on(a: Address) -> bool:
    """Whether the next hop took over this address's DSN requests (it offered DSN and
    they were sent), so that no success report is due from here."""
    flags, _ = a.dsn_request()
    return a.dsn_aware == "yes" and a.parent is None and not flags & DSN_LASTHOP
