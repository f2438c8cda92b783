"""A tiny blocking SMTP client for tests, with timeouts and raw access."""

from __future__ import annotations

import base64
import socket
import ssl
from typing import Iterable, Optional


class SmtpTestError(Exception):
    """An unexpected SMTP reply or a broken connection in :class:`SmtpTestClient`."""

    def __init__(self, message: str, code: int = 0, text: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.text = text


class SmtpTestClient:
    """Blocking SMTP client: one TCP connection to 127.0.0.1:``port``.

    ``cmd()`` sends one line and returns ``(code, text)``, with multi-line
    replies joined by ``"\\n"``.  ``send_message()`` runs a whole transaction.
    Nothing is done implicitly except reading the banner on the first call
    that needs it.  Usable as a context manager (sends QUIT, then closes).
    """

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0,
                 source: Optional[str] = None) -> None:
        """Connect at once (from address ``source`` if given, e.g. 127.0.0.2);
        raises OSError when nobody listens."""
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                            source_address=(source, 0) if source else None)
        self.rfile = self.sock.makefile("rb")
        self._banner: Optional[tuple[int, str]] = None
        self.ehlo_reply: Optional[tuple[int, str]] = None

    # -- low level -------------------------------------------------------

    def read_reply(self) -> tuple[int, str]:
        """Read one (possibly multi-line) reply; raises SmtpTestError on EOF."""
        lines: list[str] = []
        code = 0
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                raise SmtpTestError("connection closed by server", code, "\n".join(lines))
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            if len(line) < 3 or not line[:3].isdigit():
                raise SmtpTestError(f"malformed reply line {line!r}")
            code = int(line[:3])
            lines.append(line[4:])
            if line[3:4] != "-":
                return code, "\n".join(lines)

    def send_raw(self, data: bytes) -> None:
        """Send bytes exactly as given (for pipelining and protocol tests)."""
        self.sock.sendall(data)

    def banner(self) -> tuple[int, str]:
        """Return the server greeting, reading it on first use."""
        if self._banner is None:
            self._banner = self.read_reply()
        return self._banner

    def cmd(self, line: str) -> tuple[int, str]:
        """Send one command line (CRLF is added) and return its reply."""
        self.banner()
        self.sock.sendall(line.encode("utf-8") + b"\r\n")
        return self.read_reply()

    def ehlo(self, name: str = "client.test") -> tuple[int, str]:
        """Send EHLO and remember the reply (see :meth:`extensions`)."""
        self.ehlo_reply = self.cmd(f"EHLO {name}")
        return self.ehlo_reply

    def lhlo(self, name: str = "client.test") -> tuple[int, str]:
        """Send LMTP's LHLO and remember the reply like :meth:`ehlo`."""
        self.ehlo_reply = self.cmd(f"LHLO {name}")
        return self.ehlo_reply

    def extensions(self) -> set[str]:
        """Upper-cased extension keywords from the last EHLO reply."""
        if not self.ehlo_reply:
            return set()
        lines = self.ehlo_reply[1].split("\n")[1:]
        return {ln.split()[0].upper() for ln in lines if ln.strip()}

    def starttls(self, context: Optional[ssl.SSLContext] = None,
                 server_hostname: Optional[str] = None) -> tuple[int, str]:
        """Send STARTTLS and, on 220, switch the connection to TLS.

        Without ``context`` the server certificate is not verified.  The EHLO
        state is forgotten (a new EHLO is needed, as RFC 3207 requires).
        """
        reply = self.cmd("STARTTLS")
        if reply[0] != 220:
            return reply
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.rfile.close()
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.rfile = self.sock.makefile("rb")
        self.ehlo_reply = None
        return reply

    def auth_plain(self, user: str, password: str) -> tuple[int, str]:
        """AUTH PLAIN with an initial response; returns the final reply."""
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.cmd(f"AUTH PLAIN {token}")

    def auth_login(self, user: str, password: str) -> tuple[int, str]:
        """AUTH LOGIN (two 334 challenges); returns the final reply."""
        reply = self.cmd("AUTH LOGIN")
        for value in (user, password):
            if reply[0] != 334:
                return reply
            reply = self.cmd(base64.b64encode(value.encode()).decode())
        return reply

    @property
    def tls_version(self) -> Optional[str]:
        """The TLS version in use ("TLSv1.3"), or None on a plain connection."""
        return self.sock.version() if isinstance(self.sock, ssl.SSLSocket) else None

    # -- transactions ----------------------------------------------------

    @staticmethod
    def dot_stuff(data: bytes) -> bytes:
        """Convert LF or CRLF text to CRLF, dot-stuff it and add the final dot."""
        text = data.replace(b"\r\n", b"\n")
        if text and not text.endswith(b"\n"):
            text += b"\n"
        lines = [(b"." + ln if ln.startswith(b".") else ln) for ln in text.split(b"\n")[:-1]]
        return b"".join(ln + b"\r\n" for ln in lines) + b".\r\n"

    def data(self, data: bytes) -> tuple[int, str]:
        """Send DATA and the message; returns the reply after the dot.

        When the server refuses the DATA command itself, that reply is returned.
        """
        code, text = self.cmd("DATA")
        if code != 354:
            return code, text
        self.sock.sendall(self.dot_stuff(data))
        return self.read_reply()

    def send_message(self, sender: str, rcpts: Iterable[str] | str, data: bytes | str,
                     helo: Optional[str] = "client.test") -> tuple[int, str]:
        """Run EHLO (unless already done or ``helo`` is None), MAIL, RCPT and DATA.

        Returns the final reply.  Raises :class:`SmtpTestError` if MAIL is
        refused or no recipient is accepted.
        """
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        if isinstance(data, str):
            data = data.encode("utf-8")
        if helo is not None and self.ehlo_reply is None:
            code, text = self.ehlo(helo)
            if code != 250:
                raise SmtpTestError(f"EHLO refused: {code} {text}", code, text)
        code, text = self.cmd(f"MAIL FROM:<{sender}>")
        if code != 250:
            raise SmtpTestError(f"MAIL refused: {code} {text}", code, text)
        accepted = 0
        last = (0, "")
        for rcpt in rcpts:
            last = self.cmd(f"RCPT TO:<{rcpt}>")
            if last[0] // 100 == 2:
                accepted += 1
        if not accepted:
            self.cmd("RSET")
            raise SmtpTestError(f"no recipient accepted: {last[0]} {last[1]}", *last)
        return self.data(data)

    def quit(self) -> Optional[tuple[int, str]]:
        """Send QUIT if the connection is still up; returns the reply or None."""
        try:
            return self.cmd("QUIT")
        except (OSError, SmtpTestError):
            return None

    def close(self) -> None:
        """Close the socket without QUIT."""
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "SmtpTestClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit()
        self.close()
