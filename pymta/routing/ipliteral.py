"""The ipliteral router: domains that are IP address literals, ``user@[192.0.2.1]`` or
``user@[IPv6:2001:db8::1]``, go to that address (Exim 4.96 manual, "The ipliteral
router").  Any other domain is declined; a malformed literal is declined too (Exim does
the same, leaving it to later routers).  When the address is one of this host's own, the
router's ``self`` option decides.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from pymta.address import Address, Host
from pymta.drivers import register
from pymta.routing import hosts as hostmod
from pymta.routing.base import ACCEPT, DECLINE, Router, RouterReply
from pymta.routing.options import router_options
from pymta.routing.selfhost import self_action


def literal_address(domain: str) -> str | None:
    """The IP address of a domain literal, or None when ``domain`` is not one."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
        want = 6
    else:
        want = 4
    try:
        ip = ipaddress.ip_address(inner)
    except ValueError:
        return None
    return str(ip) if ip.version == want else None


@register("router", "ipliteral")
class IpliteralRouter(Router):
    """Route ``local@[ip]`` to that IP address with the router's transport."""

    options = router_options("ipliteral")

    def route(self, addr: Address, ctx: Any, verify: Any = False) -> RouterReply:
        ip = literal_address(addr.domain)
        if ip is None:
            return RouterReply(DECLINE)
        host = Host(name=addr.domain.lower(), address=ip)     # Exim names it "[ip]"
        addr.hosts = [host]
        addr.transport = self.transport_name(ctx)
        if hostmod.host_is_local(host, self.config):
            return self_action(self, addr, host) or RouterReply(ACCEPT)
        return RouterReply(ACCEPT)
