"""dane:fail (issue 12): the smtp transport's event when a DANE-verified connection
cannot be had.  $event_data is an RFC 8460 result type, as in Exim 4.96:
"validation-failure" when the TLS session with a DANE host fails (here: the
certificate matches no TLSA record), "dane-required" when hosts_require_dane cannot be
met (the records are not DNSSEC-secure).  Real DNS (loopback server, AD bit for the
signed zone), a STARTTLS sink and ``pymta -odi`` delivering."""
from __future__ import annotations

import re
from pathlib import Path

from tests.integration.test_smtp_dane_mtasts import CONFIG, MESSAGE, _spki_sha256, _zone
from tests.support import certs
from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.sink import SmtpSink

EVENTS = """\
begin acl

ev:
  warn logwrite = EV $event_name [$event_data] $host $host_address
  accept

begin routers
"""


def _deliver(tmp_path: Path, sink: SmtpSink, dns_port: int, transport: str) -> str:
    conf = (CONFIG.replace("begin routers\n", EVENTS, 1)
            .replace("@TRANSPORT@", transport + "\n  event_action = ${acl{ev}}")
            .replace("DIR/ca.pem", str(tmp_path / "ca.pem")))
    d = PymtaDaemon(conf, tmp_path / "pymta", macros={"SINK_PORT": str(sink.port)},
                    env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_port}"})
    d.submit_and_deliver("sender@test.example", "user@secure.test", MESSAGE)
    return d.log()


def _events(log: str) -> list[str]:
    return re.findall(r" EV (\S+ \[[^\]]*\]) ", log)


def test_dane_mismatch_raises_validation_failure(tmp_path):
    ca = certs.make_ca(tmp_path)
    good = certs.make_cert(tmp_path, "mx.secure.test", ca)
    (tmp_path / "impostor").mkdir()
    impostor = certs.make_cert(tmp_path / "impostor", "mx.secure.test")
    with SmtpSink(tls_context=certs.server_context(impostor)) as sink:
        zone = _zone(sink.port, f"3 1 1 {_spki_sha256(good.cert)}")
        with DnsServer({"secure.test": zone}, secure=True) as dns_server:
            log = _deliver(tmp_path, sink, dns_server.port, "")
    assert sink.messages == []
    events = _events(log)
    assert "dane:fail [validation-failure]" in events, log
    # after the handshake failed, before the host's deferral is reported
    assert events.index("dane:fail [validation-failure]") < \
        [i for i, e in enumerate(events) if e.startswith("msg:host:defer")][0], events
    assert re.search(r" EV dane:fail \[validation-failure\] mx\.secure\.test 127\.0\.0\.1$",
                     log, re.M), log


def test_require_dane_without_dnssec_raises_dane_required(tmp_path):
    ca = certs.make_ca(tmp_path)
    good = certs.make_cert(tmp_path, "mx.secure.test", ca)
    with SmtpSink(tls_context=certs.server_context(good)) as sink:
        zone = _zone(sink.port, f"3 1 1 {_spki_sha256(good.cert)}")
        with DnsServer({"secure.test": zone}) as dns_server:          # no AD bit
            log = _deliver(tmp_path, sink, dns_server.port, "  hosts_require_dane = *")
    assert sink.connections == 0
    assert _events(log) == ["dane:fail [dane-required]", "msg:defer [DANE error: "
                            "mx.secure.test lookup not DNSSEC]"], log


def test_no_dane_fail_when_dane_verification_succeeds(tmp_path):
    ca = certs.make_ca(tmp_path)
    good = certs.make_cert(tmp_path, "mx.secure.test", ca)
    with SmtpSink(tls_context=certs.server_context(good)) as sink:
        zone = _zone(sink.port, f"3 1 1 {_spki_sha256(good.cert)}")
        with DnsServer({"secure.test": zone}, secure=True) as dns_server:
            log = _deliver(tmp_path, sink, dns_server.port, "")
    assert len(sink.messages) == 1
    names = [e.split()[0] for e in _events(log)]
    assert "dane:fail" not in names and "msg:delivery" in names, log
