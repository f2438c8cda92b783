"""pymta.transports.smtp_security: the smtp transport's DANE and MTA-STS options turned
into per-host requirements, with the loopback DNS server, a loopback HTTPS policy
server and the real mtasts hints database."""
from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pymta import dns as pdns
from pymta.address import Host
from pymta.expand import ExpandContext
from pymta.match import match_host
from pymta.tls.mtasts import PORT_ENV, PolicyCache
from pymta.transports.smtp_security import OutboundSecurity
from tests.support import certs
from tests.support.dns import DnsServer
from tests.support.https import HttpsServer
from tests.support.recording_log import RecordingLog

POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.secure.test\r\nmax_age: 600\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("sec")
    ca = certs.make_ca(d)
    mx = certs.make_cert(d, "mx.secure.test", ca)
    with open(mx.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"ca": ca, "web": certs.make_cert(d, "mta-sts.secure.test", ca),
            "tlsa": f"3 1 1 {hashlib.sha256(spki).hexdigest()}"}


@pytest.fixture()
def net(pki, monkeypatch):
    zones = {"secure.test": f"""
        @               IN MX 10 mx
        @               IN MX 20 other
        mx              IN A 127.0.0.1
        other           IN A 127.0.0.1
        _25._tcp.mx     IN TLSA {pki["tlsa"]}
        _mta-sts        IN TXT "v=STSv1; id=1"
        mta-sts         IN A 127.0.0.1
    """}
    with DnsServer(zones, secure=True) as dns_server, HttpsServer(pki["web"]) as web:
        web.routes["/.well-known/mta-sts.txt"] = (200, "text/plain", POLICY)
        monkeypatch.setenv(PORT_ENV, str(web.port))
        pdns.set_server("127.0.0.1", dns_server.port)
        try:
            yield dns_server, web
        finally:
            pdns.set_server(None)


def _security(pki, tmp_path, log, dnssec_ok=1, **options):
    opts = {"hosts_try_dane": "*", "hosts_require_dane": None, "mta_sts": False,
            "mta_sts_ca_file": pki["ca"].cert, "mta_sts_timeout": 5, **options}

    def host_in(option, host):
        return bool(opts[option]) and match_host(host.address, host.name, opts[option],
                                                  ExpandContext())

    return OutboundSecurity(opts.get, host_in, spool_dir=str(tmp_path), dnssec_ok=dnssec_ok,
                            log=log)


MX = Host("mx.secure.test", "127.0.0.1", None, 10)
OTHER = Host("other.secure.test", "127.0.0.1", None, 20)


def test_dane_from_mx(net, pki, tmp_path):
    sec = _security(pki, tmp_path, RecordingLog())
    req = sec.requirements(MX, "secure.test", 25)
    assert req.verify == "dane" and req.tls_required
    assert sec.requirements(OTHER, "secure.test", 25).verify == "none"


def test_dns_dnssec_ok_off_disables_dane(net, pki, tmp_path):
    sec = _security(pki, tmp_path, RecordingLog(), dnssec_ok=-1)
    assert sec.requirements(MX, "secure.test", 25).dane is None
    sec = _security(pki, tmp_path, RecordingLog(), dnssec_ok=-1, hosts_require_dane="*")
    req = sec.requirements(MX, "secure.test", 25)
    assert not req.use_host and req.message == "DANE error: mx.secure.test lookup not DNSSEC"


def test_mta_sts_enforce_skips_unlisted_mx_and_caches(net, pki, tmp_path):
    _, web = net
    log = RecordingLog()
    sec = _security(pki, tmp_path, log, mta_sts=True, hosts_try_dane=None)
    req = sec.requirements(OTHER, "secure.test", 25)
    assert not req.use_host and req.errno_kind == "mta-sts"
    req = sec.requirements(MX, "secure.test", 25)
    assert req.use_host and req.verify == "pkix"
    assert len(web.requests) == 1                      # once per delivery
    assert PolicyCache(str(tmp_path)).get("secure.test").policy.id == "1"
    # the next delivery uses the hints database, not the web server
    sec2 = _security(pki, tmp_path, log, mta_sts=True, hosts_try_dane=None)
    assert not sec2.requirements(OTHER, "secure.test", 25).use_host
    assert len(web.requests) == 1


def test_mta_sts_not_applied_to_configured_hosts(net, pki, tmp_path):
    sec = _security(pki, tmp_path, RecordingLog(), mta_sts=True, hosts_try_dane=None)
    smarthost = Host("other.secure.test", "127.0.0.1", None, -1)
    assert sec.requirements(smarthost, "secure.test", 25).use_host


def test_mta_sts_fetch_failure_is_logged(net, pki, tmp_path):
    _, web = net
    web.routes["/.well-known/mta-sts.txt"] = (200, "text/html", POLICY)
    log = RecordingLog()
    sec = _security(pki, tmp_path, log, mta_sts=True, hosts_try_dane=None)
    assert sec.requirements(OTHER, "secure.test", 25).use_host     # no policy
    assert ("main", "MTA-STS policy fetch for secure.test failed: mta-sts.secure.test: "
                    "content type 'text/html' is not text/plain") in log.lines


def test_mta_sts_off_fetches_nothing(net, pki, tmp_path):
    _, web = net
    sec = _security(pki, tmp_path, RecordingLog(), hosts_try_dane=None)
    assert sec.requirements(OTHER, "secure.test", 25).use_host
    assert web.requests == []
