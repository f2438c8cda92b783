"""``-bt``: address testing output in Exim's format."""
from __future__ import annotations

from typing import Any

from pymta.address import Address
from pymta.expand.context import ExpandContext
from pymta.rewrite import RewriteLog, Where
from pymta.rewrite.setup import main_rewriter
from pymta.routing.hosts import format_hosts_bt
from pymta.routing.manualroute import _transport_is_local as is_local
from pymta.routing.route import route_address
from pymta.routing.support import qualify_recipient


def _ancestor_lines(addr: Address) -> list[str]:
    # Exim routes an address an unseen router takes as two copies whose parent is the
    # original: each such copy shows as a parent of the same name.
    lines = [f"    <-- {addr.address}"] * addr.unseen_level
    anc = addr.parent
    while anc is not None:
        lines += [f"    <-- {anc.address}"] * (1 + anc.unseen_level)
        anc = anc.parent
    return lines


#: What -bt has shown as delivered so far in this run: (address, router) pairs.
Delivered = set[tuple[str, str]]


def _transport_is_local(config: Any, addr: Address) -> bool:
    return addr.transport is not None and is_local(config, addr.transport)


def format_test_result(config: Any, address: str, result: Any,
                       delivered: Delivered | None = None) -> tuple[str, int]:
    """Render a :class:`RouteResult` the way ``exim -bt`` prints it.  An address shown
    before in this run (``delivered``, kept across the run's addresses) is marked as a
    duplicate that would not be delivered."""
    if delivered is None:
        delivered = set()
    lines: list[str] = []
    for a in result.failed:
        lines.append(f"{a.address} is undeliverable: {a.message}")
        lines += _ancestor_lines(a)
    for a in result.deferred:
        lines.append(f"{a.address} cannot be resolved at this time: {a.message}")
        lines += _ancestor_lines(a)
    for a in result.discarded:
        lines.append(f"mail to {a.address} is discarded")
        lines += _ancestor_lines(a)
    # Exim lists file/pipe deliveries first, then the other local deliveries, then the
    # remote ones, the last routed first in each group of addresses.
    special = [a for a in result.addresses if a.kind != "address"]
    normal = [a for a in result.addresses if a.kind == "address"][::-1]
    local = [a for a in normal if not a.hosts or _transport_is_local(config, a)]
    remote = [a for a in normal if a not in local]
    for a in special:
        parent = a.parent.address if a.parent is not None else address
        lines.append(f"{parent} -> {a.address}")
        lines.append(f"  transport = {a.transport or 'unset'}")
    for a in local + remote:
        key = (a.address, str(a.router))
        lines.append(f"{a.address}   [duplicate, would not be delivered]"
                     if key in delivered else a.address)
        delivered.add(key)
        lines += _ancestor_lines(a)
        lines.append(f"  router = {a.router}, transport = {a.transport or 'unset'}")
        lines += format_hosts_bt(a.hosts) if not _transport_is_local(config, a) else []
    code = 2 if result.failed else 1 if result.deferred else 0
    return "".join(line + "\n" for line in lines), code


def test_address(config: Any, address: str, ctx: ExpandContext | None = None,
                 verify: Any = False, log: RewriteLog | None = None,
                 delivered: Delivered | None = None,
                 notes: RewriteLog | None = None) -> tuple[str, int]:
    """Route ``address`` as ``exim -bt`` does (``exim -bv`` when ``verify`` is true, or
    "sender" for ``-bvs``); return (output text, exit code).  The rewrite section is
    applied first (as a recipient, or as a sender for ``-bvs``), rewrites going to
    ``log``; a router's ``self = freeze`` is reported to ``notes``, as Exim logs it.

    Exit code 0 when everything routed, 1 when something deferred, 2 when something failed.
    """
    if ctx is None:
        ctx = ExpandContext(config)
        ctx.variables.setdefault("sender_address", "")
    if "@" not in address:
        address = f"{address}@{qualify_recipient(config)}"
    prefix = ""
    rewriter = main_rewriter(config, log, ctx.variables)
    if rewriter is not None:
        where = Where.ENV_FROM if verify == "sender" else Where.ENV_TO
        rewritten = rewriter.address(address, where).address
        if rewritten != address:
            prefix, address = f"Address rewritten as: {rewritten}\n", rewritten
    addr = Address(address)
    if verify:
        result = route_address(config, addr, ctx, verify=verify)
        text, code = format_verify_result(address, result)
    else:
        result = route_address(config, addr, ctx, verify=False, address_test=True)
        text, code = format_test_result(config, address, result, delivered)
    if notes is not None:
        for note, frozen in result.self_frozen:
            notes.main(f"{note} (while routing <{frozen}>)")
    return prefix + text, code


def format_verify_result(address: str, result: Any) -> tuple[str, int]:
    """``-bv`` output: "verified", "failed to verify: ..." or "cannot be resolved..."."""
    if result.failed:
        return f"{address} failed to verify: {result.failed[0].message}\n", 2
    if result.deferred:
        return (f"{address} cannot be resolved at this time: "
                f"{result.deferred[0].message}\n", 1)
    return f"{address} verified\n", 0


def test_addresses(config: Any, addresses: list[str], verify: Any = False) -> tuple[str, int]:
    """Several addresses, one after the other; the exit code is the worst one."""
    out, worst = [], 0
    delivered: Delivered = set()
    for a in addresses:
        text, code = test_address(config, a, verify=verify, delivered=delivered)
        out.append(text)
        worst = max(worst, code)
    return "".join(out), worst
