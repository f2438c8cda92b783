"""The PROXY protocol (HAProxy, versions 1 and 2) on incoming SMTP connections.

A load balancer in front of the server opens the TCP connection itself and, before any
SMTP, sends one header that names the real client.  Exim reads it from hosts in
``hosts_proxy`` (spec chapter 59.1); this module reads and parses that header:

- :func:`parse_v1` / :func:`parse_v2` turn the bytes of a header into a
  :class:`ProxyHeader` or raise :class:`ProxyError`;
- :func:`read_proxy_header` reads exactly one header from a socket within
  ``proxy_protocol_timeout``, never a byte of the SMTP dialogue that follows it.

Limits are Exim's: a version 1 line is at most 107 bytes and ends in CRLF; a version 2
header is at most 232 bytes (Exim's buffer; TLVs that fit are skipped).  Version 2
LOCAL and version 1 UNKNOWN headers are valid and keep the connection's own addresses.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
import time
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107            # "PROXY TCP6 <39> <39> 65535 65535\r\n" is the longest
V2_MAX = 232            # 16 fixed bytes + Exim's 216-byte address buffer
INITIAL_READ = 14       # enough to tell version 1 from version 2


class ProxyError(Exception):
    """A PROXY header that is missing, late, malformed or too long."""


@dataclass(frozen=True)
class ProxyHeader:
    """What a valid header said.  ``source`` is the real client, ``destination`` the
    address it connected to on the proxy; both None for LOCAL / UNKNOWN headers, whose
    connection keeps its own addresses."""

    version: int
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ProxyError(f"invalid IP address {text!r}") from None


def _port(text: str) -> int:
    if not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise ProxyError(f"invalid port {text!r}")
    return int(text)


def parse_v1(line: bytes) -> ProxyHeader:
    """A version 1 header: ``PROXY TCP4|TCP6 src dst sport dport\\r\\n`` or
    ``PROXY UNKNOWN...\\r\\n``."""
    if len(line) > V1_MAX or not line.endswith(b"\r\n"):
        raise ProxyError("version 1 header without CRLF within 107 bytes")
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyError("non-ASCII version 1 header") from None
    if not text.startswith("PROXY "):
        raise ProxyError("not a PROXY header")
    words = text.split(" ")
    if words[1] == "UNKNOWN":
        return ProxyHeader(1)
    if words[1] not in ("TCP4", "TCP6") or len(words) != 6:
        raise ProxyError(f"unsupported version 1 header {text!r}")
    # Exim takes the addresses as given whatever TCP4/TCP6 says; so does pymta.
    return ProxyHeader(1, (_ip(words[2]), _port(words[4])), (_ip(words[3]), _port(words[5])))


def parse_v2(data: bytes) -> ProxyHeader:
    """A complete version 2 header (the 16 fixed bytes and the address block)."""
    if len(data) < 16 or data[:12] != V2_SIGNATURE:
        raise ProxyError("not a version 2 header")
    ver_cmd, family, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise ProxyError(f"invalid version {ver_cmd >> 4}")
    if 16 + length > V2_MAX:
        raise ProxyError(f"version 2 header of {16 + length} bytes is too long")
    if len(data) != 16 + length:
        raise ProxyError("truncated version 2 header")
    body = data[16:]
    command = ver_cmd & 0x0F
    if command == 0x0:
        return ProxyHeader(2)          # LOCAL: a health check by the proxy itself
    if command != 0x1:
        raise ProxyError(f"unsupported command {command:#x}")
    if family == 0x11 and length >= 12:            # TCP over IPv4
        src, dst = socket.inet_ntop(socket.AF_INET, body[0:4]), \
            socket.inet_ntop(socket.AF_INET, body[4:8])
        sport, dport = struct.unpack("!HH", body[8:12])
    elif family == 0x21 and length >= 36:          # TCP over IPv6
        src, dst = _ip(socket.inet_ntop(socket.AF_INET6, body[0:16])), \
            _ip(socket.inet_ntop(socket.AF_INET6, body[16:32]))
        sport, dport = struct.unpack("!HH", body[32:36])
    else:
        raise ProxyError(f"unsupported address family {family:#04x}")
    return ProxyHeader(2, (src, sport), (dst, dport))


def _read_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    """``count`` bytes, or ProxyError when the client closes or the deadline passes."""
    got = bytearray()
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProxyError("timed out")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(count - len(got))
        except socket.timeout:
            raise ProxyError("timed out") from None
        except OSError as exc:
            raise ProxyError(str(exc)) from None
        if not chunk:
            raise ProxyError("connection closed")
        got += chunk
    return bytes(got)


def read_proxy_header(sock: socket.socket, timeout: float) -> ProxyHeader:
    """Read and parse the header at the start of ``sock`` (blocking socket), taking
    no more bytes than the header has.  The socket's timeout is restored."""
    saved = sock.gettimeout()
    deadline = time.monotonic() + max(timeout, 0.001)
    try:
        data = _read_exactly(sock, INITIAL_READ, deadline)
        if data[:12] == V2_SIGNATURE:
            data += _read_exactly(sock, 2, deadline)
            length = struct.unpack("!H", data[14:16])[0]
            if 16 + length > V2_MAX:
                raise ProxyError(f"version 2 header of {16 + length} bytes is too long")
            return parse_v2(data + _read_exactly(sock, length, deadline))
        if not data.startswith(b"PROXY"):
            raise ProxyError("no PROXY header")
        # Version 1: one byte at a time up to the LF, so no SMTP input is consumed.
        while not data.endswith(b"\n"):
            if len(data) >= V1_MAX:
                raise ProxyError("version 1 header without CRLF within 107 bytes")
            data += _read_exactly(sock, 1, deadline)
        return parse_v1(data)
    finally:
        try:
            sock.settimeout(saved)
        except OSError:
            pass
