"""extra_local_interfaces: addresses that count as this host's own when routing (the
``self`` checks, MX records pointing here, ``@[]``) without being listened on.

pymta already treats every interface address as local whatever local_interfaces says,
so the option adds what no interface carries (an address a NAT or a load balancer
forwards here); its "all" wildcards (0.0.0.0, ::0) mean every interface.
"""
from __future__ import annotations

import ipaddress

from pymta.expand.lists import nonempty_items
from pymta.osutil import interface_addresses

_WILDCARDS = ("0.0.0.0", "::0", "::")


def _address(item: str) -> str:
    """An item's address without its port (``1.2.3.4.25``, ``[::1]:25`` or plain)."""
    text = item.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    else:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            text = text.rpartition(".")[0] if "." in text else text
    ipaddress.ip_address(text)          # ValueError for anything else
    return text


def parse_extra_local(text: str | None) -> frozenset[str]:
    """The addresses of an extra_local_interfaces value; ValueError names a bad item."""
    out: set[str] = set()
    for item in nonempty_items(str(text or "")):
        try:
            addr = _address(item)
        except ValueError:
            raise ValueError(f'invalid IP address "{item}" in extra_local_interfaces') \
                from None
        if addr in _WILDCARDS:
            out |= interface_addresses()
        else:
            out.add(str(ipaddress.ip_address(addr)))
    return frozenset(out)
