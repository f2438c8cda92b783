"""The redis lookup and ${quote_redis:} against a real redis-server: -be expansions (reply
formatting, server failover, deferral) and a redirect router whose data comes from Redis.

Exim 4.96 from Debian is built without the redis lookup, so the expected values are the
behaviour Exim's manual and its lookup describe, not an oracle run.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import run_pymta
from tests.support.ports import free_port
from tests.support.redisserver import RedisServer, redis_server  # noqa: F401

CONF = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = DIR/spool
log_file_path = DIR/spool/log/%slog
keep_environment =
redis_servers = REDIS
domainlist local_domains = test.example

begin routers

aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup redis{hget aliases ${quote_redis:$local_part}}}

users:
  driver = accept
  domains = +local_domains
  local_parts = bob : carol
  transport = local

begin transports

local:
  driver = appendfile
  file = DIR/mail/$local_part
"""


@pytest.fixture
def conf(tmp_path: Path, redis_server: RedisServer) -> tuple[Path, dict[str, str]]:  # noqa: F811
    path = tmp_path / "pymta.conf"
    path.write_text(CONF)
    return path, {"DIR": str(tmp_path), "REDIS": redis_server.address.replace(":", "::")}


def be(conf: tuple[Path, dict[str, str]], text: str) -> tuple[int, str]:
    out = run_pymta(["-be", text], conf[0], macros=conf[1])
    return out.returncode, (out.stdout + out.stderr).rstrip("\n")


def test_quote_redis_and_set_get(conf):
    assert be(conf, r"${quote_redis:a b\\c	d}") == (0, "a\\ b\\\\c\\\td")
    assert be(conf, r"${quote_redis:plain}") == (0, "plain")
    # the quoted value is one argument of SET, back as it was
    assert be(conf, "${lookup redis{set rk1 ${quote_redis:hello  wide\\\\world}}}") == (0, "OK")
    assert be(conf, "${lookup redis{get rk1}}") == (0, "hello  wide\\world")


def test_reply_formatting(conf):
    # nil: the lookup succeeds with an empty value (as Exim's does)
    assert be(conf, "${lookup redis{get no-such-key}{found<$value>}{missing}}") == \
        (0, "found<>")
    # a top-level integer is true or false
    assert be(conf, "${lookup redis{exists no-such-key}}") == (0, "false")
    assert be(conf, "${lookup redis{incr rcounter}}") == (0, "true")
    # arrays: one element a line, integers in decimal, one nested level (whose first
    # element gets a second newline: Exim adds one per array and one per element)
    be(conf, "${lookup redis{del rlist}}")
    assert be(conf, "${lookup redis{rpush rlist a b}}") == (0, "true")
    assert be(conf, "${lookup redis{lrange rlist 0 -1}}") == (0, "a\nb")
    assert be(conf, r"${lookup redis{eval ${quote_redis:return \{7,'x',\{8,'y'\}\}} 0}}") == \
        (0, "7\nx\n\n8\ny")
    # an empty array is "not found"
    assert be(conf, "${lookup redis{lrange no-such-list 0 -1}{yes}{no}}") == (0, "no")


def test_error_reply_defers(conf):
    _, text = be(conf, "${lookup redis{no-such-command x}}")
    assert text.startswith('Failed: lookup of "no-such-command x" gave DEFER: '
                           "REDIS: lookup result failed: unknown command")
    # the defer can be caught like any other in an expansion
    assert be(conf, "${if eq{${lookup redis{no-such-command}}}{}{a}{b}}")[1].startswith(
        "Failed: lookup of")


def test_servers_option_failover_and_all_down(conf, redis_server):  # noqa: F811
    dead = f"127.0.0.1::{free_port()}//"
    live = redis_server.address.replace(":", "::")
    be(conf, "${lookup redis{set rk2 v2}}")
    # the first server cannot be reached: the next one answers
    assert be(conf, f"${{lookup redis,servers={dead}:{live}{{get rk2}}}}") == (0, "v2")
    # a bare host (host:port) takes that host's item of redis_servers
    host = f"127.0.0.1::{redis_server.port}"
    assert be(conf, f"${{lookup redis,servers={host}{{get rk2}}}}") == (0, "v2")
    _, text = be(conf, "${lookup redis,servers=192.0.2.9{get rk2}}")
    assert 'Redis server "192.0.2.9" not found in redis_servers' in text
    # no server answers: the lookup defers
    _, text = be(conf, f"${{lookup redis,servers={dead}{{get rk2}}}}")
    assert text.startswith("Failed: ") and "gave DEFER: REDIS: query failed on" in text
    assert "Connection refused" in text


def test_database_number_selects(conf, redis_server):  # noqa: F811
    db3 = f"127.0.0.1::{redis_server.port}/3/"
    assert be(conf, f"${{lookup redis,servers={db3}{{set rk3 in-db3}}}}") == (0, "OK")
    assert be(conf, f"${{lookup redis,servers={db3}{{get rk3}}}}") == (0, "in-db3")
    assert be(conf, "${lookup redis{get rk3}{yes:$value}{no}}") == (0, "yes:")


def test_router_data_from_redis(conf, redis_server):  # noqa: F811
    redis_server.command("HSET", "aliases", "postmaster", "bob@test.example",
                         "sales", "carol@test.example")
    out = run_pymta(["-bt", "postmaster@test.example"], conf[0], macros=conf[1])
    assert out.returncode == 0, out.stderr
    assert "bob@test.example" in out.stdout and "<-- postmaster@test.example" in out.stdout
    assert "router = users, transport = local" in out.stdout
    out = run_pymta(["-bt", "sales@test.example"], conf[0], macros=conf[1])
    assert "carol@test.example" in out.stdout, out.stdout + out.stderr
    # no alias (nil): the redirect router declines and the next one routes
    out = run_pymta(["-bt", "bob@test.example"], conf[0], macros=conf[1])
    assert out.returncode == 0 and "router = users" in out.stdout


def test_unix_socket_server(conf, tmp_path):
    server = RedisServer(str(tmp_path), unix_socket=True).start()
    try:
        sock = f"({server.socket})//"
        assert be(conf, f"${{lookup redis,servers={sock}{{set rk4 via-socket}}}}") == (0, "OK")
        assert be(conf, f"${{lookup redis,servers={sock}{{get rk4}}}}") == (0, "via-socket")
    finally:
        server.stop()
