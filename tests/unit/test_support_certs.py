"""Tests for test-time certificate generation (tests/support/certs.py)."""

import socket
import ssl
import threading

import pytest
from cryptography import x509
from OpenSSL import SSL, crypto

from tests.support.certs import client_context, make_ca, make_cert, server_context


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


def _handshake(server_files, client_ctx, hostname):
    """Run one TLS handshake over a socketpair; return the client's error or None."""
    a, b = socket.socketpair()
    srv_ctx = server_context(server_files)
    errors = []

    def serve():
        try:
            with srv_ctx.wrap_socket(a, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=hostname):
            pass
    except ssl.SSLError as exc:
        errors.append(exc)
    finally:
        b.close()
        t.join(5)
        a.close()
    return errors[0] if errors else None


def test_cert_has_names_and_is_signed_by_ca(ca, tmp_path):
    files = make_cert(tmp_path, "mx.example.test", ca, alt_names=["::1", "other.test"])
    cert = x509.load_pem_x509_certificate(open(files.cert, "rb").read())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"mx.example.test", "other.test"}
    assert {str(i) for i in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert files.ca == ca.cert
    assert _handshake(files, client_context(ca.cert), "mx.example.test") is None
    assert _handshake(files, client_context(ca.cert), "wrong.test") is not None


def test_expired_certificate_fails_verification(ca, tmp_path):
    files = make_cert(tmp_path, "old.test", ca, days=-1)
    err = _handshake(files, client_context(ca.cert), "old.test")
    assert err is not None and "expired" in str(err)


def test_files_load_with_pyopenssl(ca, tmp_path):
    files = make_cert(tmp_path, "mx.test", ca, prefix="server")
    assert files.cert.endswith("server.pem") and files.key.endswith("server.key")
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.use_certificate_file(files.cert)
    ctx.use_privatekey_file(files.key)
    ctx.check_privatekey()
    store = crypto.X509Store()
    store.add_cert(crypto.load_certificate(crypto.FILETYPE_PEM, open(ca.cert, "rb").read()))
    leaf = crypto.load_certificate(crypto.FILETYPE_PEM, open(files.cert, "rb").read())
    crypto.X509StoreContext(store, leaf).verify_certificate()


def test_new_ca_made_when_none_given(tmp_path):
    files = make_cert(tmp_path, "solo.test")
    assert (tmp_path / "ca.pem").exists() and files.ca == str(tmp_path / "ca.pem")
