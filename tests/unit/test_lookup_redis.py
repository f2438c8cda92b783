"""The redis lookup's pieces: query splitting, server items, reply formatting, and the
per-process connection cache against a private redis-server (reused within a process,
a fresh one in a forked child)."""
from __future__ import annotations

import os
import re

import pytest

from pymta.expand.errors import ExpandDefer
from pymta.lookups.redis import RedisServer, format_reply, parse_server, redis_lookup, split_command
from tests.support.redisserver import RedisServer as PrivateRedis
from tests.support.redisserver import redis_server  # noqa: F401


def test_split_command():
    assert split_command("  set  k\\ 1 a\\\\b\\") == ["set", "k 1", "a\\b"]
    assert split_command("") == []
    assert len(split_command(" ".join(["w"] * 40))) == 32


def test_parse_server():
    assert parse_server("10.0.0.1:6380/2/pw") == RedisServer("10.0.0.1", 6380, None, 2, "pw")
    assert parse_server("localhost//") == RedisServer("localhost", 6379, None, None, None)
    assert parse_server("(/run/r.sock)//").socket == "/run/r.sock"
    for bad in ("localhost", "localhost/1", "h:x//", "h/x/"):
        with pytest.raises(ExpandDefer):
            parse_server(bad)


def test_format_reply():
    assert format_reply(None) == ""
    assert format_reply(0) == "false" and format_reply(5) == "true"
    assert format_reply(b"OK") == "OK"
    assert format_reply([]) is None and format_reply([None]) is None
    assert format_reply([b"a", 3, None, b"b"]) == "a\n3\n\nb"
    assert format_reply([[b"x", [b"deep"]], b"y"]) == "x\n\ny"


def _client_id(address: str) -> str:
    info = redis_lookup("client info", None, address)
    match = re.match(r"id=(\d+) ", info or "")
    assert match, info
    return match.group(1)


def test_connection_reused_in_a_process_and_fresh_after_fork(redis_server: PrivateRedis):  # noqa: F811
    address = redis_server.address.replace(":", "::")    # an Exim list item
    first = _client_id(address)
    assert _client_id(address) == first
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, _client_id(address).encode())
        finally:
            os._exit(0)
    os.close(write)
    child_id = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert child_id and child_id != first
    assert _client_id(address) == first      # the parent's connection is still sound
