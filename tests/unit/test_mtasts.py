"""pymta.tls.mtasts: policy formats, the HTTPS fetch from a real loopback HTTPS server
found through the loopback DNS server, the policy cache in a real LMDB hints database,
and the per-MX decision."""
from __future__ import annotations

import pytest

from pymta import dns as pdns
from pymta.hints.db import HintsDB
from pymta.tls.mtasts import (
    MAX_AGE_LIMIT,
    MAX_POLICY_SIZE,
    PORT_ENV,
    CachedPolicy,
    Policy,
    PolicyCache,
    PolicyError,
    StsDecision,
    current_policy,
    decide,
    fetch_policy,
    lookup_txt,
    mx_matches,
    parse_policy,
    parse_txt,
)
from tests.support import certs
from tests.support.dns import DnsServer
from tests.support.https import HttpsServer

GOOD = ("version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\n"
        "mx: *.mx.example.test\r\nmax_age: 86400\r\n")


# --------------------------------------------------------------------------- formats
@pytest.mark.parametrize("records, ident", [
    (["v=STSv1; id=20260101T000000"], "20260101T000000"),
    (["v=STSv1;id=abc;"], "abc"),
    (["v=STSv1; id=abc; ext=1"], "abc"),
    (["v=spf1 -all", "v=STSv1; id=abc"], "abc"),        # others are discarded
    (["v=STSv1; id=abc", "v=STSv1; id=def"], None),     # several: no policy
    ([], None),
    (["v=STSv1;"], None),                               # no id
    (["v=STSv1; id=" + "a" * 33], None),                # id too long
    (["v=STSv1; id=ab-c"], None),                       # id not alphanumeric
    (["v=STSv2; id=abc"], None),
    (["id=abc; v=STSv1"], None),                        # v= must come first
])
def test_txt_record(records, ident):
    assert parse_txt(records) == ident


def test_policy_parse_good():
    p = parse_policy(GOOD, "id1")
    assert p == Policy("enforce", ("mx1.example.test", "*.mx.example.test"), 86400, "id1")


def test_policy_lf_only_unknown_fields_and_first_value_wins():
    p = parse_policy("version: STSv1\nmode: testing\nfoo: bar\nmode: enforce\n"
                     "mx: a.test\nmax_age: 60\n")
    assert p.mode == "testing" and p.mx == ("a.test",) and p.max_age == 60


def test_policy_max_age_is_capped_at_one_year():
    p = parse_policy("version: STSv1\nmode: testing\nmx: a.test\nmax_age: 9999999999\n")
    assert p.max_age == MAX_AGE_LIMIT


def test_policy_mode_none_needs_no_mx():
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 60\n").mx == ()


@pytest.mark.parametrize("text, why", [
    ("mode: enforce\nmx: a.test\nmax_age: 60\n", "version"),
    ("version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 60\n", "version"),
    ("version: STSv1\nmode: strict\nmx: a.test\nmax_age: 60\n", "mode"),
    ("version: STSv1\nmx: a.test\nmax_age: 60\n", "mode"),
    ("version: STSv1\nmode: enforce\nmx: a.test\n", "max_age"),
    ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n", "max_age"),
    ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 12345678901\n", "max_age"),
    ("version: STSv1\nmode: enforce\nmax_age: 60\n", "no mx"),
    ("version: STSv1\nmode: enforce\nmx: a b.test\nmax_age: 60\n", "mx pattern"),
    ("version: STSv1\nmode: enforce\nmx: a.*.test\nmax_age: 60\n", "mx pattern"),
    ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 60\ngarbage line\n", "malformed"),
    ("<html><body>hello</body></html>", "malformed"),
])
def test_policy_malformed(text, why):
    with pytest.raises(PolicyError, match=why):
        parse_policy(text)


@pytest.mark.parametrize("pattern, host, ok", [
    ("mx1.example.test", "MX1.example.test.", True),
    ("mx1.example.test", "mx2.example.test", False),
    ("*.mx.example.test", "a.mx.example.test", True),
    ("*.mx.example.test", "mx.example.test", False),
    ("*.mx.example.test", "a.b.mx.example.test", False),
    ("*.mx.example.test", ".mx.example.test", False),
])
def test_mx_patterns(pattern, host, ok):
    assert mx_matches(pattern, host) is ok


# --------------------------------------------------------------------------- decision
def test_decide():
    enforce = parse_policy(GOOD)
    testing = Policy("testing", enforce.mx, 60)
    assert decide(None, "example.test", "any.test") == StsDecision(True, False, "")
    assert decide(Policy("none", (), 60), "example.test", "x.test").allowed
    d = decide(enforce, "example.test", "a.mx.example.test")
    assert d.allowed and d.require_tls and not d.report
    d = decide(enforce, "example.test", "evil.test")
    assert not d.allowed
    assert d.report == ("MTA-STS: evil.test is not an MX allowed by the enforced policy "
                        "of example.test")
    d = decide(testing, "example.test", "evil.test")
    assert d.allowed and not d.require_tls and "testing" in d.report
    d = decide(testing, "example.test", "mx1.example.test")
    assert d.allowed and not d.require_tls and not d.report


# --------------------------------------------------------------------------- fetch
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("sts")
    ca = certs.make_ca(d)
    return {"ca": ca, "web": certs.make_cert(d, "mta-sts.example.test", ca),
            "wrongname": certs.make_cert(d, "www.example.test", ca, prefix="wrong"),
            "untrusted": certs.make_cert(tmp_path_factory.mktemp("x"),
                                         "mta-sts.example.test")}


@pytest.fixture()
def net(pki):
    """Loopback DNS naming mta-sts.example.test 127.0.0.1, and an HTTPS server there."""
    zones = {"example.test": """
        @              IN MX 10 mx1
        mx1            IN A 127.0.0.1
        _mta-sts       IN TXT "v=STSv1; id=one"
        mta-sts        IN A 127.0.0.1
    """}
    with DnsServer(zones) as dns_server, HttpsServer(pki["web"]) as web:
        pdns.set_server("127.0.0.1", dns_server.port)
        try:
            web.routes["/.well-known/mta-sts.txt"] = (200, "text/plain", GOOD.encode())
            yield dns_server, web
        finally:
            pdns.set_server(None)


def _fetch(pki, web, **kw):
    kw.setdefault("ca_file", pki["ca"].cert)
    return fetch_policy("example.test", port=web.port, timeout=5, **kw)


def test_fetch_good(pki, net):
    _, web = net
    assert _fetch(pki, web) == GOOD
    assert web.requests == [(f"mta-sts.example.test:{web.port}", "/.well-known/mta-sts.txt")]


def test_fetch_port_from_environment(pki, net, monkeypatch):
    _, web = net
    monkeypatch.setenv(PORT_ENV, str(web.port))
    assert fetch_policy("example.test", ca_file=pki["ca"].cert, timeout=5) == GOOD


def test_fetch_content_type_with_parameters(pki, net):
    _, web = net
    web.routes["/.well-known/mta-sts.txt"] = (200, "text/plain; charset=utf-8", GOOD.encode())
    assert _fetch(pki, web) == GOOD


@pytest.mark.parametrize("route, why", [
    ((200, "text/html", GOOD.encode()), "content type 'text/html'"),
    ((200, "", GOOD.encode()), "content type 'missing'"),
    ((404, "text/plain", b"no"), "HTTP status 404"),
    ((302, "text/plain", b"https://elsewhere.test/policy"), "HTTP status 302"),
    ((200, "text/plain", b"x" * (MAX_POLICY_SIZE + 1)), "larger than 65536"),
    ((200, "text/plain", b"\xff\xfe"), "not UTF-8"),
])
def test_fetch_refused(pki, net, route, why):
    _, web = net
    web.routes["/.well-known/mta-sts.txt"] = route
    with pytest.raises(PolicyError, match=why):
        _fetch(pki, web)


def test_fetch_exactly_64k_is_allowed(pki, net):
    _, web = net
    body = GOOD + "#" * (MAX_POLICY_SIZE - len(GOOD))
    web.routes["/.well-known/mta-sts.txt"] = (200, "text/plain", body.encode())
    assert len(_fetch(pki, web)) == MAX_POLICY_SIZE


@pytest.mark.parametrize("which", ["untrusted", "wrongname"])
def test_fetch_verifies_the_certificate(pki, net, which):
    dns_server, _ = net
    with HttpsServer(pki[which]) as bad:
        bad.routes["/.well-known/mta-sts.txt"] = (200, "text/plain", GOOD.encode())
        with pytest.raises(PolicyError, match="CERTIFICATE_VERIFY_FAILED"):
            _fetch(pki, bad)
        assert bad.requests == []


def test_fetch_without_address(pki, net):
    _, web = net
    with pytest.raises(PolicyError, match="mta-sts.nowhere.example.test: no address"):
        fetch_policy("nowhere.example.test", ca_file=pki["ca"].cert, port=web.port, timeout=5)


def test_txt_through_dns(net):
    assert lookup_txt("example.test") == "one"
    assert lookup_txt("nowhere.example.test") is None


# --------------------------------------------------------------------------- cache
class Clock:
    def __init__(self, t: float = 1_700_000_000) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_cache_roundtrip_in_lmdb(tmp_path):
    cache = PolicyCache(str(tmp_path))
    entry = CachedPolicy(parse_policy(GOOD, "one"), 10, 20)
    cache.put("Example.Test", entry)
    assert PolicyCache(str(tmp_path)).get("example.test") == entry
    assert (tmp_path / "db" / "mtasts").exists()
    HintsDB(str(tmp_path), "mtasts").put("bad.test", b"{not json")
    assert cache.get("bad.test") is None


def test_policy_is_cached_and_refetched_when_the_id_changes(pki, net, tmp_path):
    dns_server, web = net
    cache, clock = PolicyCache(str(tmp_path)), Clock()
    ids = {"example.test": "one"}

    def fetch(domain):
        return _fetch(pki, web)

    def txt(domain):
        return ids.get(domain)

    first = current_policy("example.test", cache, now=clock, txt=txt, fetch=fetch)
    assert first.source == "fetched" and first.policy.mode == "enforce"
    assert first.policy.id == "one"
    assert len(web.requests) == 1
    again = current_policy("example.test", cache, now=clock, txt=txt, fetch=fetch)
    assert again.source == "cache" and len(web.requests) == 1

    # a new id: fetched again, the new policy replaces the old one
    ids["example.test"] = "two"
    web.routes["/.well-known/mta-sts.txt"] = (
        200, "text/plain", GOOD.replace("enforce", "testing").encode())
    third = current_policy("example.test", cache, now=clock, txt=txt, fetch=fetch)
    assert third.source == "fetched" and third.policy.mode == "testing"
    assert third.policy.id == "two" and len(web.requests) == 2
    assert cache.get("example.test").policy.id == "two"


def test_failed_refetch_keeps_the_cached_policy_until_it_expires(pki, net, tmp_path):
    dns_server, web = net
    cache, clock = PolicyCache(str(tmp_path)), Clock()
    ids = {"example.test": "one"}

    def fetch(domain):
        return _fetch(pki, web)

    def txt(domain):
        return ids.get(domain)

    assert current_policy("example.test", cache, now=clock, txt=txt, fetch=fetch).policy
    ids["example.test"] = "two"
    web.routes["/.well-known/mta-sts.txt"] = (500, "text/plain", b"oops")
    r = current_policy("example.test", cache, now=clock, txt=txt, fetch=fetch)
    assert r.source == "stale-cache" and r.policy.id == "one"
    assert "HTTP status 500" in r.error
    # TXT record gone: the cached policy still applies until max_age has passed
    del ids["example.test"]
    assert current_policy("example.test", cache, now=clock, txt=txt,
                          fetch=fetch).policy.id == "one"
    clock.t += 86400
    r = current_policy("example.test", cache, now=clock, txt=txt, fetch=fetch)
    assert r.policy is None and r.source == "none"


def test_no_txt_and_no_cache_is_no_policy(tmp_path):
    def fetch(domain):
        raise AssertionError("must not fetch without a TXT record")

    r = current_policy("example.test", PolicyCache(str(tmp_path)), txt=lambda d: None,
                       fetch=fetch)
    assert r.policy is None and r.source == "none"


def test_end_to_end_with_dns_and_https(pki, net, tmp_path):
    """TXT and fetch through the real defaults (pymta's resolver, the HTTPS server)."""
    _, web = net
    r = current_policy("example.test", PolicyCache(str(tmp_path)),
                       fetch=lambda d: _fetch(pki, web))
    assert r.source == "fetched" and r.policy.id == "one"
    assert not decide(r.policy, "example.test", "mx9.other.test").allowed
    assert decide(r.policy, "example.test", "mx1.example.test").require_tls


def test_fetch_times_out_on_a_silent_server(pki, net):
    """A server that accepts and never answers: the fetch gives up after the timeout."""
    import socket
    import time
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        start = time.monotonic()
        with pytest.raises(PolicyError, match="timed out"):
            fetch_policy("example.test", ca_file=pki["ca"].cert,
                         port=listener.getsockname()[1], timeout=1)
        assert time.monotonic() - start < 5
    finally:
        listener.close()
