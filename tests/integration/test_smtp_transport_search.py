"""The smtp transport's dns_qualify_single (default true) and dns_search_parents
(default false) for the hosts it names itself (``hosts``, ``fallback_hosts``): the
resolver's search list (PYMTA_DNS_SEARCH, as resolv.conf's "search" line) widens a host
name without dots, and with dns_search_parents a dotted one, as Exim's RES_DEFNAMES and
RES_DNSRCH do.  The host is then named by the name found.  DNS comes from the loopback
server: "relay" and "a.b" have no addresses there; relay.search.test and
a.b.search.test point at the sink."""
from __future__ import annotations

from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.sink import SmtpSink

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
all:
  driver = accept
  transport = remote_smtp
begin transports
remote_smtp:
  driver = smtp
  hosts = HOST
  port = SINK_PORT
  allow_localhost
  OPTIONS
"""

ZONES = {
    "search.test": """
        relay   IN A 127.0.0.1
        a.b     IN A 127.0.0.1
    """,
    "b": "",
}


def _deliver(tmp_path, host: str, options: str = "") -> tuple[int, str]:
    with DnsServer(ZONES) as dns_server, SmtpSink() as sink:
        d = PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": str(sink.port),
                                                  "HOST": host, "OPTIONS": options},
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}",
                             "PYMTA_DNS_SEARCH": "search.test"})
        d.prepare()
        r = d.run("-odi", "-f", "s@test.example", "user@remote.example",
                  input=b"Subject: s\n\nbody\n")
        assert r.returncode == 0, r.stderr
        return len(sink.messages), d.log()


def test_single_component_host_is_qualified(tmp_path):
    count, log = _deliver(tmp_path, "relay")
    assert count == 1, log
    assert "H=relay.search.test [127.0.0.1]" in log


def test_no_dns_qualify_single(tmp_path):
    count, log = _deliver(tmp_path, "relay", "no_dns_qualify_single")
    assert count == 0, log
    assert "== user@remote.example R=all T=remote_smtp defer" in log


def test_dotted_host_not_searched_by_default(tmp_path):
    count, log = _deliver(tmp_path, "a.b")
    assert count == 0, log


def test_dns_search_parents(tmp_path):
    count, log = _deliver(tmp_path, "a.b", "dns_search_parents")
    assert count == 1, log
    assert "H=a.b.search.test [127.0.0.1]" in log
