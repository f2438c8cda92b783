"""pymta.tls.outbound: DANE and MTA-STS combined into one host's requirements, with the
loopback DNS server (AD flag for the secure zone) and real TLS handshakes."""
from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pymta.tls.client import ClientTLS, ClientTLSOptions
from pymta.tls.dane import host_is_secure
from pymta.tls.expander import no_expansion
from pymta.tls.mtasts import parse_policy
from pymta.tls.outbound import host_requirements
from pymta.tls.server import ServerTLS, ServerTLSOptions
from tests.support import certs
from tests.support.dns import DnsServer
from tests.support.tlspair import handshake


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("out")
    ca = certs.make_ca(d)
    mx = certs.make_cert(d, "mx.secure.test", ca)
    with open(mx.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"ca": ca, "mx": mx, "tlsa": f"3 1 1 {hashlib.sha256(spki).hexdigest()}",
            "other": certs.make_cert(tmp_path_factory.mktemp("o"), "mx.secure.test")}


@pytest.fixture()
def dns_server(pki):
    zones = {"secure.test": f"""
        mx              IN A 127.0.0.1
        _25._tcp.mx     IN TLSA {pki["tlsa"]}
        plain           IN A 127.0.0.1
        odd             IN A 127.0.0.1
        _25._tcp.odd    IN TLSA 0 1 1 {"00" * 32}
    """}
    with DnsServer(zones, secure=True) as server:
        yield server


def _req(dns_server, host, **kw):
    res = dns_server.resolver()
    return host_requirements(host, 25, domain="secure.test", dnssec_ok=True,
                             host_secure=host_is_secure(host, True, res), resolver=res, **kw)


def _chain(pki, which):
    files = pki[which]
    server = ServerTLS(ServerTLSOptions(certificate=files.cert, privatekey=files.key),
                       no_expansion)
    client = ClientTLS(ClientTLSOptions(verify_certificates=None), no_expansion)
    pair = handshake(lambda s: server.connection(s),
                     lambda s: client.connection(s, "mx.secure.test"))
    assert pair.ok
    return pair.client.get_peer_cert_chain(as_cryptography=True) or []


def test_dane_host(dns_server, pki):
    req = _req(dns_server, "mx.secure.test", try_dane=True)
    assert req.use_host and req.tls_required and req.verify == "dane"
    assert req.sni == "mx.secure.test" and req.ciphers_option == "dane_require_tls_ciphers"
    verdict = req.check_peer(_chain(pki, "mx"))
    assert verdict.ok
    assert req.variables(verdict) == {"tls_out_dane": "yes", "tls_out_tlsa_usage": "8"}
    wrong = req.check_peer(_chain(pki, "other"))
    assert not wrong.ok and req.variables(wrong)["tls_out_dane"] == "no"


def test_no_tlsa_is_ordinary(dns_server):
    req = _req(dns_server, "plain.secure.test", try_dane=True)
    assert req.use_host and not req.tls_required and req.verify == "none" and req.dane is None
    req = _req(dns_server, "plain.secure.test", require_dane=True)
    assert not req.use_host and req.message == "DANE error: tlsa lookup FAIL"
    assert req.errno == -36


def test_enforce_policy_rejects_unlisted_mx(dns_server):
    policy = parse_policy("version: STSv1\nmode: enforce\nmx: plain.secure.test\nmax_age: 60\n")
    req = _req(dns_server, "mx.secure.test", try_dane=True, sts_policy=policy)
    assert not req.use_host and req.errno_kind == "mta-sts" and req.errno == -38
    req = _req(dns_server, "plain.secure.test", try_dane=True, sts_policy=policy)
    assert req.use_host and req.tls_required and req.verify == "pkix"


def test_dane_takes_precedence_over_mta_sts_verification(dns_server):
    policy = parse_policy("version: STSv1\nmode: enforce\nmx: *.secure.test\nmax_age: 60\n")
    req = _req(dns_server, "mx.secure.test", try_dane=True, sts_policy=policy)
    assert req.verify == "dane"
    req = _req(dns_server, "odd.secure.test", try_dane=True, sts_policy=policy)
    assert req.tls_required and req.verify == "pkix"   # unusable TLSA: MTA-STS verifies


def test_testing_policy_reports_and_delivers(dns_server):
    policy = parse_policy("version: STSv1\nmode: testing\nmx: other.test\nmax_age: 60\n")
    req = _req(dns_server, "plain.secure.test", sts_policy=policy)
    assert req.use_host and not req.tls_required and req.sts_testing and req.verify == "try"
    assert req.log_lines == ["MTA-STS (testing): plain.secure.test is not an MX allowed "
                             "by the policy of secure.test"]
    assert req.pkix_failed("certificate verify failed") == (
        "MTA-STS (testing): plain.secure.test for secure.test: certificate verify failed")


def test_testing_policy_gives_way_to_dane(dns_server):
    policy = parse_policy("version: STSv1\nmode: testing\nmx: *.secure.test\nmax_age: 60\n")
    req = _req(dns_server, "mx.secure.test", try_dane=True, sts_policy=policy)
    assert req.verify == "dane" and not req.sts_testing
    req = _req(dns_server, "plain.secure.test", try_dane=True, sts_policy=policy)
    assert req.verify == "try" and req.sts_testing and req.log_lines == []
