"""Routing: the router base class, the drivers, and the routing loop.

Importing this package registers the router drivers (accept, redirect, manualroute,
dnslookup).
"""
from pymta.routing.base import Router, RouterReply  # noqa: F401
from pymta.routing import accept, manualroute, redirect  # noqa: F401  (registration)
from pymta.routing import dnslookup  # noqa: F401  (registration)
from pymta.routing.route import (RouteResult, address_context, get_routers,  # noqa: F401
                                 route_address, route_addresses)
from pymta.routing.bt import test_address, test_addresses  # noqa: F401

__all__ = ["Router", "RouterReply", "RouteResult", "route_address", "route_addresses",
           "test_address", "test_addresses", "address_context", "get_routers"]
