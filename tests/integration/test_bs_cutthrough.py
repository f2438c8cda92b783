"""-bs (SMTP on standard input) delivers by cutthrough when the RCPT ACL asks for it,
as Exim's -bs does and as the daemon's sessions do; the ">>" line names the address as
Exim's does (exim4 4.96: ">> john@relay.example <John-ext@relay.example>")."""
from __future__ import annotations

import re

from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink

CONFIG = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = r

begin acl

r:
  accept control = cutthrough_delivery
         verify = recipient

begin routers

out:
  driver = manualroute
  domains = relay.example
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = out
  local_part_suffix = -*
  local_part_suffix_optional

begin transports

out:
  driver = smtp
  allow_localhost
  hosts_avoid_tls = *
"""


def test_bs_cutthrough(tmp_path):
    with SmtpSink() as sink:
        d = PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": str(sink.port)})
        d.prepare()
        out = d.run("-bs", input=b"HELO client.example\r\nMAIL FROM:<s@src.example>\r\n"
                    b"RCPT TO:<John-ext@relay.example>\r\nDATA\r\nSubject: t\r\n\r\n"
                    b"hello\r\n.\r\nQUIT\r\n")
        replies = out.stdout.decode() if isinstance(out.stdout, bytes) else out.stdout
        assert "250 OK id=" in replies
        assert sink.wait_for(1)
        rcpts = [c for c in sink.commands if c.upper().startswith("RCPT")]
    assert rcpts == ["RCPT TO:<John@relay.example>"]
    lines = [re.sub(r"^\S+ \S+ \S+ ", "", ln) for ln in d.log().splitlines()]
    assert any(ln.startswith(">> john@relay.example <John-ext@relay.example> R=out T=out ")
               for ln in lines), lines
    assert d.queue() == []
