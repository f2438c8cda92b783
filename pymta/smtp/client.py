"""A blocking ESMTP client for the smtp transport (and callouts).

The protocol core is sans-IO: :class:`ReplyParser` turns received bytes into
:class:`SmtpReply` objects and :func:`parse_ehlo` reads the extension list.  The socket
layer (:class:`SmtpClient`) adds timeouts and raises :class:`SmtpError` subclasses for
host-level problems (connection refused, timeouts, connection closed, garbled replies).
Negative replies are *not* exceptions: callers inspect the codes per command.
"""
from __future__ import annotations

import errno as _errno
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from pymta.dscp import set_dscp
from pymta.errnos import EximErrno
from pymta.smtp.socks import SocksProxy, socks_connect


class Stream(Protocol):
    """What the client needs of its connection: a socket, or a TLS connection made to
    behave like one (:class:`pymta.tls.clientsock.TLSClientSocket`)."""

    def settimeout(self, seconds: float | None) -> None: ...
    def sendall(self, data: bytes) -> Any: ...
    def recv(self, size: int) -> bytes: ...
    def close(self) -> None: ...


#: Turns the connected plain socket into a TLS stream (runs the handshake; raises on
#: failure).  The smtp transport supplies it; this module knows nothing of TLS.
TLSWrap = Callable[[socket.socket], Stream]


@dataclass
class SmtpReply:
    """One (possibly multi-line) reply: numeric ``code`` and the raw ``lines`` (no CRLF)."""

    code: int
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The whole reply as received, lines joined by newlines (Exim's message text)."""
        return "\n".join(self.lines)

    @property
    def kind(self) -> str:
        """First digit of the code: "2", "3", "4" or "5"."""
        return str(self.code)[0]

    def ok(self) -> bool:
        return 200 <= self.code < 300


class SmtpError(Exception):
    """A host error: the conversation with this host cannot continue.

    ``errno`` is a system errno or one of :mod:`pymta.transports.errnos`; ``message`` is
    the Exim-style text for the log and the address.
    """

    def __init__(self, message: str, errno: int = EximErrno.UNKNOWNERROR):
        super().__init__(message)
        self.message = message
        self.errno = errno


class SmtpConnectError(SmtpError):
    """The TCP connection could not be made."""


class SmtpTimeout(SmtpError):
    """No (complete) reply within the timeout."""


class SmtpClosed(SmtpError):
    """The remote host closed the connection."""


class SmtpFormatError(SmtpError):
    """The remote host sent something that is not an SMTP reply."""


class ReplyParser:
    """Sans-IO reply reader: ``feed(bytes)`` returns the replies completed so far."""

    MAX_LINE = 16384

    def __init__(self) -> None:
        self._buf = b""
        self._lines: list[str] = []
        self._code: int | None = None

    def feed(self, data: bytes) -> list[SmtpReply]:
        self._buf += data
        replies: list[SmtpReply] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.MAX_LINE:
                    raise SmtpFormatError("SMTP reply line too long",
                                          EximErrno.SMTPFORMAT)
                return replies
            raw, self._buf = self._buf[:nl], self._buf[nl + 1:]
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            digits = line[:3]
            if (len(line) < 3 or not (digits.isascii() and digits.isdigit())
                    or (len(line) > 3 and line[3] not in " -")):
                raise SmtpFormatError(f'Malformed SMTP reply (an empty line or a line '
                                      f'without a valid code): "{line}"',
                                      EximErrno.SMTPFORMAT)
            code = int(line[:3])
            if self._code is not None and code != self._code:
                raise SmtpFormatError(f'Malformed SMTP reply (inconsistent codes): "{line}"',
                                      EximErrno.SMTPFORMAT)
            self._code = code
            self._lines.append(line)
            if len(line) == 3 or line[3] == " ":
                replies.append(SmtpReply(code, self._lines))
                self._lines, self._code = [], None


def parse_ehlo(reply: SmtpReply) -> dict[str, str]:
    """Extensions from an EHLO reply: upper-case keyword -> parameters (may be "")."""
    ext: dict[str, str] = {}
    for line in reply.lines[1:]:
        words = line[4:].strip().split(None, 1)
        if words:
            ext[words[0].upper()] = words[1] if len(words) > 1 else ""
    return ext


@dataclass
class Transaction:
    """Replies to one MAIL/RCPT/DATA sequence.  ``data`` is None when DATA was not sent
    (no recipient accepted without pipelining, or MAIL refused)."""

    mail: SmtpReply
    rcpts: list[SmtpReply]
    data: SmtpReply | None
    pipelined: bool
    mail_command: str = ""
    rcpt_commands: list[str] = field(default_factory=list)

    def accepted(self) -> list[int]:
        """Indexes of recipients whose RCPT got a 2xx."""
        return [i for i, r in enumerate(self.rcpts) if r.ok()]


class SmtpClient:
    """One SMTP connection.  All ``*_timeout`` values are seconds."""

    def __init__(self, *, connect_timeout: float = 300, command_timeout: float = 300,
                 data_timeout: float = 300, final_timeout: float = 600,
                 source_address: tuple[str, int] | None = None, nodelay: bool = True,
                 dscp: int | None = None, keepalive: bool = False,
                 socks: Sequence[SocksProxy] = (),
                 on_socks_failure: Callable[[str], None] | None = None):
        self.connect_timeout = connect_timeout
        self.socks = socks                      # socks_proxy: connect through these
        self.on_socks_failure = on_socks_failure
        #: the SOCKS proxy the connection went through (address, port), for PRX=
        self.proxy: tuple[str, int] | None = None
        self.keepalive = keepalive              # the smtp transport's keepalive
        self.nodelay = nodelay                  # the smtp transport's tcp_nodelay
        self.dscp = dscp                        # ... and its dscp (the TOS byte)
        self.command_timeout = command_timeout
        self.data_timeout = data_timeout
        self.final_timeout = final_timeout
        self.source_address = source_address
        self.sock: Stream | None = None
        self.tls = False
        #: What the user of the connection learnt about it (the smtp transport keeps
        #: the TLS session facts and the authentication result here).
        self.facts: dict[str, Any] = {}
        self.extensions: dict[str, str] = {}
        self.esmtp = False
        self.peer: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None
        self._parser = ReplyParser()
        self._pending: list[SmtpReply] = []
        #: called once when a connected socket is closed (the tcp:close event)
        self.on_close: Callable[[], None] | None = None

    # -- connection -------------------------------------------------------------
    def connect(self, address: str, port: int = 25,
                tls_on_connect: TLSWrap | None = None,
                early_line: str = "") -> SmtpReply:
        """Connect and return the banner (any code; the caller judges it).

        With ``tls_on_connect`` (protocol = smtps) TLS starts before the banner; a
        failed handshake raises what the wrapper raises.  ``early_line`` (an EHLO to a
        server known to offer PIPECONNECT) is sent before the banner is read; its reply
        is read with :meth:`early_ehlo_reply`."""
        try:
            if self.socks:
                raw, proxy = socks_connect(self.socks, address, port, self.connect_timeout,
                                           self.source_address, self.on_socks_failure)
                self.proxy = (proxy.address, proxy.port)
            else:
                raw = socket.create_connection((address, port), self.connect_timeout,
                                               self.source_address)
        except socket.timeout:
            raise SmtpConnectError("Connection timed out", _errno.ETIMEDOUT) from None
        except OSError as e:
            code = e.errno or EximErrno.UNKNOWNERROR
            text = e.strerror or str(e)
            if code == _errno.ECONNREFUSED:
                text = "Connection refused"
            raise SmtpConnectError(text, code) from None
        if self.nodelay:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.dscp is not None:
            set_dscp(raw, self.dscp)
        if self.keepalive:
            # TCP keepalive probes: a far end that vanished is noticed even while we
            # only wait for its reply
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self.sock = raw
        self.peer = (address, port)
        local_ip, local_port = raw.getsockname()[:2]    # $sending_ip_address, $sending_port
        self.local = (str(local_ip), int(local_port))
        if tls_on_connect is not None:
            try:
                self.sock = tls_on_connect(raw)
            except BaseException:
                raw.close()
                self.sock = None
                raise
            self.tls = True
        if early_line:
            self.send(early_line.encode("utf-8", "surrogateescape") + b"\r\n", early_line)
        return self.read_reply("initial connection", self.command_timeout)

    def early_ehlo_reply(self, line: str) -> SmtpReply:
        """The reply to an EHLO sent with :meth:`connect`'s ``early_line``."""
        reply = self.read_reply(line)
        if reply.ok():
            self.esmtp = True
            self.extensions = parse_ehlo(reply)
        return reply

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                hook, self.on_close = self.on_close, None
                if hook is not None:
                    hook()

    # -- low level --------------------------------------------------------------
    def send(self, data: bytes, stage: str, timeout: float | None = None) -> None:
        assert self.sock is not None, "not connected"
        self.sock.settimeout(self.command_timeout if timeout is None else timeout)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise SmtpTimeout(f"SMTP timeout while sending {stage}", _errno.ETIMEDOUT) from None
        except OSError as e:
            raise SmtpClosed(f"send() to {self.peer[0] if self.peer else '?'} failed "
                             f"while sending {stage}: {e.strerror or e}",
                             e.errno or EximErrno.SMTPCLOSED) from None

    def read_reply(self, stage: str, timeout: float | None = None) -> SmtpReply:
        """Read the next reply; ``stage`` names the command for error messages."""
        assert self.sock is not None, "not connected"
        if self._pending:
            return self._pending.pop(0)
        self.sock.settimeout(self.command_timeout if timeout is None else timeout)
        while True:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise SmtpTimeout(f"SMTP timeout after {stage}", _errno.ETIMEDOUT) from None
            except OSError as e:
                raise SmtpClosed(f"Remote host closed connection in response to {stage}"
                                 f" ({e.strerror or e})",
                                 e.errno or EximErrno.SMTPCLOSED) from None
            if not data:
                raise SmtpClosed(f"Remote host closed connection in response to {stage}",
                                 EximErrno.SMTPCLOSED)
            replies = self._parser.feed(data)
            if replies:
                self._pending.extend(replies[1:])
                return replies[0]

    def command(self, line: str, timeout: float | None = None) -> SmtpReply:
        """Send one command line (without CRLF) and read its reply."""
        self.send(line.encode("utf-8", "surrogateescape") + b"\r\n", line)
        return self.read_reply(line, timeout)

    # -- commands -------------------------------------------------------------------
    def ehlo(self, name: str) -> SmtpReply:
        reply = self.command(f"EHLO {name}")
        if reply.ok():
            self.esmtp = True
            self.extensions = parse_ehlo(reply)
        return reply

    def lhlo(self, name: str) -> SmtpReply:
        """LMTP's greeting (RFC 2033); the reply lists extensions as EHLO's does."""
        reply = self.command(f"LHLO {name}")
        if reply.ok():
            self.esmtp = True
            self.extensions = parse_ehlo(reply)
        return reply

    def helo(self, name: str) -> SmtpReply:
        reply = self.command(f"HELO {name}")
        if reply.ok():
            self.esmtp = False
            self.extensions = {}
        return reply

    def hello(self, name: str) -> tuple[SmtpReply, str]:
        """EHLO, falling back to HELO when EHLO gets a 5xx.  Returns (reply, command)."""
        reply = self.ehlo(name)
        if reply.kind == "5":
            return self.helo(name), f"HELO {name}"
        return reply, f"EHLO {name}"

    def starttls(self, wrap: TLSWrap) -> SmtpReply:
        """Send STARTTLS; after a 220 run ``wrap`` on the socket (the handshake; its
        exceptions propagate, the connection is then unusable).  Anything the server
        sent after the 220 in plain text is discarded, and the extensions are
        forgotten: the caller must say EHLO again (RFC 3207)."""
        reply = self.command("STARTTLS")
        if reply.code != 220:
            return reply
        self._parser = ReplyParser()
        self._pending = []
        self.extensions, self.esmtp = {}, False
        assert isinstance(self.sock, socket.socket), "TLS is already active"
        self.sock = wrap(self.sock)
        self.tls = True
        return reply

    def auth(self, mechanism: str, initial: str | None,
             respond: Callable[[str], str]) -> tuple[SmtpReply, str]:
        """Run one AUTH exchange: ``AUTH mechanism [initial]``, then ``respond(text)``
        answers each 334 challenge (base64 text in, base64 line or ``*`` out).
        Returns the final reply and the command to name in error messages."""
        cmd = f"AUTH {mechanism}"
        line = cmd if initial is None else f"{cmd} {initial}"
        self.send(line.encode("ascii", "replace") + b"\r\n", cmd)
        reply = self.read_reply(cmd)
        while reply.code == 334:
            text = reply.lines[0][4:].strip() if reply.lines else ""
            answer = respond(text)
            self.send(answer.encode("ascii", "replace") + b"\r\n", cmd)
            reply = self.read_reply(cmd)
            if answer == "*":
                break
        return reply, cmd

    def has(self, extension: str) -> bool:
        return extension.upper() in self.extensions

    def mail_command(self, sender: str, *, size: int | None = None, body_8bit: bool = False,
                     auth_param: str = "", dsn_param: str = "", smtputf8: bool = False,
                     prdr: bool = False) -> str:
        """The MAIL command line (no CRLF) with the parameters the server offers, in
        Exim's order: SIZE, BODY, PRDR, SMTPUTF8, the DSN RET=/ENVID=, AUTH=."""
        mail = f"MAIL FROM:<{sender}>"
        if size is not None and self.has("SIZE"):
            mail += f" SIZE={size}"
        if body_8bit and self.has("8BITMIME"):
            mail += " BODY=8BITMIME"
        if prdr:
            mail += " PRDR"
        if smtputf8:
            mail += " SMTPUTF8"
        if dsn_param:
            mail += " " + dsn_param
        if auth_param:
            mail += " " + auth_param
        return mail

    @staticmethod
    def rcpt_commands(recipients: list[str], rcpt_param: str = "",
                      rcpt_dsn: list[str] | None = None) -> list[str]:
        """The RCPT command lines, each with its DSN NOTIFY=/ORCPT= text (``rcpt_dsn``)
        and ``rcpt_param``."""
        extra = rcpt_dsn or [""] * len(recipients)
        return [f"RCPT TO:<{r}>" + (f" {d}" if d else "")
                + (f" {rcpt_param}" if rcpt_param else "")
                for r, d in zip(recipients, extra)]

    def mail_rcpt_data(self, sender: str, recipients: list[str], *, size: int | None = None,
                       body_8bit: bool = False, pipelining: bool = True,
                       auth_param: str = "", rcpt_param: str = "", dsn_param: str = "",
                       rcpt_dsn: list[str] | None = None, smtputf8: bool = False,
                       prdr: bool = False) -> Transaction:
        """Send MAIL, the RCPTs and (when useful) DATA (see :meth:`transaction`); the
        command lines are made by :meth:`mail_command` and :meth:`rcpt_commands`."""
        mail = self.mail_command(sender, size=size, body_8bit=body_8bit,
                                 auth_param=auth_param, dsn_param=dsn_param,
                                 smtputf8=smtputf8, prdr=prdr)
        return self.transaction(mail, self.rcpt_commands(recipients, rcpt_param, rcpt_dsn),
                                pipelining=pipelining)

    def transaction(self, mail: str, rcpts: list[str], *,
                    pipelining: bool = True) -> Transaction:
        """Send the MAIL line, the RCPT lines and (when useful) DATA.

        With PIPELINING advertised (and ``pipelining`` allowed) everything goes in one
        write and the replies are read afterwards.  Otherwise each command waits for its
        reply; DATA is sent only when some recipient was accepted.
        """
        if pipelining and self.has("PIPELINING"):
            blob = "".join(c + "\r\n" for c in [mail, *rcpts, "DATA"])
            self.send(blob.encode("utf-8", "surrogateescape"), mail)
            m = self.read_reply("pipelined " + mail)
            rr = [self.read_reply("pipelined " + c) for c in rcpts]
            d: SmtpReply | None = self.read_reply("pipelined DATA")
            return Transaction(m, rr, d, True, mail, rcpts)
        m = self.command(mail)
        if not m.ok():
            return Transaction(m, [], None, False, mail, rcpts)
        rr = [self.command(c) for c in rcpts]
        d = self.command("DATA") if any(r.ok() for r in rr) else None
        return Transaction(m, rr, d, False, mail, rcpts)

    def send_data(self, writer: Callable[[Any], int]) -> tuple[SmtpReply, int]:
        """After a 354: ``writer(sock)`` writes the dot-stuffed message including the
        final ``.`` line; returns the reply to end of data and the bytes written."""
        assert self.sock is not None, "not connected"
        self.sock.settimeout(self.data_timeout)
        written = 0
        try:
            written = writer(self.sock)
        except socket.timeout:
            raise SmtpTimeout("SMTP timeout while writing message data",
                              _errno.ETIMEDOUT) from None
        except OSError as e:
            raise SmtpClosed(f"transport write failed: {e.strerror or e}",
                             e.errno or EximErrno.SMTPCLOSED) from None
        try:
            return self.read_reply("end of data", self.final_timeout), written
        except SmtpTimeout:
            raise SmtpTimeout(f"SMTP timeout after end of data ({written} bytes written)",
                              _errno.ETIMEDOUT) from None

    def rset(self) -> SmtpReply:
        return self.command("RSET")

    def quit(self) -> None:
        """Send QUIT, wait briefly for its reply, and close; never raises."""
        if self.sock is None:
            return
        try:
            self.send(b"QUIT\r\n", "QUIT", timeout=5)
            self.read_reply("QUIT", timeout=5)
        except (SmtpError, OSError):
            pass
        finally:
            self.close()
