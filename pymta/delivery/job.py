"""What a transport is given to deliver: one message and a batch of its addresses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymta.address import Address
from pymta.expand.context import ExpandContext
from pymta.spool.model import SpoolMessage


@dataclass
class DeliveryJob:
    """A transport run: ``data_path`` is the -D file (the body starts after its first
    line ``ID-D``); ``ctx`` is filled by the delivery code with the variables of the
    first address (local_part, domain, local_part_data, home, ...); ``log`` is a
    :class:`pymta.log.Logger`; ``config`` the :class:`pymta.config.model.Config`.
    ``log_host_errors``: remote transports also write Exim's per-host main-log lines
    (``H=name [ip] Connection refused``) to ``log``, as Exim 4.96 does (default on).
    """

    message: SpoolMessage
    spool_dir: str
    data_path: str
    addresses: list[Address] = field(default_factory=list)
    ctx: ExpandContext | None = None
    log: Any = None
    config: Any = None
    log_host_errors: bool = True
