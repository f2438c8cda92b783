"""Rewriting the address header lines of a message.

Exim rewrites the addresses in From:, To:, Cc:, Bcc:, Reply-To:, Sender: and their
Resent- versions.  A rewritten header is not edited in place: the old line stays in
the spool marked deleted ("*") and the new one follows it, with the old one's type
letter -- the spec's "Format of the -H file" shows such a pair.
"""
from __future__ import annotations

from pymta.rewrite.addrparse import address_items
from pymta.rewrite.engine import Rewriter
from pymta.rewrite.rules import Where, header_where
from pymta.spool.model import SpoolHeader


def rewrite_header_text(rewriter: Rewriter, text: str, mask: Where = Where.HEADERS) -> str | None:
    """The header ``text`` (name and value) with its addresses rewritten, or None when
    nothing changed.  ``mask`` narrows the places considered (a transport's rules
    name only headers)."""
    name, colon, value = text.partition(":")
    if not colon:
        return None
    where = header_where(name)
    if where is None or not where & mask \
            or not any(rule.where & where for rule in rewriter.rules):
        return None
    replacements: list[tuple[int, int, str]] = []
    for item in address_items(value):
        if "@" not in item.address:
            continue            # unqualified header addresses are not rewritten
        outcome = rewriter.address(item.address, where)
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


def rewrite_headers(rewriter: Rewriter, headers: list[SpoolHeader],
                    mask: Where = Where.HEADERS) -> list[SpoolHeader]:
    """The header list with every rewritten header marked deleted and followed by its
    new version; headers already deleted are left alone."""
    out: list[SpoolHeader] = []
    for h in headers:
        new = None if h.flag == "*" else rewrite_header_text(rewriter, h.text, mask)
        if new is None:
            out.append(h)
            continue
        out.append(SpoolHeader("*", h.text))
        out.append(SpoolHeader(h.flag, new))
    return out
