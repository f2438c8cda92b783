"""What the SMTP session needs of a cutthrough delivery (``control = cutthrough_delivery``).

The implementation lives in the delivery layer (:mod:`pymta.delivery.cutthrough`); the
daemon hands its opener to the session, so the receiving side never imports it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class CutthroughResult:
    """The destination's final reply to the message, and the ``R= T= H= C=`` fields for
    the log line that reports it."""

    code: int
    text: str                     # without the code, as the client is told
    details: str
    confirmation: str = ""        # the whole reply, as C= shows it


class Cutthrough(Protocol):
    """An open cutthrough connection for one message."""

    @property
    def recipients(self) -> list[str]: ...

    def rcpt(self, address: str, ctx: Any) -> int:
        """RCPT for a further recipient: the reply code, 0 when it routes elsewhere."""

    def deliver(self, msgid: str) -> CutthroughResult:
        """Send the spooled message down the connection."""

    def log_delivered(self, msgid: str, confirmation: str) -> None:
        """Write the ``>>`` lines."""

    def close(self, quit: bool = False) -> None:
        """Give the connection up."""


class CutthroughOpener(Protocol):
    """Route the first recipient and open the connection: (connection or None, the
    destination's RCPT reply code, 0 when no cutthrough is possible)."""

    def __call__(self, config: Any, log: Any, spool_dir: str, ctx: Any, sender: str,
                 address: str) -> tuple[Cutthrough | None, int]: ...
