"""Test certificates generated at test time: a private CA and certificates it signs.

``make_ca()`` and ``make_cert()`` write PEM files and return their paths, so
the files can be named in pymta configurations (``tls_certificate``,
``tls_privatekey``, ``tls_verify_certificates``) as well as used with
:mod:`ssl` contexts in tests.  RSA 2048 keys: fast enough and accepted by
every TLS library default.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from typing import Iterable, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class CertFiles:
    """Paths of one certificate and its key (PEM); ``ca`` is the issuer's certificate."""

    cert: str
    key: str
    ca: str


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, path: str) -> None:
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _write_cert(cert: x509.Certificate, path: str) -> None:
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def make_ca(directory: str | os.PathLike, name: str = "pymta test CA") -> CertFiles:
    """Create a self-signed CA in ``directory`` (ca.pem, ca.key)."""
    directory = os.fspath(directory)
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    paths = CertFiles(os.path.join(directory, "ca.pem"), os.path.join(directory, "ca.key"),
                      os.path.join(directory, "ca.pem"))
    _write_cert(cert, paths.cert)
    _write_key(key, paths.key)
    return paths


def make_cert(directory: str | os.PathLike, hostname: str = "localhost",
              ca: Optional[CertFiles] = None, *, alt_names: Iterable[str] = (),
              client: bool = False, days: int = 30, prefix: Optional[str] = None,
              key_type: str = "rsa") -> CertFiles:
    """Create a certificate for ``hostname`` signed by ``ca`` (a new CA when None).

    ``alt_names`` adds DNS names or IP addresses to subjectAltName (the host
    name and 127.0.0.1 are always included).  ``client`` makes it a client
    certificate.  ``days`` < 0 gives an already expired certificate.  Files are
    ``<prefix>.pem`` and ``<prefix>.key`` (prefix defaults to the host name).
    ``key_type`` "ec" gives a P-256 key instead of RSA.
    """
    directory = os.fspath(directory)
    ca = ca or make_ca(directory)
    with open(ca.cert, "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(ca.key, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    key = _ec_key() if key_type == "ec" else _key()
    sans: list[x509.GeneralName] = []
    for n in [hostname, "127.0.0.1", *alt_names]:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    now = datetime.datetime.now(datetime.timezone.utc)
    if days >= 0:
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)
    else:
        start, end = now + datetime.timedelta(days=days * 2), now + datetime.timedelta(days=days)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    base = os.path.join(directory, prefix or hostname)
    files = CertFiles(base + ".pem", base + ".key", ca.cert)
    _write_cert(cert, files.cert)
    _write_key(key, files.key)
    return files


def server_context(files: CertFiles) -> ssl.SSLContext:
    """An :class:`ssl.SSLContext` for a test server using ``files``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.cert, files.key)
    return ctx


def client_context(ca: Optional[str] = None) -> ssl.SSLContext:
    """A client context trusting only ``ca`` (or verifying nothing when None)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
