"""Certificate fields as Exim presents them: ``${certextract}`` and Distinguished Names.

Formats follow Exim 4.96 (checked against the installed exim4): a DN is its RDNs
in certificate order joined by commas with RFC 4514 escaping (``C=DE,O=Ex\\,
Org,CN=mx.example``); times are ``Jan  5 03:04:05 2026 UTC`` in the configured
time zone (``int`` gives epoch seconds); the serial number is the hex of its DER
content; ``signature`` is space-separated hex bytes; ``subj_altname`` is a tagged
list (``DNS=``, ``MAIL=``, ``URI=``) newline-separated by default.
"""
from __future__ import annotations

import datetime
import functools
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)

from .errors import TLSConfigError

# Short names Exim (GnuTLS build) gives signature algorithms.
_SIG_NAMES = {
    SignatureAlgorithmOID.RSA_WITH_SHA1: "RSA-SHA1",
    SignatureAlgorithmOID.RSA_WITH_SHA224: "RSA-SHA224",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "RSA-SHA256",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "RSA-SHA384",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "RSA-SHA512",
    SignatureAlgorithmOID.RSASSA_PSS: "RSA-PSS",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ECDSA-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224: "ECDSA-SHA224",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ECDSA-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ECDSA-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ECDSA-SHA512",
    SignatureAlgorithmOID.ED25519: "EdDSA-Ed25519",
    SignatureAlgorithmOID.ED448: "EdDSA-Ed448",
}

# RDN type labels accepted as modifiers of subject/issuer.
_RDN_LABELS = {
    "CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "DC": NameOID.DOMAIN_COMPONENT,
    "C": NameOID.COUNTRY_NAME, "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
}


def distinguished_name(name: x509.Name) -> str:
    """``name`` as Exim writes $tls_in_peerdn and certextract subject/issuer."""
    return ",".join(rdn.rfc4514_string() for rdn in name.rdns)


def exim_time(when: datetime.datetime, tz: datetime.tzinfo | None = None) -> str:
    """A certificate time as Exim shows it (``Jan  5 03:04:05 2026 UTC``), in ``tz``."""
    local = when.astimezone(tz or datetime.UTC)
    return local.strftime("%b %e %H:%M:%S %Y ") + (local.tzname() or "")


def _der_serial(n: int) -> str:
    raw = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")
    return raw.hex()


def _join(items: list[str], sep: str) -> str:
    # Exim doubles a separator that occurs inside an element of a list.
    return sep.join(i.replace(sep, sep + sep) for i in items)


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier):  # -> ExtensionType | None
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None


def _modifiers(mods: list[str]) -> tuple[str, list[str]]:
    """Split modifiers into the list separator (``>X``) and the rest.

    Only the one character after ``>`` is the separator (``>;dns`` sets ";" and
    the rest is ignored, as Exim does).
    """
    sep = "\n"
    rest = []
    for m in mods:
        if m.startswith(">") and len(m) > 1:
            sep = m[1]
        elif m.strip():
            rest.append(m.strip())
    return sep, rest


def _name_field(name: x509.Name, mods: list[str]) -> str:
    sep, rest = _modifiers(mods)
    if not rest:
        return distinguished_name(name)
    oid = _RDN_LABELS.get(rest[0].upper())
    if oid is None:
        raise TLSConfigError(f"certextract: unknown RDN type {rest[0]!r}")
    return _join([str(a.value) for a in name.get_attributes_for_oid(oid)], sep)


def _time_field(when: datetime.datetime, mods: list[str],
                tz: datetime.tzinfo | None) -> str:
    if "int" in mods:
        return str(int(when.timestamp()))
    return exim_time(when, tz)


def _subj_altname(cert: x509.Certificate, mods: list[str]) -> str | None:
    sep, rest = _modifiers(mods)
    san = _extension(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    if san is None:
        return None
    tags = {x509.DNSName: "DNS", x509.UniformResourceIdentifier: "URI", x509.RFC822Name: "MAIL"}
    # IP addresses and other name types are not listed (as Exim).
    tagged = [(tags[type(n)], n.value) for n in san if type(n) in tags]
    want = rest[0].upper() if rest else None
    if want is not None:
        return _join([v for tag, v in tagged if tag == want], sep)
    return _join([f"{tag}={v}" for tag, v in tagged], sep)


def _uri_list(cert: x509.Certificate, which: str, mods: list[str]) -> str | None:
    sep, _ = _modifiers(mods)
    uris: list[str] = []
    if which == "ocsp_uri":
        aia = _extension(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
        if aia is None:
            return None
        uris = [d.access_location.value for d in aia
                if d.access_method == AuthorityInformationAccessOID.OCSP]
    else:
        cdp = _extension(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS)
        if cdp is None:
            return None
        uris = [n.value for p in cdp for n in (p.full_name or [])
                if isinstance(n, x509.UniformResourceIdentifier)]
    return _join(uris, sep)


def certextract(field: str, cert: x509.Certificate,
                tz: datetime.tzinfo | None = None) -> str | None:
    """The ``${certextract}`` value of ``field`` (with its comma modifiers), None if absent.

    Raises :class:`TLSConfigError` for an unknown field name.
    """
    parts = field.split(",")
    # A separator modifier may be a space ("> "), so only leading blanks go.
    name, mods = parts[0].strip(), [m.lstrip() for m in parts[1:]]
    getters: dict[str, Callable[[], str | None]] = {
        "version": lambda: str(cert.version.value + 1),
        "serial_number": lambda: _der_serial(cert.serial_number),
        "subject": lambda: _name_field(cert.subject, mods),
        "issuer": lambda: _name_field(cert.issuer, mods),
        "notbefore": lambda: _time_field(cert.not_valid_before_utc, mods, tz),
        "notafter": lambda: _time_field(cert.not_valid_after_utc, mods, tz),
        "sig_algorithm": lambda: _SIG_NAMES.get(cert.signature_algorithm_oid,
                                                cert.signature_algorithm_oid.dotted_string),
        "signature": lambda: " ".join(f"{b:02x}" for b in cert.signature),
        "subj_altname": lambda: _subj_altname(cert, mods),
        "ocsp_uri": lambda: _uri_list(cert, "ocsp_uri", mods),
        "crl_uri": lambda: _uri_list(cert, "crl_uri", mods),
    }
    getter = getters.get(name.lower())
    if getter is None:
        raise TLSConfigError(f"certextract: unrecognised field {name!r}")
    return getter()


@functools.lru_cache(maxsize=16)
def pem_text(cert: x509.Certificate) -> str:
    """The certificate as PEM text (how the spool and $tls_in_peercert keep it).
    Cached: a server writes its own certificate into every TLS message's spool file."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_pem_text(text: str) -> x509.Certificate | None:
    """The certificate in PEM ``text``; None when it is not one."""
    try:
        return x509.load_pem_x509_certificate(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
