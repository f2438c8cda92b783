"""Exim's dovecot authenticator: SMTP AUTH delegated to a Dovecot auth server.

:class:`DovecotAuthClient` speaks the Dovecot authentication protocol 1.1 (client side)
without doing any I/O: it produces the lines to send and parses what comes back.
:class:`DovecotConnection` runs it over the Dovecot ``auth-client`` unix socket
(``server_socket``).  The exchange sends ``secured`` when the SMTP connection is encrypted
or local and ``valid-client-cert`` when a client certificate was verified, as Exim does;
on success Dovecot's ``user=`` becomes $auth1, then ``server_condition`` (optional) and
``server_set_id`` apply.
"""
from __future__ import annotations

import base64
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from .base import (
    Authenticator,
    Done,
    Failed,
    MechStep,
    ServerExchange,
    authenticator_options,
)
from .expander import Expander
from .registry import register
from .results import DEFER, FAIL, AuthResult, Challenge

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 1


class DovecotProtocolError(Exception):
    """The auth server said something this client cannot understand."""


@dataclass(frozen=True)
class DovecotReply:
    """One reply to a request: ``kind`` is ``CONT``, ``OK`` or ``FAIL``; ``data`` is the
    base64 challenge of CONT; ``params`` the key=value pairs of OK/FAIL."""

    kind: str
    request_id: int
    data: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _escape(value: str) -> str:
    """Dovecot's tab escaping for parameter values."""
    return (value.replace("\001", "\0011").replace("\t", "\001t")
            .replace("\n", "\001n").replace("\r", "\001r"))


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\001" and i + 1 < len(value):
            out.append({"1": "\001", "t": "\t", "n": "\n", "r": "\r"}.get(value[i + 1], ""))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class DovecotAuthClient:
    """Sans-IO client of the Dovecot auth protocol.

    Send :meth:`handshake`, feed received bytes to :meth:`feed` until :attr:`ready`; then
    send :meth:`auth` and :meth:`cont` lines and read :class:`DovecotReply` objects from
    :meth:`feed`.
    """

    def __init__(self, pid: int | None = None):
        self.pid = os.getpid() if pid is None else pid
        self.mechanisms: dict[str, list[str]] = {}
        self.server_version: tuple[int, int] | None = None
        self.ready = False
        self._buffer = b""
        self._next_id = 0

    def handshake(self) -> bytes:
        return f"VERSION\t{PROTOCOL_MAJOR}\t{PROTOCOL_MINOR}\nCPID\t{self.pid}\n".encode()

    def auth(self, mechanism: str, initial: str | None, *, secured: bool = False,
             valid_client_cert: bool = False, local_ip: str = "", remote_ip: str = "",
             service: str = "smtp") -> tuple[int, bytes]:
        """An AUTH request: (request id, line).  ``initial`` is base64 (None: none)."""
        if mechanism.upper() not in self.mechanisms:
            raise DovecotProtocolError(f"mechanism {mechanism} not offered by Dovecot")
        self._next_id += 1
        fields = ["AUTH", str(self._next_id), mechanism, f"service={_escape(service)}"]
        if secured:
            fields.append("secured")
        if valid_client_cert:
            fields.append("valid-client-cert")
        if local_ip:
            fields.append(f"lip={_escape(local_ip)}")
        if remote_ip:
            fields.append(f"rip={_escape(remote_ip)}")
        fields.append("nologin")
        if initial is not None:
            fields.append(f"resp={initial}")
        return self._next_id, ("\t".join(fields) + "\n").encode()

    @staticmethod
    def cont(request_id: int, data: str) -> bytes:
        """A CONT line with the client's base64 response."""
        return f"CONT\t{request_id}\t{data}\n".encode()

    def feed(self, data: bytes) -> list[DovecotReply]:
        """Take received bytes; return the complete replies they finish."""
        self._buffer += data
        replies: list[DovecotReply] = []
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            reply = self._line(raw.decode("utf-8", "surrogateescape"))
            if reply is not None:
                replies.append(reply)
        return replies

    def _line(self, line: str) -> DovecotReply | None:
        parts = line.split("\t")
        cmd = parts[0]
        if not self.ready:
            if cmd == "VERSION":
                if len(parts) < 3 or parts[1] != str(PROTOCOL_MAJOR):
                    raise DovecotProtocolError(f"unsupported auth protocol version: {line}")
                self.server_version = (int(parts[1]), int(parts[2]))
            elif cmd == "MECH" and len(parts) >= 2:
                self.mechanisms[parts[1].upper()] = parts[2:]
            elif cmd == "DONE":
                if self.server_version is None:
                    raise DovecotProtocolError("no VERSION from the auth server")
                self.ready = True
            return None                  # SPID, CUID, COOKIE and future lines
        if cmd not in ("CONT", "OK", "FAIL") or len(parts) < 2 or not parts[1].isdigit():
            raise DovecotProtocolError(f"unexpected line from the auth server: {line[:80]}")
        if cmd == "CONT":
            return DovecotReply(cmd, int(parts[1]), parts[2] if len(parts) > 2 else "")
        params: dict[str, str] = {}
        for item in parts[2:]:
            key, _, value = item.partition("=")
            params[key] = _unescape(value)
        return DovecotReply(cmd, int(parts[1]), params=params)


class DovecotConnection:
    """A blocking connection to a Dovecot auth-client socket."""

    def __init__(self, path: str, timeout: float = 30.0):
        self.client = DovecotAuthClient()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
            self.sock.sendall(self.client.handshake())
            while not self.client.ready:
                self._recv()
        except BaseException:
            self.sock.close()
            raise
        self._pending: list[DovecotReply] = []

    def _recv(self) -> list[DovecotReply]:
        data = self.sock.recv(8192)
        if not data:
            raise DovecotProtocolError("the auth server closed the connection")
        return self.client.feed(data)

    def request(self, line: bytes, request_id: int) -> DovecotReply:
        """Send one line and wait for the reply to ``request_id``."""
        self.sock.sendall(line)
        while True:
            for reply in self._pending:
                if reply.request_id == request_id:
                    self._pending.remove(reply)
                    return reply
            self._pending.extend(self._recv())

    def close(self) -> None:
        self.sock.close()


class DovecotServerExchange(ServerExchange):
    """The SMTP side of one exchange relayed to Dovecot."""

    def __init__(self, auth: Authenticator, expander: Expander,
                 variables: Mapping[str, str] | None = None):
        super().__init__(auth, expander, variables)
        self.conn: DovecotConnection | None = None
        self.request_id = 0

    def _flags(self) -> dict[str, object]:
        v = self.variables
        remote, local = v.get("sender_host_address", ""), v.get("received_ip_address", "")
        return {"secured": bool(v.get("tls_in_cipher")) or (bool(remote) and remote == local),
                "valid_client_cert": v.get("tls_in_certificate_verified", "") == "1",
                "local_ip": local, "remote_ip": remote}

    def mech_start(self, data: bytes | None) -> MechStep:
        initial = None if data is None else base64.b64encode(data).decode("ascii")
        try:
            self.conn = DovecotConnection(self.auth.opt("server_socket"))
            self.request_id, line = self.conn.client.auth(self.auth.public_name, initial,
                                                          **self._flags())  # type: ignore[arg-type]
            return self._reply(self.conn.request(line, self.request_id))
        except (OSError, DovecotProtocolError) as e:
            self._close()
            return Failed(DEFER, log_message=f"dovecot: {e}")

    def mech_respond(self, data: bytes) -> MechStep:
        assert self.conn is not None
        try:
            line = self.conn.client.cont(self.request_id,
                                         base64.b64encode(data).decode("ascii"))
            return self._reply(self.conn.request(line, self.request_id))
        except (OSError, DovecotProtocolError) as e:
            self._close()
            return Failed(DEFER, log_message=f"dovecot: {e}")

    def _reply(self, reply: DovecotReply) -> MechStep:
        if reply.kind == "CONT":
            try:
                return Challenge(base64.b64decode(reply.data, validate=True))
            except ValueError:
                self._close()
                return Failed(DEFER, log_message="dovecot: bad base64 in CONT")
        self._close()
        user = reply.params.get("user", "")
        if reply.kind == "OK":
            return Done((user,))
        status = DEFER if reply.params.get("code") == "temp_fail" or "temp" in reply.params \
            else FAIL
        return Failed(status, (user,) if user else (), reply.params.get("reason"))

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _finish(self, step: Done | Failed) -> AuthResult:
        self._close()          # a cancelled or malformed response ends the Dovecot request
        return super()._finish(step)


@register("dovecot")
class DovecotAuthenticator(Authenticator):
    """``driver = dovecot`` (server only)."""

    options = authenticator_options("dovecot")
    server_options = ("server_socket",)

    def server_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> ServerExchange:
        return DovecotServerExchange(self, expander, variables)


__all__ = [
    "DovecotAuthClient",
    "DovecotAuthenticator",
    "DovecotConnection",
    "DovecotReply",
]
