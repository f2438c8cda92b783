"""The Sender: rules for messages an untrusted local user submits (Exim's
local_from_check, local_from_prefix, local_from_suffix and local_sender_retain).

When the envelope sender was made from the caller's login (no -f the caller may use),
existing Sender: lines go, and, with local_from_check (the default), a Sender: line
with login@qualify_domain (and the caller's full name) is added unless the From: line
holds exactly that one address.  Local-part prefixes and suffixes matching
local_from_prefix/local_from_suffix (lists like a router's local_part_prefix, ``*``
wildcards) are ignored in that comparison, which is caseless.
"""
from __future__ import annotations

from email.utils import getaddresses

from pymta.expand.lists import split_list
from pymta.spool.model import SpoolHeader


def _name(h: SpoolHeader) -> str:
    return h.text.split(":", 1)[0].strip().lower()


def strip_affix_prefix(lp: str, items: list[str]) -> str:
    """``lp`` without the first prefix item it starts with (``*-`` style wildcards)."""
    for item in items:
        if item.startswith("*"):
            pos = lp.find(item[1:]) if item[1:] else -1
            if pos >= 0 and pos + len(item) - 1 < len(lp):
                return lp[pos + len(item) - 1:]
        elif lp.startswith(item) and len(lp) > len(item):
            return lp[len(item):]
    return lp


def strip_affix_suffix(lp: str, items: list[str]) -> str:
    """``lp`` without the first suffix item it ends with (``-*`` style wildcards)."""
    for item in items:
        if item.endswith("*"):
            pos = lp.rfind(item[:-1]) if item[:-1] else -1
            if pos > 0:
                return lp[:pos]
        elif lp.endswith(item) and len(lp) > len(item):
            return lp[:len(lp) - len(item)]
    return lp


def from_names_caller(headers: list[SpoolHeader], expected: str, qualify: str,
                      prefix: str | None, suffix: str | None) -> bool:
    """Whether the (live) From: lines hold exactly one address that, without its
    permitted affixes and qualified with ``qualify``, is ``expected`` (caselessly)."""
    texts = [h.text.split(":", 1)[1] for h in headers if h.flag != "*" and _name(h) == "from"]
    addresses = [a for _n, a in getaddresses(texts) if a]
    if len(addresses) != 1:
        return False
    lp, at, domain = addresses[0].rpartition("@")
    if not at:
        lp, domain = domain, qualify
    lp = strip_affix_prefix(lp, split_list(prefix or ""))
    lp = strip_affix_suffix(lp, split_list(suffix or ""))
    return f"{lp}@{domain}".lower() == expected.lower()


def apply_local_sender_rules(headers: list[SpoolHeader], login: str, qualify: str,
                             sender_line: str, check: bool, prefix: str | None,
                             suffix: str | None, retain: bool = False) -> None:
    """Mark the Sender: lines deleted (unless ``retain``, local_sender_retain) and, when
    ``check`` and From: does not name login@qualify, append ``sender_line`` (``headers``
    is changed in place)."""
    for i, h in enumerate(headers):
        if not retain and h.flag != "*" and _name(h) == "sender":
            headers[i] = SpoolHeader("*", h.text)
    if check and not from_names_caller(headers, f"{login}@{qualify}", qualify, prefix,
                                       suffix):
        headers.append(SpoolHeader("S", sender_line))
