"""The iplookup router: ask a server over UDP or TCP what an address should become
(Exim 4.96 manual, "The iplookup router").

The query (default ``$local_part@$domain $local_part@$domain``) goes to each of
``hosts`` in turn on ``port`` until one answers within ``timeout``.  The new address is
``reroute`` expanded with ``$0``.. from ``response_pattern``, or the answer's first word;
with the default query the answer's second word must be the address asked about.  The
new address is routed as a child, from the first router (or redirect_router).  No answer
at all defers, or passes on with ``optional``.
"""
from __future__ import annotations

import re
import socket
from typing import Any

from pymta.address import Address
from pymta.config.model import ConfigError
from pymta.drivers import register
from pymta.expand import ExpandError, ExpandFail, expand_string
from pymta.expand.lists import nonempty_items
from pymta.routing import hosts as hostmod
from pymta.routing.base import ACCEPT, DECLINE, DEFER, PASS, Router, RouterReply
from pymta.routing.options import router_options
from pymta.taint import captures, taint

DEFAULT_QUERY = "$local_part@$domain $local_part@$domain"


@register("router", "iplookup")
class IplookupRouter(Router):
    """Rewrite an address with the answer of a remote lookup service."""

    options = router_options("iplookup")

    def __init__(self, instance: Any, config: Any):
        super().__init__(instance, config)
        if not self.opt("hosts"):
            raise ConfigError(f"hosts must be set for the {self.name} router")
        if not int(self.opt("port") or 0):
            raise ConfigError(f"port must be set for the {self.name} router")
        if str(self.opt("protocol") or "udp").lower() not in ("udp", "tcp"):
            raise ConfigError(f'protocol must be "udp" or "tcp" for the {self.name} router')

    def route(self, addr: Address, ctx: Any, verify: Any = False) -> RouterReply:
        defaulted = not self.opt("query")
        try:
            query = expand_string(DEFAULT_QUERY if defaulted else str(self.opt("query")), ctx)
        except ExpandFail:
            return RouterReply(DECLINE)
        except ExpandError as e:
            return RouterReply(DEFER, f"{self.name} router: failed to expand query: {e}")
        answer = self._ask(query)
        if answer is None:
            if self.flag("optional"):
                return RouterReply(PASS)
            return RouterReply(DEFER, f"{self.name} router: no response from any host")
        return self._reroute(addr, answer, defaulted, ctx)

    def _ask(self, query: str) -> str | None:
        port = int(self.opt("port"))
        timeout = float(self.opt("timeout") or 5)
        tcp = str(self.opt("protocol") or "udp").lower() == "tcp"
        for name in nonempty_items(str(self.opt("hosts")), ":"):
            try:
                addresses = hostmod.resolve_name(name.strip())
            except (hostmod.HostNotFound, hostmod.HostLookupDefer, ValueError):
                continue
            for ip in addresses:
                try:
                    reply = self._tcp(ip, port, query, timeout) if tcp else \
                        self._udp(ip, port, query, timeout)
                except OSError:
                    continue
                if reply:
                    return reply.decode("utf-8", "replace").strip("\r\n")
        return None

    @staticmethod
    def _udp(ip: str, port: int, query: str, timeout: float) -> bytes:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(query.encode(), (ip, port))
            return s.recv(65536)

    @staticmethod
    def _tcp(ip: str, port: int, query: str, timeout: float) -> bytes:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.sendall(query.encode())
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)

    def _reroute(self, addr: Address, answer: str, defaulted: bool, ctx: Any) -> RouterReply:
        numbered = [answer]
        pattern = self.opt("response_pattern")
        if pattern:
            m = re.search(str(pattern), answer)
            if m is None:
                return RouterReply(DECLINE)
            numbered = captures(m, taint(answer))      # a remote server's answer
        elif defaulted:
            words = answer.split()
            if len(words) < 2 or words[1].lower() != f"{addr.local_part}@{addr.domain}".lower():
                return RouterReply(DECLINE)
        if self.opt("reroute"):
            ctx.numbered = numbered
            try:
                new = expand_string(str(self.opt("reroute")), ctx)
            except (ExpandError, ExpandFail) as e:
                return RouterReply(DEFER, f"{self.name} router: failed to expand reroute: {e}")
        else:
            new = answer.split()[0] if answer.split() else ""
        if "@" not in new:
            return RouterReply(DEFER, f"{self.name} router: bad rerouted address \"{new}\"")
        return RouterReply(ACCEPT, children=[Address(new.strip(), parent=addr)])
