"""Rewriting when a message is received: the envelope, then the header lines.

As soon as the header of a message is in, Exim rewrites the envelope recipients and
the sender for good and then the address headers that came with the message (not
those an ACL adds).  For each rewritten envelope address it keeps the old one in the
spool as a deleted header -- ``X-rewrote-sender:`` or ``X-rewrote-original-recipient:``
-- as Exim 4.96 does (the spec's -H example shows one).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pymta.rewrite.engine import Rewriter
from pymta.rewrite.rules import Where
from pymta.spool.model import SpoolHeader
from pymta.taint import taint


@dataclass
class CollectedLog:
    """Holds rewriting's log lines until the message has its id and is logged
    (``entries`` are ("main"|"panic", text) in order)."""

    entries: list[tuple[str, str]] = field(default_factory=list)

    def main(self, text: str, msgid: str | None = None) -> None:
        self.entries.append(("main", text))

    def panic(self, text: str, msgid: str | None = None) -> None:
        self.entries.append(("panic", text))


@dataclass
class EnvelopeRewrite:
    """The envelope after rewriting and the deleted headers recording old values."""

    sender: str
    recipients: list[str]
    marks: list[SpoolHeader]


def rewrite_envelope(rewriter: Rewriter, sender: str, recipients: list[str],
                     rewrite_sender: bool = True) -> EnvelopeRewrite:
    """Rewrite the recipients (env-to) and then the sender (env-from), in the order
    Exim 4.96 logs them; the null sender is never rewritten, nor one that sender
    verification rewrote already (``rewrite_sender`` False)."""
    marks: list[SpoolHeader] = []
    new_recipients: list[str] = []
    for rcpt in recipients:
        new = rewriter.address(taint(rcpt), Where.ENV_TO).address
        if new != rcpt:
            marks.append(SpoolHeader("*", f"X-rewrote-original-recipient: {rcpt}\n"))
        new_recipients.append(new)
    new_sender = sender
    if sender and rewrite_sender:
        new_sender = rewriter.address(taint(sender), Where.ENV_FROM).address
        if new_sender != sender:
            marks.append(SpoolHeader("*", f"X-rewrote-sender: {sender}\n"))
    return EnvelopeRewrite(new_sender, new_recipients, marks)
