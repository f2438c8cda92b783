"""Tests for domain/host/address/local-part list matching (pymta.match)."""
from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest

from pymta.config.model import Config
from pymta.expand import ExpandContext, ExpandError
from pymta.match import (
    fixed_domain_list,
    match_address,
    match_domain,
    match_host,
    match_localpart,
)
from pymta.osutil import interface_addresses
from pymta.taint import Tainted, is_tainted

DATA = Path(__file__).resolve().parent.parent / "data" / "expand"


@pytest.fixture
def ctx(tmp_path):
    for f in ("aliases.lsearch", "wild.lsearch", "hosts.iplsearch", "hosts.list",
              "atat.lsearch"):
        shutil.copy(DATA / f, tmp_path / f)
    main = types.SimpleNamespace(primary_hostname="mx.corp.test", qualify_domain="corp.test")
    lists = {"domain": {"local_domains": "corp.test : *.sub.test",
                        "nested": "+local_domains : other.test",
                        "withvar": "$primary_hostname"},
             "host": {"relay": "127.0.0.1 : 192.168.0.0/16"},
             "address": {"vips": "ceo@corp.test : *@board.test"},
             "localpart": {"specials": "postmaster : abuse"}}
    c = ExpandContext(config=Config(filename="x", main=main, named_lists=lists))
    c.variables["dir"] = str(tmp_path)
    return c


@pytest.mark.parametrize("domain,lst,expected", [
    ("corp.test", "corp.test", True),
    ("CORP.test", "corp.test", True),
    ("a.sub.test", "*.sub.test", True),
    ("donkey.ex", "*key.ex", True),
    ("sub.test", "*.sub.test", False),
    ("mx.corp.test", "@", True),
    ("x.corp.test", "@", False),
    ("foo.corp.test", "\\N^f.*\\.corp\\.test$\\N", True),
    ("a.b.c", "!a.b.c : *.b.c", False),
    ("x.b.c", "!a.b.c : *.b.c", True),
    ("other.test", "!a.b.c : *.b.c", False),
    ("other.test", "!a.b.c", True),          # last item negative: implicit match
    ("x.sub.test", "+local_domains", True),
    ("nope.test", "+local_domains", False),
    ("other.test", "+nested", True),
    ("corp.test", "+nested", True),
    ("mx.corp.test", "+withvar", True),       # named lists are expanded when used
    ("anything", "", False),
])
def test_domain_lists(ctx, domain, lst, expected):
    assert match_domain(domain, lst, ctx) is expected


def test_domain_list_lookup_sets_domain_data(ctx):
    assert match_domain("x.sub.test", "partial-lsearch;$dir/wild.lsearch", ctx)
    assert ctx.variables["domain_data"] == "wild-sub"
    assert not match_domain("none.test", "lsearch;$dir/wild.lsearch", ctx)


def test_domain_data_is_untainted_lookup_result(ctx):
    from pymta.taint import Tainted, is_tainted
    assert match_domain(Tainted("example.com"), "lsearch;$dir/wild.lsearch", ctx)
    assert ctx.variables["domain_data"] == "ex"
    assert not is_tainted(ctx.variables["domain_data"])


def test_domain_list_forced_fail_means_not_in_list(ctx):
    assert match_domain("a.test", "${if eq{1}{2}{a.test}fail}", ctx) is False


def test_unknown_named_list_is_an_error(ctx):
    with pytest.raises(ExpandError):
        match_domain("a.test", "+nosuchlist", ctx)


def test_ip_literal_at_brackets(ctx):
    assert match_domain("[127.0.0.1]", "@[]", ctx)
    assert not match_domain("[192.0.2.99]", "@[]", ctx)
    # the literal as written (exim4 -be: [::1] matches, [IPv6:::1] does not), so
    # "HELO [IPv6:::1]" is not in helo_lookup_domains' default
    if "::1" in interface_addresses():
        assert match_domain("[::1]", "@[]", ctx)
    assert not match_domain("[IPv6:::1]", "@[]", ctx)


@pytest.mark.parametrize("lp,lst,expected", [
    ("postmaster", "+specials", True), ("Abuse", "+specials", True),
    ("bob", "+specials", False), ("bob-list", "*-list", True),
    ("Bob", "+caseful : bob", False), ("bob", "+caseful : bob", True),
    # caseless before +caseful, in the case written after it (exim4 -bh)
    ("Bob", "^b : +caseful : nobody", True), ("Bob", "+caseful : ^b", False),
    ("Bob", "alice : +caseful : Bob", True), ("bob", "alice : +caseful : Bob", False),
    ("root", "lsearch;$dir/aliases.lsearch", True),
])
def test_localpart_lists(ctx, lp, lst, expected):
    assert match_localpart(lp, lst, ctx) is expected


def test_localpart_regex_sees_lower_case_and_keeps_taint(ctx):
    """A caseless match sees the local part in lower case ($1 too), and what a regular
    expression captures from a tainted local part is tainted."""
    assert match_localpart(Tainted("John"), "^(j.*)\\$", ctx)
    assert ctx.numbered[1] == "john" and is_tainted(ctx.numbered[1])


def test_localpart_lookup_sets_local_part_data(ctx):
    assert match_localpart("root", "lsearch;$dir/aliases.lsearch", ctx)
    assert ctx.variables["local_part_data"] == "admin@corp.test"


@pytest.mark.parametrize("addr,lst,expected", [
    ("ceo@corp.test", "+vips", True), ("x@board.test", "+vips", True),
    ("x@corp.test", "+vips", False), ("CEO@Corp.Test", "ceo@corp.test", True),
    ("CEO@corp.test", "+caseful : ceo@corp.test", False),
    ("a@x.sub.test", "*@+local_domains", True), ("a@else.test", "*@+local_domains", False),
    ("joe@corp.test", "corp.test", True), ("joe@a.corp.test", "*.corp.test", True),
    ("joe@corp.test", "\\N^jo.@\\N", True), ("", ":", True), ("a@b", ":", False),
    ("bob-x@corp.test", "*-x@corp.test", True),
    ("root", "lsearch;$dir/aliases.lsearch", True),
])
def test_address_lists(ctx, addr, lst, expected):
    assert match_address(addr, lst, ctx) is expected


def test_address_at_at_lookup(ctx):
    lst = "@@lsearch;$dir/atat.lsearch"
    assert match_address("anyone@corp.test", lst, ctx)
    assert not match_address("postmaster@corp.test", lst, ctx)
    assert match_address("spam1@bad.test", lst, ctx)
    assert match_address("spam2@bad.test", lst, ctx)     # via the >more chain
    assert not match_address("ham@bad.test", lst, ctx)
    assert not match_address("x@unlisted.test", lst, ctx)


@pytest.mark.parametrize("ip,lst,expected", [
    ("127.0.0.1", "+relay", True), ("192.168.4.5", "+relay", True),
    ("10.0.0.1", "+relay", False), ("::ffff:192.168.1.1", "192.168.0.0/16", True),
    ("2001:db8::1", "<; 2001:db8::/32", True), ("2001:db8::1", "2001::db8::::1", True),
    ("1.2.3.4", "*", True), ("1.2.3.4", "!1.2.3.4 : *", False),
    ("1.2.3.5", "!1.2.3.4 : *", True), ("127.0.0.1", "@[]", True),
    ("10.0.0.1", "net-iplsearch;$dir/hosts.iplsearch", True),
    ("8.8.8.8", "net-iplsearch;$dir/hosts.iplsearch", False),
    ("10.1.2.3", "$dir/hosts.list", True), ("10.2.3.4", "$dir/hosts.list", False),
    ("10.2.9.9", "$dir/hosts.list", True), ("10.3.0.1", "$dir/hosts.list", False),
])
def test_host_lists_by_ip(ctx, ip, lst, expected):
    assert match_host(ip, None, lst, ctx) is expected


def test_host_list_empty_item_matches_local_submission(ctx):
    assert match_host("", None, ":", ctx)
    assert not match_host("1.2.3.4", None, ":", ctx)
    assert match_host(None, None, "1.2.3.4 : : 5.6.7.8", ctx)


def test_host_list_by_name(ctx):
    assert match_host("192.0.2.1", "mail.example.com", "*.example.com", ctx)
    assert not match_host("192.0.2.1", "mail.example.org", "*.example.com", ctx)
    assert match_host("192.0.2.1", "mail.example.com", "\\N^mail\\.\\N", ctx)
    assert match_host("127.0.0.1", None, "localhost", ctx)
    assert ctx.variables["host_data"] == "localhost"


def test_host_net_lookup_with_mask(ctx, tmp_path):
    (tmp_path / "nets").write_text("10.9.8.0/24: masked\n")
    assert match_host("10.9.8.77", None, f"net24-lsearch;{tmp_path}/nets", ctx)
    assert ctx.variables["host_data"] == "masked"


def test_unknown_lookup_type_in_a_list_is_an_error(ctx):
    with pytest.raises(ExpandError, match='unknown lookup type "nosuch"'):
        match_domain("x.test", "other.test : nosuch;/etc/hosts", ctx)
    with pytest.raises(ExpandError, match='unknown lookup type "nosuch"'):
        match_host("10.0.0.1", None, "net24-nosuch;/etc/hosts", ctx)
    assert match_domain("x.test", "x.test : nosuch;/etc/hosts", ctx)   # decided before


def test_match_ip_value_is_lookup_data_only(ctx, tmp_path):
    from pymta.expand import expand_string
    f = tmp_path / "nets"
    f.write_text("10.0.0.0/8: ten\n")
    assert expand_string("${if match_ip{10.1.2.3}{10.0.0.0/8}{[$value]}{n}}", ctx) == "[]"
    assert expand_string("${if match_ip{10.1.2.3}{iplsearch;%s}{[$value]}{n}}" % f,
                         ctx) == "[ten]"


@pytest.mark.parametrize("text,fixed", [
    ("@ : @[]", True),
    ("a.example : *.b.example : !c.example", True),
    ("$primary_hostname", False),
    ("^mx\\d+\\.example$", False),          # sets $0...
    ("+local_domains", False),               # a named list may expand variables
    ("lsearch;/etc/domains", False),
    ("/etc/domains", False),
    ("@mx_any", False),
    ("<; a.example ; b.example", False),
])
def test_fixed_domain_list(text, fixed):
    """Lists whose answer for a domain cannot change while the configuration stands."""
    assert fixed_domain_list(text) is fixed


def test_remembered_named_list_answers_follow_the_subject_and_the_list(tmp_path):
    """Fixed named lists remember their last answer (as Exim's named-list cache): the
    answer for another domain or client address is worked out again, and a list with
    a lookup is never remembered (its file may change)."""
    from pymta.match import forget_domain_answers
    domains = tmp_path / "domains"
    domains.write_text("looked.up.test\n")
    main = types.SimpleNamespace(primary_hostname="mx.test", qualify_domain="test")
    lists = {"domain": {"fixed": "a.test : b.test", "looked": f"lsearch;{domains}"},
             "host": {"nets": "10.0.0.0/8 : 192.0.2.7"}}
    c = ExpandContext(config=Config(filename="x", main=main, named_lists=lists))
    forget_domain_answers()
    assert match_domain("a.test", "+fixed", c)
    assert not match_domain("c.test", "+fixed", c)
    assert match_domain("b.test", "+fixed", c)
    assert match_domain("c.test", "! +fixed", c)
    assert match_domain("looked.up.test", "+looked", c)
    domains.write_text("other.test\n")
    assert not match_domain("looked.up.test", "+looked", c)
    assert match_host("10.1.2.3", None, "+nets", c)
    assert not match_host("192.0.2.8", None, "+nets", c)
    assert match_host("192.0.2.7", None, "+nets", c)
    assert match_host("10.9.9.9", None, "+nets", c)
