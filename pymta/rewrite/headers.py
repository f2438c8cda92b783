"""Rewriting (and qualifying) the address header lines of a message.

Exim rewrites the addresses in From:, To:, Cc:, Bcc:, Reply-To:, Sender: and their
Resent- versions.  A rewritten header is not edited in place: the old line stays in
the spool marked deleted ("*") and the new one follows it, with the old one's type
letter -- the spec's "Format of the -H file" shows such a pair.
"""
from __future__ import annotations

from typing import Mapping

from pymta.rewrite.addrparse import address_items
from pymta.rewrite.engine import Outcome, Rewriter
from pymta.rewrite.rules import Where, header_where
from pymta.spool.model import SpoolHeader
from pymta.taint import taint

# Unqualified addresses in these headers take qualify_domain; in the others
# (To:, Cc:, Bcc:) qualify_recipient.
SENDER_HEADERS = Where.FROM | Where.SENDER | Where.REPLY_TO


def rewrite_header_text(rewriter: Rewriter | None, text: str, mask: Where = Where.HEADERS,
                        qualify: Mapping[Where, str] | None = None) -> str | None:
    """The header ``text`` (name and value) with its addresses rewritten, or None when
    nothing changed.  ``mask`` narrows the places considered (a transport's rules
    name only headers).  ``qualify`` gives the domain for unqualified addresses by
    place (a message whose sender may use them); without one they are left alone."""
    name, colon, value = text.partition(":")
    if not colon:
        return None
    where = header_where(name)
    if where is None or not where & mask:
        return None
    domain = (qualify or {}).get(where)
    rules = rewriter is not None and any(rule.where & where for rule in rewriter.rules)
    if not rules and not domain:
        return None
    replacements: list[tuple[int, int, str]] = []
    for item in address_items(value):
        address = item.address
        if "@" not in address:
            if not domain:
                continue        # unqualified addresses are left as they are
            address = f"{address}@{domain}"
        # message data: tainted, so $1, $local_part... cannot become a file name
        outcome = rewriter.address(taint(address), where) \
            if rewriter is not None and rules else Outcome(address)
        if outcome.address == item.address and outcome.whole is None:
            continue
        if outcome.whole is not None:
            replacements.append((item.start, item.end, outcome.whole))
        else:
            replacements.append((item.addr_start, item.addr_end, outcome.address))
    if not replacements:
        return None
    for start, end, new in reversed(replacements):
        value = value[:start] + new + value[end:]
    return name + colon + value


def qualify_domains(sender_domain: str | None,
                    recipient_domain: str | None) -> dict[Where, str]:
    """The ``qualify`` mapping for :func:`rewrite_header_text`: sender headers take
    ``sender_domain``, recipient headers ``recipient_domain`` (None: not qualified)."""
    out: dict[Where, str] = {}
    for where in (Where.FROM, Where.SENDER, Where.REPLY_TO, Where.TO, Where.CC, Where.BCC):
        domain = sender_domain if where & SENDER_HEADERS else recipient_domain
        if domain:
            out[where] = domain
    return out


def rewrite_headers(rewriter: Rewriter | None, headers: list[SpoolHeader],
                    mask: Where = Where.HEADERS,
                    qualify: Mapping[Where, str] | None = None) -> list[SpoolHeader]:
    """The header list with every rewritten header marked deleted and followed by its
    new version; headers already deleted are left alone."""
    out: list[SpoolHeader] = []
    for h in headers:
        new = None if h.flag == "*" else rewrite_header_text(rewriter, h.text, mask, qualify)
        if new is None:
            out.append(h)
            continue
        out.append(SpoolHeader("*", h.text))
        out.append(SpoolHeader(h.flag, new))
    return out
