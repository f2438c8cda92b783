"""-bt/-bv with -f, -bvs, -Mset with -be, and the order of queue runs
(queue_run_in_order).  Outputs as exim4 (4.96) printed them for the same configuration."""
from __future__ import annotations

import re

from tests.support.daemon import PymtaDaemon

CONFIG = """
primary_hostname = test.ex
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
IN_ORDER
begin routers
r1:
  driver = accept
  senders = x@y
  transport = t
r2:
  driver = redirect
  data = :fail: sender is $sender_address
  allow_fail
  local_parts = ! ^q
q:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/mbox
"""


def test_address_testing_uses_the_sender(tmp_path):
    d = PymtaDaemon(CONFIG.replace("IN_ORDER", ""), tmp_path)
    d.prepare()
    out = d.run("-bt", "-f", "x@y", "root@test.ex")
    assert out.stdout == "root@test.ex\n  router = r1, transport = t\n"
    import os
    import pwd
    me = pwd.getpwuid(os.getuid()).pw_name
    out = d.run("-bt", "root@test.ex")
    assert out.stdout == f"root@test.ex is undeliverable: sender is {me}@test.ex\n"
    assert out.returncode == 2
    assert d.run("-bv", "-f", "x@y", "root@test.ex").stdout == "root@test.ex verified\n"
    assert d.run("-bvs", "x@y").stdout == "x@y failed to verify: sender is \n"


def test_mset_loads_a_queued_message_for_be(tmp_path):
    d = PymtaDaemon(CONFIG.replace("IN_ORDER", ""), tmp_path)
    d.prepare()
    proc = d.run("-odq", "-f", "s@test.ex", "q1@test.ex", "q2@test.ex",
                 input=b"From: s@test.ex\nSubject: hello\n\nbody here\n")
    assert proc.returncode == 0, proc.stderr
    msgid = d.queue()[0]
    out = d.run("-Mset", msgid, "-be",
                "[$sender_address] [$recipients] [$h_subject:] [$message_body] "
                "[$message_id] [$recipients_count]")
    assert out.stdout == (f"[s@test.ex] [q1@test.ex, q2@test.ex] [hello] [body here ] "
                          f"[{msgid}] [2]\n")
    assert d.run("-Mset", "1aaaaa-aaaaaa-aa", "-be", "x").stdout == \
        "Failed to load message 1aaaaa-aaaaaa-aa\n"


def _queue_order(tmp_path, in_order: bool) -> tuple[list[str], list[str]]:
    d = PymtaDaemon(CONFIG.replace("IN_ORDER", "queue_run_in_order" if in_order else ""),
                    tmp_path)
    d.prepare()
    for n in range(12):
        d.run("-odq", "-f", "s@test.ex", f"q{n}@test.ex", input=b"Subject: x\n\nb\n")
    queued = sorted(d.queue())
    assert d.run("-q").returncode == 0
    delivered = re.findall(r"(\w{6}-\w{6}-\w{2}) => ", d.log())
    return queued, delivered


def test_queue_run_in_order(tmp_path):
    queued, delivered = _queue_order(tmp_path / "a", True)
    assert delivered == queued


def test_queue_run_order_is_arbitrary_by_default(tmp_path):
    runs = [_queue_order(tmp_path / f"r{i}", False) for i in range(2)]
    for queued, delivered in runs:
        assert sorted(delivered) == queued
    # 12 messages: the chance of arrival order twice by accident is 1 in (12!)^2
    assert any(delivered != queued for queued, delivered in runs)


RUN_CONFIG = """
primary_hostname = test.ex
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
queue_only
begin routers
remote:
  driver = manualroute
  domains = remote.ex
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = smtp
local:
  driver = accept
  transport = t
begin transports
smtp:
  driver = smtp
  allow_localhost
t:
  driver = appendfile
  file = DIR/mbox
"""


def test_two_phase_local_only_and_initial_runs(tmp_path):
    from tests.support.sink import SmtpSink
    with SmtpSink() as sink:
        d = PymtaDaemon(RUN_CONFIG.replace("SINK_PORT", str(sink.port)), tmp_path)
        d.prepare()
        for rcpt in ("r1@remote.ex", "r2@remote.ex", "l1@test.ex", "r3@remote.ex"):
            d.run("-odq", "-f", "s@test.ex", rcpt, input=b"Subject: x\n\nb\n")
        # -ql: the local delivery only; the remote ones wait, untried
        d.run("-ql")
        assert (tmp_path / "mbox").exists() and sink.connections == 0
        assert len(d.queue()) == 3
        # -qq: the remote ones, one connection for all
        d.run("-qq")
        assert sink.wait_for(3, 10)
        assert sink.connections == 1
        lines = re.findall(r"=> r\d@remote\.ex R=remote T=smtp H=127\.0\.0\.1 "
                           r"\[127\.0\.0\.1\](\*?) ", d.log())
        assert sorted(lines) == ["", "*", "*"]          # later ones reuse the connection
        assert d.queue() == []


def test_initial_only_run(tmp_path):
    from tests.support.ports import free_port
    d = PymtaDaemon(RUN_CONFIG.replace("SINK_PORT", str(free_port())), tmp_path)
    d.prepare()
    d.run("-odq", "-f", "s@test.ex", "r1@remote.ex", input=b"Subject: x\n\nb\n")
    d.run("-qf")                        # tried once: refused, deferred
    assert d.log().count("Connection refused") == 2     # host line and == line
    d.run("-odq", "-f", "s@test.ex", "l1@test.ex", input=b"Subject: x\n\nb\n")
    d.run("-qif")
    assert (tmp_path / "mbox").exists()                 # the new one was delivered
    assert d.log().count("Connection refused") == 2     # the old one was not tried
