"""The tls:cert event's hook into certificate verification (client and server).

OpenSSL calls the verify callback for every element of the chain it builds, the
locally trusted CA included, from the top down to the peer's own certificate (depth
0); the hook runs once per depth, as Exim's OpenSSL build raises tls:cert.  A
non-empty answer from the event action refuses the verification, which ends the
handshake.
"""
from __future__ import annotations

from typing import Callable

from cryptography import x509
from OpenSSL import SSL, crypto

from pymta.tls.session import state_of

#: ``hook(certificate, depth)``: the event action's answer ("" accepts)
CertHook = Callable[[x509.Certificate, int], str]


def refused_by_event(conn: SSL.Connection, hook: CertHook | None, cert: crypto.X509,
                     depth: int) -> bool:
    """Run ``hook`` for the chain element at ``depth`` (once per depth and
    connection); True when the event action refused it."""
    if hook is None:
        return False
    state = state_of(conn)
    seen: set[int] = state.extra.setdefault("cert_event_depths", set())
    if depth in seen:
        return False
    seen.add(depth)
    if hook(cert.to_cryptography(), depth):
        state.verify_failed = True
        return True
    return False
