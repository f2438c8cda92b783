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

A fleet (``tls`` in ``hints_redis_databases``, with tls_resumption_hosts) shares its
keys instead: :class:`SharedTicketKeys` keeps the current keys and the time they were
made in the shared ``tls`` hints database; the first node to find them older than the
period replaces them (atomically, so every node ends up with the same keys), and each
master looks for new keys every :data:`SHARED_POLL` seconds and sets them in its
contexts (:mod:`.ticketkeys`).  While the shared database cannot be reached the node
goes on with the keys it has, and rotates on its own when they are a period old.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Callable, Mapping
from typing import Protocol

from OpenSSL import SSL

from ..clock import now as wall_clock
from ..hints.store import HintsStore
from .ticketkeys import TICKET_KEYS_LENGTH

# Exim/OpenSSL rotate ticket keys hourly.
DEFAULT_PERIOD = 3600.0
#: Seconds between a master's looks at the fleet's shared keys.
SHARED_POLL = 60.0
#: The record of the shared keys in the ``tls`` hints database.
SHARED_RECORD = "server-ticket-keys"
_STAMP = struct.Struct(">d")           # when the keys were made (Unix time)


class Rotatable(Protocol):
    """What :class:`TicketKeyRotation` drives (a :class:`pymta.tls.server.ServerTLS`)."""

    ticket_keys: bytes | None

    def rotate_ticket_keys(self) -> None: ...

    def use_ticket_keys(self, keys: bytes | None) -> None: ...

    def prepare(self, variables: Mapping[str, str] = ...) -> SSL.Context: ...


class SharedTicketKeys:
    """The fleet's current session-ticket keys, kept in the shared ``tls`` database."""

    def __init__(self, store: HintsStore, period: float = DEFAULT_PERIOD,
                 wall: Callable[[], float] = wall_clock) -> None:
        self.store = store
        self.period = period
        self.wall = wall

    def current(self) -> bytes | None:
        """The keys to use now: the stored ones while younger than the period, else new
        ones stored in their place; None when the database cannot be used."""
        now = self.wall()

        def change(old: bytes | None) -> tuple[bytes | None, bytes | None]:
            if old is not None and len(old) == _STAMP.size + TICKET_KEYS_LENGTH:
                made, = _STAMP.unpack_from(old)
                if now - made < self.period:      # a clock behind the maker's: keep them
                    return old[_STAMP.size:], None
            keys = os.urandom(TICKET_KEYS_LENGTH)
            return keys, _STAMP.pack(now) + keys

        keys: bytes | None = self.store.update(SHARED_RECORD, change, None,
                                               ttl=2 * self.period)
        return keys


class TicketKeyRotation:
    """Rebuild a server's contexts (new ticket keys) every ``period`` seconds, or, with
    ``shared``, whenever the fleet's keys change.

    The master calls :meth:`rotate_if_due` from its loop, before forking
    connection handlers; ``now`` comes from the caller's clock.
    """

    def __init__(self, server: Rotatable, now: float, period: float = DEFAULT_PERIOD,
                 variables: Mapping[str, str] | None = None,
                 on_error: Callable[[Exception], None] | None = None,
                 shared: SharedTicketKeys | None = None) -> None:
        self.server = server
        self.period = period
        self.variables = dict(variables or {})
        self.on_error = on_error
        self.shared = shared
        self.generation = 0
        self._last = now
        self._polled = now
        if shared is not None:
            self.server.use_ticket_keys(shared.current())
        self._prepare()

    def _prepare(self) -> None:
        try:
            self.server.prepare(self.variables)
        except Exception as e:  # a bad TLS configuration must not stop the master
            if self.on_error is None:
                raise
            self.on_error(e)

    def rotate_if_due(self, now: float) -> bool:
        """Rotate when the period has passed (or the fleet's keys changed); True when
        it did."""
        if self.shared is not None and now - self._polled >= SHARED_POLL:
            self._polled = now
            keys = self.shared.current()
            if keys is not None:
                if keys == self.server.ticket_keys:
                    return False
                self.server.use_ticket_keys(keys)
                return self._rotated(now)
        if now - self._last < self.period:
            return False
        if self.shared is not None:             # no fleet keys: this node's own, fresh
            self.server.use_ticket_keys(None)
        self.server.rotate_ticket_keys()
        return self._rotated(now)

    def _rotated(self, now: float) -> bool:
        self._prepare()
        self._last = now
        self.generation += 1
        return True
