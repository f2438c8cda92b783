"""Steps and outcomes of an SMTP AUTH exchange, with Exim 4.96's reply texts.

A server exchange answers each client line with either a :class:`Challenge` (sent as
``334 <base64>``) or a final :class:`AuthResult`.  The reply texts and the failure log line
were checked against Exim 4.96 (recordings in ``tests/data/auth/``).
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

# Outcome statuses (Exim's names for the authenticator return codes).
OK = "ok"
FAIL = "fail"                # 535
DEFER = "defer"              # 435
BAD64 = "bad64"              # 501 Invalid base64 data
CANCELLED = "cancelled"      # 501 Authentication cancelled
UNEXPECTED = "unexpected"    # 553 Initial data not expected
ERROR = "error"              # 435 Internal error

_REPLIES = {
    OK: (235, "Authentication succeeded"),
    FAIL: (535, "Incorrect authentication data"),
    DEFER: (435, "Unable to authenticate at present"),
    BAD64: (501, "Invalid base64 data"),
    CANCELLED: (501, "Authentication cancelled"),
    UNEXPECTED: (553, "Initial data not expected"),
    ERROR: (435, "Internal error"),
}

#: Exim reads a response into a 16 KiB command buffer: a line of this many characters or
#: more is cut short, so its base64 is invalid (Exim answers 501 Invalid base64 data).
MAX_RESPONSE_LENGTH = 16383

# Replies for the AUTH command itself (given by the SMTP session, before any exchange).
REPLY_NOT_ADVERTISED = "503 AUTH command used when not advertised"
REPLY_ALREADY_AUTHENTICATED = "503 already authenticated"


def reply_unsupported_mechanism(name: str) -> str:
    """Exim's reply to ``AUTH <name>`` for a mechanism it did not advertise (an empty name
    gives the double space Exim writes)."""
    return f"504 {name} authentication mechanism not supported"


@dataclass(frozen=True)
class Challenge:
    """Data the server sends to the client; the SMTP line is :attr:`reply`."""

    data: bytes

    @property
    def reply(self) -> str:
        return "334 " + base64.b64encode(self.data).decode("ascii")


@dataclass(frozen=True)
class AuthResult:
    """The end of a server exchange.

    ``auth_vars`` are $auth1, $auth2, ... as the driver set them; ``set_id`` is the expanded
    server_set_id ($authenticated_id on success, $authenticated_fail_id on failure; None
    when unset or its expansion failed).  ``user_message`` is appended to a 435 reply
    (a server_condition that gave neither true nor false); ``log_message`` is appended to
    the failure log line (expansion errors and the like).
    """

    status: str
    auth_vars: tuple[str, ...] = ()
    set_id: str | None = None
    user_message: str | None = None
    log_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def code(self) -> int:
        return _REPLIES[self.status][0]

    @property
    def text(self) -> str:
        text = _REPLIES[self.status][1]
        if self.user_message and self.status == DEFER:
            text += ": " + self.user_message
        return text

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


class ResponseError(Exception):
    """A client response that ends the exchange: ``status`` is BAD64 or CANCELLED."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def decode_response(line: str) -> bytes:
    """Decode one client response line (without CRLF) the way Exim does.

    ``*`` cancels (CANCELLED); an over-long line or anything that is not strict base64 is
    BAD64; an empty line is empty data.  Raises :class:`ResponseError`.
    """
    if line == "*":
        raise ResponseError(CANCELLED)
    if len(line) > MAX_RESPONSE_LENGTH:
        raise ResponseError(BAD64)
    try:
        return base64.b64decode(line.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ResponseError(BAD64) from None


def decode_initial_response(text: str | None) -> bytes | None:
    """The data given on the AUTH command: None when absent, ``=`` is present but empty
    (RFC 4954), anything else as :func:`decode_response`."""
    if text is None or text == "":
        return None
    if text == "=":
        return b""
    return decode_response(text)


def bytes_to_var(data: bytes) -> str:
    """Auth data as an expansion variable: UTF-8, with other bytes kept as surrogates so
    nothing is lost."""
    return data.decode("utf-8", "surrogateescape")


def failure_log_line(driver_name: str, host: str, result: AuthResult) -> str:
    """The main-log line Exim writes when an authentication fails, e.g.
    ``plain authenticator failed for (helo) [192.0.2.1]: 535 Incorrect authentication data
    (set_id=alice)``.  ``driver_name`` is the authenticator's instance name and ``host`` the
    host identification as on other SMTP log lines."""
    reply_text = _REPLIES[result.status][1]
    line = f"{driver_name} authenticator failed for {host}: {result.code} {reply_text}"
    if result.set_id:
        line += f" (set_id={result.set_id})"
    message = result.log_message or result.user_message
    if message:
        line += ": " + message
    return line
