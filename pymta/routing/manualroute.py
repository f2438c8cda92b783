"""The manualroute router: route domains to explicitly listed hosts."""
from __future__ import annotations

import shlex
from typing import Any

from pymta.address import Address, Host
from pymta.drivers import register
from pymta.expand.context import ExpandContext
from pymta.match import match_host
from pymta.routing import hosts as hostmod
from pymta.routing import listed_hosts, support
from pymta.routing.base import ACCEPT, DECLINE, DEFER, FAIL, PASS, Router, RouterReply
from pymta.routing.dnslookup import DnssecPolicy
from pymta.routing.options import router_options
from pymta.routing.selfhost import self_action

_RULE_WORDS = {"randomize", "no_randomize", "byname", "bydns", "ipv4_only", "ipv4_prefer"}


def split_route_list(text: str) -> list[list[str]]:
    """Split ``route_list`` into rules (``;``-separated) of white-space separated fields
    (pattern, host list, options...); quotes group a field."""
    rules = []
    for rule in support.split_list(text, sep=";"):
        fields = rule_fields(rule)
        if fields:
            rules.append(fields)
    return rules


def rule_fields(rule: str) -> list[str]:
    """White-space separated fields of one rule; double or single quotes group a field."""
    lex = shlex.shlex(rule, posix=True)
    lex.whitespace_split = True
    lex.escape = ""
    return list(lex)


@register("router", "manualroute")
class ManualrouteRouter(Router):
    """Hosts come from the first ``route_list`` rule matching the domain, or
    ``route_data``; the ``self`` option decides what happens when the first host is us."""

    options = router_options("manualroute")

    def route(self, addr: Address, ctx: Any, verify: Any = False) -> RouterReply:
        found = self._find_rule(addr, ctx)
        if found is None:
            return RouterReply(DECLINE)
        host_text, words = found
        try:
            host_text = support.expand(host_text, ctx)
        except (support.ExpandFail, support.ExpandError):
            return RouterReply(DECLINE)
        transport = None
        for w in words:
            if w not in _RULE_WORDS:
                transport = w
        if transport is None:
            transport = self.transport_name(ctx)
        if transport is None:
            return RouterReply(DEFER, f"{self.name} router: no transport set")
        randomize = self.flag("hosts_randomize")
        if "randomize" in words:
            randomize = True
        if "no_randomize" in words:
            randomize = False
        try:
            items = hostmod.parse_host_list(host_text, randomize)
        except ValueError as exc:
            return RouterReply(DEFER, str(exc))
        if not items:
            return RouterReply(DECLINE)
        addr.transport = transport
        if _transport_is_local(self.config, transport):
            addr.hosts = [Host(name, None, port) for name, port, _ in items]
            return RouterReply(ACCEPT)
        method = "bydns" if "bydns" in words else "byname"
        return self._lookup_hosts(addr, items, method, "ipv4_only" in words,
                                  "ipv4_prefer" in words, listed_hosts.router_policy(self, ctx))

    def _find_rule(self, addr: Address, ctx: Any) -> tuple[str, list[str]] | None:
        if self.opt("route_data") is not None:
            try:
                data = support.expand(self.opt("route_data"), ctx)
            except support.ExpandFail:
                return None
            fields = rule_fields(data) if data and data.strip() else []
            if not fields:
                return None
            return fields[0], fields[1:]
        route_list = self.opt("route_list")
        if route_list is None:
            return None
        for fields in split_route_list(route_list):
            if support.match_domain(addr.domain, fields[0], ctx):
                ctx.numbered = [addr.domain] + list(ctx.numbered[1:])
                if len(fields) < 2:
                    return None
                return fields[1], fields[2:]
        return None

    def _lookup_hosts(self, addr: Address, items: list, method: str, v4only: bool,
                      v4prefer: bool, dnssec: DnssecPolicy) -> RouterReply:
        hosts: list[Host] = []
        failed_action = str(self.opt("host_find_failed") or "freeze")
        ignored = 0
        for name, port, is_mx in items:
            try:
                found = listed_hosts.find(name, port, is_mx, method, dnssec, v4only, v4prefer)
            except listed_hosts.InsecureHostLookup as exc:
                return RouterReply(DEFER, str(exc))
            except hostmod.HostLookupDefer:
                if self.flag("pass_on_timeout"):
                    return RouterReply(PASS)
                return RouterReply(DEFER,
                                   f'host lookup for "{name}" did not complete (DNS timeout?)')
            except hostmod.HostNotFound:
                if failed_action == "ignore":
                    ignored += 1
                    continue
                return self._failed_action(
                    failed_action, f'lookup of host "{name}" failed in {self.name} router')
            hosts.extend(found)
        hosts, dropped = self._drop_ignored_targets(hosts)
        ignored += dropped
        if not hosts:
            action = str(self.opt("host_all_ignored") or "defer") if ignored else "defer"
            return self._failed_action(action, f"all hosts for {addr.domain} have been ignored")
        # A local host that is not first cuts the list there; first is the "self" case.
        for i, h in enumerate(hosts):
            if hostmod.host_is_local(h, self.config):
                if i > 0:
                    hosts = hosts[:i]
                    break
                addr.hosts = hosts
                return self_action(self, addr, h) or RouterReply(ACCEPT)
        addr.hosts = hosts
        return RouterReply(ACCEPT)

    def _drop_ignored_targets(self, hosts: list[Host]) -> tuple[list[Host], int]:
        """Remove hosts whose IP address is in ``ignore_target_hosts``."""
        text = self.opt("ignore_target_hosts")
        if not text:
            return hosts, 0
        ctx = ExpandContext(self.config)
        kept = [h for h in hosts if not match_host(h.address, h.name, text, ctx)]
        return kept, len(hosts) - len(kept)

    def _failed_action(self, action: str, message: str) -> RouterReply:
        if action == "decline":
            return RouterReply(DECLINE, message)
        if action == "pass":
            return RouterReply(PASS, message)
        if action == "fail":
            return RouterReply(FAIL, message)
        return RouterReply(DEFER, message, freeze=(action == "freeze"))


def _transport_is_local(config: Any, name: str) -> bool:
    """Whether transport ``name`` is local (its object says so, else by driver name)."""
    inst = getattr(config, "transports", {}).get(name)
    if inst is None:
        return False
    obj = getattr(inst, "obj", None)
    if obj is not None and hasattr(obj, "is_local"):
        return bool(obj.is_local)
    return inst.driver not in ("smtp",)
