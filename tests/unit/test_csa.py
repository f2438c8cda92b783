"""Client SMTP Authorization (spec 44.52): check_csa and the dnsdb csa lookup against a
real DNS server on loopback."""
from __future__ import annotations

import pytest

from pymta import dns as pdns
from pymta.acl.csa import check_csa
from pymta.expand import ExpandContext, ExpandDefer, expand_string
from tests.support.dns import DnsServer

ZONES = {
    "test": """
        client    IN A 192.0.2.1
        other     IN A 192.0.2.9
        _client._smtp.client    IN SRV 1 2 0 client.test.
        _client._smtp.other     IN SRV 1 2 0 other.test.
        _client._smtp.no        IN SRV 1 1 0 no.test.
        _client._smtp.odd       IN SRV 1 3 0 odd.test.
        _client._smtp.v2        IN SRV 2 2 0 client.test.
        _client._smtp.strict    IN SRV 1 0 1 .
        _client._smtp.a.b.c.d.e.deep IN SRV 1 0 1 .
    """,
    "2.0.192.in-addr.arpa": """
        _client._smtp.1 IN SRV 1 2 0 client.test.
    """,
}


@pytest.fixture(scope="module")
def server():
    with DnsServer(ZONES, servfail=["_client._smtp.broken.test"]) as srv:
        pdns.set_server("127.0.0.1", srv.port, timeout=1.0)
        try:
            yield srv
        finally:
            pdns.set_resolver(None)


@pytest.mark.parametrize("domain,ip,status,reason", [
    ("client.test", "192.0.2.1", "ok", "ok"),
    ("CLIENT.test.", "192.0.2.1", "ok", "ok"),
    ("client.test", "192.0.2.7", "fail", "failed (client address mismatch)"),
    ("no.test", "192.0.2.1", "fail", "failed (host name not authorized)"),
    ("odd.test", "192.0.2.1", "unknown", "unknown"),
    ("v2.test", "192.0.2.1", "unknown", "unknown"),            # not CSA version 1
    ("x.y.strict.test", "192.0.2.1", "fail", "failed (explicit authorization required)"),
    ("nothing.test", "192.0.2.1", "unknown", "unknown"),
    ("broken.test", "192.0.2.1", "defer", "deferred (SRV lookup failed)"),
    ("[192.0.2.1]", "192.0.2.1", "ok", "ok"),
    ("192.0.2.1", "192.0.2.1", "ok", "ok"),
    ("", "192.0.2.1", "unknown", "unknown"),
])
def test_check_csa(server, domain, ip, status, reason):
    r = check_csa(domain, ip)
    assert (r.status, r.message) == (status, f"client SMTP authorization {reason}")
    assert r.passed == (status != "fail")


def test_search_limit_and_reverse_switch(server):
    # The record is one level above h.a.b.c.d.e.deep.test: found with the default
    # limit (5), not with 0; an address literal is not searched without
    # dns_csa_use_reverse.
    assert check_csa("h.a.b.c.d.e.deep.test", "192.0.2.1").status == "fail"
    assert check_csa("h.a.b.c.d.e.deep.test", "192.0.2.1", search_limit=0).status \
        == "unknown"
    assert check_csa("[192.0.2.1]", "192.0.2.1", use_reverse=False).status == "unknown"
    assert ("_client._smtp.test", "SRV") not in server.queries   # never a TLD


@pytest.mark.parametrize("key,out", [
    ("client.test", "Y client.test"), ("no.test", "N no.test"), ("odd.test", "? odd.test"),
    ("x.strict.test", "X "), ("192.0.2.1", "Y client.test")])
def test_dnsdb_csa(server, key, out):
    assert expand_string("${lookup dnsdb{csa=%s}{$value}{none}}" % key,
                         ExpandContext()) == out


def test_dnsdb_csa_none_and_defer(server):
    assert expand_string("${lookup dnsdb{csa=nothing.test}{$value}{none}}",
                         ExpandContext()) == "none"
    with pytest.raises(ExpandDefer):
        expand_string("${lookup dnsdb{csa=broken.test}}", ExpandContext())
