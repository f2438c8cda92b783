"""What Exim adds to a rejectlog entry for a message refused after its data was read
(by the DATA, MIME or DKIM ACL): ``Envelope-from: <sender>``, ``Envelope-to: <first>``
with each further recipient on a line of its own (``    <next>``), then the header lines,
each behind its spool flag character (``P`` Received:, ``F`` From:, ``T`` To:, ``*`` a
header an ACL removed, two spaces for an ordinary one) (log_selector rejected_header,
which pymta always has on).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pymta.message.envelope import Envelope
from pymta.message.receive import PreparedMessage, headers_after_removal
from pymta.spool.model import SpoolHeader


@dataclass(frozen=True)
class RejectDetails:
    """The envelope lines and the headers of a message being received."""

    envelope: tuple[str, ...] = ()
    headers: tuple[SpoolHeader, ...] = field(default_factory=tuple)

    def with_removed(self, names: list[str]) -> RejectDetails:
        """The same, with the headers an ACL's remove_header names marked deleted."""
        if not names:
            return self
        return RejectDetails(self.envelope,
                             tuple(headers_after_removal(list(self.headers), names)))


def reject_details(env: Envelope, prepared: PreparedMessage) -> RejectDetails:
    """The rejectlog additions for the message ``env`` / ``prepared``."""
    lines = [f"Envelope-from: <{env.sender or ''}>"]
    for i, rcpt in enumerate(env.recipients):
        lines.append(f"Envelope-to: <{rcpt}>" if i == 0 else f"    <{rcpt}>")
    return RejectDetails(tuple(lines), tuple(prepared.spool.headers))
