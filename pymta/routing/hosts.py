"""Host lists for routers: parsing items with ports, resolving names, spotting the local host."""
from __future__ import annotations

import ipaddress
import random
import re
import socket
from typing import Any

from pymta import dns as pdns
from pymta.address import Host
from pymta.expand.context import ExpandContext
from pymta.localips import parse_extra_local
from pymta.osutil import interface_addresses
from pymta.routing import support


class HostNotFound(Exception):
    """A definite "no such host"."""


class HostLookupDefer(Exception):
    """A temporary failure finding a host's addresses."""


_BRACKETED = re.compile(r"^\[([^\]]+)\](?::(\d+))?$")


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_host_item(item: str) -> tuple[str, int | None, bool]:
    """Split one host item into (name or IP, port or None, is_mx)."""
    item = item.strip()
    m = _BRACKETED.match(item)
    if m:
        return m.group(1), int(m.group(2)) if m.group(2) else None, False
    port = None
    if is_ip(item):
        return item, None, False
    if item.count(":") == 1:
        name, _, p = item.partition(":")
        if not p.isdigit():
            raise ValueError(f'invalid port "{p}" in host list')
        item, port = name, int(p)
    is_mx = item.lower().endswith("/mx")
    if is_mx:
        item = item[:-3]
    return item, port, is_mx


def parse_host_list(text: str, randomize: bool = False) -> list[tuple[str, int | None, bool]]:
    """Parse a (colon-separated, ``<`` changes the separator) host list.

    ``+`` items split the list into groups whose order is randomized separately when
    ``randomize`` is set; otherwise they are ignored.
    """
    groups: list[list[tuple[str, int | None, bool]]] = [[]]
    for item in support.split_list(text):
        if item == "+":
            groups.append([])
            continue
        groups[-1].append(parse_host_item(item))
    out: list[tuple[str, int | None, bool]] = []
    for group in groups:
        if randomize:
            random.shuffle(group)
        out.extend(group)
    return out


def resolve_name(name: str, ipv4_only: bool = False, ipv4_prefer: bool = False) -> list[str]:
    """IP addresses of ``name`` from the system resolver (byname); raises HostNotFound /
    HostLookupDefer.  DNS lookups (bydns, MX) are :mod:`pymta.routing.listed_hosts`'s."""
    if is_ip(name):
        return [name]
    ipv4_only = ipv4_only or pdns.ipv4_lookup_only(name)     # dns_ipv4_lookup
    family = socket.AF_INET if ipv4_only else socket.AF_UNSPEC
    try:
        infos = socket.getaddrinfo(name, None, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_AGAIN,):
            raise HostLookupDefer(str(exc)) from exc
        raise HostNotFound(name) from exc
    addrs: list[str] = []
    for info in infos:
        ip = str(info[4][0])
        if ip not in addrs:
            addrs.append(ip)
    if ipv4_prefer:
        addrs.sort(key=lambda a: ":" in a)
    return addrs


_LOCAL_IPS: set[str] | None = None


def local_addresses(config: Any = None) -> set[str]:
    """The IP addresses of this host's interfaces, extra_local_interfaces and the
    hosts_treat_as_local items that are literal IPs, used for the router's ``self``
    handling."""
    global _LOCAL_IPS
    if _LOCAL_IPS is None:
        _LOCAL_IPS = set(interface_addresses())
    if config is None:
        return _LOCAL_IPS
    ours = _LOCAL_IPS | parse_extra_local(support.main_option(config,
                                                              "extra_local_interfaces"))
    extra = support.main_option(config, "hosts_treat_as_local")
    if extra:
        return ours | {i for i in support.split_list(str(extra)) if is_ip(i)}
    return ours


def host_is_local(host: Host, config: Any = None) -> bool:
    return host.address is not None and host.address in local_addresses(config)


def is_local_host(host: Host, config: Any = None, ctx: Any = None) -> bool:
    """Spec 13.8: a host is this host when its address is one of ours, or when its name
    matches the main option ``hosts_treat_as_local`` (a domain list of host names)."""
    if host_is_local(host, config):
        return True
    names = support.main_option(config, "hosts_treat_as_local") if config else None
    if not names or not host.name:
        return False
    if ctx is None:
        ctx = ExpandContext(config)
    return support.match_domain(host.name.lower(), str(names), ctx.child())


def format_hosts_bt(hosts: list[Host]) -> list[str]:
    """The ``  host name [ip] MX=n port=n`` lines of ``-bt``, padded like Exim."""
    if not hosts:
        return []
    width = max(len(h.name) for h in hosts)
    awidth = max(len(h.address or "unknown") for h in hosts)
    lines = []
    for h in hosts:
        addr = f"[{h.address or 'unknown'}]".ljust(awidth + 2)
        line = f"  host {h.name.ljust(width)} {addr}"
        if h.mx >= 0:
            line += f" MX={h.mx}"
        if h.port is not None:
            line += f" port={h.port}"
        lines.append(line)
    return lines
