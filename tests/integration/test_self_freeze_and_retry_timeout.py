"""A router's ``self = freeze``, and addresses whose retry time runs out, as Exim 4.96
logs and handles them (each expected line was recorded from exim4 -odi / -bt / -bv /
-bh on the same configuration).

- ``self = freeze`` (the default) logs "remote host address is the local host: DOMAIN"
  in a delivery, "... (while routing <ADDRESS>)" for -bt and -bv, and "... (while
  verifying <ADDRESS> from host (helo) [ip])" when an ACL verifies; the address is
  deferred and the message frozen with a bare "Frozen" line.
- A routing deferral with no retry rule is logged as a deferral ("==") and then fails
  on a line of its own ("** ADDRESS: retry timeout exceeded"), as transport deferrals
  are.
- In a bounce message (null sender), an address whose retry time ran out is dropped
  ("ADDRESS: error ignored") and the message completes; it is not frozen.
"""
from __future__ import annotations

import re

from tests.support.daemon import PymtaDaemon
from tests.support.ports import free_port

SELF_CONFIG = """
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = rcpt
begin acl
rcpt:
  deny !verify = recipient
  accept
begin routers
here:
  driver = manualroute
  domains = loop.example
  route_list = * 127.0.0.1
  transport = remote
dead:
  driver = manualroute
  domains = dead.example
  route_list = * 127.0.0.1
  self = send
  transport = remote
later:
  driver = redirect
  domains = later.example
  data = :defer: not now
begin transports
remote:
  driver = smtp
  port = DEAD_PORT
RETRY
"""

_STAMP = re.compile(r"^\S+ \S+ (?:\S+-\S+-\S+ )?")


def _daemon(tmp_path, retry: str = "") -> PymtaDaemon:
    text = SELF_CONFIG.replace("RETRY", retry)
    d = PymtaDaemon(text, tmp_path, macros={"DEAD_PORT": str(free_port())})
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    return d


def _lines(d: PymtaDaemon) -> list[str]:
    """The main log without time stamps and message ids; no arrival lines."""
    return [_STAMP.sub("", ln) for ln in d.log().splitlines() if " <= " not in ln]


def test_self_freeze_in_a_delivery_logs_the_domain_and_a_bare_frozen_line(tmp_path):
    d = _daemon(tmp_path, "begin retry\n*  *  F,1h,10m\n")
    d.submit_and_deliver("a@b.example", "u@loop.example", b"Subject: x\n\nhi\n")
    assert _lines(d) == [
        "remote host address is the local host: loop.example",
        "== u@loop.example R=here defer (-1): remote host address is the local host",
        "Frozen"]


def test_self_freeze_when_testing_and_verifying(tmp_path):
    d = _daemon(tmp_path)
    r = d.run("-bt", "u@loop.example")
    assert r.stdout == ("u@loop.example cannot be resolved at this time: "
                        "remote host address is the local host\n")
    assert r.stderr == ("LOG: MAIN\n  remote host address is the local host: loop.example "
                        "(while routing <u@loop.example>)\n")
    d.run("-bv", "u@loop.example")
    assert _lines(d) == ["remote host address is the local host: loop.example "
                         "(while routing <u@loop.example>)"]
    r = d.run("-bh", "1.2.3.4", input=b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n"
                                      b"RCPT TO:<u@loop.example>\r\nQUIT\r\n")
    log = [ln for ln in r.stderr.splitlines() if ln.startswith("LOG:")]
    assert log == [
        "LOG: remote host address is the local host: loop.example "
        "(while verifying <u@loop.example> from host (x) [1.2.3.4])",
        "LOG: H=(x) [1.2.3.4] F=<a@b.example> temporarily rejected RCPT <u@loop.example>: "
        "remote host address is the local host"]
    assert "451 Temporary local problem - please try later" in r.stdout


def test_routing_deferral_without_retry_rule_times_out_on_its_own_line(tmp_path):
    d = _daemon(tmp_path)
    d.submit_and_deliver("a@b.example", "u@later.example", b"Subject: x\n\nhi\n")
    lines = _lines(d)
    assert lines[:2] == [
        '== u@later.example R=later defer (-17): error in redirect data: '
        '":defer: not now" is not permitted',
        "** u@later.example: retry timeout exceeded"], lines


def test_bounce_whose_retry_time_ran_out_is_dropped_not_frozen(tmp_path):
    d = _daemon(tmp_path)
    d.submit_and_deliver("<>", "u@dead.example", b"Subject: x\n\nhi\n")
    lines = _lines(d)
    assert lines[1:] == [
        "== u@dead.example R=dead T=remote defer (111): Connection refused",
        "** u@dead.example: retry timeout exceeded",
        "u@dead.example: error ignored",
        "Completed"], lines
    assert d.run("-bpc").stdout.strip() == "0"
