"""The resolver options of the main section (dns_retrans, dns_retry, dns_use_edns0,
dns_ipv4_lookup), seen from a real DNS server on loopback: how often a silent
server is asked, whether queries carry EDNS0, and which address records -bt uses."""
from __future__ import annotations

import time

from tests.support.daemon import run_pymta
from tests.support.dns import DnsServer

ZONE = """
    host     IN A    192.0.2.10
    dual     IN A    192.0.2.20
    dual     IN AAAA 2001:db8::20
    v4only   IN MX 10 dual
    both     IN MX 10 dual
"""

ROUTERS = """
begin routers
remote:
  driver = dnslookup
  transport = remote_smtp
begin transports
remote_smtp:
  driver = smtp
"""


def _conf(tmp_path, main: str) -> str:
    path = tmp_path / "configure"
    path.write_text("primary_hostname = mx.test.example\nkeep_environment =\n"
                    f"spool_directory = {tmp_path}/spool\n" + main + ROUTERS)
    return str(path)


def _be(conf: str, dns_server: DnsServer, text: str):
    return run_pymta(["-be", text], conf, env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})


def _asked(dns_server: DnsServer, name: str) -> int:
    return sum(1 for n, _ in dns_server.queries if n == name)


def test_retrans_and_retry_set_how_often_a_silent_server_is_asked(tmp_path):
    lookup = "${lookup dnsdb{dnssec_never,a=slow.dns.test}{$value}{none}}"
    with DnsServer({"dns.test": ZONE}, drop=["slow.dns.test"]) as srv:
        start = time.monotonic()
        out = _be(_conf(tmp_path, "dns_retrans = 1s\ndns_retry = 2\n"), srv, lookup)
        took = time.monotonic() - start
        assert "timed out" in out.stdout + out.stderr          # the lookup deferred
        assert _asked(srv, "slow.dns.test") == 3          # the first question and 2 retries
        assert 2.5 < took < 15
        before = _asked(srv, "slow.dns.test")
        # the test resolver's own setting without the options: one 2 s wait, one question
        _be(_conf(tmp_path, ""), srv, lookup)
        assert _asked(srv, "slow.dns.test") - before == 1


def test_use_edns0_puts_an_opt_record_in_queries(tmp_path):
    lookup = "${lookup dnsdb{dnssec_never,a=host.dns.test}}"
    with DnsServer({"dns.test": ZONE}) as srv:
        assert _be(_conf(tmp_path, ""), srv, lookup).stdout.strip() == "192.0.2.10"
        assert srv.edns_versions == [-1]
        out = _be(_conf(tmp_path, "dns_use_edns0 = 1\n"), srv, lookup)
        assert out.stdout.strip() == "192.0.2.10"
        assert srv.edns_versions == [-1, 0]


def test_ipv4_lookup_domains_get_no_aaaa_lookup(tmp_path):
    conf = _conf(tmp_path, "dns_ipv4_lookup = dual.dns.test\n")
    with DnsServer({"dns.test": ZONE}) as srv:
        env = {"PYMTA_DNS_SERVER": f"127.0.0.1:{srv.port}"}
        out = run_pymta(["-bt", "u@both.dns.test"], conf, env=env)
        assert "192.0.2.20" in out.stdout and "2001:db8::20" not in out.stdout, out.stdout
        assert ("dual.dns.test", "AAAA") not in srv.queries
        # without the option both address records are used
        out = run_pymta(["-bt", "u@both.dns.test"], _conf(tmp_path, ""), env=env)
        assert "192.0.2.20" in out.stdout and "2001:db8::20" in out.stdout, out.stdout
