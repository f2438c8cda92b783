"""remote_sort_domains orders the remote deliveries of one message: the sink sees one
session per domain (each domain has its own route), in the order the list gives, with
unmatched domains last in their usual order (the transport, one per initial
letter of the domain, keeps the deliveries apart)."""
from __future__ import annotations

from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink

CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
remote_max_parallel = 1
SORT
begin routers
remote:
  driver = manualroute
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = smtp_${substr_0_1:$domain}
begin transports
smtp_a:
  driver = smtp
  allow_localhost
smtp_b:
  driver = smtp
  allow_localhost
smtp_c:
  driver = smtp
  allow_localhost
"""

RECIPIENTS = ["x@a.example", "y@b.uk", "z@c.ac.uk"]


def _order(tmp_path, sort: str) -> list[str]:
    with SmtpSink() as sink:
        d = PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": str(sink.port),
                                                  "SORT": sort})
        d.prepare()
        r = d.run("-odi", "-f", "s@test.example", *RECIPIENTS,
                  input=b"Subject: order\n\nbody\n")
        assert r.returncode == 0, r.stderr
        assert len(sink.messages) == 3, d.diagnostics()
        return [",".join(m.recipients) for m in sink.messages]


def test_default_order_is_recipient_order(tmp_path):
    assert _order(tmp_path, "") == RECIPIENTS


def test_sorted_by_the_list(tmp_path):
    assert _order(tmp_path, "remote_sort_domains = *.ac.uk : *.uk") == \
        ["z@c.ac.uk", "y@b.uk", "x@a.example"]


def test_unmatched_keep_their_order_after_the_matched(tmp_path):
    assert _order(tmp_path, "remote_sort_domains = ${if eq{1}{1}{b.uk}}") == \
        ["y@b.uk", "x@a.example", "z@c.ac.uk"]
