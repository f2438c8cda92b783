"""Hints databases kept in Redis (pymta.hints.redisstore) against a private redis-server:
the same operations as LMDB, TTLs, atomic updates from several forked processes, the
choice of backend from the configuration, and the fallback to LMDB during an outage.
"""
from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from pymta.config.model import ConfigError
from pymta.hints.callout import CacheExpiry, CalloutCache
from pymta.hints.db import HintsDB
from pymta.hints.ratelimit import RatelimitDB, RateRecord
from pymta.hints.redisstore import MARKER, RedisHints, RedisHintsDB
from pymta.hints.seen import SeenDB
from pymta.hints.store import SharedSettings, open_hints, settings_from, use_shared
from pymta.tls.client import ClientTLS, ClientTLSOptions
from pymta.tls.expander import no_expansion
from pymta.tls.server import ServerTLS, ServerTLSOptions
from pymta.tls.session import session_facts
from pymta.transports.smtp_tls import SESSION_LIFETIME, SessionStore
from tests.support import certs
from tests.support.ports import free_port
from tests.support.recording_log import RecordingLog
from tests.support.redisserver import RedisServer, redis_server  # noqa: F401
from tests.support.tlspair import handshake


def _shared(address: str, log: RecordingLog | None = None,
            retry: float = 30.0) -> RedisHints:
    return RedisHints.from_settings(
        SharedSettings(address, frozenset({"ratelimit", "seen", "callout", "tls"}), retry),
        log)


@pytest.fixture
def store(tmp_path, redis_server):  # noqa: F811
    redis_server.command("FLUSHALL")
    return _shared(redis_server.address)(str(tmp_path), "seen", None)


@pytest.fixture(autouse=True)
def all_local_afterwards():
    yield
    use_shared(frozenset(), None)


def test_settings_from_options():
    main = SimpleNamespace(hints_redis_server="127.0.0.1:6379//",
                           hints_redis_databases="ratelimit : seen",
                           hints_redis_retry_interval=5)
    assert settings_from(main) == SharedSettings("127.0.0.1:6379//",
                                                 frozenset({"ratelimit", "seen"}), 5.0)
    assert settings_from(SimpleNamespace()) is None
    with pytest.raises(ConfigError, match='"retry" cannot be kept in Redis'):
        settings_from(SimpleNamespace(hints_redis_server="127.0.0.1:6379//",
                                      hints_redis_databases="ratelimit : retry"))
    with pytest.raises(ConfigError, match="hints_redis_server is not"):
        settings_from(SimpleNamespace(hints_redis_databases="seen"))
    with pytest.raises(ConfigError, match="hints_redis_server: incomplete Redis server"):
        RedisHints.from_settings(SharedSettings("127.0.0.1", frozenset({"seen"}), 1), None)


def test_open_hints_follows_the_configured_choice(tmp_path, redis_server):  # noqa: F811
    assert isinstance(open_hints(str(tmp_path), "seen"), HintsDB)
    use_shared(frozenset({"seen"}), _shared(redis_server.address))
    assert isinstance(open_hints(str(tmp_path), "seen"), RedisHintsDB)
    assert isinstance(open_hints(str(tmp_path), "ratelimit"), HintsDB)
    assert isinstance(SeenDB(str(tmp_path)).db, RedisHintsDB)
    assert isinstance(RatelimitDB(str(tmp_path)).db, HintsDB)


def test_operations_as_in_lmdb(store, redis_server):  # noqa: F811
    assert store.get("k1") is None
    store.put("k1", b"\x00\xffone")
    store.put("k2", b"two", ttl=100)
    assert store.get("k1") == b"\x00\xffone"
    assert store.items() == [("k1", b"\x00\xffone"), ("k2", b"two")]
    assert redis_server.command("TTL", "pymta:hints:seen:k1") == b":-1\r\n"
    assert 98 <= int(redis_server.command("TTL", "pymta:hints:seen:k2")[1:]) <= 100
    assert store.delete("k1") is True and store.delete("k1") is False
    assert store.update("k3", lambda v: (v, b"new"), "default", ttl=50) is None
    assert store.update("k3", lambda v: (v, None), "default") == b"new"
    store.clear()
    assert store.items() == []
    # nothing went to the local file
    assert HintsDB(store.local.spool_dir, "seen").items() == []


def test_updates_from_forked_processes_are_not_lost(store):
    def add_one(v: bytes | None) -> tuple[int, bytes]:
        n = int(v or b"0") + 1
        return n, str(n).encode()
    store.update("counter", add_one, 0)       # the parent's connection, before fork
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                for _ in range(50):
                    store.update("counter", add_one, 0)
                os._exit(0)
            except BaseException:
                os._exit(1)
        pids.append(pid)
    assert [os.waitpid(p, 0)[1] for p in pids] == [0] * 4
    assert store.get("counter") == b"201"


def test_ratelimit_seen_and_callout_records_expire(tmp_path, redis_server):  # noqa: F811
    redis_server.command("FLUSHALL")
    use_shared(frozenset({"ratelimit", "seen", "callout"}), _shared(redis_server.address))
    rl = RatelimitDB(str(tmp_path))
    rl.update("1m/per_mail/x", lambda rec: (1.0, RateRecord(1000.0, 1.0)), 1.0, ttl=1800)
    assert rl.get("1m/per_mail/x") == RateRecord(1000.0, 1.0)
    assert 1790 < int(redis_server.command("TTL", "pymta:hints:ratelimit:1m/per_mail/x")[1:])
    SeenDB(str(tmp_path)).put("client", 12345)
    assert SeenDB(str(tmp_path)).get("client") == 12345
    assert int(redis_server.command("TTL", "pymta:hints:seen:client")[1:]) > 29 * 86400
    cache = CalloutCache(open_hints(str(tmp_path), "callout"), CacheExpiry(negative=600))
    cache.put_address("A:u@x.example", "reject", 1000.0)
    assert cache.address("A:u@x.example", 1100.0) == "reject"
    assert 590 < int(redis_server.command("TTL", "pymta:hints:callout:A:u@x.example")[1:]) <= 600


def test_outage_falls_back_to_lmdb_and_is_logged_once_per_node(tmp_path):
    server = RedisServer(str(tmp_path), free_port())
    log = RecordingLog()
    first = _shared(server.address, log, retry=0.0)(str(tmp_path), "ratelimit", None)
    other = _shared(server.address, log, retry=0.0)(str(tmp_path), "ratelimit", None)
    (tmp_path / "db").mkdir()
    # no server: reads and writes use the local LMDB file at once (no reconnection
    # attempts with pauses); one line for the node
    started = time.monotonic()
    first.put("k", b"local")
    assert other.get("k") == b"local"
    assert other.update("k", lambda v: (v, b"again"), None) == b"local"
    assert time.monotonic() - started < 2.0
    assert HintsDB(str(tmp_path), "ratelimit").get("k") == b"again"
    assert [t for _, t in log.lines] == [
        f"hints Redis server 127.0.0.1:{server.port}/ unavailable (Error 111 connecting to "
        f"127.0.0.1:{server.port}. Connection refused.): using this node's local hints "
        "databases until it is back"]
    assert (tmp_path / "db" / MARKER).exists()
    server.start()
    try:
        assert other.get("k") is None            # Redis's (empty) view again
        assert log.lines[-1][1] == f"hints Redis server 127.0.0.1:{server.port}/ available again"
        assert not (tmp_path / "db" / MARKER).exists()
        first.put("k", b"shared")
        assert other.get("k") == b"shared" and len(log.lines) == 2
    finally:
        server.stop()


def test_retry_interval_keeps_a_process_off_redis(tmp_path, redis_server):  # noqa: F811
    shared = _shared(redis_server.address, RecordingLog(), retry=3600)
    db = shared(str(tmp_path), "seen", None)
    shared.failed(str(tmp_path), OSError("test outage"))
    db.put("k", b"v")                  # within the interval: local, Redis not tried
    assert redis_server.command("EXISTS", "pymta:hints:seen:k") == b":0\r\n"
    assert HintsDB(str(tmp_path), "seen").get("k") == b"v"


def test_tls_session_saved_on_one_node_resumes_on_another(tmp_path, redis_server):  # noqa: F811
    redis_server.command("FLUSHALL")
    use_shared(frozenset({"tls"}), _shared(redis_server.address))
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = certs.make_ca(pki)
    mx = certs.make_cert(pki, "mx.example.test", ca)
    server = ServerTLS(ServerTLSOptions(certificate=mx.cert, privatekey=mx.key,
                                        verify_certificates=ca.cert), no_expansion)
    client = ClientTLS(ClientTLSOptions(verify_certificates=ca.cert), no_expansion)
    key = "remote_smtp:[192.0.2.1]:25:mx.example.test"
    node_a = SessionStore(str(tmp_path / "a"), "remote_smtp")
    node_b = SessionStore(str(tmp_path / "b"), "remote_smtp")
    first = handshake(lambda s: server.connection(s, resumption=True),
                      lambda s: client.connection(s, "mx.example.test"))
    assert first.ok and not session_facts(first.client).resumed
    node_a.save(key, first.client)
    session = node_b.load(key, client.context_for())
    assert session is not None
    second = handshake(lambda s: server.connection(s, resumption=True),
                       lambda s: client.connection(s, "mx.example.test", session=session))
    assert second.ok and session_facts(second.client).resumed
    ttl = int(redis_server.command("TTL", f"pymta:hints:tls:{key}")[1:])
    assert SESSION_LIFETIME - 5 < ttl <= SESSION_LIFETIME
