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
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.daemon import PymtaDaemon, run_pymta
from tests.support.smtp import SmtpTestClient
from tests.support.wait import wait_until

TMPFS_SIZE = "2m"

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = DIR/log/%slog
check_spool_space = CSS
check_spool_inodes = CSI
domainlist local_domains = test.example
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  accept  domains = +local_domains
          verify = recipient
  deny    message = relay not permitted

begin routers

local_users:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;DIR/users
  transport = local_maildir

begin transports

local_maildir:
  driver = appendfile
  directory = DIR/maildir/${local_part_data}
  maildir_format
  create_directory

begin retry

*  *  F,1h,1s
"""

USERS = ("alice", "bob", "carol")


class Setup:
    """A test directory with the spool on its own small tmpfs."""

    def __init__(self, root: Path):
        self.root = root
        self.spool = root / "spool"
        self.conf = root / "pymta.conf"
        self.fill_path = self.spool / "fill"

    def macros(self, css: str = "0", csi: str = "0") -> dict[str, str]:
        return {"SPOOL": str(self.spool), "DIR": str(self.root), "CSS": css, "CSI": csi}

    def run(self, *args: str, css: str = "0", csi: str = "0",
            input: bytes | None = None) -> subprocess.CompletedProcess:
        return run_pymta(args, self.conf, macros=self.macros(css, csi), input=input)

    def submit(self, n: int, **kw: str) -> None:
        for i in range(n):
            body = f"Subject: test {i}\n\nbody {i}\n".encode()
            res = self.run("-odq", "-f", "sender@test.example", *(f"{u}@test.example"
                                                                   for u in USERS),
                           input=body, **kw)
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
        return sorted(f[:-2] for f in os.listdir(self.spool / "input") if f.endswith("-H"))

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
    print(s.log()); print(s.log("panic"))
    s.free()
    res = s.run("-qff")
    assert res.returncode == 0, res.stderr
    assert s.queue() == []
    subjects = {f"test {i}" for i in range(4)}
    for u in USERS:
        got = s.copies(u)
        assert set(got) == subjects, (u, got)                  # nothing lost
        assert max(got.values()) <= 2, (u, while_full, got)   # at most one extra copy
