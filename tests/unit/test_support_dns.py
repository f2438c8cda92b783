"""Tests for the loopback DNS server in tests/support/dns.py."""

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from tests.support.dns import DnsServer

ZONES = {
    "example.test": """
        @        IN MX 10 mx1
        @        IN MX 20 mx2.other.test.
        mx1      IN A 127.0.0.1
        mx1      IN AAAA ::1
        alias    IN CNAME mx1
        txt      IN TXT "v=spf1 -all"
    """,
    "other.test": """
        @ 60 IN SOA ns.other.test. h.other.test. 7 3600 600 86400 60
        mx2 IN A 127.0.0.2
    """,
}


@pytest.fixture(scope="module")
def server():
    with DnsServer(ZONES, servfail=["broken.example.test"], drop=["slow.example.test"]) as s:
        yield s


def test_answers_mx_a_aaaa_txt(server):
    res = server.resolver()
    mx = sorted((r.preference, r.exchange.to_text()) for r in res.resolve("example.test", "MX"))
    assert mx == [(10, "mx1.example.test."), (20, "mx2.other.test.")]
    assert [r.to_text() for r in res.resolve("mx1.example.test", "A")] == ["127.0.0.1"]
    assert [r.to_text() for r in res.resolve("mx1.example.test", "AAAA")] == ["::1"]
    assert [r.to_text() for r in res.resolve("mx2.other.test", "A")] == ["127.0.0.2"]
    assert [r.to_text() for r in res.resolve("txt.example.test", "TXT")] == ['"v=spf1 -all"']


def test_cname_is_followed(server):
    ans = server.resolver().resolve("alias.example.test", "A")
    assert ans.canonical_name.to_text() == "mx1.example.test."
    assert [r.to_text() for r in ans] == ["127.0.0.1"]


def test_nxdomain_nodata_and_refused(server):
    res = server.resolver()
    with pytest.raises(dns.resolver.NXDOMAIN):
        res.resolve("nope.example.test", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        res.resolve("mx1.example.test", "MX")
    q = dns.message.make_query("elsewhere.invalid", "A")
    r = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=2)
    assert r.rcode() == dns.rcode.REFUSED


def test_servfail_and_drop(server):
    res = server.resolver(timeout=0.5)
    with pytest.raises((dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout)):
        res.resolve("broken.example.test", "A")
    with pytest.raises(dns.resolver.LifetimeTimeout):
        res.resolve("slow.example.test", "A")


def test_tcp_and_authoritative_flag(server):
    q = dns.message.make_query("mx1.example.test", "A")
    r = dns.query.tcp(q, "127.0.0.1", port=server.port, timeout=2)
    assert r.flags & dns.flags.AA
    assert r.answer[0][0].to_text() == "127.0.0.1"


def test_as_default_resolver_and_query_log(server):
    before = dns.resolver.default_resolver
    with server.as_default_resolver():
        assert [r.to_text() for r in dns.resolver.resolve("mx2.other.test", "A")] == ["127.0.0.2"]
    assert dns.resolver.default_resolver is before
    assert ("mx2.other.test", "A") in server.queries


def test_large_answer_truncates_over_udp_then_tcp():
    records = "\n".join(f"big IN TXT \"{'x' * 200}{i}\"" for i in range(10))
    with DnsServer({"big.test": records}) as s:
        q = dns.message.make_query("big.big.test", "TXT")
        udp = dns.query.udp(q, "127.0.0.1", port=s.port, timeout=2)
        assert udp.flags & dns.flags.TC
        ans = s.resolver().resolve("big.big.test", "TXT")  # resolver retries over TCP
        assert len(ans) == 10
