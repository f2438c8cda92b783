"""DANE matching compared with OpenSSL's own DANE implementation: for each set of TLSA
records, ``openssl s_client -dane_tlsa_rrdata`` against a real ``openssl s_server`` must
reach the same verdict as :func:`pymta.tls.dane.verify_chain` on the chain the same
server sends to pymta's client."""
from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pymta.tls.client import ClientTLS, ClientTLSOptions
from pymta.tls.dane import TLSARecord, verify_chain
from pymta.tls.expander import no_expansion
from tests.support import certs
from tests.support.ports import free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl binary")


def _load(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def _rr(usage, selector, mtype, cert):
    data = (cert.public_bytes(serialization.Encoding.DER) if selector == 0 else
            cert.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    data = {0: data, 1: hashlib.sha256(data).digest(), 2: hashlib.sha512(data).digest()}[mtype]
    return TLSARecord(usage, selector, mtype, data)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("ossl")
    ca = certs.make_ca(d)
    mx = certs.make_cert(d, "mx.example.test", ca)
    other = certs.make_cert(tmp_path_factory.mktemp("o"), "mx.example.test")
    return {"mx": mx, "ca_file": ca.cert, "leaf": _load(mx.cert), "ca": _load(ca.cert),
            "other": _load(other.cert)}


class SServer:
    """``openssl s_server`` for one connection, sending the server certificate alone
    ("cert") or with its issuer ("chain")."""

    def __init__(self, pki: dict, serve: str) -> None:
        self.port = free_port()
        chain = ["-cert_chain", pki["ca_file"]] if serve == "chain" else []
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}",
             "-cert", pki["mx"].cert, "-key", pki["mx"].key, *chain, "-naccept", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:          # "ACCEPT" once it listens
            if line.strip() == b"ACCEPT":
                return
        raise RuntimeError("openssl s_server did not start")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def _openssl_verdict(pki, serve: str, records, name) -> bool:
    server = SServer(pki, serve)
    try:
        # -dane_ee_no_namechecks: as SMTP clients do (RFC 7672 3.1.1; Postfix, Exim)
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-brief",
                "-verify_return_error", "-dane_tlsa_domain", name, "-dane_ee_no_namechecks"]
        for r in records:
            args += ["-dane_tlsa_rrdata", str(r)]
        out = subprocess.run(args, input=b"", capture_output=True, timeout=20)
        return b"Verification: OK" in out.stdout + out.stderr
    finally:
        server.close()


def _pymta_verdict(pki, serve: str, records, name) -> bool:
    server = SServer(pki, serve)
    try:
        client = ClientTLS(ClientTLSOptions(verify_certificates=None), no_expansion)
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.settimeout(None)        # pyOpenSSL wants a blocking socket
        try:
            conn = client.connection(sock, name)
            conn.do_handshake()
            chain = conn.get_peer_cert_chain(as_cryptography=True) or []
        finally:
            sock.close()
        return verify_chain(chain, records, [name]).ok
    finally:
        server.close()


CASES = [
    ("chain", [("3 1 1", "leaf")], "mx.example.test", True),
    ("chain", [("3 0 2", "leaf")], "mx.example.test", True),
    ("chain", [("3 0 0", "leaf")], "elsewhere.test", True),       # DANE-EE: no name check
    ("chain", [("3 1 1", "other")], "mx.example.test", False),
    ("chain", [("2 1 1", "ca")], "mx.example.test", True),
    ("chain", [("2 0 2", "ca")], "mx.example.test", True),
    ("chain", [("2 1 1", "ca")], "elsewhere.test", False),        # DANE-TA: name checked
    ("cert", [("2 0 0", "ca")], "mx.example.test", True),         # anchor not sent
    ("cert", [("2 1 1", "ca")], "mx.example.test", False),        # digest, anchor not sent
    ("chain", [("2 1 1", "other"), ("3 1 2", "leaf")], "mx.example.test", True),
    ("cert", [("2 1 1", "leaf")], "mx.example.test", False),      # TA must be an issuer
]


@pytest.mark.parametrize("serve, recs, name, expected", CASES)
def test_same_verdict_as_openssl(pki, serve, recs, name, expected):
    records = []
    for spec, which in recs:
        u, s, m = (int(x) for x in spec.split())
        records.append(_rr(u, s, m, pki[which]))
    assert _openssl_verdict(pki, serve, records, name) is expected
    assert _pymta_verdict(pki, serve, records, name) is expected
