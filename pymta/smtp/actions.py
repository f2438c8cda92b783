"""What the sans-IO SMTP server asks its I/O layer to do.

:meth:`pymta.smtp.server.SmtpServer.receive` returns a list of actions, performed in
order by whoever owns the connection (the socket loop in :mod:`pymta.smtp.io`, the
stdin/stdout loop in :mod:`pymta.smtp.local`).  The server itself never blocks: it asks
for more input (:class:`ReadLine`, :class:`ReadBytes`), to send bytes
(:class:`SendReply`), to switch the connection to TLS (:class:`StartTls`) or to end it
(:class:`Close`).

Extensions answer a command with a :class:`Challenge` (AUTH: "334 text", then the
client's next line goes back to the extension) or a final reply.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union


@dataclass(frozen=True)
class SendReply:
    """Write ``data`` (one or more formatted replies) to the client."""

    data: bytes


@dataclass(frozen=True)
class ReadLine:
    """The server waits for a command line (or, in DATA, message lines)."""

    limit: int


@dataclass(frozen=True)
class ReadBytes:
    """The server waits for exactly ``count`` more bytes (BDAT chunks)."""

    count: int


@dataclass(frozen=True)
class StartTls:
    """Start a TLS handshake now.  The server has already thrown away any plaintext it had
    buffered after the command that asked for TLS; the I/O layer must not feed it any
    either, and calls :meth:`SmtpServer.tls_started` (or ``tls_failed``) afterwards."""


@dataclass(frozen=True)
class Close:
    """The dialogue is over: flush what was sent and close the connection."""


Action = Union[SendReply, ReadLine, ReadBytes, StartTls, Close]


@dataclass
class Challenge:
    """An intermediate step of a multi-step exchange (AUTH): the server sends
    ``code text`` (334 by default) and passes the client's next line, without its line
    ending, to ``respond``, which returns the next Challenge or the final reply.  A line
    that is just ``*`` cancels the exchange instead: ``cancel()`` is called when given
    and the client gets "501 Authentication cancelled"."""

    text: str
    respond: Callable[[str], object]
    cancel: Callable[[], None] | None = None
    code: int = 334


def reply_bytes(actions: list[Action]) -> bytes:
    """All the bytes the actions send, joined (for callers that only send)."""
    return b"".join(a.data for a in actions if isinstance(a, SendReply))
