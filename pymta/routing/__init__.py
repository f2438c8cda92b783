"""Routing: the router base class, the drivers, and the routing loop.

Importing this package registers the router drivers (accept, redirect, manualroute,
dnslookup, ipliteral, iplookup, queryprogram).
"""
from pymta.routing import (  # noqa: F401  (registration)
                                 accept,
                                 dnslookup,  # noqa: F401  (registration)
                                 ipliteral,
                                 iplookup,
                                 manualroute,
                                 queryprogram,
                                 redirect,
)
from pymta.routing.base import Router, RouterReply  # noqa: F401
from pymta.routing.bt import test_address, test_addresses  # noqa: F401
from pymta.routing.route import (  # noqa: F401
                                 RouteResult,
                                 address_context,
                                 get_routers,
                                 route_address,
                                 route_addresses,
)

__all__ = ["Router", "RouterReply", "RouteResult", "route_address", "route_addresses",
           "test_address", "test_addresses", "address_context", "get_routers"]
