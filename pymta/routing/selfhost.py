"""The ``self`` option of the routers that name hosts (dnslookup, manualroute, ipliteral):
what to do when the first host an address is routed to is this host itself."""
from __future__ import annotations

from typing import Any

from pymta.address import Address, Host, quote_local_part
from pymta.routing.base import ACCEPT, DEFER, FAIL, PASS, RouterReply

SELF_MESSAGE = "remote host address is the local host"
SELF_MX_MESSAGE = "lowest numbered MX record points to local host"


def self_action(router: Any, addr: Address, host: Host) -> RouterReply | None:
    """What the router's ``self`` option says to do when ``host``, the first host, is
    this host: freeze (the default), defer, fail, pass, reroute:<domain>, or send (None:
    the router carries on as if the host were remote)."""
    message = SELF_MX_MESSAGE if host.mx >= 0 else SELF_MESSAGE
    action = str(router.opt("self") or "freeze").strip()
    if action == "send":
        return None
    if action == "fail":
        return RouterReply(FAIL, message)
    if action == "pass" or action.startswith("reroute:"):
        addr.hosts, addr.transport = [], None
        if action == "pass":
            return RouterReply(PASS)
        dom = action[len("reroute:"):].strip()
        if dom.startswith("rewrite:"):
            dom = dom[len("rewrite:"):].strip()
        child = Address(f"{quote_local_part(addr.local_part)}@{dom}", parent=addr)
        return RouterReply(ACCEPT, children=[child])
    if action == "defer":
        return RouterReply(DEFER, message)
    # Exim logs a freeze here, with the domain; the caller adds what it was doing
    return RouterReply(DEFER, message, freeze=True, self_frozen=f"{message}: {addr.domain}")
