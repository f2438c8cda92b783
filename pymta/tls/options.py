"""Context settings shared by server and client: openssl_options, DH, EC curves, trust.

Each function applies one Exim option to a pyOpenSSL :class:`SSL.Context` and
raises :class:`TLSConfigError` with the option's name for a bad value.
"""
from __future__ import annotations

import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL, crypto

from .dhprimes import dh_pem_bits, named_dh_pem
from .errors import TLSConfigError

# Exim's default openssl_options.
DEFAULT_OPENSSL_OPTIONS = "+no_sslv2 +no_sslv3 +single_dh_use +no_ticket +no_renegotiation"

# Names OpenSSL no longer defines (their flags are 0 since OpenSSL 1.1); accepted so
# that old configurations still load, as Exim does.
_OBSOLETE = frozenset({
    "microsoft_sess_id_bug", "netscape_challenge_bug", "netscape_reuse_cipher_change_bug",
    "sslref2_reuse_cert_type_bug", "microsoft_big_sslv3_buffer", "msie_sslv2_rsa_padding",
    "ssleay_080_client_dh_bug", "tls_d5_bug", "tls_block_padding_bug", "single_dh_use",
    "single_ecdh_use", "ephemeral_rsa", "no_sslv2", "netscape_ca_dn_bug",
    "netscape_demo_cipher_change_bug", "pkcs1_check_1", "pkcs1_check_2",
    "safari_ecdhe_ecdsa_bug",
})

# Exim option names (OpenSSL's SSL_OP_ names, lower case, without the prefix).
_NAMES = ("all", "allow_unsafe_legacy_renegotiation", "cipher_server_preference",
          "dont_insert_empty_fragments", "ignore_unexpected_eof", "legacy_server_connect",
          "no_compression", "no_renegotiation", "no_session_resumption_on_renegotiation",
          "no_sslv3", "no_ticket", "no_tlsv1", "no_tlsv1_1", "no_tlsv1_2", "no_tlsv1_3",
          "prioritize_chacha", "no_anti_replay", "no_encrypt_then_mac",
          "tls_rollback_bug")

# Flags pyOpenSSL does not export, with their OpenSSL values (ssl.h).
_EXTRA_FLAGS = {
    "allow_unsafe_legacy_renegotiation": 0x00040000,
    "no_session_resumption_on_renegotiation": 0x00010000,
    "prioritize_chacha": 0x00200000,
    "no_anti_replay": 0x01000000,
    "no_encrypt_then_mac": 0x00080000,
}


def openssl_option_flag(name: str) -> int:
    """The OpenSSL flag for one Exim openssl_options name (0 for obsolete names)."""
    if name in _OBSOLETE:
        return 0
    if name in _EXTRA_FLAGS:
        return _EXTRA_FLAGS[name]
    if name in _NAMES:
        attr = "OP_" + name.upper().replace("SSLV", "SSLv").replace("TLSV", "TLSv")
        value = getattr(SSL, attr, None)
        if value is not None:
            return int(value)
    raise TLSConfigError(f"openssl_options: unknown option {name!r}")


def parse_openssl_options(text: str | None) -> int:
    """Exim's openssl_options: space-separated ``+name``/``-name`` items applied to 0.

    An unset option means Exim's default.  ``-`` items clear bits that earlier
    items (or ``+all``) set.
    """
    if text is None:
        text = DEFAULT_OPENSSL_OPTIONS
    result = 0
    for item in text.split():
        if item[0] not in "+-" or len(item) < 2:
            raise TLSConfigError(f"openssl_options: {item!r} must start with + or -")
        flag = openssl_option_flag(item[1:].lower())
        result = result | flag if item[0] == "+" else result & ~flag
    return result


def apply_dhparam(ctx: SSL.Context, value: str | None, max_bits: int = 0) -> None:
    """tls_dhparam: ``none``, an absolute file name (PKCS#3 PEM) or a standard prime's name.

    Unset, empty or ``default`` leaves OpenSSL's own DH group choice (OpenSSL 3 picks
    a group matching the certificate's strength).  A file prime larger than
    ``max_bits`` (tls_dh_max_bits, when non-zero) is ignored, as Exim does.
    """
    if value is None or value in ("", "default", "none"):
        return
    if value.startswith("/"):
        if not os.path.isfile(value):
            raise TLSConfigError(f"tls_dhparam: cannot open {value}")
        with open(value, "rb") as f:
            pem = f.read()
    else:
        pem = named_dh_pem(value)
    if _dh_bits(pem) > max_bits > 0:
        return
    _load_dh_pem(ctx, pem)


def _dh_bits(pem: bytes) -> int:
    try:
        return dh_pem_bits(pem)
    except (ValueError, IndexError):
        raise TLSConfigError("tls_dhparam: the file holds no DH parameters") from None


def _load_dh_pem(ctx: SSL.Context, pem: bytes) -> None:
    # pyOpenSSL only loads DH parameters from a file.
    with tempfile.NamedTemporaryFile(suffix=".pem") as tmp:
        tmp.write(pem)
        tmp.flush()
        try:
            ctx.load_tmp_dh(tmp.name)
        except SSL.Error as e:
            raise TLSConfigError(f"tls_dhparam: cannot use DH parameters: {e}") from None


# tls_eccurve names (OpenSSL's and NIST's; Exim's spec mentions "P-512" for P-521).
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "prime256v1": ec.SECP256R1, "secp256r1": ec.SECP256R1, "P-256": ec.SECP256R1,
    "secp384r1": ec.SECP384R1, "P-384": ec.SECP384R1,
    "secp521r1": ec.SECP521R1, "P-521": ec.SECP521R1, "P-512": ec.SECP521R1,
}


def apply_eccurve(ctx: SSL.Context, value: str | None) -> None:
    """tls_eccurve: ``auto`` (or unset) lets OpenSSL choose; otherwise one named curve."""
    if value is None or value == "auto":
        return
    if value == "":
        raise TLSConfigError("tls_eccurve: an empty value (no EC curves) is not supported")
    curve = _CURVES.get(value)
    if curve is None:
        raise TLSConfigError(f"tls_eccurve: unknown or unsupported curve {value!r}")
    ctx.set_tmp_ecdh(curve())


def apply_verify_certificates(ctx: SSL.Context, value: str | None,
                              option: str = "tls_verify_certificates") -> None:
    """Trust anchors: ``system``, a PEM file or a hashed directory (OpenSSL adds the
    system store as well when a file or directory is named, as Exim notes)."""
    if value is None or value == "":
        return
    ctx.set_default_verify_paths()
    if value == "system":
        return
    try:
        if os.path.isdir(value):
            ctx.load_verify_locations(None, value)
        elif os.path.isfile(value):
            ctx.load_verify_locations(value)
        else:
            raise TLSConfigError(f"{option}: cannot open {value}")
    except SSL.Error as e:
        raise TLSConfigError(f"{option}: cannot load {value}: {e}") from None


def apply_crl(ctx: SSL.Context, value: str | None) -> None:
    """tls_crl: a PEM file of CRLs (or a directory of them); enables CRL checks on the chain."""
    if not value:
        return
    paths = ([os.path.join(value, n) for n in sorted(os.listdir(value))]
             if os.path.isdir(value) else [value])
    store = ctx.get_cert_store()
    assert store is not None
    count = 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise TLSConfigError(f"tls_crl: cannot open {path}: {e.strerror}") from None
        for block in _pem_blocks(data, b"X509 CRL"):
            try:
                store.add_crl(x509.load_pem_x509_crl(block))
            except ValueError as e:
                raise TLSConfigError(f"tls_crl: bad CRL in {path}: {e}") from None
            count += 1
    if count:
        store.set_flags(crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL)


def _pem_blocks(data: bytes, label: bytes) -> list[bytes]:
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks = []
    start = data.find(begin)
    while start >= 0:
        stop = data.find(end, start)
        if stop < 0:
            break
        blocks.append(data[start:stop + len(end)] + b"\n")
        start = data.find(begin, stop)
    return blocks


def load_pem_certificates(path: str) -> list[x509.Certificate]:
    """All certificates in a PEM file (a chain file or a CA bundle)."""
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificates(f.read())
