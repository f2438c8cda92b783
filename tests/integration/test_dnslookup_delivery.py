"""End-to-end: a message for a remote domain is routed by the dnslookup router (MX lookup
against a loopback DNS server given to the daemon in PYMTA_DNS_SERVER) and delivered by
the smtp transport to a test SMTP sink.

The MX host resolves to 127.0.0.1, which is this host, so the router needs ``self =
send`` (Exim's default, ``freeze``, would freeze the message) and the transport needs
``allow_localhost``; the sink listens on a free port given to the transport as ``port``.
"""
from __future__ import annotations

from tests.integration.conftest import wait_for
from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.sink import SmtpSink

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  accept  domains = remote.test : nullmx.remote.test
  deny    message = relay not permitted

begin routers

dnslookup:
  driver = dnslookup
  domains = ! test.example
  transport = remote_smtp
  self = send
  no_more

begin transports

remote_smtp:
  driver = smtp
  port = SINK_PORT
  allow_localhost

begin retry

*  *  F,1h,1s
"""

ZONE = """
    @       IN MX 10 mx
    @       IN MX 20 backup
    mx      IN A 127.0.0.1
    backup  IN A 127.0.0.1
    nullmx  IN MX 0 .
"""

MESSAGE = (b"From: sender@outside.example\r\nTo: user@remote.test\r\n"
           b"Subject: via MX\r\n\r\nHello over the MX.\r\n")


def _send(d: PymtaDaemon, rcpt: str) -> None:
    c = d.client()
    c.banner()
    c.ehlo("client.test")
    assert c.cmd("MAIL FROM:<sender@outside.example>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send_raw(MESSAGE.replace(b"user@remote.test", rcpt.encode()) + b".\r\n")
    code, text = c.read_reply()
    assert code == 250, text
    c.cmd("QUIT")


def test_message_routed_by_mx_reaches_the_sink(tmp_path):
    with DnsServer({"remote.test": ZONE}) as dns_server, SmtpSink() as sink:
        d = PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": str(sink.port)},
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})
        with d:
            _send(d, "user@remote.test")
            assert wait_for(lambda: sink.messages, 20), d.diagnostics()
            [msg] = sink.messages
            assert msg.recipients == ["user@remote.test"]
            assert msg.sender == "sender@outside.example"
            assert b"Hello over the MX." in msg.data
            lines = d.wait_for_log(r"=> user@remote\.test R=dnslookup T=remote_smtp "
                                   r"H=mx\.remote\.test \[127\.0\.0\.1\]")
            assert lines
            assert wait_for(lambda: not d.queue(), 10), d.diagnostics()
            assert ("remote.test", "MX") in dns_server.queries

            # a null MX: the router declines, the address bounces
            _send(d, "user@nullmx.remote.test")
            d.wait_for_log(r"\*\* user@nullmx\.remote\.test")
            assert len(sink.messages) == 1
