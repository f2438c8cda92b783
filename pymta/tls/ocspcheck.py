"""Checking a stapled OCSP response (hosts_request_ocsp / hosts_require_ocsp).

The response must be successful, be for the server's certificate, be signed by
its issuer or by a responder certificate the issuer gave the OCSP-signing
purpose, say "good", and be current.  The result is the $tls_out_ocsp code.
"""
from __future__ import annotations

import datetime
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from .session import OCSPStatus

# Allowed clock difference between us and the responder.
_SKEW = datetime.timedelta(minutes=5)


def _signed_by(data: bytes, signature: bytes, hash_algorithm, signer: x509.Certificate) -> bool:
    key = signer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True


def find_issuer(cert: x509.Certificate,
                candidates: Iterable[x509.Certificate]) -> x509.Certificate | None:
    """The certificate among ``candidates`` that signed ``cert``."""
    for c in candidates:
        if c.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(c)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return c
    return None


def _is_ocsp_signer(responder: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        responder.verify_directly_issued_by(issuer)
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in eku


def check_ocsp_response(der: bytes, cert: x509.Certificate,
                        issuers: Iterable[x509.Certificate],
                        now: datetime.datetime | None = None) -> OCSPStatus:
    """The $tls_out_ocsp code for stapled response ``der`` about ``cert``.

    NOT_VERIFIED when the response cannot be checked (no issuer known, no
    signature by an acceptable signer); FAILED when it is malformed, for another
    certificate, not "good" or out of date; VERIFIED otherwise.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    if not der:
        return OCSPStatus.NO_RESPONSE
    try:
        resp = ocsp.load_der_ocsp_response(der)
    except ValueError:
        return OCSPStatus.FAILED
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OCSPStatus.FAILED
    issuer = find_issuer(cert, issuers)
    if issuer is None:
        return OCSPStatus.NOT_VERIFIED
    if not _signed_by(resp.tbs_response_bytes, resp.signature,
                      resp.signature_hash_algorithm, issuer):
        delegated = [c for c in resp.certificates if _is_ocsp_signer(c, issuer)]
        if not any(_signed_by(resp.tbs_response_bytes, resp.signature,
                              resp.signature_hash_algorithm, c) for c in delegated):
            return OCSPStatus.NOT_VERIFIED
    for single in resp.responses:
        if single.serial_number != cert.serial_number:
            continue
        if single.certificate_status != ocsp.OCSPCertStatus.GOOD:
            return OCSPStatus.FAILED
        if single.this_update_utc > now + _SKEW:
            return OCSPStatus.FAILED
        if single.next_update_utc is not None and single.next_update_utc < now - _SKEW:
            return OCSPStatus.FAILED
        return OCSPStatus.VERIFIED
    return OCSPStatus.FAILED
