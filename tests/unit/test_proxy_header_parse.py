"""PROXY protocol header parsing (HAProxy versions 1 and 2, Exim's limits)."""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from pymta.smtp.proxy_protocol import (
    V2_SIGNATURE,
    ProxyError,
    ProxyHeader,
    parse_v1,
    parse_v2,
    read_proxy_header,
)


def v2(command: int = 1, family: int = 0x11, body: bytes | None = None,
       version: int = 2) -> bytes:
    if body is None:
        body = (socket.inet_aton("192.0.2.7") + socket.inet_aton("198.51.100.1")
                + struct.pack("!HH", 4000, 25))
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + \
        struct.pack("!H", len(body)) + body


def test_v1_tcp4_and_tcp6():
    assert parse_v1(b"PROXY TCP4 192.0.2.7 198.51.100.1 4000 25\r\n") == \
        ProxyHeader(1, ("192.0.2.7", 4000), ("198.51.100.1", 25))
    assert parse_v1(b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 587\r\n") == \
        ProxyHeader(1, ("2001:db8::7", 65535), ("2001:db8::1", 587))


def test_v1_unknown_keeps_the_connection_addresses():
    assert parse_v1(b"PROXY UNKNOWN\r\n") == ProxyHeader(1)
    assert parse_v1(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n") == ProxyHeader(1)


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 192.0.2.999 198.51.100.1 4000 25\r\n",     # bad address
    b"PROXY TCP4 192.0.2.7 198.51.100.1 70000 25\r\n",       # port out of range
    b"PROXY TCP4 192.0.2.7 198.51.100.1 x 25\r\n",
    b"PROXY TCP4 192.0.2.7 198.51.100.1 4000\r\n",            # a field missing
    b"PROXY UDP4 192.0.2.7 198.51.100.1 4000 25\r\n",
    b"PROXY TCP4 192.0.2.7 198.51.100.1 4000 25\n",           # LF without CR
    b"PROXY TCP4 192.0.2.7 198.51.100.1 4000 25" + b" " * 80 + b"\r\n",   # > 107 bytes
])
def test_v1_malformed(line):
    with pytest.raises(ProxyError):
        parse_v1(line)


def test_v2_proxy_tcp4_tcp6_and_tlvs():
    assert parse_v2(v2()) == ProxyHeader(2, ("192.0.2.7", 4000), ("198.51.100.1", 25))
    six = (socket.inet_pton(socket.AF_INET6, "2001:db8::7")
           + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 1, 2))
    assert parse_v2(v2(family=0x21, body=six)) == \
        ProxyHeader(2, ("2001:db8::7", 1), ("2001:db8::1", 2))
    tlv = v2(body=socket.inet_aton("192.0.2.7") + socket.inet_aton("198.51.100.1")
             + struct.pack("!HH", 4000, 25) + b"\x04\x00\x02ab")
    assert parse_v2(tlv).source == ("192.0.2.7", 4000)


def test_v2_local_keeps_the_connection_addresses():
    assert parse_v2(v2(command=0, family=0, body=b"")) == ProxyHeader(2)


@pytest.mark.parametrize("data", [
    v2(version=1),                       # not version 2
    v2(command=2),                       # no such command
    v2(family=0x12),                     # UDP
    v2(family=0x31, body=b"\0" * 216),   # AF_UNIX
    v2(body=b"\0" * 8),                  # too short for TCP over IPv4
    v2(body=b"\0" * 217),                # beyond Exim's 232-byte header
])
def test_v2_malformed(data):
    with pytest.raises(ProxyError):
        parse_v2(data)


def _pair_with(data: bytes, delay: float = 0.0):
    a, b = socket.socketpair()

    def send():
        time.sleep(delay)
        b.sendall(data)
    threading.Thread(target=send, daemon=True).start()
    return a, b


@pytest.mark.parametrize("header", [
    b"PROXY TCP4 192.0.2.7 198.51.100.1 4000 25\r\n", v2()])
def test_reading_takes_the_header_and_nothing_more(header):
    a, b = _pair_with(header + b"EHLO x\r\n")
    try:
        assert read_proxy_header(a, 2).source == ("192.0.2.7", 4000)
        a.settimeout(2)
        assert a.recv(100) == b"EHLO x\r\n"
    finally:
        a.close()
        b.close()


def test_reading_times_out():
    a, b = socket.socketpair()
    try:
        start = time.monotonic()
        with pytest.raises(ProxyError, match="timed out"):
            read_proxy_header(a, 0.3)
        assert 0.25 < time.monotonic() - start < 2
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("data", [b"EHLO client.test\r\n",
                                  b"PROXY TCP4 " + b"1" * 120 + b"\r\n",
                                  v2(body=b"\0" * 300)])
def test_reading_refuses_garbage_and_oversized_headers(data):
    a, b = _pair_with(data)
    try:
        with pytest.raises(ProxyError):
            read_proxy_header(a, 2)
    finally:
        a.close()
        b.close()
