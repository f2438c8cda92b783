"""log_as_local: a delivery by a local transport is logged in the local style
("=> user <user@domain>") only when the router has log_as_local set, which is the
accept router's default and no other router's (Exim 4.96: string_log_address() and
the routers' defaults, as exim4 -bP shows them)."""
from __future__ import annotations

import pytest

from tests.support.daemon import PymtaDaemon

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog

begin routers

by_manualroute:
  driver = manualroute
  domains = mr.example
  route_list = * 127.0.0.1
  transport = box

by_accept:
  driver = accept
  transport = box
  OPTION

begin transports

box:
  driver = appendfile
  file = DIR/mbox
"""


@pytest.mark.parametrize("recipient,option,expected", [
    ("u@test.example", "", "=> u <u@test.example> R=by_accept T=box"),
    ("u@test.example", "no_log_as_local", "=> u@test.example R=by_accept T=box"),
    ("u@mr.example", "", "=> u@mr.example R=by_manualroute T=box"),
])
def test_local_style_follows_the_routers_log_as_local(tmp_path, recipient, option,
                                                       expected):
    d = PymtaDaemon(CONFIG, tmp_path, macros={"OPTION": option})
    d.submit_and_deliver("s@test.example", recipient, b"Subject: t\n\nhi\n")
    assert f" {expected}" in d.log(), d.log()
