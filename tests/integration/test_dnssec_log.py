"""End-to-end DNSSEC: the daemon, with its DNS from the loopback server (which sets AD
for the zones it calls secure, as a validating resolver would), looks the client's name
up (host_lookup = *) and routes the message by MX with the dnslookup router.

With ``log_selector = +dnssec`` the ``<=`` line carries ``DS`` after the sender when the
client's PTR and address answers were authenticated, and the ``=>`` line carries ``DS``
between the host's name and address when its MX and address answers were; the expected
lines are Exim 4.96's, recorded by tests/data/dnssec/record_exim.py (exim4 received from
192.0.2.1 with -bs -oMa and ran as root; the test client is 127.0.0.1 over TCP, so the
address, U= and S= parts differ and are compared apart from the rest).
"""
from __future__ import annotations

import re
from pathlib import Path

from tests.integration.conftest import wait_for
from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.sink import SmtpSink

DATA = Path(__file__).resolve().parent.parent / "data" / "dnssec"

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
log_selector = +dnssec
host_lookup = *
acl_smtp_rcpt = acl_rcpt
MAIN

begin acl

acl_rcpt:
  accept  logwrite = sender_host_dnssec=$sender_host_dnssec

begin routers

dnslookup:
  driver = dnslookup
  domains = ! test.example
  transport = remote_smtp
  self = send
ROUTER
  no_more

begin transports

remote_smtp:
  driver = smtp
  port = SINK_PORT
  allow_localhost
TRANSPORT

begin retry

*  *  F,1h,1s
"""

ZONES = {
    "secure.test": """
        @       IN MX 10 mx
        mx      IN A 127.0.0.1
        client  IN A 127.0.0.1
    """,
    "0.0.127.in-addr.arpa": """
        1       IN PTR client.secure.test.
    """,
}


def _expected(case: str) -> dict[str, str]:
    """Exim's lines of one recorded case, by their flag ("<=", "=>", "==", "acl")."""
    lines = {}
    for line in (DATA / f"{case}.txt").read_text().splitlines():
        flag = line.split(" ", 1)[0]
        lines["acl" if flag.startswith("sender_host_dnssec") else flag] = line
    return lines


def _run(tmp_path, secure: bool, main: str = "dns_dnssec_ok = 1", router: str = "",
         transport: str | None = None):
    """Send one message to u@secure.test; the daemon's main log lines after it settled.
    With ``transport`` (its options) the router is an accept router and the transport
    names the host itself."""
    with DnsServer(ZONES, secure=secure) as dns_server, SmtpSink() as sink:
        config = CONFIG.replace("MAIN", main).replace("ROUTER", router)
        if transport is not None:
            config = config.replace("  driver = dnslookup\n", "  driver = accept\n") \
                .replace("  self = send\n", "").replace("TRANSPORT", transport)
        config = config.replace("TRANSPORT", "")
        d = PymtaDaemon(config, tmp_path, macros={"SINK_PORT": str(sink.port)},
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})
        with d:
            c = d.client()
            c.banner()
            c.ehlo("x")
            assert c.cmd("MAIL FROM:<a@b.c>")[0] == 250
            assert c.cmd("RCPT TO:<u@secure.test>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            c.send_raw(b"Subject: t\r\n\r\nbody\r\n.\r\n")
            assert c.read_reply()[0] == 250
            c.cmd("QUIT")
            d.wait_for_log(r" (=>|==) u@secure\.test ", timeout=20)
            return d.wait_for_log(r".", count=1), sink, d


def _line(lines: list[str], flag: str) -> str:
    """The part of a main-log line from its flag on (time stamp and id removed)."""
    for line in lines:
        m = re.search(rf"(?:^|\s)({re.escape(flag)}.*)$", line)
        if m and (flag != "sender_host_dnssec" or "sender_host_dnssec=" in line):
            return m.group(1)
    raise AssertionError(f"no {flag} line in {lines}")


def _compare_arrival(got: str, exim: str) -> None:
    # exim4: "<= a@b.c [DS ]H=client.secure.test (x) [192.0.2.1] U=root P=esmtp S=222"
    exim_head = exim.split(" [192.0.2.1]")[0]
    got_head = got.split(" [127.0.0.1]")[0]
    assert got_head == exim_head
    assert " P=esmtp " in got


def _compare_delivery(got: str, exim: str) -> None:
    # everything up to the server's confirmation (the sink's differs)
    assert got.split(" C=")[0] == exim.split(" C=")[0]


def test_secure_lookups_log_ds_on_arrival_and_delivery(tmp_path):
    lines, sink, d = _run(tmp_path, secure=True)
    expected = _expected("receive_secure")
    assert _line(lines, "sender_host_dnssec") == expected["acl"] == "sender_host_dnssec=yes"
    _compare_arrival(_line(lines, "<="), expected["<="])
    _compare_delivery(_line(lines, "=>"), _expected("deliver_secure")["=>"])
    assert "DS" in _line(lines, "=>").split()
    assert len(sink.messages) == 1


def test_insecure_lookups_log_no_ds(tmp_path):
    lines, sink, d = _run(tmp_path, secure=False)
    assert _line(lines, "sender_host_dnssec") == _expected("receive_insecure")["acl"]
    _compare_arrival(_line(lines, "<="), _expected("receive_insecure")["<="])
    _compare_delivery(_line(lines, "=>"), _expected("deliver_insecure")["=>"])
    assert "DS" not in " ".join(lines).split()


def test_empty_dnssec_request_domains_logs_no_ds_on_delivery(tmp_path):
    lines, sink, d = _run(tmp_path, secure=True, router="  dnssec_request_domains =")
    _compare_delivery(_line(lines, "=>"),
                      _expected("deliver_secure_request_none")["=>"])


def test_require_defers_an_insecure_mx(tmp_path):
    lines, sink, d = _run(tmp_path, secure=False, router="  dnssec_require_domains = *")
    assert _line(lines, "==") == _expected("require_insecure")["=="]
    assert not sink.messages
    # and with secure answers the same configuration delivers, with DS
    lines, sink, d = _run(tmp_path / "secure", secure=True,
                          router="  dnssec_require_domains = *")
    _compare_delivery(_line(lines, "=>"), _expected("require_secure")["=>"])
    assert wait_for(lambda: len(sink.messages) == 1, 5)


# ------------------------------------------------------------------ the transport's hosts
def test_transport_hosts_found_by_secure_lookup_log_ds(tmp_path):
    lines, sink, d = _run(tmp_path, secure=True, transport="  hosts = mx.secure.test")
    _compare_delivery(_line(lines, "=>"), _expected("transport_hosts_secure")["=>"])
    lines, sink, d = _run(tmp_path / "plain", secure=False,
                          transport="  hosts = mx.secure.test")
    _compare_delivery(_line(lines, "=>"), _expected("transport_hosts_insecure")["=>"])


def test_transport_empty_request_list_logs_no_ds(tmp_path):
    lines, sink, d = _run(tmp_path, secure=True, transport="  hosts = mx.secure.test\n"
                          "  dnssec_request_domains =")
    _compare_delivery(_line(lines, "=>"),
                      _expected("transport_hosts_secure_request_none")["=>"])


def test_transport_require_defers_an_insecure_address_lookup(tmp_path):
    require = "  hosts = mx.secure.test\n  dnssec_require_domains = *"
    lines, sink, d = _run(tmp_path, secure=False, transport=require)
    assert _line(lines, "==") == _expected("transport_hosts_require_insecure")["=="]
    assert not sink.messages
    lines, sink, d = _run(tmp_path / "secure", secure=True, transport=require)
    _compare_delivery(_line(lines, "=>"), _expected("transport_hosts_require_secure")["=>"])
