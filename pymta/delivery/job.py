"""What a transport is given to deliver: one message and a batch of its addresses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pymta.address import Address
from pymta.expand.context import ExpandContext
from pymta.spool.model import SpoolMessage


class ReplySubmitter(Protocol):
    """Submits a message the transport generated (autoreply): the null sender, the
    recipients, the message (LF line endings); returns the new message's id."""

    def __call__(self, data: bytes, recipients: list[str], reference: str) -> str: ...


@dataclass
class DeliveryJob:
    """A transport run: ``data_path`` is the -D file (the body starts after its first
    line ``ID-D``); ``ctx`` is filled by the delivery code with the variables of the
    first address (local_part, domain, local_part_data, home, ...); ``log`` is a
    :class:`pymta.log.Logger`; ``config`` the :class:`pymta.config.model.Config`.
    ``log_host_errors``: remote transports also write Exim's per-host main-log lines
    (``H=name [ip] Connection refused``) to ``log``, as Exim 4.96 does (default on).
    ``submit`` spools a message a transport generates (the delivery layer provides it:
    transports do not import the receiving code).
    """

    message: SpoolMessage
    spool_dir: str
    data_path: str
    addresses: list[Address] = field(default_factory=list)
    ctx: ExpandContext | None = None
    log: Any = None
    config: Any = None
    log_host_errors: bool = True
    submit: ReplySubmitter | None = None
