"""The accept router: accepts every address that passed the preconditions."""
from __future__ import annotations

from typing import Any

from pymta.address import Address
from pymta.drivers import register
from pymta.routing.base import ACCEPT, Router, RouterReply
from pymta.routing.options import router_options


@register("router", "accept")
class AcceptRouter(Router):
    """Assign the address to the router's ``transport`` (no private options)."""

    options = router_options("accept")

    def route(self, addr: Address, ctx: Any, verify: Any = False) -> RouterReply:
        addr.transport = self.transport_name(ctx)
        return RouterReply(ACCEPT)
