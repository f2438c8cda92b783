"""The size of the Diffie-Hellman prime a server used, for the smtp transport's
``tls_dh_min_bits``.

OpenSSL tells it with ``SSL_get_peer_tmp_key`` (``SSL_ctrl`` with
``SSL_CTRL_GET_PEER_TMP_KEY``), which the bindings do not offer; :mod:`.hidden` finds
``SSL_ctrl``.  Only a finite-field DH key counts: an elliptic-curve exchange (ECDHE,
X25519) has no prime, and TLS 1.3's finite-field groups are named ones.
"""
from __future__ import annotations

from cryptography.hazmat.bindings.openssl.binding import Binding
from OpenSSL import SSL

from .hidden import hidden_function

_SSL_CTRL_GET_PEER_TMP_KEY = 109
_SSL_CTRL_TYPE = "long (*)(SSL *, int, long, void *)"


def peer_dh_bits(conn: SSL.Connection) -> int | None:
    """Bits of the server's DH prime in this (client) connection's handshake; None
    when the key exchange was not finite-field Diffie-Hellman.  HiddenFunctionUnavailable
    when OpenSSL's SSL_ctrl cannot be reached."""
    ctrl = hidden_function("SSL_ctrl", _SSL_CTRL_TYPE)
    ffi, lib = Binding.ffi, Binding.lib
    key = ffi.new("EVP_PKEY **")
    if ctrl(conn._ssl, _SSL_CTRL_GET_PEER_TMP_KEY, 0, key) != 1 or key[0] == ffi.NULL:
        return None
    try:
        if lib.EVP_PKEY_id(key[0]) != lib.EVP_PKEY_DH:
            return None
        bits: int = lib.EVP_PKEY_bits(key[0])
        return bits
    finally:
        lib.EVP_PKEY_free(key[0])
