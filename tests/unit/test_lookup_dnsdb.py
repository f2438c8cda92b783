"""dnsdb lookups and @mx_* list items against a real DNS server on loopback."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.dns import DnsServer  # noqa: E402

from pymta import dns as pdns  # noqa: E402
from pymta.expand import ExpandContext, ExpandDefer, ExpandError, expand_string  # noqa: E402

ZONES = {
    "ex.test": """
        @           IN MX 10 mx1
        @           IN MX 20 mx2.ex.test.
        @           IN NS ns1
        @           IN TXT "first" "second"
        @           IN SPF "v=spf1 " "-all"
        mx1         IN A 198.51.100.1
        mx1         IN AAAA 2001:db8::1
        mx2         IN A 198.51.100.2
        alias       IN CNAME mx1
        _smtp._tcp  IN SRV 5 10 25 mx1
        _25._tcp.mx1 IN TLSA 3 1 0 0123456789abcdef
        sub.deep    IN A 198.51.100.9
        local       IN MX 5 here.ex.test.
        here        IN A 127.0.0.1
        sec         IN MX 5 mx1
        sec         IN MX 10 here
    """,
    "100.51.198.in-addr.arpa": """
        1 IN PTR mx1.ex.test.
    """,
}


@pytest.fixture(scope="module")
def server():
    with DnsServer(ZONES, servfail=["broken.ex.test"]) as srv:
        pdns.set_server("127.0.0.1", srv.port, timeout=1.0)
        try:
            yield srv
        finally:
            pdns.set_resolver(None)


def ex(text, ctx=None):
    return expand_string(text, ctx or ExpandContext())


@pytest.mark.parametrize("query,out", [
    ("a=mx1.ex.test", "198.51.100.1"),
    ("aaaa=mx1.ex.test", "2001:db8::1"),
    (">; a+=mx1.ex.test", "2001:db8::1;198.51.100.1"),
    (">: mx=sub.deep.ex.test:local.ex.test", "5 here.ex.test"),
    (">:,; mx=local.ex.test", "5;here.ex.test"),
    (">: mxh=local.ex.test", "here.ex.test"),
    ("ns=ex.test", "ns1.ex.test"),
    ("zns=a.b.c.ex.test", "ns1.ex.test"),
    ("cname=alias.ex.test", "mx1.ex.test"),
    ("ptr=198.51.100.1", "mx1.ex.test"),
    ("srv=_smtp._tcp.ex.test", "5 10 25 mx1.ex.test"),
    ("tlsa=_25._tcp.mx1.ex.test", "3 1 0 0123456789abcdef"),
    ("txt=ex.test", "first"),
    ("ex.test", "first"),
    (">\n,| txt=ex.test", "first|second"),
    (">\n; txt=ex.test", "firstsecond"),
    ("spf=ex.test", "v=spf1 -all"),
    ("soa=sub.deep.ex.test", "ns.ex.test"),
    (">:,, soa=ex.test", "ns.ex.test,hostmaster.ex.test,1,3600,600,86400,60"),
    (">, a=mx1.ex.test:mx2.ex.test", "198.51.100.1,198.51.100.2"),
    ("a=<; mx1.ex.test ; nothere.ex.test", "198.51.100.1"),
    ("defer_never,a=broken.ex.test:mx2.ex.test", "198.51.100.2"),
    ("defer_lax,a=broken.ex.test:mx2.ex.test", "198.51.100.2"),
    ("dnssec_lax,a=mx2.ex.test", "198.51.100.2"),
    ("retrans_2s,retry_1,a=mx2.ex.test", "198.51.100.2"),
])
def test_dnsdb_records(server, query, out):
    assert ex("${lookup dnsdb{%s}}" % query) == out


def test_dnsdb_several_records_any_order(server):
    assert sorted(ex("${lookup dnsdb{>: mx=ex.test}}").split(":")) == [
        "10 mx1.ex.test", "20 mx2.ex.test"]
    assert sorted(ex("${lookup dnsdb{>| mxh=ex.test}}").split("|")) == [
        "mx1.ex.test", "mx2.ex.test"]


def test_dnsdb_not_found_takes_no_branch(server):
    assert ex("${lookup dnsdb{a=nothere.ex.test}{y:$value}{n}}") == "n"
    assert ex("${lookup dnsdb{mx=mx2.ex.test}{y}{n}}") == "n"     # NODATA


def test_dnsdb_defer_strict_and_lax(server):
    with pytest.raises(ExpandDefer):
        ex("${lookup dnsdb{defer_strict,a=broken.ex.test:mx2.ex.test}}")
    with pytest.raises(ExpandDefer):
        ex("${lookup dnsdb{a=broken.ex.test}}")
    assert ex("${lookup dnsdb{defer_never,a=broken.ex.test}{y}{n}}") == "n"


def test_dnsdb_dnssec_strict_defers_without_ad(server):
    ctx = ExpandContext()
    with pytest.raises(ExpandDefer):
        ex("${lookup dnsdb{dnssec_strict,a=mx2.ex.test}}", ctx)
    ex("${lookup dnsdb{a=mx2.ex.test}}", ctx)
    assert ctx.variables["lookup_dnssec_authenticated"] == "no"


def test_dnsdb_bad_type_is_error(server):
    with pytest.raises(ExpandError, match="unsupported DNS record type"):
        ex("${lookup dnsdb{bogus=ex.test}}")


def test_env_variable_selects_server(server, monkeypatch):
    pdns.set_resolver(None)
    try:
        monkeypatch.setenv("PYMTA_DNS_SERVER", f"127.0.0.1:{server.port}")
        assert ex("${lookup dnsdb{a=mx2.ex.test}}") == "198.51.100.2"
    finally:
        pdns.set_server("127.0.0.1", server.port, timeout=1.0)


def test_parse_server_forms():
    assert pdns._parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert pdns._parse_server("[::1]:5300") == ("::1", 5300)
    assert pdns._parse_server("198.51.100.1") == ("198.51.100.1", 53)


def test_mx_list_items(server):
    import types

    from pymta.config.model import Config
    from pymta.match import match_domain
    main = types.SimpleNamespace(primary_hostname="here.ex.test", qualify_domain="ex.test")
    ctx = ExpandContext(config=Config(filename="/x", main=main))
    assert match_domain("local.ex.test", "@mx_any", ctx) is True
    assert match_domain("local.ex.test", "@mx_primary", ctx) is True
    assert match_domain("local.ex.test", "@mx_secondary", ctx) is False
    assert match_domain("ex.test", "@mx_any", ctx) is False
    assert match_domain("sec.ex.test", "@mx_secondary", ctx) is True
    assert match_domain("sec.ex.test", "@mx_primary", ctx) is False
    assert match_domain("nothere.ex.test", "@mx_any", ctx) is False
