"""``callout=hold`` (spec 44.47): a recipient callout's connection kept open.

A successful recipient callout that sent the message's sender (``use_sender``, without
``random`` or a postmaster check) leaves its connection in the session's
:class:`CalloutHoldSlot` instead of saying QUIT.  The next recipient callout of the same
message to the same host, with the same sender and greeting, only sends another RCPT on
it.  When the message is delivered at once, the delivery sends DATA on the open
transaction (:mod:`pymta.delivery.callout_hold`); otherwise the connection is given up
with QUIT at the end of the message (RSET, a new MAIL, the end of the session).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pymta.smtp.client as smtp_client


@dataclass(frozen=True)
class HeldHost:
    """The host a held connection goes to (name, IP address, port)."""

    name: str
    address: str
    port: int


@dataclass
class HeldCallout:
    """An open callout connection: MAIL FROM:<sender> and the RCPTs accepted so far."""

    client: smtp_client.SmtpClient
    host: HeldHost
    sender: str
    helo: str
    recipients: list[str] = field(default_factory=list)
    starttls: bool = False            # the host offered STARTTLS (the callout did not use it)

    def close(self) -> None:
        """QUIT (when the host still talks) and close the socket."""
        try:
            self.client.quit()
        except Exception:  # noqa: BLE001 - it is going away anyway
            pass
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass


class CalloutHoldSlot:
    """The session's held callout connection, if any (at most one, as in Exim)."""

    def __init__(self) -> None:
        self.held: HeldCallout | None = None

    def take(self) -> HeldCallout | None:
        """Hand the connection over (to a delivery); the slot is empty afterwards."""
        held, self.held = self.held, None
        return held

    def keep(self, held: HeldCallout) -> None:
        """Hold ``held``, giving up any connection held before."""
        if self.held is not None and self.held is not held:
            self.release()
        self.held = held

    def release(self) -> None:
        """Give the held connection up with QUIT."""
        held = self.take()
        if held is not None:
            held.close()


class HoldDeliverer(Protocol):
    """Deliver message ``msgid`` on ``held`` (closing it in any case); True when it was
    delivered and is gone from the spool.  The daemon provides it (the delivery layer)."""

    def __call__(self, config: Any, log: Any, spool_dir: str, ctx: Any, msgid: str,
                 held: HeldCallout) -> bool: ...
