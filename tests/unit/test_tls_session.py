"""pymta.tls.session: $tls_* values, log fields and the Received: phrase from real sessions.

Formats checked against Exim 4.96 (the installed exim4 receiving over STARTTLS):
``X=<ver>:<cipher>:<bits>`` after P=, ``CV=yes``/``CV=no``, ``DN="<dn>"`` only when
the client sent a certificate, ``SNI=<name>``; Received: ``with esmtps  (TLS1.3) tls
<standard cipher name>`` (two spaces: Exim's default received_header_text).
"""
from __future__ import annotations

import shutil
import subprocess

import pytest
from OpenSSL import SSL

from pymta.tls.expander import no_expansion
from pymta.tls.server import ServerTLS, ServerTLSOptions, VerifyMode
from pymta.tls.session import (
    OCSPStatus,
    TLSFacts,
    cv_field,
    dn_field,
    received_protocol,
    received_tls_phrase,
    session_facts,
    sni_field,
    standard_cipher_name,
    tls_variables,
    x_field,
)
from tests.support import certs
from tests.support.tlspair import handshake


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = certs.make_ca(d)
    return {"ca": ca, "mx": certs.make_cert(d, "mx.example.test", ca),
            "client": certs.make_cert(d, "client.example.test", ca, client=True)}


def _client(max_version=None, ciphers=None, cert=None, sni=None):
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if max_version:
        ctx.set_max_proto_version(max_version)
    if ciphers:
        ctx.set_cipher_list(ciphers.encode())
    if cert:
        ctx.use_certificate_chain_file(cert.cert)
        ctx.use_privatekey_file(cert.key)

    def make(sock):
        conn = SSL.Connection(ctx, sock)
        if sni:
            conn.set_tlsext_host_name(sni.encode())
        conn.set_connect_state()
        return conn
    return make


def _server(pki) -> ServerTLS:
    return ServerTLS(ServerTLSOptions(certificate=pki["mx"].cert, privatekey=pki["mx"].key,
                                      verify_certificates=pki["ca"].cert), no_expansion)


def test_tls13_fields(pki):
    tls = _server(pki)
    pair = handshake(lambda s: tls.connection(s, verify=VerifyMode.TRY),
                     _client(cert=pki["client"], sni="mx.example.test"))
    assert pair.ok
    facts = session_facts(pair.server)
    assert x_field(facts) == "X=TLS1.3:TLS_AES_256_GCM_SHA384:256"
    assert cv_field(facts) == "CV=yes"
    assert dn_field(facts) == 'DN="CN=client.example.test"'
    assert sni_field(facts) == "SNI=mx.example.test"
    assert received_tls_phrase(facts) == " (TLS1.3) tls TLS_AES_256_GCM_SHA384\n\t"
    v = tls_variables(facts, "in")
    assert v["tls_in_cipher"] == "TLS1.3:TLS_AES_256_GCM_SHA384:256"
    assert v["tls_in_cipher_std"] == "TLS_AES_256_GCM_SHA384"
    assert (v["tls_in_ver"], v["tls_in_bits"], v["tls_in_certificate_verified"]) == \
        ("TLS1.3", "256", "1")
    assert (v["tls_in_peerdn"], v["tls_in_sni"], v["tls_in_ocsp"]) == \
        ("CN=client.example.test", "mx.example.test", "0")
    client_side = tls_variables(session_facts(pair.client), "out")
    assert client_side["tls_out_cipher"] == v["tls_in_cipher"]
    assert client_side["tls_out_certificate_verified"] == "0"


def test_tls12_fields_without_client_certificate(pki):
    tls = _server(pki)
    pair = handshake(lambda s: tls.connection(s, verify=VerifyMode.TRY),
                     _client(max_version=SSL.TLS1_2_VERSION,
                             ciphers="ECDHE-RSA-AES128-GCM-SHA256"))
    assert pair.ok
    facts = session_facts(pair.server)
    assert x_field(facts) == "X=TLS1.2:ECDHE-RSA-AES128-GCM-SHA256:128"
    assert facts.cipher_std == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert cv_field(facts) == "CV=no"
    assert dn_field(facts) == "" and sni_field(facts) == ""
    assert received_tls_phrase(facts) == \
        " (TLS1.2) tls TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n\t"


def _facts(**kw) -> TLSFacts:
    base = {"version": "TLS1.3", "cipher": "TLS_AES_128_GCM_SHA256", "bits": 128,
            "certificate_verified": False}
    base.update(kw)
    return TLSFacts(**base)


def test_resumption_star_and_dane():
    resumed = _facts(resumed=True)
    assert x_field(resumed) == "X=TLS1.3:TLS_AES_128_GCM_SHA256:128"
    assert x_field(resumed, resumption_selector=True) == "X=TLS1.3:TLS_AES_128_GCM_SHA256:128*"
    assert x_field(_facts(), resumption_selector=True).endswith(":128")
    assert cv_field(_facts(), dane=True) == "CV=dane"
    assert tls_variables(resumed, "out")["tls_out_resumption"] == "17"


def test_no_tls_gives_empty_variables():
    v = tls_variables(None, "in")
    assert v["tls_in_cipher"] == "" and v["tls_in_bits"] == "0"
    assert received_tls_phrase(None) == ""
    assert tls_variables(_facts(ocsp=OCSPStatus.FAILED), "out")["tls_out_ocsp"] == "3"


def test_received_protocol_names():
    assert [received_protocol(True, True, False), received_protocol(True, True, True),
            received_protocol(True, False, True), received_protocol(False, False, False)] == \
        ["esmtps", "esmtpsa", "esmtpa", "smtp"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_standard_cipher_names_agree_with_openssl():
    out = subprocess.run(["openssl", "ciphers", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
                         capture_output=True, text=True, check=True).stdout
    pairs = [line.split()[:3] for line in out.splitlines()]
    assert len(pairs) > 50
    for std, _, name in pairs:
        assert standard_cipher_name(name) == std
