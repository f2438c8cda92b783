"""Transports.  Importing this package registers every transport driver."""
from pymta.transports import (
    appendfile,  # noqa: F401  (registers "appendfile")
    autoreply,  # noqa: F401  (registers "autoreply")
    lmtp,  # noqa: F401  (registers "lmtp")
    pipe,  # noqa: F401  (registers "pipe")
    queuefile,  # noqa: F401  (registers "queuefile")
    smtp,  # noqa: F401  (registers "smtp")
)
from pymta.transports.base import GENERIC_TRANSPORT_OPTIONS, Transport  # noqa: F401
