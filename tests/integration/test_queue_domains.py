"""queue_domains: the delivery started when a message arrives leaves addresses in these
domains for the next queue run (Exim 4.96's log line is in
tests/data/hold_domains/exim-4.96.txt); queue runs deliver them; other domains are
delivered at once."""
from __future__ import annotations

import os

from tests.support.daemon import PymtaDaemon

CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
daemon_smtp_ports = SMTP_PORT
acl_smtp_rcpt = accept
queue_domains = test.example
begin routers
local:
  driver = accept
  domains = test.example : other.example
  transport = box
begin transports
box:
  driver = appendfile
  file = DIR/mail/$domain_data
"""

QUEUED = "== bob@test.example routing defer (-56): domain is in queue_domains"


def site(tmp_path) -> PymtaDaemon:
    d = PymtaDaemon(CONFIG, tmp_path)
    (tmp_path / "mail").mkdir()
    os.chmod(tmp_path / "mail", 0o777)
    (tmp_path / "spool" / "log").mkdir(parents=True)
    d.prepare()
    return d


def lines(d: PymtaDaemon) -> list[str]:
    return [line.split(" ", 3)[3] for line in d.log().splitlines()
            if len(line.split(" ")) > 3]


def test_left_for_the_queue_run_then_delivered(tmp_path):
    d = site(tmp_path)
    r = d.run("-odi", "-f", "a@test.example", "bob@test.example", "carol@other.example",
              input=b"Subject: q\n\nbody\n")
    assert r.returncode == 0, r.stderr
    assert QUEUED in lines(d)
    assert (tmp_path / "mail" / "other.example").exists()      # not in queue_domains
    assert not (tmp_path / "mail" / "test.example").exists()
    [msgid] = d.queue()
    assert QUEUED[3:] in (d.spool / "msglog" / msgid).read_text()
    assert d.run("-q").returncode == 0
    assert (tmp_path / "mail" / "test.example").exists()
    assert d.queue() == []
    assert lines(d).count(QUEUED) == 1


def test_daemon_reception_then_queue_run(tmp_path):
    d = site(tmp_path)
    d.start()
    with d.client() as c:
        c.send_message("a@test.example", ["bob@test.example"], b"Subject: q\r\n\r\nbody\r\n")
    d.wait_for_log("domain is in queue_domains")
    assert not (tmp_path / "mail" / "test.example").exists()
    assert len(d.queue()) == 1
    assert d.run("-q").returncode == 0
    assert (tmp_path / "mail" / "test.example").exists() and d.queue() == []
