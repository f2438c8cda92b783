"""A transport's group option alone overrides the group the router gave (Exim's default
configuration's local_delivery sets only ``group = mail`` for a /var/mail that belongs
to root:mail with mode 2775, as on Debian)."""
from __future__ import annotations

import grp
import os

import pytest

from tests.support.daemon import PymtaDaemon

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
r:
  driver = accept
  user = daemon
  transport = local
begin transports
local:
  driver = appendfile
  file = DIR/mail/mbox
  group = nogroup
  mode = 0660
"""


def test_group_without_user_overrides_the_routers_group(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to deliver as another user")
    d = PymtaDaemon(CONFIG, tmp_path)
    d.prepare()
    tmp_path.chmod(0o711)
    mail = tmp_path / "mail"
    mail.mkdir()
    nogroup = grp.getgrnam("nogroup").gr_gid
    os.chown(mail, 0, nogroup)
    mail.chmod(0o2770)                      # only the group may create mailboxes
    d.submit_and_deliver("s@test.example", "u@test.example", b"Subject: x\n\nb\n")
    assert "=> u <u@test.example> R=r T=local\n" in d.log(), d.log()
    assert (mail / "mbox").stat().st_gid == nogroup
