"""A real Exim 4.96 daemon (Debian's exim4) as the far end of pymta's smtp transport.

``EximDaemon(config_text, directory).start()`` writes the configuration (with
``@SPOOL@``, ``@DIR@`` and ``@PORT@``, ``@PORT2@``... replaced), runs
``exim4 -C conf -bdf -oX PORT`` as root
and waits for its banner.  Exim accepts a ``-C`` file only when root owns it and nobody
else may write it; it then runs as ``exim_user`` (Debian-exim), so the directory is given
to that user.  :func:`exim_or_skip` skips a test when exim4 cannot be used here.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.wait import wait_until

EXIM = shutil.which("exim4") or "/usr/sbin/exim4"
EXIM_USER = "Debian-exim"


def exim_or_skip() -> None:
    """Skip the calling test unless exim4 exists, we are root and its user exists."""
    if not os.path.exists(EXIM):
        pytest.skip("exim4 is not installed")
    if os.geteuid() != 0:
        pytest.skip("running exim4 with its own configuration needs root")
    try:
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        pytest.skip(f"user {EXIM_USER} does not exist")


class EximDaemon:
    """An Exim daemon listening on a free loopback port (``port``; more with ``ports``)."""

    def __init__(self, config_text: str, directory: str | os.PathLike, ports: int = 1):
        self.dir = Path(directory)
        self.spool = self.dir / "spool"
        self.ports = [free_port() for _ in range(ports)]
        self.port = self.ports[0]
        text = config_text.replace("@SPOOL@", str(self.spool)).replace("@DIR@", str(self.dir))
        for i, p in enumerate(self.ports[1:], start=2):
            text = text.replace(f"@PORT{i}@", str(p))
        self.config_text = ("exim_user = Debian-exim\nexim_group = Debian-exim\n"
                            "keep_environment =\nhost_lookup =\nrfc1413_hosts =\n"
                            + text.replace("@PORT@", str(self.port)))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "EximDaemon":
        (self.spool / "log").mkdir(parents=True, exist_ok=True)
        conf = self.dir / "exim.conf"
        conf.write_text(self.config_text)
        pw = pwd.getpwnam(EXIM_USER)
        for root, dirs, files in os.walk(self.dir):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for name in files:
                os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)
        os.chown(conf, 0, 0)
        os.chmod(conf, 0o644)
        path = self.dir.resolve()
        for parent in path.parents:          # pytest's directories are 0700
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, (mode & 0o7777) | 0o001)
        out = open(self.dir / "exim.out", "wb")
        self.proc = subprocess.Popen(
            [EXIM, "-C", str(conf), "-bdf", "-oX", ":".join(map(str, self.ports))],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        try:
            wait_until(self._ready, 15, 0.05)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"exim4 did not start:\n{self.diagnostics()}") from None
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"exim4 exited with {self.proc.returncode}:\n"
                               f"{self.diagnostics()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                ok = s.recv(512).startswith(b"220")
                s.sendall(b"QUIT\r\n")
                return ok
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log(self, name: str = "main") -> str:
        try:
            return (self.spool / "log" / f"{name}log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self) -> str:
        out = ""
        try:
            out = (self.dir / "exim.out").read_text(errors="replace")
        except FileNotFoundError:
            pass
        return f"--- exim4 output\n{out}--- exim mainlog\n{self.log()}--- paniclog\n" \
               f"{self.log('panic')}"

    def __enter__(self) -> "EximDaemon":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
