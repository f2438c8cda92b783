"""pymta.tls.dane: TLSA lookups through a real loopback DNS server (with and without the
AD flag), the DANE decision as Exim 4.96 makes it, and TLSA matching against the chain a
real TLS server sends in a real handshake."""
from __future__ import annotations

import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pymta.tls.client import ClientTLS, ClientTLSOptions
from pymta.tls.dane import (
    DanePlan,
    Lookup,
    Outcome,
    TLSARecord,
    host_is_secure,
    mx_is_secure,
    plan,
    record_matches,
    reference_names,
    secure_lookup,
    tls_out_dane,
    verify_chain,
)
from pymta.tls.expander import no_expansion
from pymta.tls.server import ServerTLS, ServerTLSOptions
from pymta.tls.session import TLSFacts, cv_field, session_facts
from tests.support import certs
from tests.support.dns import DnsServer
from tests.support.tlspair import handshake


def _load(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def tlsa(usage: int, selector: int, mtype: int, cert: x509.Certificate) -> TLSARecord:
    data = _der(cert) if selector == 0 else _spki(cert)
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return TLSARecord(usage, selector, mtype, data)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("dane")
    ca = certs.make_ca(d)
    mx = certs.make_cert(d, "mx.example.test", ca)
    other_ca = certs.make_ca(tmp_path_factory.mktemp("other"), "another CA")
    other = certs.make_cert(tmp_path_factory.mktemp("o2"), "mx.example.test", other_ca)
    chain = d / "mx-chain.pem"
    chain.write_bytes(open(mx.cert, "rb").read() + open(ca.cert, "rb").read())
    return {"ca": ca, "mx": mx, "chain": str(chain), "other": other,
            "ca_cert": _load(ca.cert), "mx_cert": _load(mx.cert),
            "other_cert": _load(other.cert), "other_ca_cert": _load(other_ca.cert)}


def _peer_chain(pki, certificate: str, key: str) -> list[x509.Certificate]:
    """The chain a real pymta TLS server sends, as the client receives it."""
    server = ServerTLS(ServerTLSOptions(certificate=certificate, privatekey=key), no_expansion)
    client = ClientTLS(ClientTLSOptions(verify_certificates=None), no_expansion)
    pair = handshake(lambda s: server.connection(s),
                     lambda s: client.connection(s, "mx.example.test"))
    assert pair.ok, (pair.server_error, pair.client_error)
    return list(pair.client.get_peer_cert_chain(as_cryptography=True) or [])


# --------------------------------------------------------------------------- matching
@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("mtype", [0, 1, 2])
def test_dane_ee_matches_the_server_certificate_in_every_form(pki, selector, mtype):
    chain = _peer_chain(pki, pki["mx"].cert, pki["mx"].key)
    rec = tlsa(3, selector, mtype, pki["mx_cert"])
    verdict = verify_chain(chain, [rec], ["mx.example.test"])
    assert verdict.ok and verdict.depth == 0 and verdict.record == rec
    assert tls_out_dane(verdict) == "yes"


def test_dane_ee_checks_no_name_and_no_dates(pki):
    chain = _peer_chain(pki, pki["mx"].cert, pki["mx"].key)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=400)
    verdict = verify_chain(chain, [tlsa(3, 1, 1, pki["mx_cert"])], ["elsewhere.test"],
                           now=later)
    assert verdict.ok


def test_dane_ee_mismatch_fails(pki):
    chain = _peer_chain(pki, pki["mx"].cert, pki["mx"].key)
    verdict = verify_chain(chain, [tlsa(3, 1, 1, pki["other_cert"])], ["mx.example.test"])
    assert not verdict.ok
    assert tls_out_dane(verdict) == "no"


@pytest.mark.parametrize("selector, mtype", [(0, 0), (0, 1), (1, 1), (1, 2)])
def test_dane_ta_matches_the_issuer_sent_in_the_chain(pki, selector, mtype):
    chain = _peer_chain(pki, pki["chain"], pki["mx"].key)
    assert len(chain) == 2
    verdict = verify_chain(chain, [tlsa(2, selector, mtype, pki["ca_cert"])],
                           ["mx.example.test"])
    assert verdict.ok and verdict.depth == 1


def test_dane_ta_requires_the_host_name(pki):
    chain = _peer_chain(pki, pki["chain"], pki["mx"].key)
    verdict = verify_chain(chain, [tlsa(2, 1, 1, pki["ca_cert"])], ["mx2.example.test"])
    assert not verdict.ok and "does not name mx2.example.test" in verdict.reason


def test_dane_ta_checks_dates(pki):
    chain = _peer_chain(pki, pki["chain"], pki["mx"].key)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=400)
    verdict = verify_chain(chain, [tlsa(2, 1, 1, pki["ca_cert"])], ["mx.example.test"],
                           now=later)
    assert not verdict.ok and "expired" in verdict.reason


def test_dane_ta_full_certificate_record_need_not_be_sent(pki):
    chain = _peer_chain(pki, pki["mx"].cert, pki["mx"].key)     # leaf only
    assert len(chain) == 1
    assert verify_chain(chain, [tlsa(2, 0, 0, pki["ca_cert"])], ["mx.example.test"]).ok
    # a digest of the anchor cannot be used when the anchor is not sent
    assert not verify_chain(chain, [tlsa(2, 0, 1, pki["ca_cert"])], ["mx.example.test"]).ok


def test_dane_ta_of_another_ca_fails(pki):
    chain = _peer_chain(pki, pki["chain"], pki["mx"].key)
    assert not verify_chain(chain, [tlsa(2, 1, 1, pki["other_ca_cert"])],
                            ["mx.example.test"]).ok


def test_dane_ta_leaf_is_not_its_own_anchor(pki):
    """A DANE-TA record naming the server certificate: the anchor must be an issuer."""
    chain = _peer_chain(pki, pki["mx"].cert, pki["mx"].key)
    assert not verify_chain(chain, [tlsa(2, 1, 1, pki["mx_cert"])], ["mx.example.test"]).ok


def test_pkix_usages_are_unusable(pki):
    chain = _peer_chain(pki, pki["chain"], pki["mx"].key)
    records = [tlsa(0, 1, 1, pki["ca_cert"]), tlsa(1, 1, 1, pki["mx_cert"])]
    assert not any(r.usable for r in records)
    verdict = verify_chain(chain, records, ["mx.example.test"])
    assert not verdict.ok and verdict.reason == "no usable TLSA records"
    p = DanePlan(Outcome.DANE, tuple(records))
    assert not p.authenticate and p.tlsa_usage == 0b11


def test_unknown_matching_type_is_unusable(pki):
    rec = TLSARecord(3, 1, 9, b"x")
    assert not rec.usable and not record_matches(rec, pki["mx_cert"])


def test_one_matching_record_among_several_is_enough(pki):
    chain = _peer_chain(pki, pki["chain"], pki["mx"].key)
    records = [tlsa(3, 1, 1, pki["other_cert"]), tlsa(2, 1, 2, pki["ca_cert"])]
    verdict = verify_chain(chain, records, ["mx.example.test"])
    assert verdict.ok and verdict.record == records[1]


def test_cv_field_says_dane():
    """CV=dane replaces CV=yes/no when the chain was DANE-verified (Exim 4.96 log lines)."""
    facts = TLSFacts("TLS1.3", "TLS_AES_256_GCM_SHA384", 256, certificate_verified=False)
    assert cv_field(facts, dane=True) == "CV=dane"
    assert cv_field(facts) == "CV=no"


def test_handshake_facts_with_dane(pki):
    """The handshake is made without PKIX verification; the DANE verdict stands in."""
    server = ServerTLS(ServerTLSOptions(certificate=pki["mx"].cert, privatekey=pki["mx"].key),
                       no_expansion)
    client = ClientTLS(ClientTLSOptions(verify_certificates=None), no_expansion)
    pair = handshake(lambda s: server.connection(s),
                     lambda s: client.connection(s, "mx.example.test"))
    assert pair.ok
    facts = session_facts(pair.client)
    chain = pair.client.get_peer_cert_chain(as_cryptography=True) or []
    verdict = verify_chain(chain, [tlsa(3, 1, 1, pki["mx_cert"])], ["mx.example.test"])
    assert cv_field(facts, dane=verdict.ok) == "CV=dane"


# --------------------------------------------------------------------------- DNS
def _tlsa_text(rec: TLSARecord) -> str:
    return f"{rec.usage} {rec.selector} {rec.mtype} {rec.data.hex()}"


@pytest.fixture()
def zones(pki):
    ee = tlsa(3, 1, 1, pki["mx_cert"])
    return ee, {
        "secure.test": f"""
            @                 IN MX 10 mx
            mx                IN A 127.0.0.1
            _25._tcp.mx       IN TLSA {_tlsa_text(ee)}
            mx2               IN A 127.0.0.1
            mx3               IN A 127.0.0.1
            _25._tcp.mx3      IN CNAME tlsa.secure.test.
            tlsa              IN TLSA {_tlsa_text(ee)}
            mx4               IN A 127.0.0.1
            _25._tcp.mx4      IN CNAME _25._tcp.mx.insecure.test.
            mx5               IN A 127.0.0.1
            mx6               IN A 127.0.0.1
            _25._tcp.mx6      IN TLSA 1 1 1 {"00" * 32}
        """,
        "insecure.test": f"""
            @                 IN MX 10 mx
            mx                IN A 127.0.0.1
            _25._tcp.mx       IN TLSA {_tlsa_text(ee)}
        """,
    }


@pytest.fixture()
def dns_server(zones):
    with DnsServer(zones[1], secure=["secure.test"],
                   servfail=["_25._tcp.mx5.secure.test"]) as server:
        yield server


def test_ad_flag_only_when_asked_and_dnssec_ok(dns_server):
    res = dns_server.resolver()
    assert secure_lookup("mx.secure.test", "A", True, res).secure
    assert not secure_lookup("mx.secure.test", "A", False, res).secure   # dns_dnssec_ok off
    assert not secure_lookup("mx.insecure.test", "A", True, res).secure
    assert host_is_secure("mx.secure.test", True, res)
    assert not host_is_secure("mx.insecure.test", True, res)
    assert not host_is_secure("nonexistent.secure.test", True, res)
    assert mx_is_secure("secure.test", True, res)
    assert not mx_is_secure("insecure.test", True, res)


def test_servfail_is_again(dns_server):
    r = secure_lookup("_25._tcp.mx5.secure.test", "TLSA", True, dns_server.resolver())
    assert r.status is Lookup.AGAIN


def _plan(dns_server, host, **kw):
    kw.setdefault("try_dane", True)
    kw.setdefault("require_dane", False)
    kw.setdefault("dnssec_ok", True)
    res = dns_server.resolver()
    kw.setdefault("host_secure", host_is_secure(host, kw["dnssec_ok"], res))
    return plan(host, 25, resolver=res, **kw)


def test_secure_tlsa_gives_dane(dns_server, zones):
    p = _plan(dns_server, "mx.secure.test")
    assert p.outcome is Outcome.DANE and p.records == (zones[0],)
    assert p.authenticate and p.tlsa_usage == 8
    assert reference_names("mx.secure.test", p) == ("mx.secure.test",)


def test_tlsa_through_cname_keeps_the_base_domain(dns_server, zones):
    p = _plan(dns_server, "mx3.secure.test")
    assert p.outcome is Outcome.DANE and p.base_domain == "tlsa.secure.test"


def test_tlsa_through_cname_into_an_insecure_zone_is_not_dane(dns_server):
    p = _plan(dns_server, "mx4.secure.test")
    assert p.outcome is Outcome.NONE
    assert p.notes == ("DANE error: TLSA lookup for mx4.secure.test not DNSSEC",)
    p = _plan(dns_server, "mx4.secure.test", require_dane=True)
    assert p.outcome is Outcome.DEFER and p.message == "DANE error: tlsa lookup FAIL"


def test_no_tlsa_tried_is_normal_tls_required_defers(dns_server):
    assert _plan(dns_server, "mx2.secure.test").outcome is Outcome.NONE
    p = _plan(dns_server, "mx2.secure.test", require_dane=True)
    assert p.outcome is Outcome.DEFER and p.message == "DANE error: tlsa lookup FAIL"


def test_insecure_host_tried_is_normal_required_defers(dns_server):
    assert _plan(dns_server, "mx.insecure.test").outcome is Outcome.NONE
    p = _plan(dns_server, "mx.insecure.test", require_dane=True)
    assert p.outcome is Outcome.DEFER
    assert p.message == "DANE error: mx.insecure.test lookup not DNSSEC"


def test_dnssec_ok_off_means_no_dane(dns_server):
    p = _plan(dns_server, "mx.secure.test", dnssec_ok=False)
    assert p.outcome is Outcome.NONE
    p = _plan(dns_server, "mx.secure.test", dnssec_ok=False, require_dane=True)
    assert p.outcome is Outcome.DEFER


def test_tlsa_lookup_failure_defers_even_when_only_tried(dns_server):
    p = _plan(dns_server, "mx5.secure.test")
    assert p.outcome is Outcome.DEFER and p.message == "DANE error: tlsa lookup DEFER"


def test_options_not_matching_means_no_lookup(dns_server):
    before = len(dns_server.queries)
    p = plan("mx.secure.test", 25, try_dane=False, require_dane=False, host_secure=True,
             dnssec_ok=True, resolver=dns_server.resolver())
    assert p.outcome is Outcome.NONE and len(dns_server.queries) == before


def test_only_unusable_records_make_tls_mandatory_unauthenticated(dns_server):
    p = _plan(dns_server, "mx6.secure.test")
    assert p.outcome is Outcome.DANE and not p.authenticate and p.tlsa_usage == 2
