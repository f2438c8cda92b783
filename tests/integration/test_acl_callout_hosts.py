"""Callouts in the running daemon: hosts found through MX records on the loopback DNS
server, trying the next host, timeouts (callout=, connect=, maxwait=) and the expiry of
the callout cache (the LMDB ``callout`` hints database)."""
from __future__ import annotations

import socket
import threading
import time

from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.ports import free_port
from tests.support.sink import SmtpSink

BASE = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = r
{main}
begin acl
r:
  require verify = recipient/callout={callout}
  accept
begin routers
{router}
begin transports
t:
  driver = smtp
  port = SINK_PORT
  allow_localhost
"""

DNSLOOKUP = """\
dns:
  driver = dnslookup
  domains = remote.test
  self = send
  transport = t
"""

MANUAL = """\
remote:
  driver = manualroute
  domains = remote.test
  route_list = * {hosts}
  self = send
  transport = t
"""

# The router sets no hosts: the smtp transport's own "hosts" are called.
ACCEPT = """\
remote:
  driver = accept
  domains = remote.test
  transport = t
"""


class SilentHost:
    """A listener that accepts connections and never says anything."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.accepted:
            c.close()


def _rcpt(d: PymtaDaemon, *rcpts: str) -> list[tuple[int, str]]:
    c = d.client()
    c.banner()
    c.ehlo("client.test")
    assert c.cmd("MAIL FROM:<a@b.example>")[0] == 250
    out = [c.cmd(f"RCPT TO:<{r}>") for r in rcpts]
    c.quit()
    return out


def test_callout_goes_to_the_mx_host_from_dns(tmp_path):
    zone = """
        @    IN MX 10 mx1
        mx1  IN A  127.0.0.1
    """
    with DnsServer({"remote.test": zone}) as dns_server, \
            SmtpSink(rcpt_replies={"bad@remote.test": (550, "unknown user")}) as sink:
        d = PymtaDaemon(BASE.format(main="", callout="5s", router=DNSLOOKUP), tmp_path,
                        macros={"SINK_PORT": str(sink.port)},
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})
        with d:
            assert _rcpt(d, "good@remote.test", "bad@remote.test") == [
                (250, "Accepted"), (550, "Callout verification failed:\n550 unknown user")]
            d.wait_for_log(r"rejected RCPT <bad@remote\.test>: mx1\.remote\.test "
                           r"\[127\.0\.0\.1\] : SMTP error from remote mail server after "
                           r"RCPT TO:<bad@remote\.test>: 550 unknown user", name="reject")
        assert ("remote.test", "MX") in dns_server.queries
        assert sink.commands == ["EHLO mx.test.example", "MAIL FROM:<>",
                                 "RCPT TO:<good@remote.test>", "QUIT",
                                 "EHLO mx.test.example", "MAIL FROM:<>",
                                 "RCPT TO:<bad@remote.test>", "QUIT"]
        assert (d.spool / "db" / "callout").exists()


def test_next_host_is_tried_after_a_refused_connection(tmp_path):
    closed = free_port()
    with SmtpSink() as sink:
        cfg = BASE.format(main="", callout="5s", router=ACCEPT).replace(
            "port = SINK_PORT", f"hosts = 127.0.0.1::{closed} : 127.0.0.1::{sink.port}")
        with PymtaDaemon(cfg, tmp_path) as d:
            assert _rcpt(d, "good@remote.test") == [(250, "Accepted")]
        assert sink.commands[-2:] == ["RCPT TO:<good@remote.test>", "QUIT"]


def test_timeouts_and_maxwait(tmp_path):
    first, second = SilentHost(), SilentHost()
    try:
        cfg = BASE.format(main="", callout="1s,maxwait=1s", router=ACCEPT).replace(
            "port = SINK_PORT", f"hosts = 127.0.0.1::{first.port} : 127.0.0.1::{second.port}")
        with PymtaDaemon(cfg, tmp_path) as d:
            start = time.monotonic()
            assert _rcpt(d, "x@remote.test") == [
                (451, "Could not complete recipient verify callout")]
            elapsed = time.monotonic() - start
            # The same line as Exim 4.96 -bhc against a silent host.
            d.wait_for_log(r"temporarily rejected RCPT <x@remote\.test>: Could not complete "
                           r"recipient verify callout: 127\.0\.0\.1 \[127\.0\.0\.1\] : SMTP "
                           r"timeout after initial connection", name="reject")
        # The first host used up maxwait, so the second was never called.
        assert len(first.accepted) == 1 and not second.accepted
        assert 0.9 < elapsed < 8
    finally:
        first.close()
        second.close()


def test_cache_expiry_options(tmp_path):
    main = ("callout_negative_expire = 1s\ncallout_positive_expire = 1h\n"
            "callout_domain_negative_expire = 1h\ncallout_domain_positive_expire = 1h")
    with SmtpSink(rcpt_replies={"bad@remote.test": (550, "unknown user")}) as sink:
        router = MANUAL.format(hosts=f"127.0.0.1::{sink.port}")
        with PymtaDaemon(BASE.format(main=main, callout="5s", router=router), tmp_path,
                         macros={"SINK_PORT": "25"}) as d:
            assert [r[0] for r in _rcpt(d, "good@remote.test", "bad@remote.test",
                                        "good@remote.test", "bad@remote.test")] \
                == [250, 550, 250, 550]
            assert sink.connections == 2          # the repeats came from the cache
            time.sleep(1.5)
            # The negative record has expired, the positive one has not.
            assert _rcpt(d, "bad@remote.test", "good@remote.test") == [
                (550, "Callout verification failed:\n550 unknown user"), (250, "Accepted")]
            assert sink.connections == 3
            # Deleting the hints database is always safe: it only forgets.
            (d.spool / "db" / "callout").unlink()
            assert [r[0] for r in _rcpt(d, "good@remote.test")] == [250]
            assert sink.connections == 4


def test_callout_address_variable(tmp_path):
    # Exim 4.96 shows "[127.0.0.1]:<port>", also after an answer from the cache.
    with SmtpSink() as sink:
        cfg = BASE.format(main="", callout="5s", router=MANUAL.format(
            hosts=f"127.0.0.1::{sink.port}")).replace(
            "  accept\nbegin routers", "  warn logwrite = ca=[$callout_address]\n"
                                       "  accept\nbegin routers")
        with PymtaDaemon(cfg, tmp_path, macros={"SINK_PORT": "25"}) as d:
            assert _rcpt(d, "good@remote.test", "good@remote.test") == [(250, "Accepted")] * 2
            d.wait_for_log(rf"ca=\[\[127\.0\.0\.1\]:{sink.port}\]$", count=2)
        assert sink.connections == 1


def test_success_on_redirect(tmp_path):
    # An alias redirected to one address: by default that address is verified (with a
    # callout); success_on_redirect stops at the redirection.
    alias = "alias:\n  driver = redirect\n  local_parts = alias\n  data = bad@remote.test\n"
    with SmtpSink(rcpt_replies={"bad@remote.test": (550, "unknown user")}) as sink:
        router = alias + MANUAL.format(hosts=f"127.0.0.1::{sink.port}")
        for opts, reply in (("callout", (550, "Callout verification failed:\n"
                                                "550 unknown user")),
                            ("success_on_redirect/callout", (250, "Accepted"))):
            cfg = BASE.format(main="", callout="5s", router=router).replace(
                "verify = recipient/callout=5s", f"verify = recipient/{opts}")
            with PymtaDaemon(cfg, tmp_path / opts.replace("/", "_"),
                             macros={"SINK_PORT": "25"}) as d:
                assert _rcpt(d, "alias@remote.test") == [reply]
        assert sink.connections == 1
