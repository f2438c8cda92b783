"""How delivery, deferral and failure log lines name an address (Exim's
string_log_address): shared by deliveries, cutthrough and held callout connections.

An address is shown by its local part without the affixes a router took off (with them
when the transport put them in an envelope: rcpt_include_affixes), lower-cased unless
the router has caseful_local_part, at the domain; then the address that generated it
in parentheses (all of them with log_selector +all_parents, else only for a pipe, file
or autoreply, and only the nearest), then the original recipient in <> unless it is the
same address (a difference of case in the local part counts).
"""
from __future__ import annotations

from typing import Any

from pymta.address import Address
from pymta.log import log_selected


def intermediate_parents(a: Address) -> tuple[str, ...]:
    """The addresses between ``a`` and its original recipient, nearest first."""
    out = []
    p = a.parent
    while p is not None and p.parent is not None:
        out.append(p.address)
        p = p.parent
    return tuple(out)


def logged_parents(config: Any, a: Address) -> tuple[str, ...]:
    """The parents a log line shows in parentheses."""
    parents = intermediate_parents(a)
    if log_selected(config, "all_parents"):
        return parents
    return parents[:1] if a.kind != "address" else ()


def logged_local_part(config: Any, a: Address) -> str:
    """The local part as log lines show it (see the module docstring)."""
    lp = a.unaffixed_local_part()
    router = next((r.obj for r in getattr(config, "routers", []) if r.name == a.router),
                  None)
    if router is None or not router.flag("caseful_local_part"):
        lp = lp.lower()
    inst = getattr(config, "transports", {}).get(a.transport) if a.transport else None
    if inst is not None and inst.obj.opt("rcpt_include_affixes") and (
            inst.driver in ("smtp", "lmtp") or inst.obj.opt("use_bsmtp")):
        lp = f"{a.prefix}{lp}{a.suffix}"
    return lp


def log_name_parts(config: Any, a: Address) -> tuple[str, tuple[str, ...], str]:
    """The address shown, the parents shown in parentheses and the original recipient
    shown in <> ("" for none)."""
    parents = logged_parents(config, a)
    top = a.top_parent().address
    if a.kind != "address" or not a.domain:
        return a.address, parents, top if a.parent else ""
    shown = f"{logged_local_part(config, a)}@{a.domain}"
    local, top_local = shown.rpartition("@")[0], top.rpartition("@")[0]
    if shown.lower() == top.lower() and local == top_local and (
            a.parent is None or a.parent is a.top_parent()
            or not log_selected(config, "all_parents")):
        return shown, parents, ""
    return shown, parents, top


def log_address(config: Any, a: Address) -> str:
    """The whole name, as a deferral or failure line writes it."""
    shown, parents, original = log_name_parts(config, a)
    return shown + (f" ({', '.join(parents)})" if parents else "") + \
        (f" <{original}>" if original else "")
