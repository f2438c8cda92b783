"""pymta.tls.client and hostcheck: verification, host names, SNI, stored sessions."""
from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pymta.expand import ExpandContext
from pymta.tls.client import (
    ClientTLS,
    ClientTLSOptions,
    session_from_bytes,
    session_to_bytes,
)
from pymta.tls.expander import ContextExpander, no_expansion
from pymta.tls.hostcheck import hostname_matches, name_matches
from pymta.tls.server import ServerTLS, ServerTLSOptions, VerifyMode
from pymta.tls.session import session_facts
from tests.support import certs
from tests.support.tlspair import handshake


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = certs.make_ca(d)
    return {"ca": ca,
            "mx": certs.make_cert(d, "mx.example.test", ca, alt_names=["*.w.example.test"]),
            "client": certs.make_cert(d, "client.example.test", ca, client=True),
            "self": certs.make_cert(tmp_path_factory.mktemp("other"), "mx.example.test")}


@pytest.mark.parametrize("pattern, host, ok", [
    ("mx.example.test", "mx.example.test", True),
    ("MX.Example.Test", "mx.example.test.", True),
    ("mx.example.test", "mx2.example.test", False),
    ("*.example.test", "mx.example.test", True),
    ("*.example.test", "a.mx.example.test", False),    # one label only
    ("*.example.test", "example.test", False),
    ("*.test", "example.test", False),                 # needs 3 or more labels
    ("m*.example.test", "mx.example.test", False),     # no partial wildcards
    ("mx.*.test", "mx.example.test", False),
    ("*.example.test", ".example.test", False),
])
def test_name_matching_rules(pattern, host, ok):
    assert name_matches(pattern, host) is ok


def _cert(subject_cn: str, sans: list[x509.GeneralName] | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1).not_valid_before(now)
               .not_valid_after(now + datetime.timedelta(days=1)))
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_common_name_is_used_only_without_dns_alt_names():
    import ipaddress
    assert hostname_matches(_cert("mx.example.test", None), "mx.example.test")
    with_san = _cert("mx.example.test", [x509.DNSName("other.example.test")])
    assert not hostname_matches(with_san, "mx.example.test")
    assert hostname_matches(with_san, "other.example.test")
    ip = _cert("mx.example.test", [x509.IPAddress(ipaddress.ip_address("192.0.2.1"))])
    assert hostname_matches(ip, "192.0.2.1") and not hostname_matches(ip, "192.0.2.2")
    # an IP-only certificate still falls back to the CN for names
    assert hostname_matches(ip, "mx.example.test")


def _server(pki, which="mx") -> ServerTLS:
    return ServerTLS(ServerTLSOptions(certificate=pki[which].cert, privatekey=pki[which].key,
                                      verify_certificates=pki["ca"].cert), no_expansion)


def _client(pki, **kw) -> ClientTLS:
    return ClientTLS(ClientTLSOptions(verify_certificates=pki["ca"].cert, **kw), no_expansion)


@pytest.mark.parametrize("host, verify, ok, verified", [
    ("mx.example.test", VerifyMode.REQUIRED, True, True),
    ("x.w.example.test", VerifyMode.REQUIRED, True, True),
    ("wrong.example.test", VerifyMode.REQUIRED, False, False),
    ("wrong.example.test", VerifyMode.TRY, True, False),
    ("mx.example.test", VerifyMode.NONE, True, False),
])
def test_server_certificate_verification_with_host_names(pki, host, verify, ok, verified):
    tls, client = _server(pki), _client(pki)
    pair = handshake(lambda s: tls.connection(s),
                     lambda s: client.connection(s, host, verify=verify))
    assert pair.ok is ok
    if ok:
        assert session_facts(pair.client).certificate_verified is verified


def test_host_name_check_can_be_turned_off(pki):
    tls, client = _server(pki), _client(pki)
    pair = handshake(lambda s: tls.connection(s),
                     lambda s: client.connection(s, "wrong.example.test",
                                                 verify=VerifyMode.REQUIRED,
                                                 check_hostname=False))
    assert pair.ok and session_facts(pair.client).certificate_verified


def test_untrusted_server_certificate_fails_verification(pki):
    tls, client = _server(pki, "self"), _client(pki)
    pair = handshake(lambda s: tls.connection(s),
                     lambda s: client.connection(s, "mx.example.test",
                                                 verify=VerifyMode.REQUIRED))
    assert pair.client_error is not None


def test_sni_is_expanded_and_sent(pki):
    tls = _server(pki)
    client = ClientTLS(ClientTLSOptions(verify_certificates=pki["ca"].cert, sni="${host}"),
                       ContextExpander(ExpandContext()))
    pair = handshake(lambda s: tls.connection(s),
                     lambda s: client.connection(s, "mx.example.test",
                                                 {"host": "mx.example.test"}))
    assert pair.ok
    assert session_facts(pair.server).sni == "mx.example.test"
    assert session_facts(pair.client).sni == "mx.example.test"


def test_client_certificate_is_presented(pki):
    tls = _server(pki)
    client = _client(pki, certificate=pki["client"].cert, privatekey=pki["client"].key)
    pair = handshake(lambda s: tls.connection(s, verify=VerifyMode.REQUIRED),
                     lambda s: client.connection(s, "mx.example.test"))
    assert pair.ok
    assert session_facts(pair.server).peerdn == "CN=client.example.test"


def test_stored_session_resumes(pki):
    tls, client = _server(pki), _client(pki)
    first = handshake(lambda s: tls.connection(s, resumption=True),
                      lambda s: client.connection(s, "mx.example.test"))
    stored = session_to_bytes(first.client.get_session())
    session = session_from_bytes(stored, client.context_for())
    second = handshake(lambda s: tls.connection(s, resumption=True),
                       lambda s: client.connection(s, "mx.example.test", session=session))
    assert second.ok and session_facts(second.client).resumed
    with pytest.raises(ValueError):
        session_from_bytes(b"junk", client.context_for())
