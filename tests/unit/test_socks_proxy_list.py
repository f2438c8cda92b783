"""socks_proxy's list syntax and the order proxies are tried in (pymta/smtp/socks.py)."""
from __future__ import annotations

import collections
import random

import pytest

from pymta.smtp.socks import SocksProxy, parse_socks_proxies, proxy_order


def test_items_and_options():
    proxies = parse_socks_proxies(
        "192.0.2.1 : 192.0.2.2 port=1081 auth=name name=u pass=p tmo=2 pri=3 weight=4")
    assert proxies[0] == SocksProxy("192.0.2.1")
    assert proxies[1] == SocksProxy("192.0.2.2", 1081, "name", "u", "p", 2.0, 3, 4)
    # an IPv6 proxy needs another list separator, as in every Exim list
    assert [p.address for p in parse_socks_proxies("<; 2001:db8::1 port=1 ; 192.0.2.9")] \
        == ["2001:db8::1", "192.0.2.9"]


@pytest.mark.parametrize("text, message", [
    ("proxy.example", '"proxy.example" is not an IP address'),
    ("192.0.2.1 colour=blue", 'unknown option "colour=blue"'),
    ("192.0.2.1 auth=gssapi", 'auth must be "none" or "name"'),
    ("192.0.2.1 port=x", "bad number"),
])
def test_bad_items(text, message):
    with pytest.raises(ValueError, match=message):
        parse_socks_proxies(text)


def test_priority_first_then_weighted_random():
    proxies = [SocksProxy("192.0.2.1", priority=1), SocksProxy("192.0.2.2", priority=2),
               SocksProxy("192.0.2.3", priority=1, weight=3)]
    rng = random.Random(7)
    firsts = collections.Counter()
    for _ in range(2000):
        order = proxy_order(proxies, rng)
        assert order[0].address == "192.0.2.2"
        assert sorted(p.address for p in order[1:]) == ["192.0.2.1", "192.0.2.3"]
        firsts[order[1].address] += 1
    # weight 3 against 1: about three quarters of the time first in its priority
    assert 0.70 < firsts["192.0.2.3"] / 2000 < 0.80
