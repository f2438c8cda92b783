"""DANE and MTA-STS in the smtp transport, end to end.

pymta routes mail for secure.test by its MX (dnslookup) through a loopback DNS server
that sets AD for the signed zone, and delivers with the smtp transport to SMTP sinks
that offer STARTTLS with certificates made here.  The MTA-STS policy comes from a
loopback HTTPS server.  Checked: a DANE-EE match delivers with CV=dane, a certificate
that matches no TLSA record sends nothing and defers, hosts_require_dane without a
secure TLSA record defers, an MX that an enforced MTA-STS policy does not list is not
contacted, and a testing policy only reports.
"""
from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.conftest import wait_for
from tests.support import certs
from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.https import HttpsServer
from tests.support.sink import SmtpSink

CONFIG = """\
primary_hostname = client.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
dns_dnssec_ok = 1

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
  tls_verify_certificates = DIR/ca.pem
@TRANSPORT@

begin retry

*  *  F,1h,1s
"""

MESSAGE = b"From: sender@test.example\nSubject: secure\n\nover DANE\n"


def _spki_sha256(path: str) -> str:
    cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    return hashlib.sha256(cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


@pytest.fixture
def pki(tmp_path):
    ca = certs.make_ca(tmp_path)
    good = certs.make_cert(tmp_path, "mx.secure.test", ca, alt_names=["backup.secure.test"])
    (tmp_path / "impostor").mkdir()
    impostor = certs.make_cert(tmp_path / "impostor", "mx.secure.test")   # another CA
    web = certs.make_cert(tmp_path, "mta-sts.secure.test", ca)
    return {"ca": ca, "good": good, "impostor": impostor, "web": web}


def _zone(sink_port: int, tlsa: str, sts: bool = False) -> str:
    text = f"""
        @            IN MX 10 mx
        mx           IN A 127.0.0.1
        backup       IN A 127.0.0.1
        _{sink_port}._tcp.mx IN TLSA {tlsa}
    """
    if sts:
        text += """
        _mta-sts     IN TXT "v=STSv1; id=1"
        mta-sts      IN A 127.0.0.1
        """
    return text


def _deliver(tmp_path: Path, sink: SmtpSink, dns_port: int, transport: str = "",
             env: dict[str, str] | None = None) -> PymtaDaemon:
    ca = tmp_path / "ca.pem"
    assert ca.exists()
    conf = CONFIG.replace("@TRANSPORT@", transport).replace("DIR/ca.pem", str(ca))
    d = PymtaDaemon(conf, tmp_path / "pymta", macros={"SINK_PORT": str(sink.port)},
                    env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_port}", **(env or {})})
    d.submit_and_deliver("sender@test.example", "user@secure.test", MESSAGE)
    return d


def test_dane_ee_match_delivers_with_cv_dane(tmp_path, pki):
    with SmtpSink(tls_context=certs.server_context(pki["good"])) as sink:
        zone = _zone(sink.port, f"3 1 1 {_spki_sha256(pki['good'].cert)}")
        with DnsServer({"secure.test": zone}, secure=True) as dns_server:
            d = _deliver(tmp_path, sink, dns_server.port,
                         "  headers_add = X-Dane: $tls_out_dane $tls_out_tlsa_usage")
            assert wait_for(lambda: sink.messages, 20), d.log()
    assert sink.messages[0].tls
    assert b"X-Dane: yes 8" in sink.messages[0].data
    line = [x for x in d.log().splitlines() if " => user@secure.test" in x][0]
    assert " CV=dane " in line and " X=TLS1" in line, line


def test_dane_mismatch_sends_nothing_and_defers(tmp_path, pki):
    with SmtpSink(tls_context=certs.server_context(pki["impostor"])) as sink:
        zone = _zone(sink.port, f"3 1 1 {_spki_sha256(pki['good'].cert)}")
        with DnsServer({"secure.test": zone}, secure=True) as dns_server:
            d = _deliver(tmp_path, sink, dns_server.port)
            log = d.log()
    assert sink.messages == [] and not any(c.upper().startswith("MAIL")
                                           for c in sink.commands)
    assert "== user@secure.test" in log and "DANE verification failed" in log, log


def test_require_dane_without_secure_records_defers(tmp_path, pki):
    with SmtpSink(tls_context=certs.server_context(pki["good"])) as sink:
        zone = _zone(sink.port, f"3 1 1 {_spki_sha256(pki['good'].cert)}")
        with DnsServer({"secure.test": zone}) as dns_server:          # no AD bit
            d = _deliver(tmp_path, sink, dns_server.port, "  hosts_require_dane = *")
            log = d.log()
    assert sink.messages == []
    assert "DANE error: mx.secure.test lookup not DNSSEC" in log, log


def test_insecure_zone_falls_back_to_ordinary_tls(tmp_path, pki):
    with SmtpSink(tls_context=certs.server_context(pki["impostor"])) as sink:
        zone = _zone(sink.port, f"3 1 1 {_spki_sha256(pki['good'].cert)}")
        with DnsServer({"secure.test": zone}) as dns_server:          # no AD bit
            d = _deliver(tmp_path, sink, dns_server.port, "  tls_try_verify_hosts = *\n"
                         "  tls_verify_hosts =")
            assert wait_for(lambda: sink.messages, 20), d.log()
    line = [x for x in d.log().splitlines() if " => user@secure.test" in x][0]
    assert " CV=no " in line, line


def _sts(pki, mode: str, mx: str):
    https = HttpsServer(pki["web"])
    policy = f"version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: 3600\n".encode()
    https.routes["/.well-known/mta-sts.txt"] = (200, "text/plain", policy)
    return https


MTA_STS = "  hosts_try_dane =\n  mta_sts = true\n  mta_sts_ca_file = DIR/ca.pem"


def test_mta_sts_enforce_refuses_an_unlisted_mx(tmp_path, pki):
    with SmtpSink(tls_context=certs.server_context(pki["good"])) as sink:
        zone = _zone(sink.port, "3 1 1 " + "00" * 32, sts=True)
        with DnsServer({"secure.test": zone}) as dns_server, \
                _sts(pki, "enforce", "other.secure.test") as https:
            d = _deliver(tmp_path, sink, dns_server.port, MTA_STS,
                         env={"PYMTA_MTA_STS_PORT": str(https.port)})
            log = d.log()
    assert sink.messages == []
    assert ("MTA-STS: mx.secure.test is not an MX allowed by the enforced policy of "
            "secure.test") in log, log


def test_mta_sts_enforce_verifies_a_listed_mx(tmp_path, pki):
    with SmtpSink(tls_context=certs.server_context(pki["good"])) as sink:
        zone = _zone(sink.port, "3 1 1 " + "00" * 32, sts=True)
        with DnsServer({"secure.test": zone}) as dns_server, \
                _sts(pki, "enforce", "mx.secure.test") as https:
            d = _deliver(tmp_path, sink, dns_server.port, MTA_STS,
                         env={"PYMTA_MTA_STS_PORT": str(https.port)})
            assert wait_for(lambda: sink.messages, 20), d.log()
    line = [x for x in d.log().splitlines() if " => user@secure.test" in x][0]
    assert " CV=yes " in line, line


def test_mta_sts_testing_reports_and_delivers(tmp_path, pki):
    with SmtpSink(tls_context=certs.server_context(pki["impostor"])) as sink:
        zone = _zone(sink.port, "3 1 1 " + "00" * 32, sts=True)
        with DnsServer({"secure.test": zone}) as dns_server, \
                _sts(pki, "testing", "mx.secure.test") as https:
            d = _deliver(tmp_path, sink, dns_server.port, MTA_STS,
                         env={"PYMTA_MTA_STS_PORT": str(https.port)})
            assert wait_for(lambda: sink.messages, 20), d.log()
    log = d.log()
    assert "MTA-STS (testing): mx.secure.test for secure.test: " in log, log


def test_dane_require_tls_ciphers_applies_to_dane_connections(tmp_path, pki):
    server = certs.server_context(pki["good"])
    server.maximum_version = ssl.TLSVersion.TLSv1_2      # cipher lists govern TLS 1.2
    with SmtpSink(tls_context=server) as sink:
        zone = _zone(sink.port, f"3 1 1 {_spki_sha256(pki['good'].cert)}")
        with DnsServer({"secure.test": zone}, secure=True) as dns_server:
            d = _deliver(tmp_path, sink, dns_server.port,
                         "  dane_require_tls_ciphers = ECDHE-RSA-AES128-GCM-SHA256\n"
                         "  tls_require_ciphers = ECDHE-RSA-AES256-GCM-SHA384")
            assert wait_for(lambda: sink.messages, 20), d.log()
    line = [x for x in d.log().splitlines() if " => user@secure.test" in x][0]
    assert " X=TLS1.2:ECDHE-RSA-AES128-GCM-SHA256:128 CV=dane " in line, line
