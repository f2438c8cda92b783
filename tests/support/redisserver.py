"""A private redis-server (Debian package redis-server) for the redis lookup and the
shared hints tests: on an ephemeral loopback port, in a temporary directory, without
persistence (``--save "" --appendonly no``).

:func:`redis_server` is a session-scoped fixture (import it into a test module); tests
that stop the server use :class:`RedisServer` themselves.  Where redis-server is not
installed the tests are skipped with the reason.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.support.ports import free_port
from tests.support.procs import stop_process


class RedisServer:
    """One redis-server process; ``start()`` and ``stop()`` may be repeated."""

    def __init__(self, directory: str, port: int | None = None, unix_socket: bool = False):
        self.directory = directory
        self.port = port or free_port()
        #: with ``unix_socket``, the server also listens on ``<directory>/redis.sock``
        self.socket = f"{directory}/redis.sock" if unix_socket else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The server as an item of redis_servers (database 0, no password)."""
        return f"127.0.0.1:{self.port}//"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not shutil.which(binary):
            pytest.skip("redis-server is not installed (Debian package redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory,
             "--save", "", "--appendonly", "no", "--logfile", f"{self.directory}/redis.log",
             "--daemonize", "no"]
            + (["--unixsocket", self.socket, "--unixsocketperm", "700"] if self.socket else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        pytest.skip(f"redis-server did not start on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *words: str) -> bytes:
        """One command, its raw reply (enough for the tests' checks)."""
        out = b"*%d\r\n" % len(words) + b"".join(
            b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(out)
            time.sleep(0.05)
            return s.recv(65536)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the whole test session."""
    with tempfile.TemporaryDirectory(prefix="pymta-redis-") as d:
        server = RedisServer(d).start()
        try:
            yield server
        finally:
            server.stop()
