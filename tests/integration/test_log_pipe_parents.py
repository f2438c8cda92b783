"""A pipe or file delivery's log line shows the address that generated it in
parentheses when that is not the original recipient, with or without +all_parents, as
Exim 4.96 writes it ("=> |/bin/true (mid@test.example) <u1@test.example>")."""
from __future__ import annotations

import os
import pwd
import re

import pytest

from tests.support.daemon import PymtaDaemon

CONFIG = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
log_selector = SELECTOR
acl_smtp_rcpt = accept_all

begin acl

accept_all:
  accept

begin routers

fwd:
  driver = redirect
  local_parts = ^u
  data = |/bin/true, Mid@test.example
  pipe_transport = p
  user = PIPE_USER

mid:
  driver = redirect
  local_parts = mid
  data = |/bin/cat
  pipe_transport = p
  user = PIPE_USER

begin transports

p:
  driver = pipe
"""


@pytest.mark.parametrize("selector", ["", "+all_parents"])
def test_pipe_line_names_its_parent(tmp_path, selector):
    # the pipes run as the daemon's own user (nobody when the tests run as root)
    user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    d = PymtaDaemon(CONFIG.replace("SELECTOR", selector), tmp_path,
                    macros={"PIPE_USER": user})
    with d:
        with d.client() as c:
            c.ehlo("client.example")
            assert c.cmd("MAIL FROM:<s@src.example>")[0] == 250
            assert c.cmd("RCPT TO:<U1-x@test.example>")[0] == 250
            assert c.data(b"Subject: t\r\n\r\nhello\r\n")[0] == 250
        d.wait_for_log(r" Completed", 20)
        lines = sorted(re.sub(r"^\S+ \S+ \S+ ", "", ln) for ln in d.log().splitlines()
                       if " => " in ln)
    assert lines == ["=> |/bin/cat (Mid@test.example) <U1-x@test.example> R=mid T=p",
                     "=> |/bin/true <U1-x@test.example> R=fwd T=p"]
