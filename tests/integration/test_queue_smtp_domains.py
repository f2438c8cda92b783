"""queue_smtp_domains: the delivery started when a message arrives routes it and makes
local deliveries, but a remote delivery whose first address is in these domains is left
for the queue run -- other addresses going to the same host in the same delivery wait
with it, as Exim 4.96 does (tests/data/remote_opts/queue_smtp_domains-exim-4.96.txt).
Queue runs deliver them."""
from __future__ import annotations

import os

from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink

CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
queue_smtp_domains = q.example
begin routers
remote:
  driver = manualroute
  domains = ! other2.example : ! test.example
  route_list = * 127.0.0.1::PORT1
  self = send
  transport = remote_smtp
remote2:
  driver = manualroute
  domains = ! test.example
  route_list = * 127.0.0.1::PORT2
  self = send
  transport = remote_smtp
local:
  driver = accept
  transport = box
begin transports
remote_smtp:
  driver = smtp
  allow_localhost
box:
  driver = appendfile
  file = DIR/box
"""

WHY = "defer (-1): first-pass only routing due to -odqs, queue_smtp_domains or control=queue"


def lines(d: PymtaDaemon) -> list[str]:
    return [line.split(" ", 3)[3] for line in d.log().splitlines()
            if len(line.split(" ")) > 3]


def _site(tmp_path, sink1: SmtpSink, sink2: SmtpSink) -> PymtaDaemon:
    d = PymtaDaemon(CONFIG, tmp_path, macros={"PORT1": str(sink1.port),
                                              "PORT2": str(sink2.port)})
    d.prepare()
    os.chmod(tmp_path, 0o777)
    return d


def _submit(d: PymtaDaemon, *rcpts: str) -> None:
    r = d.run("-odi", "-f", "a@test.example", *rcpts, input=b"Subject: q\n\nbody\n")
    assert r.returncode == 0, r.stderr


def test_batch_led_by_a_queued_domain_waits_for_the_queue_run(tmp_path):
    with SmtpSink() as sink1, SmtpSink() as sink2:
        d = _site(tmp_path, sink1, sink2)
        _submit(d, "u@q.example", "v@other.example", "w@other2.example", "l@test.example")
        got = lines(d)
        assert f"== u@q.example R=remote T=remote_smtp {WHY}" in got
        assert f"== v@other.example R=remote T=remote_smtp {WHY}" in got
        assert any(x.startswith("=> w@other2.example R=remote2") for x in got), got
        assert any(x.startswith("=> l <l@test.example> R=local T=box") for x in got), got
        assert sink1.messages == [] and len(sink2.messages) == 1
        [msgid] = d.queue()
        assert f"u@q.example R=remote T=remote_smtp {WHY}" in \
            (d.spool / "msglog" / msgid).read_text()
        # no retry hint holds it back: the queue run delivers both in one transaction
        assert d.run("-q").returncode == 0
        assert d.queue() == []
        [msg] = sink1.messages
        assert sorted(msg.recipients) == ["u@q.example", "v@other.example"]


def test_batch_led_by_another_domain_goes_at_once(tmp_path):
    with SmtpSink() as sink1, SmtpSink() as sink2:
        d = _site(tmp_path, sink1, sink2)
        _submit(d, "v@other.example", "u@q.example")
        assert d.queue() == [], d.diagnostics()
        [msg] = sink1.messages
        assert msg.recipients == ["v@other.example", "u@q.example"]
        assert not any(WHY in x for x in lines(d))


def test_forced_delivery_ignores_it(tmp_path):
    with SmtpSink() as sink1, SmtpSink() as sink2:
        d = _site(tmp_path, sink1, sink2)
        _submit(d, "u@q.example")
        [msgid] = d.queue()
        assert d.run("-M", msgid).returncode == 0
        assert d.queue() == [] and len(sink1.messages) == 1


def test_odqs_leaves_every_smtp_delivery_for_the_queue_run(tmp_path):
    """-odqs: the delivery started for the message routes it and makes the local
    deliveries; all its smtp deliveries wait for a queue run, whatever their domain."""
    with SmtpSink() as sink1, SmtpSink() as sink2:
        d = PymtaDaemon(CONFIG.replace("queue_smtp_domains = q.example\n", ""), tmp_path,
                        macros={"PORT1": str(sink1.port), "PORT2": str(sink2.port)})
        d.prepare()
        os.chmod(tmp_path, 0o777)
        r = d.run("-odqs", "-odi", "-f", "a@test.example", "v@other.example",
                  "w@other2.example", "l@test.example", input=b"Subject: q\n\nbody\n")
        assert r.returncode == 0, r.stderr
        assert "-odqs" not in r.stderr            # not among the ignored options
        got = lines(d)
        assert f"== v@other.example R=remote T=remote_smtp {WHY}" in got
        assert f"== w@other2.example R=remote2 T=remote_smtp {WHY}" in got
        assert any(x.startswith("=> l <l@test.example> R=local T=box") for x in got), got
        assert sink1.messages == [] and sink2.messages == []
        assert d.run("-q").returncode == 0
        assert d.queue() == []
        assert len(sink1.messages) == 1 and len(sink2.messages) == 1


def test_queue_only_file_smtp_path_acts_while_the_file_exists(tmp_path):
    """queue_only_file = smtp/path: while the file exists every smtp delivery waits for
    the queue run (queue_smtp_domains = *); without it messages go at once."""
    flag = tmp_path / "hold-smtp"
    with SmtpSink() as sink1, SmtpSink() as sink2:
        conf = CONFIG.replace("queue_smtp_domains = q.example\n",
                              f"queue_only_file = smtp{flag}\n")
        d = PymtaDaemon(conf, tmp_path, macros={"PORT1": str(sink1.port),
                                                "PORT2": str(sink2.port)})
        d.prepare()
        os.chmod(tmp_path, 0o777)
        flag.write_text("")
        _submit(d, "v@other.example", "l@test.example")
        assert f"== v@other.example R=remote T=remote_smtp {WHY}" in lines(d)
        assert any(x.startswith("=> l <l@test.example> R=local T=box") for x in lines(d))
        assert sink1.messages == [] and len(d.queue()) == 1
        flag.unlink()
        _submit(d, "w@other.example")
        # delivered at once, and the waiting message follows it down the connection
        assert sorted(m.recipients[0] for m in sink1.messages) == \
            ["v@other.example", "w@other.example"]
        assert d.queue() == []
