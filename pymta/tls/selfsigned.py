"""The self-signed certificate used when tls_certificate is unset (as Exim 4.96 does).

Exim makes a throw-away self-signed certificate in memory when no certificate is
configured, so STARTTLS is offered out of the box.  pymta makes one once and keeps it in
the spool directory (``tls/selfsigned.pem``: certificate and key in one file, mode
0600, owned like the spool directory), so that every process presents the same
certificate and clients that remember it are not alarmed at each connection.  It is
renewed when less than a week of validity is left.
"""
from __future__ import annotations

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .errors import TLSConfigError

FILE_NAME = os.path.join("tls", "selfsigned.pem")
VALID_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=7)


def selfsigned_path(spool_directory: str) -> str:
    return os.path.join(spool_directory, FILE_NAME)


def _still_good(path: str, now: datetime.datetime) -> bool:
    try:
        with open(path, "rb") as f:
            data = f.read()
        cert = x509.load_pem_x509_certificate(data)
        serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError):
        return False
    return cert.not_valid_after_utc - now > RENEW_BEFORE


def make_selfsigned_pem(hostname: str, now: datetime.datetime) -> bytes:
    """A P-256 key and a certificate for ``hostname`` signed by that key, as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))


def ensure_selfsigned(spool_directory: str, hostname: str,
                      now: datetime.datetime | None = None) -> str:
    """The path of a usable self-signed certificate file, made (or renewed) if needed."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    path = selfsigned_path(spool_directory)
    if _still_good(path, now):
        return path
    directory = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        owner = os.stat(spool_directory)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(make_selfsigned_pem(hostname, now))
            f.flush()
            os.fsync(f.fileno())
        if os.geteuid() == 0:
            # Made by a root daemon for processes that run as the spool's owner.
            for p in (directory, tmp):
                os.chown(p, owner.st_uid, owner.st_gid)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise TLSConfigError(f"tls_certificate is unset and the self-signed certificate "
                             f"{path} cannot be made: {e.strerror or e}") from None
    return path
