"""appendfile's lock file for an mbox, made as Exim 4.96 makes it: a uniquely named
"hitching post" file, hard-linked to <mailbox>.lock.  When the directory does not let
the delivery user create it, exim4 4.96 -odi logged (its exim_user, uid 102):
    == u@test.example R=r T=t defer (13): Permission denied: creating lock file
       hitching post /tmp/.../out.lock.test.example.6b1507f8.00005d03 (euid=102 egid=105)
"""
from __future__ import annotations

import os
import pwd
import re

import pytest

from tests.support.daemon import PymtaDaemon

CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
r:
  driver = accept
  local_parts = u
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/box/mbox
  user = nobody
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to deliver as nobody")
def test_a_lock_file_that_cannot_be_made_names_the_hitching_post(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    box = tmp_path / "box"
    box.mkdir(mode=0o755)                   # root's: nobody cannot create files here
    nobody = pwd.getpwnam("nobody")
    (box / "mbox").touch()
    os.chown(box / "mbox", nobody.pw_uid, nobody.pw_gid)
    r = d.run("-odi", "-f", "s@test.example", "u@test.example", input=b"Subject: t\n\nb\n")
    assert r.returncode == 0, r.stderr
    lock = re.escape(f"{box}/mbox.lock.test.example.")
    assert re.search(
        rf" == u@test\.example R=r T=t defer \(13\): Permission denied: creating lock file "
        rf"hitching post {lock}[0-9a-f]{{8}}\.[0-9a-f]{{8}} "
        rf"\(euid={nobody.pw_uid} egid={nobody.pw_gid}\)\n", d.log()), d.log()
    assert os.listdir(box) == ["mbox"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to deliver as nobody")
def test_the_lock_file_is_made_and_removed(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    box = tmp_path / "box"
    box.mkdir()
    os.chmod(box, 0o777)
    r = d.run("-odi", "-f", "s@test.example", "u@test.example", input=b"Subject: t\n\nb\n")
    assert r.returncode == 0, r.stderr
    assert " => u <u@test.example> R=r T=t" in d.log(), d.log()
    assert os.listdir(box) == ["mbox"]      # no lock file or hitching post left behind
