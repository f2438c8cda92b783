"""names_to_try: the names the C resolver's res_search would try for qualify_single
(RES_DEFNAMES) and search_parents (RES_DNSRCH), in its order."""
from __future__ import annotations

import dns.name
import dns.resolver

from pymta.dns_search import names_to_try


def _resolver(search: list[str], domain: str = ".") -> dns.resolver.Resolver:
    res = dns.resolver.Resolver(configure=False)
    res.search = [dns.name.from_text(s) for s in search]
    res.domain = dns.name.from_text(domain)
    return res


RES = _resolver(["one.example", "two.example"])


def test_single_component():
    assert names_to_try("x", True, False, RES) == ["x.one.example", "x"]
    assert names_to_try("x", True, True, RES) == ["x.one.example", "x.two.example", "x"]
    assert names_to_try("x", False, True, RES) == ["x"]
    assert names_to_try("x", False, False, RES) == ["x"]


def test_dotted_name_as_is_first():
    assert names_to_try("a.b", True, False, RES) == ["a.b"]
    assert names_to_try("a.b", True, True, RES) == ["a.b", "a.b.one.example",
                                                    "a.b.two.example"]


def test_trailing_dot_is_never_searched():
    assert names_to_try("x.", True, True, RES) == ["x"]


def test_default_domain_when_no_search_line():
    assert names_to_try("x", True, False, _resolver([], "dom.example")) == \
        ["x.dom.example", "x"]
    assert names_to_try("x", True, False, _resolver([])) == ["x"]
