"""A full spool filesystem (a small tmpfs the test mounts): no duplicate storm, 452 at
MAIL, refused command-line submission, paused queue runs, nothing lost when space
returns, and hints that stay out of the way (no SIGBUS from LMDB).

The spool is on the tmpfs; logs and maildirs are on the (not full) test directory.
Every test is skipped, with the reason printed, when it cannot mount a tmpfs (not root,
or no permission in this sandbox).
"""
from __future__ import annotations

import errno
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.conftest import BASE_CONFIG
from tests.support.daemon import PymtaDaemon, run_pymta
from tests.support.ports import free_port
from tests.support.sink import SmtpSink
from tests.support.wait import wait_until

TMPFS_SIZE = "2m"

# The integration BASE_CONFIG with the log on its own filesystem and the space checks
CONFIG = BASE_CONFIG.replace("log_file_path = SPOOL/log/%slog\n", """\
log_file_path = DIR/log/%slog
check_spool_space = CSS
check_spool_inodes = CSI
check_log_space = CLS
""")
assert "check_spool_space" in CONFIG

USERS = ("alice", "bob", "carol")


class Setup:
    """A test directory with the spool on its own small tmpfs."""

    def __init__(self, root: Path):
        self.root = root
        self.spool = root / "spool"
        self.conf = root / "pymta.conf"
        self.fill_path = self.spool / "fill"

        self.sink_port = free_port()

    def macros(self, css: str = "0", csi: str = "0", cls: str = "0") -> dict[str, str]:
        return {"SPOOL": str(self.spool), "DIR": str(self.root), "CSS": css, "CSI": csi,
                "CLS": cls, "SINK_PORT": str(self.sink_port)}

    def run(self, *args: str, css: str = "0", csi: str = "0", cls: str = "0",
            input: bytes | None = None) -> subprocess.CompletedProcess:
        return run_pymta(args, self.conf, macros=self.macros(css, csi, cls), input=input)

    def submit(self, n: int, to: tuple[str, ...] = tuple(f"{u}@test.example" for u in USERS),
               **kw: str) -> None:
        for i in range(n):
            body = f"Subject: test {i}\n\nbody {i}\n".encode()
            res = self.run("-odq", "-f", "sender@test.example", *to, input=body, **kw)
            assert res.returncode == 0, res.stderr

    def fill(self) -> None:
        """Write a file until the tmpfs is full (ENOSPC)."""
        fd = os.open(self.fill_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 512, 1):
                try:
                    while os.write(fd, b"x" * size):
                        pass
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self) -> None:
        self.fill_path.unlink()

    def copies(self, user: str) -> Counter[str]:
        """How many copies of each message (by Subject:) ``user``'s maildir holds."""
        new = self.root / "maildir" / user / "new"
        out: Counter[str] = Counter()
        for p in new.iterdir() if new.is_dir() else ():
            m = re.search(rb"^Subject: (.*)$", p.read_bytes(), re.M)
            out[m.group(1).decode() if m else "?"] += 1
        return out

    def queue(self) -> list[str]:
        input_dir = self.spool / "input"
        names = os.listdir(input_dir) if input_dir.is_dir() else []
        return sorted(f[:-2] for f in names if f.endswith("-H"))

    def log(self, name: str = "main") -> str:
        p = self.root / "log" / f"{name}log"
        return p.read_text(errors="replace") if p.exists() else ""


@pytest.fixture
def full_fs(tmp_path: Path) -> Iterator[Setup]:
    """A Setup whose spool is a freshly mounted small tmpfs (unmounted afterwards)."""
    s = Setup(tmp_path)
    s.spool.mkdir()
    if os.geteuid() != 0:
        print("skipping: mounting a tmpfs needs root")
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs",
                          str(s.spool)], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"skipping: cannot mount a tmpfs: {res.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs: {res.stderr.strip()}")
    try:
        (tmp_path / "log").mkdir()
        (tmp_path / "users").write_text("".join(f"{u}: {u}\n" for u in USERS))
        s.conf.write_text(CONFIG)
        yield s
    finally:
        subprocess.run(["umount", "-l", str(s.spool)], capture_output=True)


def test_full_spool_no_duplicate_storm(full_fs: Setup) -> None:
    """Deliveries on a full spool never repeat: at most one extra copy per recipient
    over several -qff runs, and every recipient gets its message once space returns."""
    s = full_fs
    s.submit(4)
    s.fill()
    for _ in range(4):
        s.run("-qff")
    while_full = {u: dict(s.copies(u)) for u in USERS}
    s.free()
    res = s.run("-qff")
    assert res.returncode == 0, res.stderr
    assert s.queue() == []
    subjects = {f"test {i}" for i in range(4)}
    for u in USERS:
        got = s.copies(u)
        assert set(got) == subjects, (u, got)                  # nothing lost
        assert max(got.values()) <= 2, (u, while_full, got)   # at most one extra copy
    # while full, deliveries were not attempted (nothing to repeat later)
    assert "defer (28): No space left on device: delivery not attempted" in s.log()


BSMTP = (b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<alice@test.example>\r\n"
         b"QUIT\r\n")


def test_below_check_spool_space_452_at_mail_and_refused_submission(full_fs: Setup) -> None:
    s = full_fs
    s.fill()
    out = s.run("-bs", css="1M", input=BSMTP).stdout
    assert "452 Space shortage, please try later" in out
    assert "503 " in out                         # no RCPT without an accepted MAIL
    assert re.search(r"spool directory space check failed: space=\d+ inodes=\d+", s.log())
    for flags in (["-odq"], ["-odi"], ["-bm"], ["-odq", "-t"]):
        res = s.run(*flags, "alice@test.example", css="1M",
                    input=b"To: alice@test.example\n\nhi\n")
        assert res.returncode != 0 and "insufficient disk space" in res.stderr, res
    assert s.queue() == []
    s.free()                                     # space is back: accepted again
    assert "250 OK" in s.run("-bs", css="1M", input=BSMTP).stdout
    assert s.run("-odq", "alice@test.example", css="1M", input=b"\nhi\n").returncode == 0


def test_size_and_log_space_checks(full_fs: Setup) -> None:
    """SIZE= is added to check_spool_space (even when it is 0); check_log_space looks at
    the log directory's filesystem."""
    s = full_fs
    big = b"EHLO c\r\nMAIL FROM:<a@c.test> SIZE=%d\r\nQUIT\r\n"
    assert "452 Space shortage" in s.run("-bs", input=big % 4_000_000).stdout   # 2 MB fs
    assert "250 OK" in s.run("-bs", input=big % 1000).stdout
    out = s.run("-bs", cls="100000G", input=big % 1000).stdout
    assert "452 Space shortage" in out
    assert "log directory space check failed" in s.log()


def test_queue_runs_pause_while_short_and_resume(full_fs: Setup) -> None:
    """pymta -q and the daemon's queue runner deliver nothing while the spool is below
    check_spool_space; once space returns everything is delivered exactly once."""
    s = full_fs
    s.submit(2)
    s.fill()
    s.run("-qff", css="1M")
    assert "queue run paused" in s.log()
    assert len(s.queue()) == 2 and all(not s.copies(u) for u in USERS)
    assert " == " not in s.log()                # not even attempted
    d = PymtaDaemon(CONFIG, s.root, macros=s.macros(css="1M"), args=["-q1s", "-odq"])
    with d:
        wait_until(lambda: s.log().count("queue run paused") >= 3, 15)
        assert all(not s.copies(u) for u in USERS)
        s.free()
        wait_until(lambda: not s.queue(), 15)
    for u in USERS:
        assert s.copies(u) == {"test 0": 1, "test 1": 1}


def test_hints_on_full_spool_are_an_error_not_sigbus(full_fs: Setup) -> None:
    """A delivery that opens the retry hints on a full spool (here: first use after the
    hints were cleared) does not die of SIGBUS; it logs that hints are unavailable."""
    s = full_fs
    s.submit(1, to=("user@remote.example",))
    s.run("-q")                                  # connection refused: deferred
    assert " == user@remote.example" in s.log()
    for name in os.listdir(s.spool / "db"):      # hints are only hints
        os.unlink(s.spool / "db" / name)
    s.fill()
    time.sleep(1.1)                              # past the 1s retry time
    res = s.run("-q")
    assert res.returncode == 0, (res.returncode, res.stderr)
    assert "hints database" in s.log("panic") and "unavailable" in s.log("panic")
    s.free()
    with SmtpSink(port=s.sink_port) as sink:
        assert s.run("-q").returncode == 0
        assert not s.queue() and len(sink.messages) == 1
