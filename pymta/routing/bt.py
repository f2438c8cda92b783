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
    lines = []
    anc = addr.parent
    while anc is not None:
        lines.append(f"    <-- {anc.address}")
        anc = anc.parent
    return lines


def _transport_is_local(config: Any, addr: Address) -> bool:
    return addr.transport is not None and is_local(config, addr.transport)


def format_test_result(config: Any, address: str, result: Any) -> tuple[str, int]:
    """Render a :class:`RouteResult` the way ``exim -bt`` prints it."""
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
    # remote ones, each group in routing order.
    special = [a for a in result.addresses if a.kind != "address"]
    normal = [a for a in result.addresses if a.kind == "address"]
    local = [a for a in normal if not a.hosts or _transport_is_local(config, a)]
    remote = [a for a in normal if a not in local]
    for a in special:
        parent = a.parent.address if a.parent is not None else address
        lines.append(f"{parent} -> {a.address}")
        lines.append(f"  transport = {a.transport or 'unset'}")
    for a in local + remote:
        lines.append(a.address)
        lines += _ancestor_lines(a)
        lines.append(f"  router = {a.router}, transport = {a.transport or 'unset'}")
        lines += format_hosts_bt(a.hosts) if not _transport_is_local(config, a) else []
    code = 2 if result.failed else 1 if result.deferred else 0
    return "".join(line + "\n" for line in lines), code


def test_address(config: Any, address: str, ctx: ExpandContext | None = None,
                 verify: Any = False, log: RewriteLog | None = None) -> tuple[str, int]:
    """Route ``address`` as ``exim -bt`` does (``exim -bv`` when ``verify`` is true, or
    "sender" for ``-bvs``); return (output text, exit code).  The rewrite section is
    applied first (as a recipient, or as a sender for ``-bvs``), rewrites going to
    ``log``.

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
        text, code = format_test_result(config, address, result)
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
    for a in addresses:
        text, code = test_address(config, a, verify=verify)
        out.append(text)
        worst = max(worst, code)
    return "".join(out), worst
