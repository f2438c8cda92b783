"""CHUNKING (RFC 3030) on the client side: a message transaction with BDAT.

:func:`mail_rcpt_bdat` sends MAIL, the RCPTs and the message in BDAT chunks, as Exim
4.96's smtp transport does when the server offers CHUNKING and the host is in
hosts_try_chunking:

- with PIPELINING, MAIL, the RCPTs and the first chunk go in one write; a message that
  fits in one chunk is then a single ``BDAT <n> LAST``, a larger one sends its header
  block first and the body afterwards (only when some recipient was accepted);
- without PIPELINING each command waits for its reply, and no chunk is sent unless a
  recipient was accepted;
- the data is the message with CRLF line endings, without dot-stuffing or a final
  ``.`` line; each chunk's reply is read before the next chunk is sent, so a refused
  chunk stops the transfer;
- a failure is named as Exim names it: "pipelined end of data" or "pipelined sending
  data block" for the chunk sent with the commands, else "end of data" or "sending data
  block".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from pymta.smtp.client import SmtpClient, SmtpReply

#: Largest chunk sent at once (the buffer the transfer holds in memory).
CHUNK_SIZE = 1 << 20


@dataclass
class BdatTransaction:
    """Replies to one MAIL/RCPT/BDAT sequence.  ``final`` is the reply that ended the
    data (the LAST chunk's, or the first refused chunk's; None when no chunk was sent
    because MAIL or every RCPT was refused); ``stage`` names it for error messages."""

    mail: SmtpReply
    rcpts: list[SmtpReply]
    final: SmtpReply | None
    stage: str
    pipelined: bool
    mail_command: str = ""
    rcpt_commands: list[str] = field(default_factory=list)


class _Stopped(Exception):
    """The transfer ends early: MAIL/RCPT failed, or a chunk was refused."""


class ChunkSender:
    """A file-like sink for :func:`pymta.transports.content.write_message`: what is
    written is sent in BDAT chunks of at most ``chunk_size`` bytes (the first one cut at
    ``header_len`` when the message does not fit in one chunk); :meth:`close` sends the
    LAST chunk.  ``pending`` (pipelined commands) goes out with the first chunk, and
    ``first_sent()`` then reads their replies (False: no recipient, stop)."""

    def __init__(self, cl: SmtpClient, pending: bytes, header_len: int,
                 first_sent: Callable[[], bool], chunk_size: int = CHUNK_SIZE) -> None:
        self.cl = cl
        self.pending = pending
        self.header_len = header_len
        self.first_sent = first_sent
        self.chunk_size = chunk_size
        self.buf = bytearray()
        self.chunks = 0
        self.final: SmtpReply | None = None
        self.stage = ""

    def write(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) > self.chunk_size:
            n = self.chunk_size
            if self.chunks == 0 and 0 < self.header_len < n:
                n = self.header_len
            self._send(bytes(self.buf[:n]), last=False)
            del self.buf[:n]

    def close(self) -> None:
        self._send(bytes(self.buf), last=True)
        self.buf = bytearray()

    def _send(self, data: bytes, last: bool) -> None:
        first = self.chunks == 0
        command = f"BDAT {len(data)}" + (" LAST" if last else "")
        stage = ("pipelined " if first and self.pending else "") + \
            ("end of data" if last else "sending data block")
        self.cl.send(self.pending + command.encode("ascii") + b"\r\n" + data, command,
                     timeout=self.cl.data_timeout)
        self.pending = b""
        self.chunks += 1
        if first and not self.first_sent():
            # The server refuses (and skips) this chunk: read that 503 and stop.
            self.cl.read_reply(stage)
            raise _Stopped
        reply = self.cl.read_reply(stage, self.cl.final_timeout if last else None)
        if last or not reply.ok():
            self.final, self.stage = reply, stage
        if not reply.ok() and not last:
            raise _Stopped


def mail_rcpt_bdat(cl: SmtpClient, mail: str, rcpts: list[str],
                   write: Callable[[ChunkSender], object], header_len: int,
                   pipelining: bool = True, chunk_size: int = CHUNK_SIZE) -> BdatTransaction:
    """Run one transaction: ``mail`` and ``rcpts`` are the command lines (no CRLF);
    ``write(sink)`` writes the message (CRLF line endings, no dot-stuffing) into the
    sink; ``header_len`` is the length of its header block on the wire."""
    pipelined = pipelining and cl.has("PIPELINING")
    replies: dict[str, object] = {}

    def read_commands() -> bool:
        m = cl.read_reply(mail)
        rr = [cl.read_reply(c) for c in rcpts]
        replies.update(mail=m, rcpts=rr)
        return m.ok() and any(r.ok() for r in rr)

    if pipelined:
        pending = "".join(c + "\r\n" for c in [mail, *rcpts]).encode("utf-8", "surrogateescape")
        sender = ChunkSender(cl, pending, header_len, read_commands, chunk_size)
    else:
        m = cl.command(mail)
        if not m.ok():
            return BdatTransaction(m, [], None, "", False, mail, rcpts)
        rr = [cl.command(c) for c in rcpts]
        if not any(r.ok() for r in rr):
            return BdatTransaction(m, rr, None, "", False, mail, rcpts)
        replies.update(mail=m, rcpts=rr)
        sender = ChunkSender(cl, b"", header_len, lambda: True, chunk_size)
    try:
        write(sender)
        sender.close()
    except _Stopped:
        pass
    m_reply = replies["mail"]
    r_replies = replies["rcpts"]
    assert isinstance(m_reply, SmtpReply) and isinstance(r_replies, list)
    return BdatTransaction(m_reply, r_replies, sender.final, sender.stage, pipelined,
                           mail, rcpts)
