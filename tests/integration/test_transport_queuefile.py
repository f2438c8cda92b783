"""The queuefile transport: the message's -D and -H files copied (or linked) into a
directory, -H last, and the address counted as delivered."""
from __future__ import annotations

import os
import re

from pymta.spool.files import parse_header
from tests.support.daemon import PymtaDaemon

CONFIG = f"""
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
r:
  driver = accept
  transport = archive
begin transports
archive:
  driver = queuefile
  directory = DIR/archive
  {"user = nobody" if os.geteuid() == 0 else ""}
begin retry
* * F,1h,10m
"""


def test_queuefile_copies_the_spool_files(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path)
    d.prepare()
    (tmp_path / "archive").mkdir()
    if os.geteuid() == 0:
        os.chown(tmp_path / "archive", 65534, 65534)
    d.submit_and_deliver("s@test.example", "arch@test.example",
                         b"Subject: keep me\n\nline one\n")
    msgid = re.search(r"(\w{6}-\w{6}-\w{2}) <= ", d.log()).group(1)
    assert f"{msgid} => arch <arch@test.example> R=r T=archive" in d.log()
    assert d.queue() == []                          # delivered: gone from the spool
    data = (tmp_path / "archive" / f"{msgid}-D").read_bytes()
    assert data == f"{msgid}-D\n".encode() + b"line one\n"
    raw = (tmp_path / "archive" / f"{msgid}-H").read_bytes()
    header = parse_header(raw, msgid)
    assert header.sender == "s@test.example"
    assert [r.address for r in header.recipients] == ["arch@test.example"]
    assert any("Subject: keep me" in h.text for h in header.headers)


def test_queuefile_without_its_directory_defers(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path)
    d.submit_and_deliver("s@test.example", "arch@test.example", b"Subject: x\n\nb\n")
    assert re.search(r"== arch@test\.example R=r T=archive defer \(2\): No such file or "
                     r"directory: archive transport: directory \S+/archive does not exist",
                     d.log()), d.log()
    assert len(d.queue()) == 1
