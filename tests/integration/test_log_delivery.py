"""log_selector's delivery items, compared with Exim 4.96 field by field (issue 12).

The same configuration and message went through a real exim4 daemon
(tests/data/logdlv/record_exim.py); its =>, -> and Completed lines, with run-dependent
values masked (tests/support/logshape.py), are in tests/data/logdlv/<name>.txt.  Here a
pymta daemon gets the same message with the same log_selector, and its lines must have
the same shape: the same fields, written the same way, in the same order.  The message
goes to a mailbox (through two levels of aliases, for all_parents) and to an SMTP sink
(one alias and one direct recipient in one transaction).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.test_callout_hold import CONFIG as HOLD_CONFIG
from tests.integration.test_cutthrough import _config as cutthrough_config
from tests.support.daemon import PymtaDaemon
from tests.support.logshape import delivery_shapes, shape
from tests.support.sink import SmtpSink

DATA = Path(__file__).resolve().parents[1] / "data" / "logdlv"

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist local_domains = test.example
acl_smtp_rcpt = accept_all
log_selector = SELECTOR

begin acl

accept_all:
  accept

begin routers

remote:
  driver = manualroute
  domains = ! +local_domains
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = out

aliases:
  driver = redirect
  data = ${lookup{$local_part}lsearch{DIR/aliases}}

local:
  driver = accept
  local_parts = lsearch;DIR/users
  transport = box

begin transports

out:
  driver = smtp
  allow_localhost
  hosts_avoid_tls = *

box:
  driver = appendfile
  file = DIR/mail/$local_part_data

begin retry

*  *  F,1h,10m
"""

ALIASES = "alpha: beta\nbeta: gamma, far@remote.example\ngamma: delta\n"
# the mailbox's name from $local_part_data: a redirected local part is tainted in pymta
USERS = "delta: delta\n"
SENDER = "sender@origin.example"
RECIPIENTS = ["alpha@test.example", "x@remote.example"]
MESSAGE = (b"Subject: t\r\nMessage-ID: <m1@origin.example>\r\n\r\nhello\r\n")

# name -> log_selector; each has tests/data/logdlv/<name>.txt recorded from Exim 4.96.
SELECTORS = {
    "defaults": "",
    "minus_all": "-all",
    "delivery": ("+all_parents +sender_on_delivery +return_path_on_delivery "
                 "+delivery_size +incoming_interface +outgoing_port +queue_time "
                 "+deliver_time +queue_time_overall +millisec +pid"),
    "switched_off": ("+incoming_interface -outgoing_interface -smtp_confirmation "
                     "-msg_id +queue_time +queue_time_exclusive +deliver_time "
                     "+outgoing_port"),
    "interface_no_port": "+incoming_interface",
    "all": "+all",
}


# name -> log_selector for a delivery that fails: the sink refuses every RCPT, and
# nobody@test.example cannot be routed; recorded as tests/data/logdlv/<name>.txt.
FAILURES = {
    "failures": ("+sender_on_delivery +return_path_on_delivery +outgoing_port "
                 "+incoming_interface +all_parents +delivery_size +queue_time "
                 "+deliver_time"),
    "failures_millisec": "+deliver_time +millisec +sender_on_delivery",
}
FAILING_RECIPIENTS = ["x@remote.example", "nobody@test.example"]


def _expected(name: str) -> list[str]:
    lines = (DATA / f"{name}.txt").read_text().splitlines()
    if name == "all":
        # "+all" in Exim also turns on pipelining ("L" after the interface), an item
        # pymta does not implement (it stays refused): that field is left out here.
        lines = [line.replace(" L C=", " C=") for line in lines]
    return lines


def _deliver(tmp_path: Path, selector: str, failing: bool = False
             ) -> tuple[PymtaDaemon, SmtpSink]:
    sink = (SmtpSink(mode="rcpt", code=550, text="no such user") if failing
            else SmtpSink()).start()
    recipients = FAILING_RECIPIENTS if failing else RECIPIENTS
    (tmp_path / "mail").mkdir(parents=True)
    (tmp_path / "mail").chmod(0o777)
    (tmp_path / "aliases").write_text(ALIASES)
    (tmp_path / "users").write_text(USERS)
    d = PymtaDaemon(CONFIG.replace("SELECTOR", selector), tmp_path,
                    macros={"SINK_PORT": str(sink.port)})
    try:
        d.start()
        with d.client() as c:
            c.ehlo("client.example")
            assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
            for r in recipients:
                assert c.cmd(f"RCPT TO:<{r}>")[0] == 250
            assert c.data(MESSAGE)[0] == 250
        d.wait_for_log(r" Completed", 20)
        if failing:       # the bounce fails too and is frozen
            d.wait_for_log(r" Frozen \(delivery error message\)", 20)
    except BaseException:
        sink.stop()
        d.stop()
        raise
    return d, sink


@pytest.mark.parametrize("name", list(SELECTORS))
def test_delivery_lines_have_exims_shape(tmp_path, name):
    d, sink = _deliver(tmp_path, SELECTORS[name])
    try:
        assert delivery_shapes(d.log()) == _expected(name), d.log()
    finally:
        d.stop()
        sink.stop()


@pytest.mark.parametrize("name", list(FAILURES))
def test_failure_lines_have_exims_shape(tmp_path, name):
    """The ``**`` lines: F=, P= (only when a transport ran), the host with its port and
    I=, the message, then DT= (also after a routing failure)."""
    d, sink = _deliver(tmp_path, FAILURES[name], failing=True)
    try:
        assert delivery_shapes(d.log(), first_only=True) == _expected(name), d.log()
    finally:
        d.stop()
        sink.stop()


def test_sizes_times_and_interface_values(tmp_path):
    """S= is what the transport wrote (the whole mailbox here; the sink's data with its
    CRLFs and the final dot), I= names the local end of the connection the sink saw,
    QT= covers DT=, and the => line's port is the sink's."""
    d, sink = _deliver(tmp_path, SELECTORS["delivery"])
    try:
        log = d.log()
        local = re.search(r"=> delta .* S=(\d+) QT=(\d+\.\d{3})s DT=(\d+\.\d{3})s$", log,
                          re.M)
        assert local, log
        assert int(local.group(1)) == (tmp_path / "mail" / "delta").stat().st_size
        assert float(local.group(2)) >= float(local.group(3))
        remote = re.search(r"=> far@remote\.example .* S=(\d+) H=127\.0\.0\.1 "
                           r"\[127\.0\.0\.1\]:(\d+) I=\[127\.0\.0\.1\]:(\d+) ", log)
        assert remote, log
        data = sink.messages[0].data
        assert int(remote.group(1)) == len(data) + len(b".\r\n")
        assert int(remote.group(2)) == sink.port
        assert int(remote.group(3)) == sink.messages[0].peer[1]
        assert re.search(r" Completed QT=\d+\.\d{3}s$", log, re.M), log
    finally:
        d.stop()
        sink.stop()


def test_minus_msg_id_drops_the_arrival_field(tmp_path):
    d, sink = _deliver(tmp_path, SELECTORS["switched_off"])
    try:
        arrival = d.wait_for_log(r" <= sender@origin\.example ", 5)
        assert " id=" not in arrival[0], arrival
    finally:
        d.stop()
        sink.stop()
    d2, sink2 = _deliver(tmp_path / "again", "")
    try:
        assert d2.wait_for_log(r" <= sender@origin\.example .* id=m1@origin\.example$", 5)
    finally:
        d2.stop()
        sink2.stop()


def test_callout_hold_delivery_line(tmp_path):
    """A message delivered down the connection its callout held
    (``verify = recipient/callout=hold``) gets the same fields as any other =>
    line."""
    selector = ("+delivery_size +sender_on_delivery +return_path_on_delivery "
                "+outgoing_port +incoming_interface +queue_time +deliver_time "
                "+queue_time_overall +millisec")
    with SmtpSink() as sink:
        config = HOLD_CONFIG.replace("QUEUE_ONLY\n", f"log_selector = {selector}\n")
        d = PymtaDaemon(config, tmp_path, macros={
            "SINK_PORT": str(sink.port), "HOLD": "use_sender,hold,no_cache"})
        try:
            d.start()
            with d.client() as c:
                c.ehlo("client.example")
                assert c.cmd("MAIL FROM:<s@sender.example>")[0] == 250
                assert c.cmd("RCPT TO:<a@remote.example>")[0] == 250
                assert c.data(MESSAGE)[0] == 250
            d.wait_for_log(r" Completed", 20)
            assert sink.connections == 1          # the held connection delivered it
            shapes = delivery_shapes(d.log())
            assert shapes == [
                "TIME.mmm MSGID => a@remote.example F=<s@sender.example> "
                "P=<s@sender.example> R=r1 T=t S=N H=127.0.0.1 [127.0.0.1]:PORT "
                'I=[127.0.0.1]:PORT C="250 OK id=sink" QT=N.NNNs DT=N.NNNs',
                "TIME.mmm MSGID Completed QT=N.NNNs"], d.log()
            size = re.search(r" => .* S=(\d+) ", d.log())
            assert size and int(size.group(1)) == len(sink.messages[0].data) + 3
        finally:
            d.stop()


def test_cutthrough_delivery_line(pymta_daemon, sink_port):
    """A cutthrough delivery's ``>>`` line has the delivery fields of a => line but
    P= (exim4 4.96's >> line with these items, the same configuration and sink:
    ``>> x@remote.example F=<...> R=remote T=out S=N H=127.0.0.1 [127.0.0.1]:PORT
    I=[127.0.0.1]:PORT C="250 OK id=sink" QT=N.NNNs DT=N.NNNs``)."""
    selector = ("+delivery_size +sender_on_delivery +return_path_on_delivery "
                "+outgoing_port +incoming_interface +queue_time +deliver_time +millisec")
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=f"log_selector = {selector}\n" + cutthrough_config())
        with d.client() as c:
            c.ehlo("client.example")
            assert c.cmd("MAIL FROM:<a@outside.example>")[0] == 250
            assert c.cmd("RCPT TO:<good@remote.example>")[0] == 250
            assert c.data(MESSAGE)[0] == 250
        assert len(sink.messages) == 1
        line = d.wait_for_log(r" >> ", 10)[0]
        assert shape(line) == (
            "TIME.mmm MSGID >> good@remote.example F=<a@outside.example> "
            "R=remote T=remote_smtp S=N H=127.0.0.1 "
            '[127.0.0.1]:PORT I=[127.0.0.1]:PORT C="250 OK id=sink" QT=N.NNNs DT=N.NNNs')
        size = re.search(r" S=(\d+) ", line)
        assert size and int(size.group(1)) == len(sink.messages[0].data) + 3
