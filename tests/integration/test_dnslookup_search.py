"""The dnslookup router's qualify_single (default true) and search_parents (default
false): the resolver's search list (here PYMTA_DNS_SEARCH, as resolv.conf's "search"
line would give it) widens a domain without dots, and with search_parents a dotted
one; the address is then routed again with the full domain, as in Exim.  DNS comes from
the loopback server: "short" and "b" exist there but take no mail; short.search.test
and a.b.search.test have MX records pointing at the sink."""
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
dnslookup:
  driver = dnslookup
  transport = remote_smtp
  self = send
  OPTIONS
  no_more
begin transports
remote_smtp:
  driver = smtp
  port = SINK_PORT
  allow_localhost
"""

ZONES = {
    "search.test": """
        short   IN MX 10 mx
        a.b     IN MX 10 mx
        mx      IN A 127.0.0.1
    """,
    "short": "",
    "b": "",
}


def _deliver(tmp_path, rcpt: str, options: str = "") -> tuple[list[str], str]:
    with DnsServer(ZONES) as dns_server, SmtpSink() as sink:
        d = PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": str(sink.port),
                                                  "OPTIONS": options},
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}",
                             "PYMTA_DNS_SEARCH": "search.test"})
        d.prepare()
        r = d.run("-odi", "-f", "s@test.example", rcpt, input=b"Subject: s\n\nbody\n")
        assert r.returncode == 0, r.stderr
        return [x for m in sink.messages for x in m.recipients], d.log()


def test_single_component_domain_is_qualified(tmp_path):
    got, log = _deliver(tmp_path, "user@short")
    assert got == ["user@short.search.test"], log
    assert "=> user@short.search.test <user@short> R=dnslookup T=remote_smtp" in log


def test_no_qualify_single(tmp_path):
    got, log = _deliver(tmp_path, "user@short", "no_qualify_single")
    assert got == []
    assert "** user@short: Unrouteable address" in log


def test_dotted_domain_not_searched_by_default(tmp_path):
    got, log = _deliver(tmp_path, "user@a.b")
    assert got == []
    assert "** user@a.b: Unrouteable address" in log


def test_search_parents(tmp_path):
    got, log = _deliver(tmp_path, "user@a.b", "search_parents")
    assert got == ["user@a.b.search.test"], log
