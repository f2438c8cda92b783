"""Session-ticket keys set from outside OpenSSL (pymta/tls/ticketkeys.py) and shared by a
fleet through the ``tls`` hints database (pymta/tls/tickets.py): servers that share keys
resume each other's sessions, servers that do not share them cannot."""
from __future__ import annotations

import pytest
from OpenSSL import SSL

from pymta.hints.db import HintsDB
from pymta.tls.expander import no_expansion
from pymta.tls.server import ServerTLS, ServerTLSOptions
from pymta.tls.session import session_facts
from pymta.tls.ticketkeys import (
    TICKET_KEYS_LENGTH,
    get_ticket_keys,
    set_ticket_keys,
    ticket_keys_settable,
)
from pymta.tls.tickets import SHARED_POLL, SharedTicketKeys, TicketKeyRotation
from tests.support import certs
from tests.support.tlspair import client_factory, handshake


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    return certs.make_cert(d, "mx.example.test", certs.make_ca(d))


def _server(cert, keys: bytes | None = None) -> ServerTLS:
    tls = ServerTLS(ServerTLSOptions(certificate=cert.cert, privatekey=cert.key),
                    no_expansion)
    tls.use_ticket_keys(keys)
    return tls


def _resumes(first: ServerTLS, second: ServerTLS, version: int) -> bool:
    """Does a session ticket that ``first`` issued resume a session with ``second``?"""
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_max_proto_version(version)
    issued = handshake(lambda s: first.connection(s, resumption=True), client_factory(ctx))
    assert issued.ok and not session_facts(issued.server).resumed
    again = handshake(lambda s: second.connection(s, resumption=True),
                      client_factory(ctx, issued.client.get_session()))
    assert again.ok
    return session_facts(again.server).resumed and session_facts(again.client).resumed


def test_keys_set_are_the_keys_used():
    assert ticket_keys_settable() is None
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    own = get_ticket_keys(ctx)
    assert len(own) == TICKET_KEYS_LENGTH
    keys = bytes(range(TICKET_KEYS_LENGTH))
    set_ticket_keys(ctx, keys)
    assert get_ticket_keys(ctx) == keys != own
    with pytest.raises(ValueError, match="80 bytes"):
        set_ticket_keys(ctx, b"short")


@pytest.mark.parametrize("version", [SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION])
def test_servers_with_the_same_keys_resume_each_others_sessions(cert, version):
    keys = b"k" * TICKET_KEYS_LENGTH
    assert _resumes(_server(cert, keys), _server(cert, keys), version)
    # Each server's own random keys (the default): another server's ticket is refused.
    assert not _resumes(_server(cert), _server(cert), version)
    assert not _resumes(_server(cert, keys), _server(cert, b"j" * TICKET_KEYS_LENGTH),
                        version)


class _Wall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_shared_keys_last_a_period_and_are_the_same_for_every_node(tmp_path):
    wall = _Wall(1_000_000.0)
    node_a = SharedTicketKeys(HintsDB(str(tmp_path), "tls"), period=3600, wall=wall)
    node_b = SharedTicketKeys(HintsDB(str(tmp_path), "tls"), period=3600, wall=wall)
    first = node_a.current()
    assert first is not None and len(first) == TICKET_KEYS_LENGTH
    wall.now += 3599
    assert node_b.current() == first == node_a.current()
    wall.now += 1                                  # a period old: the next asker renews
    second = node_b.current()
    assert second is not None and second != first
    assert node_a.current() == second


def test_rotation_follows_the_fleets_keys(tmp_path, cert):
    wall = _Wall(5_000.0)
    store = HintsDB(str(tmp_path), "tls")
    tls = _server(cert)
    rotation = TicketKeyRotation(tls, now=0.0, shared=SharedTicketKeys(store, 3600, wall))
    keys = tls.ticket_keys
    assert keys is not None and get_ticket_keys(tls.prepare()) == keys
    # Another node's server made with the shared keys resumes this one's tickets.
    other = _server(cert, SharedTicketKeys(store, 3600, wall).current())
    assert _resumes(tls, other, SSL.TLS1_3_VERSION)
    assert not rotation.rotate_if_due(SHARED_POLL)     # unchanged: nothing to do
    wall.now += 3600                                   # another node renews them
    renewed = SharedTicketKeys(store, 3600, wall).current()
    assert renewed != keys
    assert not rotation.rotate_if_due(SHARED_POLL + 1)  # not yet looked again
    assert rotation.rotate_if_due(2 * SHARED_POLL)
    assert tls.ticket_keys == renewed == get_ticket_keys(tls.prepare())
    assert rotation.generation == 1
