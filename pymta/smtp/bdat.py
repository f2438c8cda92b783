"""CHUNKING (RFC 3030) on the server side: the BDAT command of the sans-IO server.

:class:`BdatReceiver` installs itself on a :class:`~pymta.smtp.server.SmtpServer`:
``BDAT <size> [LAST]`` makes the server read exactly ``size`` bytes as message data (no
dot-unstuffing, nothing in a chunk is ever a command), and the end of the LAST chunk is
the end of the data: the message then goes through :meth:`SmtpServer.end_of_data`
exactly as after DATA's terminator (size check, DATA ACL, spooling, reply).

Behaviour follows Exim 4.96 where Exim is sane, and is stricter where it is not:

- replies: ``250 <n> byte chunk received`` for each chunk but the last; the last gets
  the reply to the message, which when it accepts starts with Exim's
  ``250- <n> byte chunk, total <m>`` line (m: the message's size with CRLF line
  endings); the predata ACL is not run for BDAT;
- ``503 BDAT command used when CHUNKING not advertised`` (HELO, or a host outside
  chunking_advertise_hosts); ``503 valid RCPT command must precede BDAT`` (with the
  "All RCPT commands were rejected" lines when they apply); a refused BDAT whose size
  can be read always has its chunk read and thrown away, so chunk bytes are never
  taken for commands (Exim 4.96 reads them as commands after the first of these);
- the size is ``1*DIGIT`` (leading zeros allowed); anything else is
  ``501 missing size for BDAT command`` (Exim's sscanf took "+5", and "-1" or a value
  over 2**32 wrapped round, which desynchronised the session); a valid size followed
  by anything but ``LAST`` is refused with 501 and its chunk is thrown away;
- a chunk that takes the message over message_size_limit is answered with 552 when
  it has been read, and the transaction is over;
- between chunks only BDAT, NOOP, RSET and QUIT are allowed; any other command gets
  ``503 only BDAT permissible after non-LAST BDAT``, the message is dropped, and until
  RSET every command but QUIT gets ``503 only RSET accepted now`` (a BDAT's chunk is
  skipped); Exim 4.96 crashes on RSET there, pymta resets.

The data is converted as it streams in: CRLF becomes LF (also when a chunk ends
between CR and LF), a lone CR or LF is kept, and a message that does not end with a
line ending gets one.  It goes into the store the session gives (a file in the spool
directory, :class:`~pymta.message.body.FileBody`), so a message is never held whole in
memory; beyond message_size_limit nothing more is kept, only counted.
"""
from __future__ import annotations

import time
from typing import Callable

from pymta.message.body import FileBody
from pymta.smtp.header_progress import HeaderProgress
from pymta.smtp.server import Reply, SmtpServer

# More significant digits than this cannot be a real chunk (10**18 bytes); int() of a
# 16 KiB digit string would also fail (Python limits int/str conversion).
_MAX_SIZE_DIGITS = 18


def parse_bdat(arg: str) -> tuple[int | None, bool, bool]:
    """Parse BDAT's argument: (size or None when there is no valid size, last, valid).

    ``valid`` is False when the size is known but something other than ``LAST`` follows
    it (the chunk must still be skipped)."""
    words = arg.split()
    if not words or not (words[0].isascii() and words[0].isdigit()):
        return None, False, False
    digits = words[0].lstrip("0") or "0"
    if len(digits) > _MAX_SIZE_DIGITS:
        # Known to be enormous; no message can be this big, so skipping it means reading
        # until the client gives up: that keeps the session in step with the client.
        size = 10 ** _MAX_SIZE_DIGITS
    else:
        size = int(digits)
    rest = words[1:]
    if not rest:
        return size, False, True
    if len(rest) == 1 and rest[0].upper() == "LAST":
        return size, True, True
    return size, False, False


class ChunkedBody:
    """The message being received in chunks, converted to LF line endings as it arrives.

    With ``store`` (a file, from the session) the message streams into it and is never
    held in memory; without, it is collected in memory.  ``limit`` > 0: once more than
    that has arrived nothing more is kept (the message will be refused)."""

    def __init__(self, limit: int = 0, store: FileBody | None = None) -> None:
        self.limit = limit
        self.store = store
        self.data = bytearray()        # the message, when there is no store
        self.size = 0                  # bytes of the converted message, kept or not
        self.newlines = 0
        self._cr = False               # the previous piece ended with CR
        self._last = b""               # the last byte kept
        self.too_big = False

    def feed(self, piece: bytes) -> None:
        if not piece:
            return
        if self._cr:
            piece = b"\r" + piece
            self._cr = False
        if piece.endswith(b"\r"):
            # CR LF may be split between two pieces (or two chunks): decide later.
            piece = piece[:-1]
            self._cr = True
        self._keep(piece.replace(b"\r\n", b"\n"))

    def _keep(self, text: bytes) -> None:
        if not text:
            return
        self.size += len(text)
        self.newlines += text.count(b"\n")
        if self.too_big:
            return
        if self.limit and self.size > self.limit:
            self.too_big = True
            self.discard()
            return
        self._last = text[-1:]
        if self.store is not None:
            self.store.write(text)
        else:
            self.data += text

    def discard(self) -> None:
        """Nothing more is kept (too big, or the message was dropped)."""
        self.data = bytearray()
        if self.store is not None:
            self.store.close()
            self.store = None

    def finish(self) -> bytes | FileBody:
        """The whole message (the store when there is one): a CR left at the very end
        is data; a message that does not end with a line ending gets one (as Exim
        does)."""
        if self._cr:
            self._cr = False
            self._keep(b"\r")
        if self._last != b"\n":
            self._keep(b"\n")
        return self.store if self.store is not None else bytes(self.data)


class BdatReceiver:
    """The BDAT command and the chunked-message state of one server."""

    def __init__(self, server: SmtpServer,
                 store: Callable[[], FileBody] | None = None) -> None:
        self.server = server
        self.store = store                       # makes a file for each message
        self.body: ChunkedBody | None = None     # a chunked message is in progress
        self.need_rset = False
        server.extra_commands["BDAT"] = self._bdat
        server.command_gate = self._gate
        server.reset_hooks.append(self._reset)

    def advertise(self) -> None:
        """Offer CHUNKING in EHLO replies (chunking_advertise_hosts matched)."""
        if "CHUNKING" not in self.server.extensions:
            self.server.extensions.append("CHUNKING")     # (the EHLO reply orders them)

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        if self.body is not None:
            self.body.discard()
        self.body = None
        self.need_rset = False

    def _abandon(self) -> None:
        """Drop the chunked message (an error between chunks)."""
        if self.body is not None:
            self.server.reset_transaction()
            self.server.handler.on_rset()

    def _gate(self, verb: str, arg: str) -> bool:
        """Refuse commands that cannot come between chunks (True: answered)."""
        srv = self.server
        if self.need_rset and verb not in ("RSET", "QUIT"):
            # A BDAT's chunk is still read (Exim takes it for commands, which could
            # then run from inside message data).
            self._refuse(arg if verb == "BDAT" else "", 503, "only RSET accepted now")
            return True
        if self.body is not None and verb not in ("BDAT", "NOOP", "RSET", "QUIT"):
            self._abandon()
            self.need_rset = True
            srv.synprot_error(503, "only BDAT permissible after non-LAST BDAT")
            return True
        return False

    # ------------------------------------------------------------------ BDAT
    def _refuse(self, arg: str, code: int, text: str) -> None:
        """A refused BDAT: skip its chunk when its size is known, then reply."""
        size = parse_bdat(arg)[0]
        if size is None:
            self.server.synprot_error(code, text)
        else:
            self._skip(size, lambda: self.server.synprot_error(code, text))

    def _bdat(self, srv: SmtpServer, arg: str) -> None:
        if not (srv.esmtp and srv.helo_name is not None and "CHUNKING" in srv.extensions):
            self._refuse(arg, 503, "BDAT command used when CHUNKING not advertised")
            return
        size, last, valid = parse_bdat(arg)
        if size is None:
            self._abandon()
            srv.synprot_error(501, "missing size for BDAT command")
            return
        if not valid:
            self._abandon()
            self._skip(size, lambda: srv.synprot_error(501, "syntax error in BDAT command"))
            return
        if self.body is None:
            if not srv.recipients and not srv.discard_message:
                self._skip(size, self._no_recipients)
                return
            self.body = ChunkedBody(srv.size_limit,
                                    self.store() if self.store is not None else None)
            srv.message_chunked = True
            srv.data_progress = HeaderProgress(dot_stuffed=False)
            srv.data_started = time.monotonic()
        body = self.body
        progress = srv.data_progress

        def piece(data: bytes) -> None:
            if progress is not None:
                progress.feed(data)
            body.feed(data)
        srv.read_bytes(size, lambda _: self._chunk_done(body, size, last), piece)

    def _skip(self, size: int, then: Callable[[], None]) -> None:
        """Read and throw away a chunk that was refused, then answer with ``then()``."""
        self.server.read_bytes(size, lambda _: then(), lambda _piece: None)

    def _no_recipients(self) -> None:
        srv = self.server
        srv.no_valid_recipients("BDAT", len(srv.history) >= 2 and srv.history[-2] == "RCPT")

    def _chunk_done(self, body: ChunkedBody, size: int, last: bool) -> None:
        srv = self.server
        if body is not self.body:
            return          # the message was dropped meanwhile (cannot happen mid-read)
        if last:
            data = body.finish()
            self.body = None
            # Exim's first line of an accepting reply: the message size on the wire
            # (LF line ends become CRLF).
            total = body.size + body.newlines
            srv.end_of_data(data, body.size, body.too_big,
                            note=f" {size} byte chunk, total {total}")
            if isinstance(data, FileBody):
                data.close()            # copied to the spool (or refused) by now
        elif body.too_big:
            # Exim answers at the end of the chunk that went over the limit.
            self.body = None
            srv.end_of_data(b"", body.size, True)
        else:
            srv.send_reply(Reply(250, f"{size} byte chunk received"))
