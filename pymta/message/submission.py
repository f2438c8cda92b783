"""Submission mode (``control = submission``) for messages received over SMTP.

Exim 4.96's rules (the manual's "Submission mode for non-local messages", "The From:
header line" and "The Sender: header line"): unless ``sender_retain`` is given, any
Sender: lines go, and when the client authenticated, an address is made from
$authenticated_id -- with $qualify_domain, with the control's ``domain=``, or alone
when ``domain=`` is empty.  When the From: line does not name that address, a Sender:
line with it (and ``name=``, the user's full name) is added and the return path becomes
that address.  A message without From: gets one from the envelope sender or, failing
that, from the made address.
"""
from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses

from pymta.expand.lists import split_list
from pymta.message.localfrom import strip_affix_prefix, strip_affix_suffix
from pymta.spool.model import SpoolHeader


@dataclass
class SubmissionOptions:
    """The options after ``control = submission``."""

    sender_retain: bool = False
    domain: str | None = None           # None: $qualify_domain; "": the id is an address
    name: str | None = None             # full name for a created Sender: or From:


def parse_submission(control: str) -> SubmissionOptions:
    """``submission/sender_retain``, ``submission/domain=D/name=N`` (name comes last:
    the rest of the string, which may contain slashes)."""
    opts = SubmissionOptions()
    rest = control.split("/", 1)[1] if "/" in control else ""
    while rest:
        if rest.startswith("name="):
            opts.name = rest[5:]
            break
        item, _, rest = rest.partition("/")
        if item == "sender_retain":
            opts.sender_retain = True
        elif item.startswith("domain="):
            opts.domain = item[7:]
    return opts


def submission_address(authenticated_id: str, opts: SubmissionOptions, qualify: str) -> str:
    """The sender address submission mode makes from $authenticated_id."""
    if opts.domain == "":
        return authenticated_id
    return f"{authenticated_id}@{opts.domain or qualify}"


def _with_name(address: str, name: str | None) -> str:
    return f"{name} <{address}>" if name else address


def _from_addresses(headers: list[SpoolHeader], prefix: str | None = None,
                    suffix: str | None = None) -> list[str]:
    """The From: addresses, lower-cased, their local parts without the affixes
    local_from_prefix / local_from_suffix permit."""
    texts = [h.text.split(":", 1)[1] for h in headers
             if h.flag != "*" and h.text.split(":", 1)[0].strip().lower() == "from"]
    out = []
    for _name, addr in getaddresses(texts):
        if addr:
            lp, at, domain = addr.rpartition("@")
            if at:
                lp = strip_affix_suffix(strip_affix_prefix(lp, split_list(prefix or "")),
                                        split_list(suffix or ""))
                addr = f"{lp}@{domain}"
            out.append(addr.lower())
    return out


def apply_sender_rules(headers: list[SpoolHeader], authenticated_id: str | None,
                       opts: SubmissionOptions, qualify: str, prefix: str | None = None,
                       suffix: str | None = None) -> str | None:
    """Remove Sender: lines and add one when From: does not name the authenticated
    user (``headers`` is changed in place).  Returns the new return path, or None to
    keep the envelope sender."""
    if opts.sender_retain:
        return None
    for i, h in enumerate(headers):
        if h.flag != "*" and h.text.split(":", 1)[0].strip().lower() == "sender":
            headers[i] = SpoolHeader("*", h.text)
    if not authenticated_id:
        return None
    address = submission_address(authenticated_id, opts, qualify)
    if address.lower() in _from_addresses(headers, prefix, suffix):
        return None
    headers.append(SpoolHeader("S", f"Sender: {_with_name(address, opts.name)}\n"))
    return address


def created_from(authenticated_id: str | None, opts: SubmissionOptions,
                 qualify: str) -> str | None:
    """A From: line for a message without one and with an empty envelope sender."""
    if not authenticated_id:
        return None
    address = submission_address(authenticated_id, opts, qualify)
    return f"From: {_with_name(address, opts.name)}\n"
