"""log_selector items on by default that can be turned off (issue 12):
``-retry_defer`` drops the main-log line of a deferral for a retry time not reached,
``-rejected_header`` the envelope and header lines after a rejectlog entry."""
from __future__ import annotations

import pytest

from pymta.spool import lock
from tests.integration.test_log_delivery import CONFIG, SENDER
from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.ports import free_port
from tests.support.sink import SmtpSink

MESSAGE = b"Subject: t\r\nMessage-ID: <m1@origin.example>\r\n\r\nhello\r\n"


def _send(d: PymtaDaemon, rcpt: str) -> int:
    with d.client() as c:
        c.ehlo("client.example")
        assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
        return c.data(MESSAGE)[0]


@pytest.mark.parametrize("selector, logged", [("", True), ("-retry_defer", False),
                                              ("-all +retry_defer", True)])
def test_retry_defer(tmp_path, selector, logged):
    """A host that refused: the next queue run finds its retry time not reached
    ("defer (-54)"); that line is in the main log unless -retry_defer (as Exim 4.96
    writes it, checked with exim4), never in the message log after the first try."""
    (tmp_path / "aliases").write_text("")
    (tmp_path / "users").write_text("")
    d = PymtaDaemon(CONFIG.replace("SELECTOR", selector), tmp_path,
                    macros={"SINK_PORT": str(free_port())}).start()
    try:
        assert _send(d, "x@remote.example") == 250
        first = d.wait_for_log(r" == x@remote\.example R=remote T=out defer \(111\): ", 20)
        msgid = first[0].split()[2]
        d.run("-q")
        # as in Exim, the message log has no retry-time line after the first attempt
        msglog = (d.spool / "msglog" / msgid).read_text()
        assert "defer (111): Connection refused" in msglog, msglog
        assert "retry time not reached" not in msglog, msglog
        lines = [ln for ln in d.log().splitlines() if "defer (-54)" in ln]
        if logged:
            assert lines and lines[0].endswith(
                f"{msgid} == x@remote.example R=remote T=out defer (-54): retry time not "
                "reached for any host for 'remote.example'"), d.log()
        else:
            assert not lines, d.log()
            assert " defer (111): " in d.log()     # other deferrals stay
    finally:
        d.stop()



LOGWRITE_DATA = ("acl_smtp_data = data_acl\n",
                 "begin acl\n\ndata_acl:\n  warn logwrite = :reject: noted\n  accept\n")


@pytest.mark.parametrize("selector, with_header", [("", True), ("-rejected_header", False),
                                                   ("-all +rejected_header", True)])
def test_rejected_header(tmp_path, selector, with_header):
    """A rejectlog entry written while a message's header is known (here by
    ``logwrite = :reject:`` in the DATA ACL) has the header lines after it; with
    -rejected_header it is the line alone, as exim4 writes it."""
    (tmp_path / "aliases").write_text("")
    (tmp_path / "users").write_text("")
    config = CONFIG.replace("SELECTOR", selector) \
        .replace("acl_smtp_rcpt = accept_all\n",
                 "acl_smtp_rcpt = accept_all\n" + LOGWRITE_DATA[0]) \
        .replace("begin acl\n", LOGWRITE_DATA[1])
    d = PymtaDaemon(config, tmp_path, macros={"SINK_PORT": str(free_port())}).start()
    try:
        assert _send(d, "x@remote.example") == 250
        d.wait_for_log(r" noted$", 10, name="reject")
        lines = d.log("reject").splitlines()
        assert lines[0].endswith(" noted"), lines
        if with_header:
            assert any(line.endswith("Subject: t") for line in lines[1:]), lines
            assert any("Message-ID: <m1@origin.example>" in line for line in lines[1:])
        else:
            assert lines[1:] == [], lines
    finally:
        d.stop()


DNSLIST_CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_mail = acl_mail
log_selector = SELECTOR

begin acl

acl_mail:
  warn    dnslists = +defer_unknown : broken.test
  accept
"""


@pytest.mark.parametrize("selector, dnslist_line, warn_line", [
    ("", True, True), ("-dnslist_defer", False, True), ("-acl_warn_skipped", True, False),
    ("-all", False, False), ("-all +dnslist_defer +acl_warn_skipped", True, True)])
def test_dnslist_defer_and_acl_warn_skipped(tmp_path, selector, dnslist_line, warn_line):
    """A DNS list that fails (SERVFAIL from the loopback DNS server) in a warn
    statement: "DNS list lookup defer" is written under dnslist_defer, "ACL "warn"
    statement skipped" under acl_warn_skipped, both on by default."""
    with DnsServer({"broken.test": ""}, servfail=["1.0.0.127.broken.test"]) as dns:
        d = PymtaDaemon(DNSLIST_CONFIG.replace("SELECTOR", selector), tmp_path,
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns.port}"}).start()
        try:
            with d.client() as c:
                c.ehlo("client.example")
                assert c.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
                assert c.cmd("QUIT")[0] == 221
            assert ("1.0.0.127.broken.test", "A") in dns.queries
            # both lines are written before the reply to MAIL
            log = d.log()
            defer = ("DNS list lookup defer (probably timeout) for 1.0.0.127.broken.test: "
                     "returned DEFER")
            own = [ln for ln in log.splitlines()
                   if ln.endswith(defer) and "Warning: ACL" not in ln]
            assert bool(own) == dnslist_line, log
            warn = [ln for ln in log.splitlines()
                    if 'Warning: ACL "warn" statement skipped' in ln]
            assert bool(warn) == warn_line, log
            if warn_line:
                assert warn[0].endswith(f"condition test deferred: {defer}"), warn
        finally:
            d.stop()


@pytest.mark.parametrize("selector, logged", [("", True), ("-skip_delivery", False)])
def test_skip_delivery(tmp_path, selector, logged):
    """A queue run passes over a frozen message ("Message is frozen", as exim4 writes
    it between its queue-run lines) and one another process is delivering ("Spool
    file is locked ..."); -skip_delivery leaves both lines out."""
    (tmp_path / "aliases").write_text("")
    (tmp_path / "users").write_text("")
    config = CONFIG.replace("SELECTOR", selector).replace("log_selector", "queue_only\n"
                                                                         "log_selector")
    d = PymtaDaemon(config, tmp_path, macros={"SINK_PORT": str(free_port())}).start()
    try:
        assert _send(d, "x@remote.example") == 250
        msgid = d.wait_for_log(r" <= sender@origin\.example ")[0].split()[2]
        assert d.run("-Mf", msgid).returncode == 0
        d.run("-q")
        held = lock.lock_message(str(d.spool), msgid)
        assert held is not None
        try:
            d.run("-qff")
        finally:
            held.release()
        lines = [ln.split(" ", 2)[2] for ln in d.log().splitlines()]
        runs = [i for i, ln in enumerate(lines) if ln.startswith("Start queue run")]
        assert len(runs) == 2, d.log()
        frozen = f"{msgid} Message is frozen"
        locked = f"{msgid} Spool file is locked (another process is handling this message)"
        if logged:
            assert lines[runs[0] + 1] == frozen, d.log()
            assert lines[runs[1] + 1] == locked, d.log()
        else:
            assert frozen not in lines and locked not in lines, d.log()
            assert lines[runs[0] + 1].startswith("End queue run"), d.log()
        assert d.queue(), "the message is still there"
    finally:
        d.stop()


@pytest.mark.parametrize("selector, logged", [("", True), ("-delay_delivery", False)])
def test_delay_delivery_per_connection(tmp_path, selector, logged):
    """smtp_accept_queue_per_connection = 1: the second and third messages of a
    connection are only queued, each with exim4's line after its arrival line."""
    (tmp_path / "aliases").write_text("")
    (tmp_path / "users").write_text("")
    with SmtpSink() as sink:
        config = CONFIG.replace("SELECTOR", selector).replace(
            "log_selector", "smtp_accept_queue_per_connection = 1\nlog_selector")
        d = PymtaDaemon(config, tmp_path, macros={"SINK_PORT": str(sink.port)}).start()
        try:
            with d.client() as c:
                c.ehlo("client.example")
                for _ in range(3):
                    assert c.send_message(SENDER, ["x@remote.example"], MESSAGE)[0] == 250
            assert sink.wait_for(1, 15)
            d.wait_for_log(r" Completed$", 10)
            lines = [ln.split(" ", 2)[2] for ln in d.log().splitlines()]
            arrivals = [i for i, ln in enumerate(lines) if " <= " in ln]
            assert len(arrivals) == 3, lines
            why = "no immediate delivery: more than 1 messages received in one connection"
            delayed = [ln for ln in lines if ln.endswith(why)]
            if logged:
                assert len(delayed) == 2, lines
                for i in arrivals[1:]:
                    assert lines[i + 1] == lines[i].split()[0] + " " + why, lines
            else:
                assert not delayed, lines
            assert len(d.queue()) == 2                             # two messages wait
            assert len(sink.messages) == 1
        finally:
            d.stop()


def test_delay_delivery_too_many_connections(tmp_path):
    """smtp_accept_queue = 1 with a second connection open: the message is queued
    with "no immediate delivery: too many connections (2, max 1)" (exim4's words)."""
    (tmp_path / "aliases").write_text("")
    (tmp_path / "users").write_text("")
    config = CONFIG.replace("SELECTOR", "").replace(
        "log_selector", "smtp_accept_queue = 1\nsmtp_accept_max = 10\nlog_selector")
    d = PymtaDaemon(config, tmp_path, macros={"SINK_PORT": str(free_port())}).start()
    try:
        with d.client() as idle:
            idle.ehlo("idle.example")
            with d.client() as c:
                c.ehlo("client.example")
                assert c.send_message(SENDER, ["x@remote.example"], MESSAGE)[0] == 250
        line = d.wait_for_log(r" no immediate delivery: ", 10)[0]
        assert line.endswith(" no immediate delivery: too many connections (2, max 1)")
        assert d.queue()
        assert " == x@remote.example" not in d.log()          # not tried
    finally:
        d.stop()
