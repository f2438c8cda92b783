"""Session-ticket keys rotated by the master process.

What OpenSSL offers through pyOpenSSL: each ``SSL_CTX`` makes its own random
ticket-encryption keys when it is created, and encrypts and decrypts tickets
with them.  ``SSL_CTX_set_tlsext_ticket_keys`` and the ticket-key callback are
not reachable (neither pyOpenSSL nor cryptography's bindings export them; the
OpenSSL in cryptography's wheel hides its symbols), so keys cannot be set from
Python.  Instead the keys live in the context: the master builds the server
context before it forks (:meth:`pymta.tls.server.ServerTLS.prepare`), so every
child shares the same keys and a ticket issued by one child resumes in another;
to rotate, the master drops its contexts and builds new ones
(:meth:`TicketKeyRotation.rotate_if_due`) -- children forked afterwards use the
new keys, and a client presenting an old ticket gets a full handshake.  There is
no overlap period (OpenSSL's own keys do not rotate inside one context).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from OpenSSL import SSL

# Exim/OpenSSL rotate ticket keys hourly.
DEFAULT_PERIOD = 3600.0


class Rotatable(Protocol):
    """What :class:`TicketKeyRotation` drives (a :class:`pymta.tls.server.ServerTLS`)."""

    def rotate_ticket_keys(self) -> None: ...

    def prepare(self, variables: Mapping[str, str] = ...) -> SSL.Context: ...


class TicketKeyRotation:
    """Rebuild a server's contexts (new ticket keys) every ``period`` seconds.

    The master calls :meth:`rotate_if_due` from its loop, before forking
    connection handlers; ``now`` comes from the caller's clock.
    """

    def __init__(self, server: Rotatable, now: float, period: float = DEFAULT_PERIOD,
                 variables: Mapping[str, str] | None = None,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.server = server
        self.period = period
        self.variables = dict(variables or {})
        self.on_error = on_error
        self.generation = 0
        self._last = now
        self._prepare()

    def _prepare(self) -> None:
        try:
            self.server.prepare(self.variables)
        except Exception as e:  # a bad TLS configuration must not stop the master
            if self.on_error is None:
                raise
            self.on_error(e)

    def rotate_if_due(self, now: float) -> bool:
        """Rotate when the period has passed; True when it did."""
        if now - self._last < self.period:
            return False
        self.server.rotate_ticket_keys()
        self._prepare()
        self._last = now
        self.generation += 1
        return True
