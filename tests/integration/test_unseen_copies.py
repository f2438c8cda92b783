"""An ``unseen`` router delivers a copy and routing goes on: the recipient is finished
only when every copy has been delivered, so a copy that defers is tried again (never
lost because the other copy succeeded)."""
from __future__ import annotations

import os
import re

from tests.support.daemon import PymtaDaemon

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
archive:
  driver = accept
  transport = archive
  unseen
main:
  driver = accept
  transport = flaky
begin transports
archive:
  driver = appendfile
  file = DIR/archive
flaky:
  driver = pipe
  command = /bin/sh -c "test -e DIR/ok || exit 75; cat > DIR/delivered"
  USER
begin retry
*  *  F,1h,1m
"""


def test_a_deferred_copy_keeps_the_recipient_on_the_queue(tmp_path):
    user = "user = nobody" if os.geteuid() == 0 else ""
    d = PymtaDaemon(CONFIG.replace("USER", user), tmp_path)
    d.submit_and_deliver("s@test.example", "u@test.example", b"Subject: copies\n\nhi\n")
    log = d.log()
    assert "=> u <u@test.example> R=archive T=archive" in log
    assert re.search(r"== u@test\.example R=main T=flaky defer \(0\)", log), log
    listing = d.run("-bp").stdout
    assert "\n          u@test.example\n" in listing      # still to be delivered, no "D"
    (tmp_path / "ok").write_text("")
    d.run("-qff")
    assert (tmp_path / "delivered").exists()
    assert d.run("-bp").stdout == ""
