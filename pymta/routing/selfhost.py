"""The ``self`` option of the routers that name hosts (manualroute, ipliteral): what to do
when the first host an address is routed to is this host itself."""
from __future__ import annotations

from typing import Any

from pymta.address import Address, quote_local_part
from pymta.routing.base import ACCEPT, DEFER, FAIL, PASS, RouterReply

SELF_MESSAGE = "remote host address is the local host"


def self_action(router: Any, addr: Address) -> RouterReply:
    """What the router's ``self`` option says to do when the first host is this host
    (manualroute, ipliteral): freeze (the default), defer, fail, pass, send, or
    reroute:<domain>."""
    action = str(router.opt("self") or "freeze").strip()
    if action == "send":
        return RouterReply(ACCEPT)
    if action == "pass":
        return RouterReply(PASS)
    if action == "fail":
        return RouterReply(FAIL, SELF_MESSAGE)
    if action.startswith("reroute:"):
        dom = action[len("reroute:"):]
        if dom.startswith("rewrite:"):
            dom = dom[len("rewrite:"):]
        child = Address(f"{quote_local_part(addr.local_part)}@{dom}", parent=addr)
        return RouterReply(ACCEPT, children=[child])
    return RouterReply(DEFER, SELF_MESSAGE, freeze=(action == "freeze"))
