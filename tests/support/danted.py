"""A private SOCKS5 proxy (Debian package dante-server's ``danted``) for the smtp
transport's socks_proxy tests: listening on 127.0.0.2 (an ephemeral port), connecting
out from 127.0.0.3, so that a server behind it sees the proxy, not the client, and the
proxy's own log shows every connection it made.

``danted`` switches user ids for its work, so it needs root; without root or without
the package the tests are skipped with the reason.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.procs import stop_process

LISTEN = "127.0.0.2"
EXTERNAL = "127.0.0.3"

_CONF = """\
logoutput: {directory}/danted.log
internal: {listen} port = {port}
external: {external}
socksmethod: {method}
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 log: connect }}
"""


class Danted:
    """One danted process; ``method`` is ``none`` or ``username`` (RFC 1929, checked
    against the system's password database)."""

    def __init__(self, directory: Path, method: str = "none"):
        self.directory = directory
        self.port = free_port()
        self.method = method
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Danted":
        binary = shutil.which("danted") or "/usr/sbin/danted"
        if not os.path.exists(binary):
            pytest.skip("danted is not installed (Debian package dante-server)")
        if os.geteuid() != 0:
            pytest.skip("danted needs root to switch to its unprivileged user")
        conf = self.directory / "danted.conf"
        conf.write_text(_CONF.format(directory=self.directory, listen=LISTEN,
                                     port=self.port, external=EXTERNAL, method=self.method))
        self.proc = subprocess.Popen([binary, "-f", str(conf), "-N", "1",
                                      "-p", str(self.directory / "danted.pid")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((LISTEN, self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"danted did not start: {self.log()}")

    def log(self) -> str:
        path = self.directory / "danted.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> "Danted":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
