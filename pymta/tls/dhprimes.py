"""The standard Diffie-Hellman primes Exim's tls_dhparam names.

RFC 2409/3526 (``ike1`` ... ``ike18``) and RFC 7919 (``ffdhe2048`` ...) define
their safe primes by one formula, ``p = 2^b - 2^(b-64) - 1 + 2^64 * (floor(2^(b-130)
* c) + X)`` with c = pi (MODP groups) or e (FFDHE groups) and a per-group X, so
they are computed here rather than pasted as hex.  The RFC 5114 primes (ike22
... ike24) and Exim's own ``exim.dev.*`` primes are not available.
"""
from __future__ import annotations

import base64
import textwrap
from functools import cache

from .errors import TLSConfigError

# name -> (bits, constant, X)
_GROUPS = {
    "ike1": (768, "pi", 149686), "ike2": (1024, "pi", 129093),
    "ike5": (1536, "pi", 741804), "ike14": (2048, "pi", 124476),
    "ike15": (3072, "pi", 1690314), "ike16": (4096, "pi", 240904),
    "ike17": (6144, "pi", 929484), "ike18": (8192, "pi", 4743158),
    "ffdhe2048": (2048, "e", 560316), "ffdhe3072": (3072, "e", 2625351),
    "ffdhe4096": (4096, "e", 5736041), "ffdhe6144": (6144, "e", 15705020),
    "ffdhe8192": (8192, "e", 10965728),
}


def _scaled_e(bits: int) -> int:
    """floor(e * 2^bits), exactly (guard bits absorb the truncation of each term)."""
    guard = 64
    one = 1 << (bits + guard)
    total, term, k = 0, one, 0
    while term:
        total += term
        k += 1
        term //= k
    return total >> guard


def _arctan_inv(x: int, one: int) -> int:
    total, power, n, sign = 0, one // x, 1, 1
    while power:
        total += sign * (power // n)
        power //= x * x
        n += 2
        sign = -sign
    return total


def _scaled_pi(bits: int) -> int:
    """floor(pi * 2^bits) by Machin's formula."""
    guard = 64
    one = 1 << (bits + guard)
    pi = 4 * (4 * _arctan_inv(5, one) - _arctan_inv(239, one))
    return pi >> guard


@cache
def named_prime(name: str) -> int:
    """The prime of the standard group ``name`` (Exim's tls_dhparam names)."""
    try:
        bits, const, x = _GROUPS[name]
    except KeyError:
        raise TLSConfigError(f"tls_dhparam: unknown or unsupported DH prime {name!r}") from None
    c = _scaled_pi(bits - 130) if const == "pi" else _scaled_e(bits - 130)
    return (1 << bits) - (1 << (bits - 64)) - 1 + (1 << 64) * (c + x)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_integer(n: int) -> bytes:
    raw = n.to_bytes(n.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_length(len(raw)) + raw


def dh_pem(prime: int, generator: int = 2) -> bytes:
    """PKCS#3 ``DH PARAMETERS`` PEM for ``prime`` and ``generator``.

    Written by hand: cryptography's finite-field DH module is deprecated.
    """
    body = _der_integer(prime) + _der_integer(generator)
    der = b"\x30" + _der_length(len(body)) + body
    b64 = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN DH PARAMETERS-----\n{b64}\n-----END DH PARAMETERS-----\n".encode()


def dh_pem_bits(pem: bytes) -> int:
    """The size in bits of the prime in PKCS#3 PEM ``pem`` (ValueError if malformed)."""
    lines = [ln for ln in pem.decode("ascii", "replace").splitlines()
             if ln and not ln.startswith("-----")]
    der = base64.b64decode("".join(lines))
    i = 1                                    # skip the SEQUENCE tag and its length
    i += 1 + (der[i] & 0x7F if der[i] & 0x80 else 0)
    if der[i] != 0x02:
        raise ValueError("not DH parameters")
    i += 1
    n = der[i]
    if n & 0x80:
        width = n & 0x7F
        n = int.from_bytes(der[i + 1:i + 1 + width], "big")
        i += width
    return int.from_bytes(der[i + 1:i + 1 + n], "big").bit_length()


def named_dh_pem(name: str) -> bytes:
    """PKCS#3 PEM DH parameters (generator 2) for the standard group ``name``."""
    return dh_pem(named_prime(name))
