"""The spool both ways with a real Exim 4.96: a queue Exim wrote is listed and delivered
by pymta with the same configuration, and a queue pymta wrote is listed and delivered
by Exim -- including a recipient marked delivered, a frozen message and the split spool
layout (split_spool_directory), so an admin can migrate in either direction.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import PymtaDaemon, give_to_user
from tests.support.exim import EXIM, exim_or_skip

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
SPLIT
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/mbox
  user = OWNER
"""

MESSAGE = b"From: s@test.example\nSubject: SUBJECT\n\nline one\nline two\n"


def _setup(tmp_path: Path, split: bool) -> tuple[PymtaDaemon, Path]:
    exim_or_skip()
    text = CONFIG.replace("SPLIT", "split_spool_directory" if split else "")
    d = PymtaDaemon(text.replace("OWNER", "nobody"), tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    for path in (d.spool, d.spool / "log"):
        give_to_user(path, d.exim_user or "root")
    exim_conf = tmp_path / "exim.conf"
    exim_conf.write_text(
        f"exim_user = {d.exim_user or 'root'}\nkeep_environment =\n" +
        text.replace("SPOOL", str(d.spool)).replace("DIR", str(tmp_path))
        .replace("OWNER", "nobody"))
    exim_conf.chmod(0o644)
    return d, exim_conf


def _exim(conf: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXIM, "-C", str(conf), *args], input=data, capture_output=True,
                          timeout=60)


def _ids(listing: str) -> list[str]:
    return re.findall(r"\b(\w{6}-\w{6}-\w{2}) <", listing)


def _listing(text: str) -> str:
    """-bp output without the age column (the two commands run moments apart)."""
    return re.sub(r"(?m)^ *-?\d+[smhd] ", "", text)


@pytest.mark.parametrize("split", [False, True], ids=["flat", "split"])
def test_exim_queue_delivered_by_pymta(tmp_path, split):
    d, conf = _setup(tmp_path, split)
    for subject in ("first", "second", "third"):
        r = _exim(conf, "-odq", "-f", "s@test.example", "a@test.example", "b@test.example",
                  data=MESSAGE.replace(b"SUBJECT", subject.encode()))
        assert r.returncode == 0, r.stderr
    listing = _exim(conf, "-bp").stdout.decode()
    first, second, third = sorted(_ids(listing))
    if split:
        assert (d.spool / "input" / first[5] / f"{first}-H").exists()
    assert _exim(conf, "-Mmd", second, "a@test.example").returncode == 0
    assert _exim(conf, "-Mf", third).returncode == 0
    exim_listing = _listing(_exim(conf, "-bp").stdout.decode())
    assert _listing(d.run("-bp").stdout) == exim_listing
    assert d.run("-q").returncode == 0
    mbox = (tmp_path / "mbox").read_text()
    assert mbox.count("Subject: first\n") == 2 and mbox.count("Subject: second\n") == 1
    assert "Subject: third" not in mbox                 # still frozen
    assert "line one\nline two\n" in mbox and "Received: from " in mbox
    log = d.log()
    assert f"{second} => b <b@test.example> R=r T=t" in log
    assert f"{second} => a <a@test.example>" not in log
    assert d.queue() == [third]
    assert "*** frozen ***" in d.run("-bp").stdout


@pytest.mark.parametrize("split", [False, True], ids=["flat", "split"])
def test_pymta_queue_delivered_by_exim(tmp_path, split):
    d, conf = _setup(tmp_path, split)
    for subject in ("first", "second", "third"):
        r = d.run("-odq", "-f", "s@test.example", "a@test.example", "b@test.example",
                  input=MESSAGE.replace(b"SUBJECT", subject.encode()))
        assert r.returncode == 0, r.stderr
    first, second, third = d.queue()
    if split:
        assert (d.spool / "input" / first[5] / f"{first}-H").exists()
    assert d.run("-Mmd", second, "a@test.example").returncode == 0
    assert d.run("-Mf", third).returncode == 0
    assert _listing(_exim(conf, "-bp").stdout.decode()) == _listing(d.run("-bp").stdout)
    r = _exim(conf, "-q")
    assert r.returncode == 0, r.stderr
    mbox = (tmp_path / "mbox").read_text()
    assert mbox.count("Subject: first\n") == 2 and mbox.count("Subject: second\n") == 1
    assert "Subject: third" not in mbox
    assert "line one\nline two\n" in mbox
    exim_log = (d.spool / "log" / "mainlog").read_text()
    assert re.search(rf"{second} => b <b@test\.example> R=r T=t", exim_log)
    assert not re.search(rf"{second} => a <a@test\.example>", exim_log)
    assert _ids(_exim(conf, "-bp").stdout.decode()) == [third]
