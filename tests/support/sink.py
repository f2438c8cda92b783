"""A threaded SMTP sink server for tests (stdlib only, real sockets on 127.0.0.1).

The sink speaks enough ESMTP for an MTA's smtp transport to deliver to it:
EHLO/HELO (advertising PIPELINING, SIZE and 8BITMIME), MAIL, RCPT, DATA with
dot-unstuffing, RSET, NOOP, VRFY and QUIT.  Its behaviour is chosen with
``mode``:

``"accept"``
    accept everything (the default);
``"rcpt"``
    answer every RCPT with ``code``/``text`` (or only the recipients listed in
    ``rcpt_replies``, which works in any mode);
``"data"``
    answer the end of DATA with ``code``/``text``;
``"close"``
    drop the connection without a reply when the stage ``close_at`` is reached:
    ``"connect"`` (before the banner), ``"ehlo"``, ``"mail"``, ``"rcpt"``,
    ``"data"`` (on the DATA command) or ``"dot"`` (after the message body).

With ``chunking=True`` it also offers CHUNKING (RFC 3030): ``BDAT <n> [LAST]`` chunks
are read byte for byte and the LAST one ends the message (``data`` mode and
``close_at="dot"`` apply there); ``bdat_reply`` answers every other chunk instead of
``250 <n> byte chunk received``.  :attr:`ReceivedMessage.bdat_chunks` lists the chunk
sizes of a message that came that way.

With ``lmtp=True`` it speaks LMTP (RFC 2033): LHLO instead of EHLO/HELO, and
one reply per accepted recipient after the data (``lmtp_data_replies`` maps a
recipient to its reply there; the others get 250, or ``code``/``text`` in
``data`` mode).

With ``tls_context`` (an :class:`ssl.SSLContext` for the server side, e.g.
from :func:`tests.support.certs.server_context`) STARTTLS is advertised and
offered; ``auth`` (a user -> password dict) advertises and checks AUTH PLAIN
and LOGIN.

Messages whose DATA was answered with 2xx are recorded as
:class:`ReceivedMessage` in the thread-safe list :attr:`SmtpSink.messages`.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

Reply = tuple[int, str]

MODES = ("accept", "rcpt", "data", "close")
CLOSE_STAGES = ("connect", "ehlo", "mail", "rcpt", "data", "dot")


@dataclass
class ReceivedMessage:
    """One message accepted by the sink.

    ``data`` is the message as it came over the wire after dot-unstuffing,
    with CRLF line endings and without the terminating ``.`` line.
    ``recipients`` holds only the recipients that were accepted at RCPT.
    """

    sender: str
    recipients: list[str]
    data: bytes
    helo: str = ""
    peer: tuple[str, int] = ("", 0)
    mail_params: list[str] = field(default_factory=list)
    #: TLS protocol version ("TLSv1.3") when the message came over STARTTLS, else None
    tls: Optional[str] = None
    #: the user name that authenticated with AUTH, else None
    auth_user: Optional[str] = None
    #: the sizes of the BDAT chunks the message came in (empty: it came by DATA)
    bdat_chunks: list[int] = field(default_factory=list)

    @property
    def lf_data(self) -> bytes:
        """The message with LF line endings (as pymta keeps it internally)."""
        return self.data.replace(b"\r\n", b"\n")

    def header(self, name: str) -> Optional[str]:
        """Return the first header called ``name`` (unfolded), or None."""
        head = self.lf_data.split(b"\n\n", 1)[0].decode("utf-8", "replace")
        current: Optional[str] = None
        for line in head.split("\n") + [""]:
            if line[:1] in (" ", "\t") and current is not None:
                current += line
                continue
            if current is not None:
                key, _, value = current.partition(":")
                if key.strip().lower() == name.lower():
                    return value.strip()
            current = line
        return None


def _parse_path(arg: str) -> tuple[str, list[str]]:
    """Split ``<addr> PARAM=x ...`` into the address and its parameters."""
    arg = arg.strip()
    if arg.startswith("<"):
        end = arg.find(">")
        if end < 0:
            raise ValueError("missing >")
        return arg[1:end], arg[end + 1:].split()
    parts = arg.split()
    if not parts:
        raise ValueError("empty path")
    return parts[0], parts[1:]


class _CloseConnection(Exception):
    """Raised inside a session to drop the connection silently."""


class SmtpSink:
    """Threaded SMTP server on 127.0.0.1 that records what it receives.

    Use as ``with SmtpSink() as sink: ... sink.port ...`` or call
    :meth:`start`/:meth:`stop` yourself.
    """

    def __init__(
        self,
        port: int = 0,
        mode: str = "accept",
        *,
        code: int = 550,
        text: str = "rejected by sink",
        rcpt_replies: Optional[dict[str, Reply]] = None,
        rcpt_handler: Optional[Callable[[str], Optional[Reply]]] = None,
        close_at: str = "connect",
        hostname: str = "sink.test",
        banner: Optional[Reply] = None,
        max_size: int = 0,
        timeout: float = 30.0,
        tls_context: Optional[ssl.SSLContext] = None,
        auth: Optional[dict[str, str]] = None,
        lmtp: bool = False,
        lmtp_data_replies: Optional[dict[str, Reply]] = None,
        extensions: Iterable[str] = (),
        banner_delay: float = 0.0,
        dsn: bool = False,
        mail_reply: Optional[Reply] = None,
        chunking: bool = False,
        bdat_reply: Optional[Reply] = None,
    ) -> None:
        """Create the sink (it does not listen until :meth:`start`).

        ``code``/``text`` is the reply used by the ``rcpt`` and ``data`` modes.
        ``rcpt_replies`` maps a recipient address (compared case-insensitively)
        to the reply for that recipient; ``rcpt_handler(address)`` may return a
        reply or None for the default.  ``banner`` overrides the 220 greeting
        (e.g. ``(421, "busy")`` to refuse sessions).  ``max_size`` > 0 is
        advertised with SIZE and enforced at MAIL and after DATA.
        ``tls_context`` enables STARTTLS; ``auth`` enables AUTH PLAIN/LOGIN;
        ``dsn`` advertises DSN (RFC 3461; the parameters are taken as they come and
        can be read in :attr:`commands`).
        ``extensions`` are further EHLO keywords to advertise (e.g. ``PIPECONNECT``).
        ``banner_delay`` seconds pass before the banner; whether the client sent
        anything in that time is recorded in :attr:`early_input` (one entry per
        session), to see a client's early pipelining (PIPECONNECT).
        ``mail_reply`` answers every MAIL command (e.g. ``(550, "no bounces")``).
        """
        if mode not in MODES:
            raise ValueError(f"unknown sink mode {mode!r}")
        if close_at not in CLOSE_STAGES:
            raise ValueError(f"unknown close stage {close_at!r}")
        self.mode = mode
        self.code = code
        self.text = text
        self.rcpt_replies = {k.lower(): v for k, v in (rcpt_replies or {}).items()}
        self.rcpt_handler = rcpt_handler
        self.close_at = close_at
        self.hostname = hostname
        self.banner_reply = banner or (220, f"{hostname} ESMTP test sink")
        self.max_size = max_size
        self.timeout = timeout
        self.tls_context = tls_context
        self.auth = auth
        self.lmtp = lmtp
        self.dsn = dsn
        self.lmtp_data_replies = {k.lower(): v for k, v in (lmtp_data_replies or {}).items()}
        self.extensions = list(extensions)
        self.banner_delay = banner_delay
        #: per session: did input arrive before the banner was sent?
        self.early_input: list[bool] = []
        self.mail_reply = mail_reply
        self.chunking = chunking
        self.bdat_reply = bdat_reply
        self._requested_port = port
        self.port = port
        self.messages: list[ReceivedMessage] = []
        #: every command line received, in order, from all sessions
        self.commands: list[str] = []
        self.connections = 0
        self._cond = threading.Condition()
        self._listener: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._conns: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._running = False

    # -- lifecycle -------------------------------------------------------

    def start(self) -> "SmtpSink":
        """Bind, listen and start the accept thread; returns self."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._requested_port))
        sock.listen(64)
        self._listener = sock
        self.port = sock.getsockname()[1]
        self._running = True
        self._thread = threading.Thread(target=self._accept_loop, name=f"smtp-sink-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, close open sessions and wait for the threads."""
        self._running = False
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
        for worker in list(self._workers):
            worker.join(5)
        self._listener = None
        self._thread = None

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection ------------------------------------------------------

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``n`` messages were received; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def received(self) -> list[ReceivedMessage]:
        """A snapshot copy of the messages received so far."""
        with self._cond:
            return list(self.messages)

    def clear(self) -> None:
        """Forget the messages and commands recorded so far."""
        with self._cond:
            self.messages.clear()
            self.commands.clear()

    # -- server ----------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while self._running:
            try:
                conn, peer = self._listener.accept()
            except OSError:
                break
            if not self._running:
                conn.close()
                break
            with self._cond:
                self.connections += 1
                self._conns.add(conn)
            worker = threading.Thread(target=self._serve, args=(conn, peer), daemon=True)
            self._workers = [w for w in self._workers if w.is_alive()]
            self._workers.append(worker)
            worker.start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.settimeout(self.timeout)
        session = _Session(self, conn, conn.makefile("rb"), peer)
        try:
            session.run()
        except (_CloseConnection, OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._conns.discard(conn)
                self._conns.discard(session.conn)
            try:
                session.rfile.close()
                session.conn.close()
            except OSError:
                pass

    def _record_command(self, line: str) -> None:
        with self._cond:
            self.commands.append(line)

    def _record_message(self, msg: ReceivedMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()


class _Session:
    """One SMTP conversation of the sink."""

    def __init__(self, sink: SmtpSink, conn: socket.socket, rfile, peer: tuple[str, int]) -> None:
        self.sink = sink
        self.conn = conn
        self.rfile = rfile
        self.peer = peer
        self.helo = ""
        self.tls: Optional[str] = None
        self.auth_user: Optional[str] = None
        self.reset()

    def reset(self) -> None:
        self.sender: Optional[str] = None
        self.params: list[str] = []
        self.rcpts: list[str] = []
        self.chunks: list[bytes] = []

    def reply(self, code: int, text: str, extra: Optional[list[str]] = None) -> None:
        lines = [text] + list(extra or [])
        out = "".join(f"{code}-{ln}\r\n" for ln in lines[:-1]) + f"{code} {lines[-1]}\r\n"
        self.conn.sendall(out.encode("utf-8"))

    def maybe_close(self, stage: str) -> None:
        if self.sink.mode == "close" and self.sink.close_at == stage:
            raise _CloseConnection()

    def readline(self) -> Optional[bytes]:
        line = self.rfile.readline(65536)
        if not line:
            return None
        return line

    def run(self) -> None:
        self.maybe_close("connect")
        if self.sink.banner_delay:
            ready, _, _ = select.select([self.conn], [], [], self.sink.banner_delay)
            self.sink.early_input.append(bool(ready))
        self.reply(*self.sink.banner_reply)
        if self.sink.banner_reply[0] >= 400:
            return
        while True:
            raw = self.readline()
            if raw is None:
                return
            line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")   # 8-bit kept
            self.sink._record_command(line)
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            handler = getattr(self, "do_" + verb, None)
            if handler is None:
                self.reply(500, "unrecognized command")
                continue
            if handler(arg) is False:
                return

    # -- commands --------------------------------------------------------

    def do_LHLO(self, arg: str) -> None:
        if not self.sink.lmtp:
            self.reply(500, "unrecognized command")
            return
        self._hello(arg)

    def do_EHLO(self, arg: str) -> None:
        if self.sink.lmtp:
            self.reply(500, "use LHLO")
            return
        self._hello(arg)

    def _hello(self, arg: str) -> None:
        self.maybe_close("ehlo")
        self.helo = arg.strip()
        self.reset()
        ext = ["PIPELINING", f"SIZE {self.sink.max_size}" if self.sink.max_size else "SIZE",
               "8BITMIME"]
        if self.sink.dsn:
            ext.append("DSN")
        if self.sink.tls_context is not None and self.tls is None:
            ext.append("STARTTLS")
        if self.sink.auth is not None and self.auth_user is None:
            ext.append("AUTH PLAIN LOGIN")
        ext.extend(self.sink.extensions)
        if self.sink.chunking:
            ext.append("CHUNKING")
        ext.append("HELP")
        self.reply(250, f"{self.sink.hostname} Hello {self.helo}", ext)

    def do_HELO(self, arg: str) -> None:
        if self.sink.lmtp:
            self.reply(500, "use LHLO")
            return
        self.maybe_close("ehlo")
        self.helo = arg.strip()
        self.reset()
        self.reply(250, f"{self.sink.hostname} Hello {self.helo}")

    def do_MAIL(self, arg: str) -> None:
        self.maybe_close("mail")
        if not arg.upper().startswith("FROM:"):
            self.reply(501, "syntax: MAIL FROM:<address>")
            return
        if self.sender is not None:
            self.reply(503, "sender already given")
            return
        try:
            addr, params = _parse_path(arg[5:])
        except ValueError:
            self.reply(501, "bad sender address")
            return
        for p in params:
            key, _, val = p.partition("=")
            if key.upper() == "SIZE" and self.sink.max_size and val.isdigit() \
                    and int(val) > self.sink.max_size:
                self.reply(552, "message size exceeds fixed maximum")
                return
        if self.sink.mail_reply is not None and not 200 <= self.sink.mail_reply[0] < 300:
            self.reply(*self.sink.mail_reply)
            return
        self.sender = addr
        self.params = params
        self.reply(250, "OK")

    def do_RCPT(self, arg: str) -> None:
        self.maybe_close("rcpt")
        if self.sender is None:
            self.reply(503, "sender not yet given")
            return
        if not arg.upper().startswith("TO:"):
            self.reply(501, "syntax: RCPT TO:<address>")
            return
        try:
            addr, _ = _parse_path(arg[3:])
        except ValueError:
            self.reply(501, "bad recipient address")
            return
        reply: Optional[Reply] = None
        if self.sink.rcpt_handler is not None:
            reply = self.sink.rcpt_handler(addr)
        if reply is None:
            reply = self.sink.rcpt_replies.get(addr.lower())
        if reply is None and self.sink.mode == "rcpt" and not self.sink.rcpt_replies \
                and self.sink.rcpt_handler is None:
            reply = (self.sink.code, self.sink.text)
        if reply is None:
            reply = (250, "Accepted")
        if 200 <= reply[0] < 300:
            self.rcpts.append(addr)
        self.reply(*reply)

    def do_DATA(self, arg: str) -> Optional[bool]:
        self.maybe_close("data")
        if self.sender is None:
            self.reply(503, "valid RCPT command must precede DATA")
            return None
        if not self.rcpts:
            self.reply(554, "no valid recipients")
            return None
        self.reply(354, "Enter message, ending with \".\" on a line by itself")
        chunks: list[bytes] = []
        while True:
            raw = self.readline()
            if raw is None:
                return False
            if raw in (b".\r\n", b".\n"):
                break
            if raw.startswith(b"."):
                raw = raw[1:]  # dot-unstuffing (RFC 5321 4.5.2)
            chunks.append(raw)
        self.maybe_close("dot")
        data = b"".join(chunks)
        if self.sink.lmtp:
            self._lmtp_replies(data)
            return None
        if self.sink.max_size and len(data) > self.sink.max_size:
            reply: Reply = (552, "message size exceeds fixed maximum")
        elif self.sink.mode == "data":
            reply = (self.sink.code, self.sink.text)
        else:
            reply = (250, "OK id=sink")
        if 200 <= reply[0] < 300:
            self._record(data, list(self.rcpts))
        self.reset()
        self.reply(*reply)
        return None

    def do_BDAT(self, arg: str) -> Optional[bool]:
        words = arg.split()
        if not self.sink.chunking or not words or not words[0].isdigit():
            self.reply(501 if self.sink.chunking else 500, "bad BDAT")
            return None
        size = int(words[0])
        last = len(words) > 1 and words[1].upper() == "LAST"
        data = self.rfile.read(size)
        if len(data) < size:
            return False
        if self.sender is None or not self.rcpts:
            self.reply(503, "valid RCPT command must precede BDAT")
            return None
        self.chunks.append(data)
        if not last:
            if self.sink.bdat_reply is not None:
                self.reset()
                self.reply(*self.sink.bdat_reply)
            else:
                self.reply(250, f"{size} byte chunk received")
            return None
        self.maybe_close("dot")
        sizes = [len(c) for c in self.chunks]
        message = b"".join(self.chunks)
        if self.sink.max_size and len(message) > self.sink.max_size:
            reply: Reply = (552, "message size exceeds fixed maximum")
        elif self.sink.mode == "data":
            reply = (self.sink.code, self.sink.text)
        else:
            reply = (250, "OK id=sink")
        if 200 <= reply[0] < 300:
            self._record(message, list(self.rcpts), sizes)
        self.reset()
        self.reply(*reply)
        return None

    def _lmtp_replies(self, data: bytes) -> None:
        """LMTP: one reply per accepted recipient; record those answered 2xx."""
        replies = []
        for rcpt in self.rcpts:
            reply = self.sink.lmtp_data_replies.get(rcpt.lower())
            if reply is None:
                reply = (self.sink.code, self.sink.text) if self.sink.mode == "data" \
                    else (250, f"OK <{rcpt}> delivered")
            replies.append((rcpt, reply))
        ok = [rcpt for rcpt, reply in replies if 200 <= reply[0] < 300]
        if ok:
            self._record(data, ok)
        self.reset()
        for _rcpt, reply in replies:
            self.reply(*reply)

    def _record(self, data: bytes, recipients: list[str],
                bdat_chunks: Optional[list[int]] = None) -> None:
        assert self.sender is not None
        self.sink._record_message(ReceivedMessage(
            sender=self.sender, recipients=recipients, data=data,
            helo=self.helo, peer=self.peer, mail_params=list(self.params),
            tls=self.tls, auth_user=self.auth_user, bdat_chunks=bdat_chunks or []))

    def do_STARTTLS(self, arg: str) -> None:
        if self.sink.tls_context is None or self.tls is not None:
            self.reply(503, "STARTTLS not available")
            return
        self.reply(220, "TLS go ahead")
        self.rfile.close()
        tls_sock = self.sink.tls_context.wrap_socket(self.conn, server_side=True)
        with self.sink._cond:
            self.sink._conns.add(tls_sock)
        self.conn = tls_sock
        self.rfile = tls_sock.makefile("rb")
        self.tls = tls_sock.version()
        self.helo = ""
        self.reset()

    def do_AUTH(self, arg: str) -> None:
        if self.sink.auth is None or self.auth_user is not None:
            self.reply(503, "AUTH not available")
            return
        mech, _, initial = arg.strip().partition(" ")
        mech = mech.upper()
        try:
            if mech == "PLAIN":
                if not initial:
                    self.reply(334, "")
                    initial = self._auth_line()
                _authz, user, password = base64.b64decode(initial).decode().split("\0")
            elif mech == "LOGIN":
                self.reply(334, base64.b64encode(b"Username:").decode())
                user = base64.b64decode(self._auth_line()).decode()
                self.reply(334, base64.b64encode(b"Password:").decode())
                password = base64.b64decode(self._auth_line()).decode()
            else:
                self.reply(504, "unrecognized authentication type")
                return
        except (ValueError, UnicodeDecodeError):
            self.reply(501, "invalid base64 data")
            return
        if self.sink.auth.get(user) == password:
            self.auth_user = user
            self.reply(235, "Authentication succeeded")
        else:
            self.reply(535, "Incorrect authentication data")

    def _auth_line(self) -> str:
        raw = self.readline()
        if raw is None:
            raise _CloseConnection()
        line = raw.rstrip(b"\r\n").decode("ascii", "replace")
        if line == "*":
            raise ValueError("cancelled")
        return line

    def do_RSET(self, arg: str) -> None:
        self.reset()
        self.reply(250, "Reset OK")

    def do_NOOP(self, arg: str) -> None:
        self.reply(250, "OK")

    def do_VRFY(self, arg: str) -> None:
        self.reply(252, "cannot verify, but will accept")

    def do_HELP(self, arg: str) -> None:
        self.reply(214, "commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY QUIT")

    def do_QUIT(self, arg: str) -> bool:
        self.reply(221, f"{self.sink.hostname} closing connection")
        return False
