"""Outgoing SMTP through SOCKS5 proxies (the smtp transport's ``socks_proxy``).

The option is a list of proxies (colon-separated by default); each item is a
space-separated list: the proxy's IP address, then ``name=value`` options as in
Exim 4.96 -- ``auth`` (``none`` or ``name``: RFC 1929 user name and password),
``name``, ``pass``, ``port`` (1080), ``tmo`` (seconds to connect, 5), ``pri`` (higher
first, 1) and ``weight`` (the random preference among proxies of one priority, 1).

:func:`socks_connect` tries the proxies in that order until one accepts the TCP
connection (each failure is reported to the caller's log, as Exim writes
``socks_sock_connect: <error>``), then asks it to connect to the destination (RFC 1928
CONNECT).  A proxy's refusal to reach the destination ends the attempt with the errno
that matches its reply code; when no proxy could be reached at all the error is EBUSY,
which is what Exim reports then.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import random
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..expand.lists import split_list

DEFAULT_PORT = 1080
DEFAULT_TIMEOUT = 5.0

# RFC 1928 reply codes, as the errors a direct connection would have given.
_REPLY_ERRNO = {
    1: errno.EIO,              # general SOCKS server failure
    2: errno.EACCES,           # connection not allowed by ruleset
    3: errno.ENETUNREACH,
    4: errno.EHOSTUNREACH,
    5: errno.ECONNREFUSED,
    6: errno.ETIMEDOUT,        # TTL expired
    7: errno.EOPNOTSUPP,       # command not supported
    8: errno.EAFNOSUPPORT,     # address type not supported
}


class SocksError(OSError):
    """A SOCKS proxy could not be used or would not connect to the destination."""


@dataclass(frozen=True)
class SocksProxy:
    """One proxy of ``socks_proxy``."""

    address: str
    port: int = DEFAULT_PORT
    auth: str = "none"               # "none" or "name" (RFC 1929)
    name: str = ""
    password: str = ""
    timeout: float = DEFAULT_TIMEOUT
    priority: int = 1
    weight: int = 1


def parse_socks_proxies(text: str) -> list[SocksProxy]:
    """The proxies of an expanded ``socks_proxy``; ValueError for a bad item."""
    proxies = []
    for item in split_list(text):
        words = item.split()
        if not words:
            continue
        try:
            address = str(ipaddress.ip_address(words[0]))
        except ValueError:
            raise ValueError(f'socks_proxy: "{words[0]}" is not an IP address') from None
        fields: dict[str, str] = {}
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if not eq or key not in ("auth", "name", "pass", "port", "tmo", "pri",
                                     "weight"):
                raise ValueError(f'socks_proxy: unknown option "{word}"')
            fields[key] = value
        if fields.get("auth", "none") not in ("none", "name"):
            raise ValueError(f'socks_proxy: auth must be "none" or "name", '
                             f'not "{fields["auth"]}"')
        try:
            proxies.append(SocksProxy(
                address=address, port=int(fields.get("port", DEFAULT_PORT)),
                auth=fields.get("auth", "none"), name=fields.get("name", ""),
                password=fields.get("pass", ""),
                timeout=float(fields.get("tmo", DEFAULT_TIMEOUT)),
                priority=int(fields.get("pri", 1)), weight=int(fields.get("weight", 1))))
        except ValueError:
            raise ValueError(f'socks_proxy: bad number in "{item}"') from None
    return proxies


def proxy_order(proxies: Sequence[SocksProxy],
                rng: random.Random | None = None) -> list[SocksProxy]:
    """The order to try ``proxies`` in: higher priority first, and within a priority a
    random order in which each proxy comes first in proportion to its weight."""
    pick = rng or random
    ordered: list[SocksProxy] = []
    for priority in sorted({p.priority for p in proxies}, reverse=True):
        group = [p for p in proxies if p.priority == priority]
        while group:
            weights = [max(p.weight, 0) for p in group]
            chosen = pick.choices(group, weights=weights)[0] if sum(weights) else group[0]
            ordered.append(chosen)
            group.remove(chosen)
    return ordered


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SocksError(errno.ECONNRESET, "SOCKS proxy closed the connection")
        data += chunk
    return data


def _negotiate(sock: socket.socket, proxy: SocksProxy, address: str, port: int) -> None:
    """RFC 1928 method selection (RFC 1929 sub-negotiation for auth=name) and CONNECT."""
    method = 2 if proxy.auth == "name" else 0
    sock.sendall(bytes((5, 1, method)))
    version, chosen = _read_exactly(sock, 2)
    if version != 5 or chosen != method:
        raise SocksError(errno.EPROTO, f"SOCKS proxy {proxy.address} refused the "
                         f"authentication method")
    if method == 2:
        user = proxy.name.encode()[:255]
        password = proxy.password.encode()[:255]
        sock.sendall(bytes((1, len(user))) + user + bytes((len(password),)) + password)
        if _read_exactly(sock, 2)[1] != 0:
            raise SocksError(errno.EACCES, f"SOCKS proxy {proxy.address} refused the "
                             f"user name and password")
    ip = ipaddress.ip_address(address)
    kind = 1 if ip.version == 4 else 4
    sock.sendall(bytes((5, 1, 0, kind)) + ip.packed + struct.pack(">H", port))
    version, reply, _, bound = _read_exactly(sock, 4)
    if version != 5:
        raise SocksError(errno.EPROTO, f"SOCKS proxy {proxy.address} sent a bad reply")
    if reply != 0:
        code = _REPLY_ERRNO.get(reply, errno.EIO)
        raise SocksError(code, os.strerror(code))
    length = {1: 4, 4: 16}.get(bound)
    if length is None:                      # a domain name: its length comes first
        length = _read_exactly(sock, 1)[0]
    _read_exactly(sock, length + 2)


def socks_connect(proxies: Sequence[SocksProxy], address: str, port: int,
                  timeout: float, source: tuple[str, int] | None = None,
                  report: Callable[[str], None] | None = None,
                  rng: random.Random | None = None
                  ) -> tuple[socket.socket, SocksProxy]:
    """A socket connected to ``address``:``port`` through the first proxy that answers,
    and that proxy.  ``timeout`` bounds the whole attempt; ``report`` gets a line for
    each proxy that could not be reached."""
    deadline = time.monotonic() + timeout
    for proxy in proxy_order(proxies, rng):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            sock = socket.create_connection((proxy.address, proxy.port),
                                            min(proxy.timeout, left), source)
        except OSError as exc:
            text = "Connection timed out" if isinstance(exc, socket.timeout) else \
                os.strerror(exc.errno) if exc.errno else str(exc)
            if report is not None:
                report(f"socks_sock_connect: {text}")
            continue
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            _negotiate(sock, proxy, address, port)
        except socket.timeout:
            sock.close()
            raise SocksError(errno.ETIMEDOUT, "Connection timed out") from None
        except OSError:
            sock.close()
            raise
        return sock, proxy
    raise SocksError(errno.EBUSY, "Device or resource busy")
