"""pymta.tls.server: real handshakes between a ServerTLS connection and pyOpenSSL clients."""
from __future__ import annotations

import datetime
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from OpenSSL import SSL

from pymta.expand import ExpandContext
from pymta.tls import TLSConfigError
from pymta.tls.client import ClientTLS, ClientTLSOptions, OCSPMode
from pymta.tls.expander import ContextExpander, no_expansion
from pymta.tls.server import ServerTLS, ServerTLSOptions, VerifyMode
from pymta.tls.session import OCSPStatus, session_facts, state_of
from pymta.tls.tickets import TicketKeyRotation
from tests.support import certs
from tests.support.tlspair import client_factory, handshake


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, RSA and EC server certificates, SNI certificates, client certificates."""
    d = tmp_path_factory.mktemp("pki")
    ca = certs.make_ca(d)
    os.makedirs(d / "other", exist_ok=True)
    other_ca = certs.make_ca(d / "other", name="other CA")
    return {
        "dir": str(d), "ca": ca,
        "rsa": certs.make_cert(d, "mx.example.test", ca, prefix="rsa"),
        "ec": certs.make_cert(d, "mx.example.test", ca, prefix="ec", key_type="ec"),
        "a": certs.make_cert(d, "a.example.test", ca),
        "b": certs.make_cert(d, "b.example.test", ca),
        "default": certs.make_cert(d, "default.example.test", ca, prefix="default"),
        "client": certs.make_cert(d, "client.example.test", ca, client=True),
        "stranger": certs.make_cert(d / "other", "stranger.example.test", other_ca,
                                    client=True),
    }


def server(options: ServerTLSOptions, expand=no_expansion) -> ServerTLS:
    return ServerTLS(options, expand)


def plain_client(ca: str | None = None, *, sni: str | None = None, ciphers: str | None = None,
                 max_version: int | None = None, cert=None, alpn: list[bytes] | None = None,
                 session=None):
    """A client factory with an independent pyOpenSSL context."""
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if ca:
        ctx.load_verify_locations(ca)
    if ciphers:
        ctx.set_cipher_list(ciphers.encode())
    if max_version:
        ctx.set_max_proto_version(max_version)
    if cert is not None:
        ctx.use_certificate_chain_file(cert.cert)
        ctx.use_privatekey_file(cert.key)
    if alpn:
        ctx.set_alpn_protos(alpn)

    def make(sock):
        conn = SSL.Connection(ctx, sock)
        if sni:
            conn.set_tlsext_host_name(sni.encode())
        if session is not None:
            conn.set_session(session)
        conn.set_connect_state()
        return conn
    return make


def subject_cn(conn: SSL.Connection) -> str:
    cert = conn.get_peer_certificate(as_cryptography=True)
    return cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def key_kind(conn: SSL.Connection) -> str:
    key = conn.get_peer_certificate(as_cryptography=True).public_key()
    return "ec" if isinstance(key, ec.EllipticCurvePublicKey) else "rsa"


def test_rsa_and_ec_certificates_are_chosen_by_cipher(pki):
    tls = server(ServerTLSOptions(
        certificate=f"{pki['rsa'].cert} : {pki['ec'].cert}",
        privatekey=f"{pki['rsa'].key} : {pki['ec'].key}"))
    ec_pair = handshake(lambda s: tls.connection(s),
                        plain_client(ciphers="ECDHE-ECDSA-AES128-GCM-SHA256",
                                     max_version=SSL.TLS1_2_VERSION))
    rsa_pair = handshake(lambda s: tls.connection(s),
                         plain_client(ciphers="ECDHE-RSA-AES128-GCM-SHA256",
                                      max_version=SSL.TLS1_2_VERSION))
    assert ec_pair.ok and rsa_pair.ok
    assert key_kind(ec_pair.client) == "ec"
    assert key_kind(rsa_pair.client) == "rsa"


def test_key_list_must_match_certificate_list(pki):
    tls = server(ServerTLSOptions(certificate=f"{pki['rsa'].cert} : {pki['ec'].cert}",
                                  privatekey=pki["rsa"].key))
    with pytest.raises(TLSConfigError, match="one key for each"):
        tls.context_for()


def test_wrong_private_key_is_a_config_error(pki):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["a"].key))
    with pytest.raises(TLSConfigError, match="tls_privatekey"):
        tls.context_for()


def test_sni_reexpands_the_certificate_options(pki):
    d = pki["dir"]
    opts = ServerTLSOptions(
        certificate=f"${{if def:tls_in_sni {{{d}/${{tls_in_sni}}.pem}}{{{d}/default.pem}}}}",
        privatekey=f"${{if def:tls_in_sni {{{d}/${{tls_in_sni}}.key}}{{{d}/default.key}}}}")
    tls = server(opts, ContextExpander(ExpandContext()))
    seen = {}
    for sni in ("a.example.test", "b.example.test", None, "a.example.test"):
        pair = handshake(lambda s: tls.connection(s), plain_client(sni=sni))
        assert pair.ok, pair
        seen.setdefault(sni, set()).add(subject_cn(pair.client))
        assert session_facts(pair.server).sni == (sni or "")
    assert seen == {"a.example.test": {"a.example.test"}, "b.example.test": {"b.example.test"},
                    None: {"default.example.test"}}
    # one context per distinct expansion: default, a, b
    assert len(tls._contexts) == 3


def test_sni_naming_no_certificate_keeps_the_default(pki):
    d = pki["dir"]
    opts = ServerTLSOptions(
        certificate=f"${{if def:tls_in_sni {{{d}/${{tls_in_sni}}.pem}}{{{d}/default.pem}}}}",
        privatekey=f"${{if def:tls_in_sni {{{d}/${{tls_in_sni}}.key}}{{{d}/default.key}}}}")
    tls = server(opts, ContextExpander(ExpandContext()))
    pair = handshake(lambda s: tls.connection(s), plain_client(sni="nosuch.example.test"))
    assert pair.ok
    assert subject_cn(pair.client) == "default.example.test"
    assert "nosuch.example.test.pem" in session_facts_error(pair.server)


def session_facts_error(conn: SSL.Connection) -> str:
    return state_of(conn).extra.get("sni_error", "")


def test_sni_is_recorded_without_reexpansion(pki):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key))
    pair = handshake(lambda s: tls.connection(s), plain_client(sni="whatever.example.test"))
    assert pair.ok
    assert session_facts(pair.server).sni == "whatever.example.test"
    assert subject_cn(pair.client) == "mx.example.test"


def _verifying_server(pki, **kw) -> ServerTLS:
    return server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key,
                                   verify_certificates=pki["ca"].cert, **kw))


def test_verify_required_refuses_a_client_without_certificate(pki):
    tls = _verifying_server(pki)
    pair = handshake(lambda s: tls.connection(s, verify=VerifyMode.REQUIRED), plain_client())
    assert pair.server_error is not None


def test_verify_required_refuses_an_untrusted_client_certificate(pki):
    tls = _verifying_server(pki)
    pair = handshake(lambda s: tls.connection(s, verify=VerifyMode.REQUIRED),
                     plain_client(cert=pki["stranger"]))
    assert pair.server_error is not None


def test_verify_required_accepts_a_trusted_client_certificate(pki):
    tls = _verifying_server(pki)
    pair = handshake(lambda s: tls.connection(s, verify=VerifyMode.REQUIRED),
                     plain_client(cert=pki["client"]))
    assert pair.ok
    facts = session_facts(pair.server)
    assert facts.certificate_verified and facts.peerdn == "CN=client.example.test"


@pytest.mark.parametrize("who, verified, dn", [
    (None, False, ""), ("stranger", False, "CN=stranger.example.test"),
    ("client", True, "CN=client.example.test")])
def test_verify_try_goes_on_and_records_the_result(pki, who, verified, dn):
    tls = _verifying_server(pki)
    pair = handshake(lambda s: tls.connection(s, verify=VerifyMode.TRY),
                     plain_client(cert=pki[who] if who else None))
    assert pair.ok
    facts = session_facts(pair.server)
    assert (facts.certificate_verified, facts.peerdn) == (verified, dn)


def test_crl_revokes_a_client_certificate(pki, tmp_path):
    ca_cert = x509.load_pem_x509_certificate(Path(pki["ca"].cert).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(pki["ca"].key).read_bytes(), None)
    client = x509.load_pem_x509_certificate(Path(pki["client"].cert).read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
           .last_update(now - datetime.timedelta(hours=1))
           .next_update(now + datetime.timedelta(days=1))
           .add_revoked_certificate(x509.RevokedCertificateBuilder()
                                    .serial_number(client.serial_number)
                                    .revocation_date(now - datetime.timedelta(hours=1)).build())
           .sign(ca_key, hashes.SHA256()))
    path = tmp_path / "ca.crl"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tls = _verifying_server(pki, crl=str(path))
    revoked = handshake(lambda s: tls.connection(s, verify=VerifyMode.TRY),
                        plain_client(cert=pki["client"]))
    assert revoked.ok and not session_facts(revoked.server).certificate_verified
    without = _verifying_server(pki)
    good = handshake(lambda s: without.connection(s, verify=VerifyMode.TRY),
                     plain_client(cert=pki["client"]))
    assert session_facts(good.server).certificate_verified


def _ocsp_response(pki, tmp_path, status=ocsp.OCSPCertStatus.GOOD, name="resp.der") -> str:
    ca_cert = x509.load_pem_x509_certificate(Path(pki["ca"].cert).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(pki["ca"].key).read_bytes(), None)
    leaf = x509.load_pem_x509_certificate(Path(pki["rsa"].cert).read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    resp = (ocsp.OCSPResponseBuilder()
            .add_response(cert=leaf, issuer=ca_cert, algorithm=hashes.SHA1(), cert_status=status,
                          this_update=now - datetime.timedelta(hours=1),
                          next_update=now + datetime.timedelta(days=1),
                          revocation_time=now - datetime.timedelta(hours=2) if revoked else None,
                          revocation_reason=None)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, ca_cert)
            .sign(ca_key, hashes.SHA256()))
    path = tmp_path / name
    path.write_bytes(resp.public_bytes(serialization.Encoding.DER))
    return str(path)


def _ocsp_pair(pki, staple: str | None, mode: OCSPMode):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key,
                                  ocsp_file=staple))
    client = ClientTLS(ClientTLSOptions(verify_certificates=pki["ca"].cert), no_expansion)
    return handshake(lambda s: tls.connection(s),
                     lambda s: client.connection(s, "mx.example.test",
                                                 verify=VerifyMode.REQUIRED, ocsp=mode))


def test_ocsp_staple_is_served_and_verified(pki, tmp_path):
    pair = _ocsp_pair(pki, _ocsp_response(pki, tmp_path), OCSPMode.REQUIRE)
    assert pair.ok, pair
    assert session_facts(pair.client).ocsp is OCSPStatus.VERIFIED
    assert session_facts(pair.server).ocsp is OCSPStatus.VERIFIED


def test_ocsp_revoked_staple_fails_when_required(pki, tmp_path):
    staple = _ocsp_response(pki, tmp_path, ocsp.OCSPCertStatus.REVOKED)
    assert _ocsp_pair(pki, staple, OCSPMode.REQUIRE).client_error is not None
    requested = _ocsp_pair(pki, staple, OCSPMode.REQUEST)
    assert requested.ok
    assert session_facts(requested.client).ocsp is OCSPStatus.FAILED


def test_ocsp_missing_staple(pki):
    assert _ocsp_pair(pki, None, OCSPMode.REQUIRE).client_error is not None
    requested = _ocsp_pair(pki, None, OCSPMode.REQUEST)
    assert requested.ok
    assert session_facts(requested.client).ocsp is OCSPStatus.NO_RESPONSE


def test_ocsp_file_that_is_not_a_response_is_a_config_error(pki, tmp_path):
    bad = tmp_path / "bad.der"
    bad.write_bytes(b"not ocsp")
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key,
                                  ocsp_file=str(bad)))
    with pytest.raises(TLSConfigError, match="tls_ocsp_file"):
        tls.context_for()


@pytest.mark.parametrize("version", [SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION])
def test_resumption_across_two_connections(pki, version):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key))
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_max_proto_version(version)

    def client(session=None):
        return client_factory(ctx, session)

    first = handshake(lambda s: tls.connection(s, resumption=True), client())
    assert first.ok and not session_facts(first.server).resumed
    second = handshake(lambda s: tls.connection(s, resumption=True),
                       client(first.client.get_session()))
    assert second.ok
    assert session_facts(second.server).resumed and session_facts(second.client).resumed

    # A host not in tls_resumption_hosts gets no ticket, so nothing to resume.
    third = handshake(lambda s: tls.connection(s, resumption=False), client())
    fourth = handshake(lambda s: tls.connection(s, resumption=False),
                       client(third.client.get_session()))
    assert fourth.ok and not session_facts(fourth.server).resumed

    # After the master rotates the ticket keys an old ticket gives a full handshake.
    rotation = TicketKeyRotation(tls, now=0.0, period=60)
    assert not rotation.rotate_if_due(30.0)
    assert rotation.rotate_if_due(61.0)
    fifth = handshake(lambda s: tls.connection(s, resumption=True),
                      client(first.client.get_session()))
    assert fifth.ok and not session_facts(fifth.server).resumed


def test_alpn_accepts_a_listed_name_and_refuses_others(pki):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key))
    good = handshake(lambda s: tls.connection(s), plain_client(alpn=[b"smtp"]))
    assert good.ok and session_facts(good.server).alpn == "smtp"
    assert handshake(lambda s: tls.connection(s), plain_client(alpn=[b"h2"])).server_error
    assert handshake(lambda s: tls.connection(s),
                     plain_client(alpn=[b"smtp", b"esmtp"])).server_error
    assert handshake(lambda s: tls.connection(s), plain_client()).ok


def test_require_ciphers_restricts_tls12(pki):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key,
                                  require_ciphers="ECDHE-RSA-AES128-GCM-SHA256"))
    ok = handshake(lambda s: tls.connection(s), plain_client(max_version=SSL.TLS1_2_VERSION))
    assert ok.ok and ok.client.get_cipher_name() == "ECDHE-RSA-AES128-GCM-SHA256"
    refused = handshake(lambda s: tls.connection(s),
                        plain_client(max_version=SSL.TLS1_2_VERSION,
                                     ciphers="ECDHE-RSA-AES256-GCM-SHA384"))
    assert refused.server_error is not None


def test_bad_cipher_list_is_a_config_error(pki):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key,
                                  require_ciphers="NO-SUCH-CIPHER"))
    with pytest.raises(TLSConfigError, match="tls_require_ciphers"):
        tls.context_for()


def test_openssl_options_disable_a_protocol_version(pki):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key,
                                  openssl_options="+no_tlsv1_2"))
    assert handshake(lambda s: tls.connection(s),
                     plain_client(max_version=SSL.TLS1_2_VERSION)).server_error is not None
    assert handshake(lambda s: tls.connection(s), plain_client()).ok


def test_dhparam_named_prime_allows_dhe(pki):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key,
                                  dhparam="ffdhe3072"))
    pair = handshake(lambda s: tls.connection(s),
                     plain_client(max_version=SSL.TLS1_2_VERSION,
                                  ciphers="DHE-RSA-AES256-GCM-SHA384"))
    assert pair.ok and pair.client.get_cipher_name() == "DHE-RSA-AES256-GCM-SHA384"


def test_eccurve_selects_the_key_exchange_group(pki):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key,
                                  eccurve="secp384r1"))
    pair = handshake(lambda s: tls.connection(s), plain_client(max_version=SSL.TLS1_2_VERSION))
    assert pair.ok and pair.client.get_group_name() == "secp384r1"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_s_client_sees_sni_certificate_and_ocsp_staple(pki, tmp_path):
    """A real client (openssl s_client -servername -status) against a loopback listener."""
    d = pki["dir"]
    staple = _ocsp_response(pki, tmp_path)
    tls = server(ServerTLSOptions(
        certificate=f"${{if def:tls_in_sni {{{d}/${{tls_in_sni}}.pem}}{{{d}/rsa.pem}}}}",
        privatekey=f"${{if def:tls_in_sni {{{d}/${{tls_in_sni}}.key}}{{{d}/rsa.key}}}}",
        ocsp_file=f"${{if def:tls_in_sni {{}}{{{staple}}}}}"),
        ContextExpander(ExpandContext()))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    served: list = []

    def serve() -> None:
        sock, _ = listener.accept()
        with sock:
            conn = tls.connection(sock)
            try:
                conn.do_handshake()
                conn.sendall(b"220 ready\r\n")
                served.append(session_facts(conn))
                conn.shutdown()
            except SSL.Error as e:
                served.append(e)

    def s_client(*args: str) -> str:
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                              "-CAfile", pki["ca"].cert, *args],
                             input=b"", capture_output=True, timeout=20,
                             check=False).stdout.decode()
        thread.join(10)
        return out

    with listener:
        # No SNI: the default certificate and its stapled OCSP response.
        out = s_client("-noservername", "-status")
        assert "subject=CN = mx.example.test" in out and "Verify return code: 0 (ok)" in out
        assert "OCSP Response Status: successful" in out and "Cert Status: good" in out
        # SNI re-expands the options: a.example.test's certificate, no staple for it.
        out = s_client("-servername", "a.example.test", "-status")
        assert "subject=CN = a.example.test" in out and "Verify return code: 0 (ok)" in out
        assert "OCSP response: no response sent" in out
    assert [f.sni for f in served] == ["", "a.example.test"]


def _serve_in_child(tls: ServerTLS, sock: socket.socket) -> int:
    """Fork a child that handshakes on ``sock`` (as the daemon's connection handlers do)
    and exits 0 when the session was resumed, 1 when not, 2 on error."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            conn = tls.connection(sock, resumption=True)
            conn.do_handshake()
            conn.sendall(b"220 ready\r\n")
            conn.recv(100)
            code = 0 if session_facts(conn).resumed else 1
            # wait for the client's close_notify: exiting first made its shutdown()
            # fail with EPIPE now and then
            try:
                conn.recv(100)
            except SSL.Error:
                pass
        finally:
            os._exit(code)
    return pid


def _resumed_in_second_child(tls: ServerTLS) -> list[int]:
    client_ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    session = None
    results = []
    for _ in range(2):
        a, b = socket.socketpair()
        pid = _serve_in_child(tls, a)
        a.close()
        conn = SSL.Connection(client_ctx, b)
        if session is not None:
            conn.set_session(session)
        conn.set_connect_state()
        conn.do_handshake()
        conn.recv(100)
        conn.sendall(b"QUIT\r\n")
        session = conn.get_session()
        # close_notify: OpenSSL marks the session of a connection freed without it
        # not resumable
        conn.shutdown()
        results.append(os.waitpid(pid, 0)[1] >> 8)
        b.close()
    return results


def test_ticket_keys_are_shared_by_children_forked_after_prepare(pki):
    tls = server(ServerTLSOptions(certificate=pki["rsa"].cert, privatekey=pki["rsa"].key))
    TicketKeyRotation(tls, now=0.0)     # the master builds the context before forking
    assert _resumed_in_second_child(tls) == [1, 0]
    # Without that each child builds its own context and keys: no resumption.
    unprepared = server(ServerTLSOptions(certificate=pki["rsa"].cert,
                                         privatekey=pki["rsa"].key))
    assert _resumed_in_second_child(unprepared) == [1, 1]
