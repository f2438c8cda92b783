"""A fleet: two pymta daemons (two spools) sharing their ratelimit and seen hints in one
redis-server (hints_redis_server, hints_redis_databases), and a node that keeps accepting
mail on its local hints while Redis is down, logging the outage once.
"""
from __future__ import annotations

import os
import re
import socket
import ssl
import time
from pathlib import Path

import pytest

from pymta.hints.db import HintsDB
from tests.support.certs import make_ca, make_cert
from tests.support.daemon import PymtaDaemon, run_pymta
from tests.support.redisserver import RedisServer, redis_server  # noqa: F401
from tests.support.smtp import SmtpTestClient

CONF = """\
primary_hostname = NODE.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist local_domains = test.example
hints_redis_server = REDIS
hints_redis_databases = ratelimit : seen
hints_redis_retry_interval = 1s
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt

begin acl

acl_mail:
  deny    senders = *@seen.example
          seen = 1h / key=$sender_address
          message = sender seen before
  accept

acl_rcpt:
  deny    ratelimit = 3 / 1h / per_rcpt / strict / fleet-key
          message = fleet rate $sender_rate
  accept  domains = +local_domains

begin routers

users:
  driver = accept
  domains = +local_domains
  transport = local

begin transports

local:
  driver = appendfile
  file = DIR/mail/$local_part
"""


def _node(tmp_path: Path, name: str, server: RedisServer) -> PymtaDaemon:
    conf = CONF.replace("NODE", name)
    return PymtaDaemon(conf, tmp_path / name, args=["-odq"],
                       macros={"REDIS": server.address}).start()


def _rcpt(d: PymtaDaemon, rcpt: str = "bob@test.example") -> tuple[int, str]:
    with SmtpTestClient(d.port) as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@remote.example>")[0] == 250
        reply = c.cmd(f"RCPT TO:<{rcpt}>")
        c.quit()
    return reply


def test_ratelimit_and_seen_shared_by_two_nodes(tmp_path, redis_server):  # noqa: F811
    redis_server.command("FLUSHALL")
    a = _node(tmp_path, "a", redis_server)
    b = _node(tmp_path, "b", redis_server)
    try:
        codes = [_rcpt(a)[0], _rcpt(a)[0], _rcpt(b)[0]]
        assert codes == [250, 250, 250]
        code, text = _rcpt(b)
        assert (code, text) == (550, "fleet rate 4.0")
        # and node A sees the count node B made
        assert _rcpt(a)[0] == 550
        # the rate lives in Redis, with a TTL of 30 periods; not in either node's LMDB
        assert b"1h/per_rcpt/fleet-key" in redis_server.command(
            "KEYS", "pymta:hints:ratelimit:*")
        ttl = int(redis_server.command("TTL", "pymta:hints:ratelimit:1h/per_rcpt/fleet-key")
                  .strip()[1:])
        assert 29 * 3600 < ttl <= 30 * 3600
        for d in (a, b):
            assert HintsDB(str(d.spool), "ratelimit").items() == []
        # seen: the first MAIL (node A) records the sender, node B finds it
        with SmtpTestClient(a.port) as c:
            c.banner()
            c.ehlo()
            assert c.cmd("MAIL FROM:<s@seen.example>")[0] == 250
        with SmtpTestClient(b.port) as c:
            c.banner()
            c.ehlo()
            assert c.cmd("MAIL FROM:<s@seen.example>") == (550, "sender seen before")
    finally:
        a.stop()
        b.stop()


def test_node_falls_back_to_local_hints_and_logs_outage_once(tmp_path):
    server = RedisServer(str(tmp_path)).start()
    d = _node(tmp_path, "a", server)
    try:
        assert _rcpt(d)[0] == 250
        server.stop()
        # Redis is gone: mail is still accepted, counted in the node's own LMDB file
        for i in range(3):
            started = time.monotonic()
            with SmtpTestClient(d.port) as c:
                code, _ = c.send_message("x@remote.example", "bob@test.example",
                                         b"Subject: outage %d\r\n\r\nbody\r\n" % i)
                assert code == 250
            # no reconnection attempts with pauses hold the client up
            assert time.monotonic() - started < 3.0
            time.sleep(0.4)        # past the 1s retry interval now and then
        log = d.log()
        assert len(re.findall(r"hints Redis server 127\.0\.0\.1:\d+/ unavailable", log)) == 1
        local = dict(HintsDB(str(d.spool), "ratelimit").items())
        assert "1h/per_rcpt/fleet-key" in local
        # the local count is the node's own (Redis had one, the fallback three more)
        code, text = _rcpt(d)
        assert (code, text) == (550, "fleet rate 4.0")
        # Redis back: the next use after the retry interval finds it and says so
        server.start()
        time.sleep(1.2)
        # (the restarted server keeps nothing: the count starts again there)
        assert _rcpt(d)[0] == 250
        d.wait_for_log(r"hints Redis server 127\.0\.0\.1:\d+/ available again")
        assert len(re.findall(r"unavailable", d.log())) == 1
    finally:
        d.stop()
        server.stop()


def test_only_shareable_databases_may_be_named(tmp_path):
    conf = tmp_path / "pymta.conf"
    conf.write_text("hints_redis_server = 127.0.0.1:6379//\n"
                    "hints_redis_databases = ratelimit : retry\n")
    out = run_pymta(["-bV"], conf)
    assert out.returncode == 1
    assert (f"error in configuration file {conf} line 2: hints_redis_databases: \"retry\" "
            "cannot be kept in Redis (only ratelimit, seen, callout, tls; the others are per "
            "node)") in out.stderr
    conf.write_text("hints_redis_databases = seen\n")
    out = run_pymta(["-bV"], conf)
    assert out.returncode == 1 and "hints_redis_server is not" in out.stderr


TLS_CONF = CONF.replace("hints_redis_databases = ratelimit : seen", """\
hints_redis_databases = ratelimit : seen@SHARE_TLS@
tls_certificate = CERT
tls_privatekey = KEY
tls_resumption_hosts = 127.0.0.1
log_selector = +tls_resumption""")


def _starttls_session(port: int, ctx: ssl.SSLContext,
                      session: ssl.SSLSession | None) -> tuple[ssl.SSLSession, bool]:
    """EHLO, STARTTLS offering ``session``, EHLO, QUIT: the session to keep and whether
    the server resumed the one offered."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        f = raw.makefile("rb")

        def reply(stream) -> bytes:
            while True:
                line = stream.readline()
                if line[3:4] != b"-":
                    return line
        reply(f)
        raw.sendall(b"EHLO client.example\r\n")
        reply(f)
        raw.sendall(b"STARTTLS\r\n")
        assert reply(f).startswith(b"220")
        with ctx.wrap_socket(raw, server_hostname="mx.test.example", session=session) as tls:
            g = tls.makefile("rb")
            tls.sendall(b"EHLO client.example\r\n")
            assert reply(g).startswith(b"250")
            tls.sendall(b"QUIT\r\n")
            assert reply(g).startswith(b"221")     # TLS 1.3 tickets have arrived by now
            return tls.session, tls.session_reused


@pytest.mark.parametrize("share", [True, False])
def test_nodes_sharing_tls_hints_resume_each_others_sessions(tmp_path, redis_server,  # noqa: F811
                                                             share):
    redis_server.command("FLUSHALL")
    pki = tmp_path / "pki"
    pki.mkdir()
    cert = make_cert(pki, "mx.test.example", make_ca(pki))
    os.chmod(cert.key, 0o644)          # the daemons run as exim_user
    conf = TLS_CONF.replace("@SHARE_TLS@", " : tls" if share else "")
    nodes = [PymtaDaemon(conf.replace("NODE", name), tmp_path / name, args=["-odq"],
                         macros={"REDIS": redis_server.address, "CERT": cert.cert,
                                 "KEY": cert.key}).start() for name in ("a", "b")]
    ctx = ssl.create_default_context(cafile=cert.ca)
    try:
        session, reused = _starttls_session(nodes[0].port, ctx, None)
        assert not reused
        # node A's own next receiver resumes it either way (keys made before the fork)
        assert _starttls_session(nodes[0].port, ctx, session)[1]
        # node B only when the fleet shares its ticket keys
        assert _starttls_session(nodes[1].port, ctx, session)[1] is share
        keys = redis_server.command("EXISTS", "pymta:hints:tls:server-ticket-keys")
        assert keys.strip() == (b":1" if share else b":0")
    finally:
        for d in nodes:
            d.stop()
