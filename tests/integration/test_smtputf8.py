"""SMTPUTF8 (RFC 6531) as server and client (issue 10).

What Exim 4.96 does, checked with exim4 -bh/-bs and a relay to a server without the
extension: SMTPUTF8 is advertised to smtputf8_advertise_hosts (default everyone); a
MAIL with SMTPUTF8 makes UTF-8 domains acceptable, sets $message_smtputf8 to "yes",
prefixes the protocol with "utf8" (P=utf8esmtp) and writes -smtputf8 in the -H file;
SMTPUTF8=value, a repeated SMTPUTF8 or SMTPUTF8 after HELO is "malformed address";
without SMTPUTF8 a domain stops at its first non-ASCII character.  The smtp transport
passes SMTPUTF8 on to a server that offers it; to one that does not it sends the
envelope in A-label form (utf8_downconvert -1, the default), or with
utf8_downconvert = 0 fails the message: "utf8 support required but not offered for
forwarding".
"""
from __future__ import annotations

import re

from tests.integration.conftest import BASE_CONFIG, wait_for
from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink

MESSAGE = b"Subject: utf8 test\r\n\r\nhello\r\n"

# A second domain whose mail goes to a second pymta (NEXT_PORT), which offers SMTPUTF8.
NEXT_HOP = """\
next:
  driver = manualroute
  domains = next.example : bücher.example
  route_list = * 127.0.0.1::NEXT_PORT
  self = send
  transport = remote_smtp

"""


def _config(main: str = "", transport: str = "", rcpt_acl: str = "") -> str:
    config = BASE_CONFIG.replace("  accept  domains = remote.example\n",
                                 "  accept  domains = remote.example : next.example : "
                                 "bücher.example\n")
    config = config.replace("acl_check_rcpt:\n", "acl_check_rcpt:\n" + rcpt_acl)
    config = config.replace("begin routers\n\n", "begin routers\n\n" + NEXT_HOP)
    config = config.replace("  allow_localhost\n", "  allow_localhost\n" + transport)
    return main + config


def _next_hop(tmp_path) -> PymtaDaemon:
    """A second pymta (offering SMTPUTF8) that queues what it gets for the next hop
    domains, in their UTF-8 and A-label forms."""
    return PymtaDaemon("queue_only\n" + BASE_CONFIG.replace(
        "  accept  domains = remote.example\n",
        "  accept  domains = remote.example : next.example : bücher.example : "
        "xn--bcher-kva.example\n"),
        tmp_path / "next", macros={"SINK_PORT": "1"})


def _spool_header(d: PymtaDaemon, msgid: str) -> str:
    return next(d.spool.glob(f"input/**/{msgid}-H")).read_text("utf-8")


def test_ehlo_advertises_smtputf8_by_default_and_per_host_list(pymta_daemon, tmp_path):
    d = pymta_daemon()
    with d.client() as c:
        c.ehlo()
        assert "SMTPUTF8" in c.extensions()
    other = PymtaDaemon("smtputf8_advertise_hosts = 192.0.2.1\n" + BASE_CONFIG,
                        tmp_path / "other")
    with other:
        with other.client() as c:
            c.ehlo()
            assert "SMTPUTF8" not in c.extensions()
            # not advertised: refused in exim4 4.96's words
            code, text = c.cmd("MAIL FROM:<a@example.com> SMTPUTF8")
            assert (code, text) == (501, "SMTPUTF8 used when not advertised")


def test_smtputf8_parameter_syntax(pymta_daemon):
    d = pymta_daemon(config=_config())
    with d.client() as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<a@example.com> SMTPUTF8=x")
        assert (code, text) == (501, "<a@example.com> SMTPUTF8=x: malformed address: "
                                     "SMTPUTF8=x may not follow <a@example.com> ")
        code, _ = c.cmd("MAIL FROM:<a@example.com> SMTPUTF8 SMTPUTF8")
        assert code == 501
        # without SMTPUTF8 a UTF-8 domain is cut at its first non-ASCII character
        assert c.cmd("MAIL FROM:<a@example.com>")[0] == 250
        code, text = c.cmd("RCPT TO:<a@bücher.example>")
        assert (code, text) == (501, "<a@bücher.example>: malformed address: "
                                     "ücher.example> may not follow <a@b")
        assert c.cmd("RSET")[0] == 250
        # the same recipient in an SMTPUTF8 transaction is fine
        assert c.cmd("MAIL FROM:<jöe@example.com> SMTPUTF8")[0] == 250
        assert c.cmd("RCPT TO:<a@bücher.example>")[0] == 250
        assert c.cmd("RSET")[0] == 250
        # after HELO there are no ESMTP parameters at all
        c.cmd("HELO client.test")
        assert c.cmd("MAIL FROM:<a@example.com> SMTPUTF8")[0] == 501


def test_smtputf8_message_spool_protocol_and_variable(pymta_daemon, tmp_path):
    acl = "  warn    logwrite = utf8=$message_smtputf8 proto=$received_protocol\n"
    d = pymta_daemon(config=_config(rcpt_acl=acl, main="queue_only\n"))
    with d.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<jöe@example.com> SMTPUTF8")[0] == 250
        assert c.cmd("RCPT TO:<müller@remote.example>")[0] == 250
        code, text = c.data(MESSAGE)
        assert code == 250, text
        msgid = text.split("id=")[1]
        # the next message on the connection is not SMTPUTF8
        assert c.cmd("MAIL FROM:<plain@example.com>")[0] == 250
        assert c.cmd("RCPT TO:<x@remote.example>")[0] == 250
        assert c.data(MESSAGE)[0] == 250
    d.wait_for_log(r"utf8=yes proto=utf8esmtp", 5)
    d.wait_for_log(r"utf8=no proto=esmtp", 5)
    d.wait_for_log(rf"{msgid} <= jöe@example\.com H=\(client\.test\) \[127\.0\.0\.1\] "
                   r"P=utf8esmtp ", 5)
    d.wait_for_log(r"<= plain@example\.com H=\(client\.test\) \[127\.0\.0\.1\] P=esmtp ", 5)
    header = _spool_header(d, msgid)
    assert "\n-smtputf8\n" in header
    assert "müller@remote.example" in header


def test_relay_to_server_without_smtputf8_downconverts(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=_config())
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<jöe@example.com> SMTPUTF8")[0] == 250
            assert c.cmd("RCPT TO:<müller@remote.example>")[0] == 250
            assert c.cmd("RCPT TO:<plain@remote.example>")[0] == 250
            assert c.data(MESSAGE)[0] == 250
        assert sink.wait_for(1, 15), d.diagnostics()
        got = sink.messages[0]
        assert got.sender == "xn--je-fka@example.com"
        assert sorted(got.recipients) == ["plain@remote.example",
                                          "xn--mller-kva@remote.example"]
        d.wait_for_log(r"=> xn--mller-kva@remote\.example <müller@remote\.example> "
                       r"R=remote T=remote_smtp", 10)
        d.wait_for_log(r"-> plain@remote\.example R=remote T=remote_smtp", 10)


def test_utf8_downconvert_0_fails_toward_server_without_smtputf8(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=_config(transport="  utf8_downconvert = 0\n"))
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<jöe@test.example> SMTPUTF8")[0] == 250
            assert c.cmd("RCPT TO:<müller@remote.example>")[0] == 250
            assert c.data(MESSAGE)[0] == 250
        d.wait_for_log(r"\*\* müller@remote\.example R=remote T=remote_smtp.*"
                       r"utf8 support required but not offered for forwarding", 15)
        assert not sink.messages
        # the bounce goes back to the (local, unknown) sender, and it names the reason
        d.wait_for_log(r"<= <> R=\S+ U=\S+ P=local S=\d+", 10)


def test_relay_to_smtputf8_server_keeps_utf8(pymta_daemon, tmp_path):
    next_hop = _next_hop(tmp_path)
    with next_hop:
        d = pymta_daemon(config=_config(), macros={"NEXT_PORT": str(next_hop.port)})
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<jöe@example.com> SMTPUTF8")[0] == 250
            assert c.cmd("RCPT TO:<müller@bücher.example>")[0] == 250
            assert c.data(MESSAGE)[0] == 250
        d.wait_for_log(r"=> müller@bücher\.example R=next T=remote_smtp", 15)
        line = next_hop.wait_for_log(r"<= jöe@example\.com .*P=utf8esmtps? ", 15)[0]
        msgid = re.search(r"(\S+) <= ", line).group(1)
        assert "\n-smtputf8\n" in _spool_header(next_hop, msgid)


def test_control_utf8_downconvert_forces_a_labels(pymta_daemon, tmp_path):
    next_hop = _next_hop(tmp_path)
    with next_hop:
        config = _config(transport="  utf8_downconvert =\n",
                         rcpt_acl="  warn    control = utf8_downconvert\n",
                         main="queue_only\n")
        d = pymta_daemon(config=config, macros={"NEXT_PORT": str(next_hop.port)})
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<jöe@example.com> SMTPUTF8")[0] == 250
            assert c.cmd("RCPT TO:<müller@bücher.example>")[0] == 250
            code, text = c.data(MESSAGE)
            assert code == 250
        msgid = text.split("id=")[1]
        assert "\n-utf8_downcvt\n" in _spool_header(d, msgid)
        d.run("-M", msgid)
        d.wait_for_log(r"=> xn--mller-kva@xn--bcher-kva\.example <müller@bücher\.example> "
                       r"R=next T=remote_smtp", 15)
        next_hop.wait_for_log(r"<= xn--je-fka@example\.com .*P=esmtps? ", 15)
        assert wait_for(lambda: not d.queue(), 10)
