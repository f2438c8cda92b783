"""DNSSEC requests and the answers' status (pymta.dnssec) and the dnslookup router's
dnssec_request_domains / dnssec_require_domains, against the loopback DNS server.

The server (tests/support/dns.py) plays a validating resolver: for zones marked secure it
sets AD when the query asked for DNSSEC (DO, or AD in the query).  The expected -bt text
is Exim 4.96's, recorded by tests/data/dnssec/record_exim.py.
"""
from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.rrset
import pytest

from pymta import dnssec
from pymta.address import Address
from pymta.config import load_config
from pymta.expand.context import ExpandContext
from pymta.logevents import Arrival, Delivery
from pymta.routing import bt, route_address
from pymta.routing import dnslookup as dl
from tests.support.dns import DnsServer

DATA = Path(__file__).resolve().parent.parent / "data" / "dnssec"

ZONE = """
    @       IN MX 10 mx
    mx      IN A 127.0.0.1
"""
ZONES = {"secure.test": ZONE, "plain.test": ZONE, "half.test": """
    @       IN MX 10 mx.secure.test.
"""}


@pytest.fixture()
def server():
    with DnsServer(ZONES, secure=["secure.test"]) as srv, srv.as_pymta_server():
        yield srv


def test_requested_lookup_of_secure_zone_is_authenticated(server):
    answer, authenticated = dnssec.resolve("secure.test", "MX", True)
    assert authenticated
    assert answer.response.flags & dns.flags.AD
    assert server.edns_versions[-1] == 0          # EDNS0 carried the DO bit


def test_unrequested_lookup_is_never_authenticated(server):
    answer, authenticated = dnssec.resolve("secure.test", "MX", False)
    assert not authenticated
    assert not answer.response.flags & dns.flags.AD    # nothing asked, nothing vouched


def test_insecure_zone_is_not_authenticated(server):
    _, authenticated = dnssec.resolve("plain.test", "MX", True)
    assert not authenticated


def test_dns_dnssec_ok_0_drops_do_but_ad_still_counts(server):
    # Exim 4.96 through glibc with trust-ad: dns_dnssec_ok = 0 still logs DS
    # (tests/data/dnssec/deliver_secure_dnssec_ok_0.txt): the AD bit in the query asks.
    dnssec.configure(dnssec_ok=0)
    _, authenticated = dnssec.resolve("secure.test", "MX", True)
    assert authenticated
    assert server.edns_versions[-1] == -1         # no EDNS0, so no DO


def _aa_response(zone_in_authority: str | None) -> dns.message.Message:
    query = dns.message.make_query("mx.trusted.test", "A")
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    response.answer.append(dns.rrset.from_text("mx.trusted.test.", 60, "IN", "A",
                                               "192.0.2.7"))
    if zone_in_authority:
        response.authority.append(dns.rrset.from_text(zone_in_authority + ".", 60, "IN",
                                                      "NS", "ns." + zone_in_authority + "."))
    return response


def test_dns_trust_aa_trusts_authoritative_answers_of_listed_zones():
    try:
        dnssec.configure(trust_aa=lambda zone: zone == "trusted.test")
        assert dnssec.is_authenticated(_aa_response("trusted.test"))
        assert not dnssec.is_authenticated(_aa_response("other.test"))
        # no authority section: nothing to match the list against
        assert not dnssec.is_authenticated(_aa_response(None))
        no_aa = _aa_response("trusted.test")
        no_aa.flags &= ~dns.flags.AA
        assert not dnssec.is_authenticated(no_aa)
        dnssec.configure()
        assert not dnssec.is_authenticated(_aa_response("trusted.test"))
    finally:
        dnssec.configure()


# ------------------------------------------------------------------ the router
def _conf(tmp_path, router_opts: str = "", main: str = ""):
    p = tmp_path / "configure"
    p.write_text("primary_hostname = test.example\n" + main
                 + "\nbegin routers\ndnslookup:\n  driver = dnslookup\n"
                 "  transport = remote_smtp\n  self = send\n" + router_opts
                 + "  no_more\nbegin transports\nremote_smtp:\n  driver = smtp\n")
    return load_config(str(p))


def _route(config, address):
    ctx = ExpandContext(config)
    return route_address(config, Address(address), ctx), ctx


def test_router_marks_hosts_found_by_secure_lookups(server, tmp_path):
    r, ctx = _route(_conf(tmp_path), "u@secure.test")
    [a] = r.addresses
    assert [(h.name, h.dnssec) for h in a.hosts] == [("mx.secure.test", True)]
    r, ctx = _route(_conf(tmp_path), "u@plain.test")
    [a] = r.addresses
    assert [(h.name, h.dnssec) for h in a.hosts] == [("mx.plain.test", False)]


def test_host_is_secure_only_when_mx_and_address_lookups_both_are(server):
    policy = dl.DnssecPolicy(request=lambda d: True)
    found = dl.find_hosts_bydns("half.test", policy=policy)      # MX insecure, A secure
    assert [(h.name, h.dnssec) for h in found.hosts] == [("mx.secure.test", False)]
    assert found.dnssec == "no"
    found = dl.find_hosts_bydns("secure.test", policy=policy)
    assert found.dnssec == "yes"
    assert dl.find_hosts_bydns("secure.test").dnssec == ""


def test_empty_request_list_asks_nothing(server, tmp_path):
    r, _ = _route(_conf(tmp_path, "  dnssec_request_domains =\n"), "u@secure.test")
    [a] = r.addresses
    assert not a.hosts[0].dnssec


def test_require_defers_an_insecure_answer(server, tmp_path):
    config = _conf(tmp_path, "  dnssec_require_domains = *\n")
    r, _ = _route(config, "u@plain.test")
    assert r.status == "defer"
    assert r.message == dl.MSG_INSECURE == "host lookup done insecurely"
    # only the MX lookup was made, as Exim does
    assert server.queries[-1] == ("plain.test", "MX")
    r, _ = _route(config, "u@secure.test")
    assert r.status == "accept"
    assert r.addresses[0].hosts[0].dnssec


def test_require_bt_output_matches_exim(server, tmp_path):
    config = _conf(tmp_path, "  dnssec_require_domains = *\n")
    text, _ = bt.test_address(config, "u@plain.test")
    expected = (DATA / "require_insecure_bt.txt").read_text()
    assert text.strip() == expected.strip().replace("secure.test", "plain.test")


def test_insecure_address_lookup_of_a_required_mx_host_defers(server):
    policy = dl.DnssecPolicy(require=lambda d: True)
    assert dl.find_hosts_bydns("half.test", policy=policy).status == dl.FIND_SECURITY


# ------------------------------------------------------------------ log lines
def test_ds_is_written_only_under_log_selector_dnssec(tmp_path):
    plain = _conf(tmp_path)
    (tmp_path / "sel").mkdir()
    selected = _conf(tmp_path / "sel", main="log_selector = +dnssec\n")
    arrival = Arrival(sender="a@b.c", protocol="esmtp", size=10, host_address="192.0.2.1",
                      host_name="client.secure.test", host_dnssec=True, helo_name="x")
    assert arrival.fields(selected).startswith(
        "a@b.c DS H=client.secure.test (x) [192.0.2.1] P=esmtp")
    assert arrival.fields(plain).startswith("a@b.c H=client.secure.test (x) [192.0.2.1]")
    delivery = Delivery(name="u@secure.test", router="dnslookup", transport="remote_smtp",
                        host="H=mx.secure.test [127.0.0.1]", host_dnssec=True)
    assert delivery.line(selected) == \
        "=> u@secure.test R=dnslookup T=remote_smtp H=mx.secure.test DS [127.0.0.1]"
    assert delivery.line(plain) == \
        "=> u@secure.test R=dnslookup T=remote_smtp H=mx.secure.test [127.0.0.1]"


# ------------------------------------------------ manualroute and queryprogram routers
def _listing_conf(tmp_path, router: str):
    p = tmp_path / "configure"
    p.write_text("primary_hostname = test.example\nbegin routers\n" + router
                 + "  transport = remote_smtp\n  self = send\n  no_more\n"
                 "begin transports\nremote_smtp:\n  driver = smtp\n")
    return load_config(str(p))


def _manualroute(tmp_path, route: str, options: str = ""):
    return _listing_conf(tmp_path, "mr:\n  driver = manualroute\n"
                                   f"  route_list = * {route}\n" + options)


@pytest.mark.parametrize("route", ["mx.secure.test bydns", "secure.test/MX",
                                   "secure.test/MX bydns"])
def test_manualroute_marks_hosts_found_by_secure_lookups(server, tmp_path, route):
    r, _ = _route(_manualroute(tmp_path, route), "u@any.example")
    assert r.status == "accept", r.message
    [a] = r.addresses
    assert [(h.name, h.address, h.dnssec) for h in a.hosts] == \
        [("mx.secure.test", "127.0.0.1", True)]


@pytest.mark.parametrize("route", ["mx.plain.test bydns", "plain.test/MX",
                                   "half.test/MX bydns"])
def test_manualroute_host_from_insecure_answers_is_not_secure(server, tmp_path, route):
    r, _ = _route(_manualroute(tmp_path, route), "u@any.example")
    [a] = r.addresses
    assert [h.dnssec for h in a.hosts] == [False]


def test_manualroute_empty_request_list_asks_nothing(server, tmp_path):
    r, _ = _route(_manualroute(tmp_path, "mx.secure.test bydns",
                               "  dnssec_request_domains =\n"), "u@any.example")
    assert not r.addresses[0].hosts[0].dnssec


@pytest.mark.parametrize("route,name", [("mx.plain.test bydns", "mx.plain.test"),
                                        ("plain.test/MX", "plain.test"),
                                        ("half.test/MX bydns", "half.test")])
def test_manualroute_require_defers_an_insecure_answer(server, tmp_path, route, name):
    config = _manualroute(tmp_path, route, "  dnssec_require_domains = *\n")
    r, _ = _route(config, "u@any.example")
    assert r.status == "defer"
    assert r.message == f"host lookup for {name} done insecurely"
    r, _ = _route(_manualroute(tmp_path, "mx.secure.test bydns",
                               "  dnssec_require_domains = *\n"), "u@any.example")
    assert r.status == "accept" and r.addresses[0].hosts[0].dnssec


def test_manualroute_byname_is_not_a_dns_lookup(server, tmp_path):
    # byname goes to the system resolver, which knows nothing of DNSSEC (nor of this
    # loopback server): a name only in the test zones is not found
    config = _manualroute(tmp_path, "mx.secure.test byname", "  host_find_failed = defer\n")
    r, _ = _route(config, "u@any.example")
    assert r.status == "defer"
    assert not any(q[0] == "mx.secure.test" for q in server.queries)


def test_queryprogram_hosts_follow_the_routers_dnssec_options(server, tmp_path):
    answer = "ACCEPT hosts=mx.plain.test:mx.secure.test lookup=bydns"
    router = ("qp:\n  driver = queryprogram\n"
              f"  command = /bin/echo {answer}\n  command_user = nobody\n")
    r, _ = _route(_listing_conf(tmp_path, router), "u@any.example")
    assert r.status == "accept", r.message
    assert [(h.name, h.dnssec) for h in r.addresses[0].hosts] == \
        [("mx.plain.test", False), ("mx.secure.test", True)]
    (tmp_path / "req").mkdir()
    r, _ = _route(_listing_conf(tmp_path / "req",
                                router + "  dnssec_require_domains = *.plain.test\n"),
                  "u@any.example")
    assert r.status == "defer"
    assert r.message == "host lookup for mx.plain.test done insecurely"
