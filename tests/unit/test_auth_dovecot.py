"""The dovecot authenticator: the auth protocol client alone, and against a real Dovecot
(Debian's dovecot-core) started in a temporary directory with a passwd-file database."""
from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymta.auth.cram_md5 import CramMd5Authenticator
from pymta.auth.dovecot import (
    DovecotAuthClient,
    DovecotAuthenticator,
    DovecotConnection,
    DovecotProtocolError,
)
from pymta.auth.expand_adapter import ContextExpander
from pymta.auth.results import AuthResult, Challenge
from pymta.expand import ExpandContext
from tests.support.dovecot import private_dovecot

HANDSHAKE = (b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tCRAM-MD5\tdictionary\tactive\n"
             b"SPID\t7\nCUID\t1\nCOOKIE\tabc\nDONE\n")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_protocol_client_handshake_and_requests() -> None:
    client = DovecotAuthClient(pid=42)
    assert client.handshake() == b"VERSION\t1\t1\nCPID\t42\n"
    assert client.feed(HANDSHAKE[:20]) == [] and not client.ready
    assert client.feed(HANDSHAKE[20:]) == [] and client.ready
    assert set(client.mechanisms) == {"PLAIN", "CRAM-MD5"}
    rid, line = client.auth("PLAIN", "AGEAYg==", secured=True, local_ip="127.0.0.1",
                            remote_ip="192.0.2.1")
    assert line == (b"AUTH\t1\tPLAIN\tservice=smtp\tsecured\tlip=127.0.0.1\t"
                    b"rip=192.0.2.1\tnologin\tresp=AGEAYg==\n")
    rid2, line = client.auth("CRAM-MD5", None)
    assert (rid, rid2) == (1, 2) and b"resp=" not in line
    assert client.cont(2, "eHg=") == b"CONT\t2\teHg=\n"
    replies = client.feed(b"CONT\t2\tPGE+\nOK\t1\tuser=al\001tice\nFAIL\t2\treason=no\n")
    assert [(r.kind, r.request_id) for r in replies] == [("CONT", 2), ("OK", 1), ("FAIL", 2)]
    assert replies[0].data == "PGE+" and replies[1].params == {"user": "al\tice"}
    with pytest.raises(DovecotProtocolError):
        client.auth("NTLM", None)
    with pytest.raises(DovecotProtocolError):
        client.feed(b"BOGUS\n")


def test_protocol_version_mismatch() -> None:
    with pytest.raises(DovecotProtocolError, match="version"):
        DovecotAuthClient().feed(b"VERSION\t2\t0\n")


def test_unreachable_socket_defers(tmp_path: Path) -> None:
    auth = DovecotAuthenticator("dc", {"public_name": "PLAIN",
                                       "server_socket": str(tmp_path / "none")})
    result = auth.server_exchange(_expander()).start(b64(b"\0alice\0secret"))
    assert result.reply == "435 Unable to authenticate at present"
    assert result.log_message and result.log_message.startswith("dovecot: ")


def _expander() -> ContextExpander:
    return ContextExpander(ExpandContext(variables={"primary_hostname": "mx.example.test"}))


@pytest.fixture(scope="module")
def dovecot_socket() -> Iterator[str]:
    """A private Dovecot auth server; skipped (with the reason) where none can run."""
    with private_dovecot() as path:
        yield path


def _auth(socket_path: str, mech: str) -> DovecotAuthenticator:
    return DovecotAuthenticator(f"dovecot_{mech.lower()}", {
        "public_name": mech, "server_socket": socket_path, "server_set_id": "$auth1"})


_PEERS = itertools.count(1)


def peer(tls: bool = True) -> dict[str, str]:
    """Session facts for a new remote address each time: Dovecot delays further requests
    from an address that failed (its auth penalty), which would slow the tests down."""
    n = next(_PEERS)
    facts = {"sender_host_address": f"192.0.2.{n}", "received_ip_address": "198.51.100.25"}
    if tls:
        facts["tls_in_cipher"] = "TLS1.3:TLS_AES_256_GCM_SHA384:256"
    return facts


def test_real_dovecot_handshake(dovecot_socket: str) -> None:
    conn = DovecotConnection(dovecot_socket, timeout=5)
    try:
        assert {"PLAIN", "LOGIN", "CRAM-MD5"} <= set(conn.client.mechanisms)
    finally:
        conn.close()


def test_real_dovecot_plain(dovecot_socket: str) -> None:
    auth = _auth(dovecot_socket, "PLAIN")
    ok = auth.server_exchange(_expander(), peer()).start(b64(b"\0alice\0secret"))
    assert isinstance(ok, AuthResult) and ok.reply == "235 Authentication succeeded"
    assert ok.auth_vars == ("alice",) and ok.set_id == "alice"
    bad = auth.server_exchange(_expander(), peer()).start(b64(b"\0alice\0wrong"))
    assert bad.reply == "535 Incorrect authentication data" and bad.set_id == "alice"
    # Prompted: Dovecot's empty challenge comes back as "334 ".
    ex = auth.server_exchange(_expander(), peer())
    assert ex.start(None).reply == "334 "
    assert ex.respond(b64(b"\0alice\0secret")).ok


def test_real_dovecot_secured_flag(dovecot_socket: str) -> None:
    """disable_plaintext_auth = no: Dovecot accepts PLAIN only when pymta says the
    connection is secured (TLS, or a local connection)."""
    auth = _auth(dovecot_socket, "PLAIN")
    assert not auth.server_exchange(_expander(), peer(tls=False)).start(b64(b"\0alice\0secret")).ok
    local = {"sender_host_address": "127.0.0.1", "received_ip_address": "127.0.0.1"}
    assert auth.server_exchange(_expander(), local).start(b64(b"\0alice\0secret")).ok


def test_real_dovecot_login_and_cancel(dovecot_socket: str) -> None:
    auth = _auth(dovecot_socket, "LOGIN")
    ex = auth.server_exchange(_expander(), peer())
    assert ex.start(None).reply == "334 VXNlcm5hbWU6"
    assert ex.respond(b64(b"alice")).reply == "334 UGFzc3dvcmQ6"
    assert ex.respond(b64(b"secret")).reply == "235 Authentication succeeded"
    ex = auth.server_exchange(_expander(), peer())
    ex.start(None)
    assert ex.respond("*").reply == "501 Authentication cancelled"
    ex = auth.server_exchange(_expander(), peer())
    ex.start(None)
    assert ex.respond("!!").reply == "501 Invalid base64 data"


def test_real_dovecot_cram_md5_with_pymta_client(dovecot_socket: str) -> None:
    auth = _auth(dovecot_socket, "CRAM-MD5")
    for secret, reply in (("secret", "235"), ("guess", "535")):
        client = CramMd5Authenticator("c", {"client_name": "alice", "client_secret": secret}
                                      ).client_exchange(_expander())
        ex = auth.server_exchange(_expander(), peer())
        step = ex.start(client.initial())
        while isinstance(step, Challenge):
            step = ex.respond(client.challenge(step.reply[4:]))
        assert step.reply.startswith(reply)


def test_real_dovecot_server_condition(dovecot_socket: str) -> None:
    auth = DovecotAuthenticator("dc", {"public_name": "PLAIN", "server_socket": dovecot_socket,
                                       "server_condition": "${if eq{$auth1}{bob}}"})
    assert auth.server_exchange(_expander(), peer()).start(
        b64(b"\0alice\0secret")).reply == "535 Incorrect authentication data"
