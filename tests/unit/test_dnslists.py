"""The dnslists ACL condition against a real DNS server on loopback (spec 44.27-44.37)."""
from __future__ import annotations

import textwrap

import pytest

from pymta import dns as pdns
from pymta.acl import run_acl
from pymta.config import load_config
from pymta.expand.context import ExpandContext
from tests.support.dns import DnsServer

ZONES = {
    "bl.example": """
        1.2.0.192       IN A   127.0.0.2
        1.2.0.192       IN TXT "listed, see http://bl.example/"
        7.2.0.192       IN A   10.0.0.1
        spam.example    IN A   127.0.1.2
        spam.example    IN TXT "domain listed"
        2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2 IN A 127.0.0.9
    """,
    "multi.example": """
        1.2.0.192       IN A   127.0.0.4
        1.2.0.192       IN A   127.0.0.10
    """,
    "merged.example": """
        1.2.0.192       IN A   127.0.0.3
    """,
    "detail.example": """
        1.2.0.192       IN A   127.0.0.2
        1.2.0.192       IN TXT "detail text"
    """,
    "broken.example": "",
    "clean.example": "",
    "silent.example": "",
}
SERVFAIL = ["1.2.0.192.broken.example", "ham.example.broken.example"]

BASE = """\
primary_hostname = test.example
begin acl
{acls}
"""


@pytest.fixture(scope="module")
def dns_server():
    with DnsServer(ZONES, servfail=SERVFAIL, drop=["1.2.0.192.silent.example"]) as srv:
        pdns.set_server("127.0.0.1", srv.port, timeout=1.0)
        try:
            yield srv
        finally:
            pdns.set_resolver(None)


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def main(self, text: str) -> None:
        self.lines.append(text)

    reject = main


def run(tmp_path, acl: str, ip: str = "192.0.2.1", **variables):
    path = tmp_path / "configure"
    path.write_text(BASE.format(acls="a:\n" + textwrap.indent(textwrap.dedent(acl), "  ")))
    cfg = load_config(str(path))
    v = {"sender_host_address": ip, "sender_address": "x@spam.example",
         "sender_address_domain": "spam.example", "local_part": "", "domain": ""}
    v.update(variables)
    ctx = ExpandContext(config=cfg, variables=v)
    log = Log()
    session = type("S", (), {"log": log, "log_prefix": "H=[192.0.2.1]"})()
    return run_acl(cfg, "a", "rcpt", ctx, session), ctx, log


def test_listed_host_sets_the_variables(tmp_path, dns_server):
    r, ctx, _ = run(tmp_path, """\
        deny dnslists = clean.example : bl.example
             message = $dnslist_domain: $dnslist_text ($dnslist_value) key $dnslist_matched
        accept
    """)
    assert (r.verdict, r.message) == ("deny", "bl.example: listed, see http://bl.example/ "
                                      "(127.0.0.2) key 192.0.2.1")
    # An unlisted client passes; the lookup name is the reversed address + domain.
    assert run(tmp_path, "deny dnslists = bl.example\naccept\n",
               ip="192.0.2.9")[0].verdict == "accept"
    assert ("9.2.0.192.bl.example", "A") in dns_server.queries


def test_multiple_addresses_are_joined_with_comma_space(tmp_path, dns_server):
    r, ctx, _ = run(tmp_path, "deny dnslists = multi.example\n  message = $dnslist_value\n")
    assert r.message in ("127.0.0.4, 127.0.0.10", "127.0.0.10, 127.0.0.4")


@pytest.mark.parametrize("item,listed", [
    ("bl.example=127.0.0.2", True), ("bl.example=127.0.0.3", False),
    ("bl.example=127.0.0.3,127.0.0.2", True),
    ("bl.example!=127.0.0.3", True), ("bl.example!=127.0.0.2", False),
    # one of two records: "=" any, "==" all
    ("multi.example=127.0.0.4", True), ("multi.example==127.0.0.4", False),
    ("multi.example==127.0.0.4,127.0.0.10", True),
    ("multi.example!==127.0.0.4", True), ("multi.example!=127.0.0.4", False),
    # bit masks: 127.0.0.4 and 127.0.0.10 (binary 100 and 1010)
    ("multi.example&0.0.0.4", True), ("multi.example&0.0.0.1", False),
    ("multi.example&0.0.0.2", True), ("multi.example=&0.0.0.2", False),
    ("multi.example=&0.0.0.4,0.0.0.2", True), ("multi.example!&0.0.0.1", True),
    ("multi.example!&0.0.0.4", False), ("multi.example!=&0.0.0.4", True),
    # explicit keys: names are not reversed, IPs are; a sublist with :: or <;
    ("bl.example/spam.example", True), ("bl.example/ham.example", False),
    ("bl.example/192.0.2.1", True), ("bl.example/ham.example::spam.example", True),
    ("bl.example/<;ham.example;192.0.2.1", True),
    ("bl.example=127.0.1.2/$sender_address_domain", True),
    ("bl.example=127.0.0.2/$sender_address_domain", False),
    # an answer outside 127/8 is discarded
    ("bl.example/192.0.2.7", False),
    # IPv6 keys are reversed nibble by nibble
    ("<! bl.example/<;2001:db8::2", True),
    ("broken.example", False)])
def test_item_forms(tmp_path, dns_server, item, listed):
    r, _, _ = run(tmp_path, f"deny dnslists = {item}\naccept\n")
    assert (r.verdict == "deny") == listed, r


def test_answer_outside_loopback_net_is_logged(tmp_path, dns_server):
    _, _, log = run(tmp_path, "deny dnslists = bl.example\naccept\n", ip="192.0.2.7")
    assert "DNS list lookup for 7.2.0.192.bl.example at bl.example returned 10.0.0.1; " \
           "not in 127.0/8 and discarded" in log.lines


def test_merged_list_form(tmp_path, dns_server):
    acl = "deny dnslists = detail.example,merged.example=127.0.0.{n}\n" \
          "     message = $dnslist_domain $dnslist_value $dnslist_text\naccept\n"
    r, _, _ = run(tmp_path, acl.format(n=3))
    assert (r.verdict, r.message) == ("deny", "detail.example 127.0.0.2 detail text")
    # The restriction applies to the second domain only.
    assert run(tmp_path, acl.format(n=2))[0].verdict == "accept"


def test_no_client_address_never_matches(tmp_path, dns_server):
    assert run(tmp_path, "deny dnslists = bl.example\naccept\n", ip="")[0].verdict == "accept"


def test_temporary_failure_by_default_is_not_listed_and_logged(tmp_path, dns_server):
    r, _, log = run(tmp_path, "deny dnslists = broken.example : bl.example\n"
                              "     message = $dnslist_domain\naccept\n")
    assert (r.verdict, r.message) == ("deny", "bl.example")
    assert "DNS list lookup defer (probably timeout) for 1.2.0.192.broken.example: " \
           "assumed not in list" in log.lines


def test_include_unknown_counts_a_failure_as_listed(tmp_path, dns_server):
    r, _, log = run(tmp_path, "deny dnslists = +include_unknown : broken.example\n"
                              "     message = $dnslist_domain\naccept\n")
    assert (r.verdict, r.message) == ("deny", "broken.example")
    assert log.lines[-1].endswith("1.2.0.192.broken.example: assumed in list")


def test_defer_unknown_defers(tmp_path, dns_server):
    r, _, log = run(tmp_path, "deny dnslists = +defer_unknown : broken.example\naccept\n")
    assert r.verdict == "defer"
    assert log.lines[-1].endswith("1.2.0.192.broken.example: returned DEFER")
    # ... but only for items after it
    r, _, _ = run(tmp_path, "deny dnslists = broken.example : +defer_unknown : "
                            "clean.example\naccept\n")
    assert r.verdict == "accept"


def test_success_in_sublist_overrides_a_failure(tmp_path, dns_server):
    r, _, _ = run(tmp_path, "deny dnslists = +defer_unknown : "
                            "broken.example/ham.example::192.0.2.1\naccept\n")
    assert r.verdict == "defer"      # 1.2.0.192.broken.example also fails
    r, _, _ = run(tmp_path, "deny dnslists = +defer_unknown : "
                            "bl.example/<;ham.example;192.0.2.1\naccept\n")
    assert r.verdict == "deny"


def test_a_list_that_does_not_answer(tmp_path, dns_server):
    # No answer at all (the resolver times out): the same as SERVFAIL.
    r, _, log = run(tmp_path, "deny dnslists = silent.example\naccept\n")
    assert r.verdict == "accept"
    assert log.lines[-1] == ("DNS list lookup defer (probably timeout) for "
                             "1.2.0.192.silent.example: assumed not in list")
    r, _, _ = run(tmp_path, "deny dnslists = +defer_unknown : silent.example\naccept\n")
    assert r.verdict == "defer"
