"""Real content scanners for tests: SpamAssassin's spamd and ClamAV's clamd (Debian's
spamassassin and clamav-daemon packages), each started privately on an ephemeral
loopback port and a Unix socket in a temporary directory; and a scanner that accepts
connections and never answers (for timeouts).

spamd runs without sa-update's rules: the rules shipped in /usr/share/spamassassin
(GTUBE among them) with a site configuration of our own that turns off network tests
and Bayes.  clamd cannot download signatures here, so it gets a database of one
signature we write: the EICAR test string, as a body-based (.ndb) signature, which
matches it anywhere in the scanned file or its decoded MIME parts.

A scanner that cannot be started makes the test skip with the reason (in CI the
packages are installed by .ci/run, so there they run).
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
#: The name clamd gives our signature (it marks databases it did not sign).
EICAR_NAME = "Pymta-Test-EICAR.UNOFFICIAL"

_START_TIMEOUT = 60.0


def _wait_ready(proc: subprocess.Popen, path: str, port: int, what: str,
                log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if os.path.exists(path):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                pass
        time.sleep(0.2)
    _stop(proc)
    output = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    pytest.skip(f"{what} could not be started: {output or 'no output'}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Scanner:
    """A running scanner: its TCP ``port`` on 127.0.0.1 and Unix socket ``path``."""

    def __init__(self, proc: subprocess.Popen, directory: str, port: int, path: str):
        self.proc, self.directory, self.port, self.path = proc, directory, port, path

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.directory, ignore_errors=True)


def _directory(prefix: str) -> str:
    directory = tempfile.mkdtemp(prefix=prefix)
    os.chmod(directory, 0o755)        # spamd's children run as nobody
    return directory


def start_spamd() -> Scanner:
    """spamd on an ephemeral port and a Unix socket; skips when it cannot start."""
    binary = shutil.which("spamd") or ("/usr/sbin/spamd"
                                       if os.path.exists("/usr/sbin/spamd") else None)
    pres = glob.glob("/etc/spamassassin/*.pre")
    if binary is None or not pres or not os.path.isdir("/usr/share/spamassassin"):
        pytest.skip("spamd is not installed (Debian packages spamassassin and spamd)")
    directory = _directory("pymta-spamd-")
    site = Path(directory, "site")
    site.mkdir()
    for pre in pres:                   # the plugin loaders, without Debian's local.cf
        shutil.copy(pre, site)
    (site / "local.cf").write_text("use_bayes 0\nbayes_auto_learn 0\nskip_rbl_checks 1\n"
                                   "dns_available no\n")
    port = free_port()
    path = os.path.join(directory, "spamd.sock")
    log = Path(directory, "spamd.log")
    args = [binary, "-x", "-L", f"--listen=127.0.0.1:{port}", f"--listen={path}",
            f"--siteconfigpath={site}", "--syslog=stderr", "--max-children=2",
            f"--pidfile={directory}/spamd.pid"]
    if os.getuid() == 0:
        args += ["-u", "nobody"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    _wait_ready(proc, path, port, "spamd", log)
    return Scanner(proc, directory, port, path)


def start_clamd() -> Scanner:
    """clamd on an ephemeral port and a Unix socket with our EICAR signature; skips
    when it cannot start."""
    binary = shutil.which("clamd") or ("/usr/sbin/clamd"
                                       if os.path.exists("/usr/sbin/clamd") else None)
    if binary is None:
        pytest.skip("clamd is not installed (Debian package clamav-daemon)")
    directory = _directory("pymta-clamd-")
    db = Path(directory, "db")
    db.mkdir()
    (db / "pymta-test.ndb").write_text(f"Pymta-Test-EICAR:0:*:{EICAR.hex()}\n")
    port = free_port()
    path = os.path.join(directory, "clamd.sock")
    log = Path(directory, "clamd.log")
    conf = Path(directory, "clamd.conf")
    user = "root" if os.getuid() == 0 else ""
    conf.write_text(f"LocalSocket {path}\nTCPSocket {port}\nTCPAddr 127.0.0.1\n"
                    f"DatabaseDirectory {db}\nForeground yes\n"
                    f"PidFile {directory}/clamd.pid\nLogFile {log}\n"
                    + (f"User {user}\n" if user else ""))
    with open(Path(directory, "clamd.out"), "wb") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    _wait_ready(proc, path, port, "clamd", Path(directory, "clamd.out"))
    return Scanner(proc, directory, port, path)


class SilentScanner:
    """Accepts connections on a loopback port and a Unix socket, reads what it is
    sent and never answers (until stopped): a scanner that hangs."""

    def __init__(self) -> None:
        self.directory = _directory("pymta-silent-")
        self.path = os.path.join(self.directory, "silent.sock")
        self.port = free_port()
        self.accepted = 0
        self._stop = threading.Event()
        self._tcp = socket.create_server(("127.0.0.1", self.port))
        self._unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._unix.bind(self.path)
        os.chmod(self.path, 0o777)          # the daemon runs as its exim_user
        self._unix.listen(8)
        self._held: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._serve, args=(s,), daemon=True)
                         for s in (self._tcp, self._unix)]
        for t in self._threads:
            t.start()

    def _serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            self.accepted += 1
            self._held.append(conn)             # kept open, never answered

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for s in [self._tcp, self._unix, *self._held]:
            s.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "SilentScanner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
