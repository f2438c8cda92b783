"""The dnslookup router against a real DNS server on loopback.

``tests/data/routing_dnslookup/bt_expected.txt`` was produced by ``exim4 -bt`` (Exim
4.96) with ``bt.conf``, the addresses in ``addresses.txt`` and ``zone.txt`` served by
``tests/support/dns.DnsServer`` (exim4 ran in a private mount namespace whose
/etc/resolv.conf pointed at the test server).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pymta import dns as pdns
from pymta.address import Address, Host
from pymta.config import load_config
from pymta.expand.context import ExpandContext
from pymta.routing import bt, get_routers, route_address
from pymta.routing import dnslookup as dl
from pymta.routing import hosts as hostmod
from tests.support.dns import DnsServer

DATA = Path(__file__).resolve().parent.parent / "data" / "routing_dnslookup"

EXTRA_ZONE = """
    eq       IN MX 10 a
    eq       IN MX 10 b
    eq       IN MX 10 c
    eq       IN MX 5 first
    a        IN A 198.51.100.21
    b        IN A 198.51.100.22
    c        IN A 198.51.100.23
    first    IN A 198.51.100.20
"""


@pytest.fixture(scope="module")
def server():
    zone = (DATA / "zone.txt").read_text() + EXTRA_ZONE
    with DnsServer({"mx.test": zone}, servfail=["broken.mx.test", "brokenmx.mx.test"],
                   drop=["slow.mx.test"]) as srv:
        pdns.set_server("127.0.0.1", srv.port, timeout=0.5)
        try:
            yield srv
        finally:
            pdns.set_resolver(None)


def _conf(tmp_path, routers: str, main: str = ""):
    p = tmp_path / "configure"
    p.write_text("primary_hostname = test.example\n" + main + "\nbegin routers\n" + routers
                 + "\nbegin transports\nremote_smtp:\n  driver = smtp\n")
    return load_config(str(p))


def _route(config, address, verify=False):
    return route_address(config, Address(address), ExpandContext(config), verify=verify)


# ------------------------------------------------------------------ -bt against exim4
def test_bt_output_matches_exim(server):
    config = load_config(str(DATA / "bt.conf"))
    out = []
    for a in (DATA / "addresses.txt").read_text().split():
        text, rc = bt.test_address(config, a)
        out.append(f"{text}rc={rc}\n")
    got = "".join(out)
    expected = (DATA / "bt_expected.txt").read_text()
    assert got.splitlines() == expected.splitlines()


# ------------------------------------------------------------------ host finding
SIMPLE = """
dnslookup:
  driver = dnslookup
  transport = remote_smtp
  no_more
"""


def test_mx_hosts_in_preference_order_with_ipv6_first(server, tmp_path):
    r = _route(_conf(tmp_path, SIMPLE), "u@mx.test")
    assert r.status == "accept"
    [a] = r.addresses
    assert a.transport == "remote_smtp" and a.router == "dnslookup"
    assert [(h.name, h.address, h.mx, h.port) for h in a.hosts] == [
        ("mx1.mx.test", "198.51.100.1", 10, None),
        ("mx2.mx.test", "2001:db8::2", 20, None),
        ("mx2.mx.test", "198.51.100.2", 20, None)]


def test_equal_preferences_are_randomised(server):
    orders = Counter()
    for _ in range(40):
        found = dl.find_hosts_bydns("eq.mx.test")
        assert found.status == dl.FOUND and found.via_mx
        assert found.hosts[0].name == "first.mx.test"
        assert sorted(h.name for h in found.hosts[1:]) == ["a.mx.test", "b.mx.test",
                                                          "c.mx.test"]
        orders[tuple(h.name for h in found.hosts[1:])] += 1
    assert len(orders) > 1


def test_implicit_mx_uses_domain_address(server, tmp_path):
    r = _route(_conf(tmp_path, SIMPLE), "u@implicit.mx.test")
    [a] = r.addresses
    assert [(h.name, h.address, h.mx) for h in a.hosts] == [
        ("implicit.mx.test", "198.51.100.10", -1)]


def test_null_mx_fails_and_nxdomain_declines(server, tmp_path):
    c = _conf(tmp_path, SIMPLE)
    r = _route(c, "u@nullmx.mx.test")
    assert r.status == "fail"
    r = _route(c, "u@nonexist.mx.test")
    assert r.status == "fail" and r.message == "Unrouteable address"
    # a declining router lets the next one try (no_more unset)
    c2 = _conf(tmp_path, SIMPLE.replace("  no_more\n", "") +
               "\nlast:\n  driver = accept\n  transport = remote_smtp\n")
    r = _route(c2, "u@nonexist.mx.test")
    assert r.status == "accept" and r.addresses[0].router == "last"
    r = _route(c2, "u@nullmx.mx.test")
    assert r.status == "accept" and r.addresses[0].router == "last"


def test_router_replies_carry_exim_messages(server, tmp_path):
    c = _conf(tmp_path, SIMPLE)
    router = get_routers(c)[0]
    cases = {"nullmx.mx.test": ("decline", dl.MSG_NO_SERVICE),
             "nxhost.mx.test": ("decline", dl.MSG_MX_MISSING),
             "ipmx.mx.test": ("decline", dl.MSG_MX_MISSING + dl.MSG_MX_TO_IP),
             "nonexist.mx.test": ("decline", None),
             "broken.mx.test": ("defer", dl.MSG_AGAIN)}
    for domain, (status, message) in cases.items():
        reply = router.route(Address(f"u@{domain}"), ExpandContext(c))
        assert (reply.status, reply.message) == (status, message), domain


def test_servfail_defers_and_timeout_defers_or_passes(server, tmp_path):
    c = _conf(tmp_path, SIMPLE)
    r = _route(c, "u@broken.mx.test")
    assert r.status == "defer" and r.message == "host lookup did not complete"
    r = _route(c, "u@slow.mx.test")
    assert r.status == "defer"
    c2 = _conf(tmp_path, SIMPLE.replace("  no_more\n", "  pass_on_timeout\n") +
               "\nlast:\n  driver = accept\n  transport = remote_smtp\n")
    r = _route(c2, "u@slow.mx.test")
    assert r.status == "accept" and r.addresses[0].router == "last"


def test_dns_again_means_nonexist(server, tmp_path):
    c = _conf(tmp_path, SIMPLE, "dns_again_means_nonexist = broken.mx.test\n")
    r = _route(c, "u@broken.mx.test")
    assert r.status == "fail" and r.message == "Unrouteable address"


def test_ignore_target_hosts(server, tmp_path):
    routers = SIMPLE.replace("  no_more\n", "  ignore_target_hosts = <; 198.51.100.1 ; "
                             "2001:db8::/32\n  no_more\n")
    r = _route(_conf(tmp_path, routers), "u@mx.test")
    assert [(h.name, h.address) for h in r.addresses[0].hosts] == [
        ("mx2.mx.test", "198.51.100.2")]
    # everything ignored, implicit MX: the router declines
    routers = SIMPLE.replace("  no_more\n", "  ignore_target_hosts = 198.51.100.0/24\n"
                             "  no_more\n")
    r = _route(_conf(tmp_path, routers), "u@implicit.mx.test")
    assert r.status == "fail" and r.message == "Unrouteable address"


def test_mx_domains_requires_mx(server, tmp_path):
    routers = SIMPLE.replace("  no_more\n", "  mx_domains = implicit.mx.test\n  no_more\n")
    c = _conf(tmp_path, routers)
    assert _route(c, "u@implicit.mx.test").status == "fail"
    assert _route(c, "u@mx.test").status == "accept"          # has MX records
    assert _route(c, "u@needmx.mx.test").status == "accept"   # not in the list


def test_mx_fail_domains_falls_back_to_address_records(server, tmp_path):
    # SERVFAIL on the MX lookup only: a resolver wrapper fails MX queries for one name
    import dns.resolver

    real = pdns.get_resolver()

    class MxFails:
        def resolve(self, name, rtype, **kw):
            if str(name).rstrip(".") == "implicit.mx.test" and rtype == "MX":
                raise dns.resolver.NoNameservers()
            return real.resolve(name, rtype, **kw)

    pdns.set_resolver(MxFails())
    try:
        c = _conf(tmp_path, SIMPLE)
        assert _route(c, "u@implicit.mx.test").status == "defer"
        routers = SIMPLE.replace("  no_more\n", "  mx_fail_domains = *.mx.test\n  no_more\n")
        r = _route(_conf(tmp_path, routers), "u@implicit.mx.test")
        assert r.status == "accept"
        assert r.addresses[0].hosts[0].address == "198.51.100.10"
    finally:
        pdns.set_resolver(real)


def test_srv_fail_domains(server, tmp_path):
    import dns.resolver
    real = pdns.get_resolver()

    class SrvFails:
        def resolve(self, name, rtype, **kw):
            if rtype == "SRV":
                raise dns.resolver.NoNameservers()
            return real.resolve(name, rtype, **kw)

    pdns.set_resolver(SrvFails())
    try:
        routers = SIMPLE.replace("  no_more\n", "  check_srv = smtp\n  no_more\n")
        assert _route(_conf(tmp_path, routers), "u@mx.test").status == "defer"
        routers = SIMPLE.replace("  no_more\n", "  check_srv = smtp\n"
                                 "  srv_fail_domains = mx.test\n  no_more\n")
        r = _route(_conf(tmp_path, routers), "u@mx.test")
        assert r.status == "accept" and r.addresses[0].hosts[0].name == "mx1.mx.test"
    finally:
        pdns.set_resolver(real)


def test_ipv4_only_and_prefer(server, tmp_path):
    for option, expected in (("ipv4_only = ${if eq{1}{1}{yes}{no}}", ["198.51.100.2"]),
                             ("ipv4_only = false", ["2001:db8::2", "198.51.100.2"]),
                             ("ipv4_prefer = 1", ["198.51.100.2", "2001:db8::2"])):
        routers = SIMPLE.replace("  no_more\n", f"  {option}\n  no_more\n")
        r = _route(_conf(tmp_path, routers), "u@mx2.mx.test")
        assert [h.address for h in r.addresses[0].hosts] == expected, option


def test_widen_domains_reroutes_to_the_full_domain(server, tmp_path):
    routers = SIMPLE.replace("  no_more\n", "  widen_domains = nothere.mx.test : mx.test\n"
                             "  no_more\n")
    c = _conf(tmp_path, routers)
    r = _route(c, "u@w.mx.test")
    [a] = r.addresses
    assert a.address == "u@w.mx.test.mx.test" and a.parent.address == "u@w.mx.test"
    # not for sender verification while rewrite_headers is on (Exim's rule)
    r = _route(c, "u@w.mx.test", verify="sender")
    assert r.status == "fail"


def test_self_options(server, tmp_path):
    def route_with(self_value: str, more: str = ""):
        routers = SIMPLE.replace("  no_more\n", f"  self = {self_value}\n  no_more\n") + more
        return _route(_conf(tmp_path, routers), "u@loop.mx.test")

    r = _route(_conf(tmp_path, SIMPLE), "u@loop.mx.test")      # default freeze
    assert r.status == "defer" and r.freeze
    assert r.message == "lowest numbered MX record points to local host"
    r = route_with("defer")
    assert r.status == "defer" and not r.freeze
    r = route_with("fail")
    assert r.status == "fail" and r.message == "lowest numbered MX record points to local host"
    r = route_with("send")
    assert r.status == "accept" and r.addresses[0].hosts[0].address == "127.0.0.1"
    r = route_with("reroute: implicit.mx.test")
    assert r.addresses[0].address == "u@implicit.mx.test"
    assert r.addresses[0].parent.address == "u@loop.mx.test"
    r = route_with("pass", "\nlast:\n  driver = accept\n  transport = remote_smtp\n")
    assert r.addresses[0].router == "last"


def test_lower_preference_local_host_cuts_the_list(server, tmp_path):
    r = _route(_conf(tmp_path, SIMPLE), "u@sec.mx.test")
    assert [h.name for h in r.addresses[0].hosts] == ["mx1.mx.test"]


def test_hosts_treat_as_local_names(server, tmp_path):
    c = _conf(tmp_path, SIMPLE.replace("  no_more\n", "  self = fail\n  no_more\n"),
              "hosts_treat_as_local = mx1.mx.test\n")
    r = _route(c, "u@mx.test")
    assert r.status == "fail"
    assert hostmod.is_local_host(Host("MX1.mx.test", "198.51.100.1"), c)
    assert not hostmod.is_local_host(Host("mx2.mx.test", "198.51.100.2"), c)


def test_check_secondary_mx(server, tmp_path):
    routers = SIMPLE.replace("  no_more\n", "  check_secondary_mx\n  no_more\n")
    c = _conf(tmp_path, routers)
    assert _route(c, "u@sec.mx.test").status == "accept"
    assert _route(c, "u@mx.test").status == "fail"


def test_fail_defer_domains(server, tmp_path):
    routers = SIMPLE.replace("  no_more\n", "  fail_defer_domains = nonexist.mx.test\n"
                             "  no_more\n")
    c = _conf(tmp_path, routers)
    r = _route(c, "u@nonexist.mx.test")
    assert r.status == "defer" and r.message.startswith("missing MX")
    assert _route(c, "u@other-nonexist.mx.test").status == "fail"


def test_same_domain_copy_routing_reuses_the_first_result(server, tmp_path):
    routers = SIMPLE.replace("  no_more\n", "  same_domain_copy_routing\n  no_more\n")
    c = _conf(tmp_path, routers)
    ctx = ExpandContext(c)
    before = len(server.queries)
    r1 = route_address(c, Address("a@mx.test"), ctx)
    mid = len(server.queries)
    r2 = route_address(c, Address("b@mx.test"), ctx)
    assert len(server.queries) == mid > before
    assert [h.address for h in r2.addresses[0].hosts] == [h.address for h in
                                                          r1.addresses[0].hosts]
    # without the option every address is looked up
    c2 = _conf(tmp_path, SIMPLE)
    ctx2 = ExpandContext(c2)
    route_address(c2, Address("a@mx.test"), ctx2)
    mid = len(server.queries)
    route_address(c2, Address("b@mx.test"), ctx2)
    assert len(server.queries) > mid


def test_srv_records_give_ports_and_weighted_order(server):
    found = dl.find_hosts_bydns("srv.mx.test", srv_service="smtp")
    assert [(h.name, h.port, h.mx) for h in found.hosts] == [("mx1.mx.test", 2525, 0)]
    found = dl.find_hosts_bydns("nosrv.mx.test", srv_service="smtp")
    assert found.status == dl.FAILED and found.no_service

    class R:
        def __init__(self, p, w, n):
            self.priority, self.weight, self.name = p, w, n
    recs = [R(1, 0, "z"), R(0, 100, "heavy"), R(0, 0, "zero"), R(2, 5, "last")]
    firsts = Counter(dl._srv_order(recs)[0].name for _ in range(200))
    assert set(firsts) <= {"heavy", "zero"} and firsts["heavy"] > firsts["zero"]
    assert [r.name for r in dl._srv_order(recs)][2:] == ["z", "last"]


def test_bt_host_line_format(server, tmp_path):
    text, rc = bt.test_address(_conf(tmp_path, SIMPLE), "u@mx.test")
    assert rc == 0
    assert text.splitlines()[2:] == ["  host mx1.mx.test [198.51.100.1] MX=10",
                                     "  host mx2.mx.test [2001:db8::2]  MX=20",
                                     "  host mx2.mx.test [198.51.100.2] MX=20"]


def test_no_transport_defers(server, tmp_path):
    routers = "d:\n  driver = dnslookup\n"
    r = _route(_conf(tmp_path, routers), "u@mx.test")
    assert r.status == "defer" and "no transport" in r.message


def test_syntactically_invalid_domains_decline_without_lookup(server, tmp_path):
    c = _conf(tmp_path, SIMPLE)
    router = get_routers(c)[0]
    before = len(server.queries)
    for domain in ("[198.51.100.9]", "-bad.mx.test", "a..mx.test"):
        reply = router.route(Address(f"u@{domain}"), ExpandContext(c))
        assert (reply.status, reply.message) == (
            "decline", f'mail domain "{domain}" is syntactically invalid')
    assert len(server.queries) == before
    # an empty pattern switches the check off: the name is looked up (and not found)
    c2 = _conf(tmp_path, SIMPLE, "dns_check_names_pattern =\n")
    router2 = get_routers(c2)[0]
    assert router2.route(Address("u@-bad.mx.test"), ExpandContext(c2)).message is None
    assert len(server.queries) > before


def test_disable_ipv6_uses_only_a_records(server, tmp_path):
    c = _conf(tmp_path, SIMPLE, "disable_ipv6 = true\n")
    r = _route(c, "u@mx2.mx.test")
    assert [h.address for h in r.addresses[0].hosts] == ["198.51.100.2"]


def test_allow_mx_to_ip(server, tmp_path):
    assert _route(_conf(tmp_path, SIMPLE), "u@ipmx.mx.test").status == "fail"
    r = _route(_conf(tmp_path, SIMPLE, "allow_mx_to_ip = true\n"), "u@ipmx.mx.test")
    assert [(h.name, h.address, h.mx) for h in r.addresses[0].hosts] == [
        ("198.51.100.5", "198.51.100.5", 10)]


def test_hosts_are_named_by_their_canonical_name(server):
    found = dl.find_hosts_bydns("mxc.mx.test")
    assert [(h.name, h.address, h.mx) for h in found.hosts] == [
        ("implicit.mx.test", "198.51.100.10", 10)]
    found = dl.find_hosts_bydns("alias2.mx.test")
    assert [(h.name, h.mx) for h in found.hosts] == [("implicit.mx.test", -1)]


def test_check_srv_expansion(server, tmp_path):
    routers = SIMPLE.replace("  no_more\n", "  check_srv = ${if eq{$domain}{x}{smtp}fail}\n"
                             "  no_more\n")
    r = _route(_conf(tmp_path, routers), "u@srv.mx.test")
    assert r.addresses[0].hosts[0].name == "mx2.mx.test"      # forced failure: MX only
    routers = SIMPLE.replace("  no_more\n", "  check_srv = ${nosuchop:x}\n  no_more\n")
    r = _route(_conf(tmp_path, routers), "u@srv.mx.test")
    assert r.status == "defer"
    assert r.message.startswith('dnslookup router: failed to expand "${nosuchop:x}"')
