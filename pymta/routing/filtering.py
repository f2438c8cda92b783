"""Running a user's Exim or Sieve filter for the redirect router (allow_filter).

The filter's actions become generated addresses: forwarded addresses, files and
directories (file_transport / directory_transport), pipes (pipe_transport) and replies
(reply_transport).  If it set up a significant delivery the address is done (ACCEPT);
if not, the generated addresses are still delivered and the address goes on to the
next router (DECLINE with children), as in Exim.
"""
from __future__ import annotations

from typing import Any

from pymta.address import Address
from pymta.errnos import EximErrno
from pymta.filter import FilterAction, FilterError, FilterResult, ReplySpec
from pymta.filter.exim_filter import FilterEnvironment, run_exim_filter
from pymta.filter.result import DEFER, DELIVERED, FAIL, FREEZE
from pymta.routing import support
from pymta.routing.base import ACCEPT, DECLINE, DISCARD, RouterReply
from pymta.routing.base import DEFER as R_DEFER
from pymta.routing.base import FAIL as R_FAIL

_FORBID_EXPANSION = {"forbid_filter_lookup": "lookup", "forbid_filter_run": "run",
                     "forbid_filter_readfile": "readfile",
                     "forbid_filter_readsocket": "readsocket",
                     "forbid_filter_existstest": "exists", "forbid_filter_perl": "perl",
                     "forbid_filter_dlfunc": "dlfunc"}


def forbidden_features(router: Any) -> frozenset[str]:
    """The expansion features the router's forbid_filter_* options lock out."""
    out = {feature for opt, feature in _FORBID_EXPANSION.items() if router.flag(opt)}
    if router.flag("forbid_filter_existstest"):
        out.add("stat")
    return frozenset(out)


def user_addresses(addr: Address, ctx: Any) -> list[str]:
    """The addresses that are the user's own: with and without prefix and suffix."""
    lp = str(ctx.variables.get("local_part", addr.local_part))
    whole = f"{addr.prefix}{lp}{addr.suffix}"
    return list(dict.fromkeys([f"{lp}@{addr.domain}", f"{whole}@{addr.domain}"]))


def run_user_filter(router: Any, kind: str, text: str, addr: Address, ctx: Any,
                    source: str) -> RouterReply:
    """Run a filter for ``addr`` and turn its result into the router's reply."""
    one_time = router.flag("one_time")
    ctx = ctx.child()
    ctx.forbid = forbidden_features(router)
    try:
        if kind == "sieve":
            from pymta.filter.sieve import SieveEnvironment, run_sieve
            result = run_sieve(text, SieveEnvironment(
                ctx, user_addresses=user_addresses(addr, ctx),
                forbid_file=router.flag("forbid_file") or one_time,
                forbid_reply=router.flag("forbid_filter_reply") or one_time,
                vacation_directory=_expanded(router, "sieve_vacation_directory", ctx),
                subaddress=_expanded(router, "sieve_subaddress", ctx),
                useraddress=_expanded(router, "sieve_useraddress", ctx),
                enotify_owner=_expanded(router, "sieve_enotify_mailto_owner", ctx),
                error_message=not ctx.variables.get("sender_address")))
        else:
            allowed = frozenset(name for name in ("fail", "freeze", "defer")
                                if router.flag(f"allow_{name}"))
            ids = (addr.uid, addr.gid) if addr.uid is not None and addr.gid is not None \
                else None
            result = run_exim_filter(text, FilterEnvironment(
                ctx, allowed=allowed,
                error_message=not ctx.variables.get("sender_address"),
                first_delivery=ctx.variables.get("first_delivery", "yes") == "yes",
                manually_thawed=ctx.variables.get("manually_thawed") == "yes",
                user_addresses=user_addresses(addr, ctx),
                forbid_file=router.flag("forbid_file") or one_time,
                forbid_pipe=router.flag("forbid_pipe") or one_time,
                forbid_reply=router.flag("forbid_filter_reply") or one_time,
                forbid_logwrite=router.flag("forbid_filter_logwrite"),
                prepend_home=router.flag("filter_prepend_home"),
                qualify_domain=_qualify(router, addr, ctx), log_ids=ids))
    except FilterError as exc:
        addr.basic_errno = EximErrno.BADFORWARD
        return RouterReply(R_DEFER, f"error in {source}: {exc.text()}")
    return _reply(router, result, addr, ctx)


def _expanded(router: Any, name: str, ctx: Any) -> str | None:
    return support.expand(router.opt(name), ctx)


def _qualify(router: Any, addr: Address, ctx: Any) -> str:
    if router.flag("qualify_preserve_domain"):
        return addr.domain
    if router.opt("qualify_domain"):
        return support.expand(router.opt("qualify_domain"), ctx)
    return support.qualify_recipient(router.config)


def _reply(router: Any, result: FilterResult, addr: Address, ctx: Any) -> RouterReply:
    if result.status == DEFER:
        return RouterReply(R_DEFER, result.message or None)
    if result.status == FREEZE:
        return RouterReply(R_DEFER, result.message or "frozen by filter", freeze=True)
    if result.status == FAIL:
        return RouterReply(R_FAIL, result.message or None)
    children: list[Address] = []
    for action in result.actions:
        try:
            child = _child(router, action, addr, ctx)
        except ValueError as exc:
            return RouterReply(R_DEFER, f"error in filter file: {exc}")
        children.append(child)
    if result.status == DELIVERED:
        return RouterReply(ACCEPT, children=children) if children else \
            RouterReply(DISCARD, "discarded")
    return RouterReply(DECLINE, children=children)


def _child(router: Any, action: FilterAction, parent: Address, ctx: Any) -> Address:
    if action.kind == "address":
        child = Address(router.rewrite_child(action.target, ctx), parent=parent)
        if action.errors_to:
            child.errors_address = action.errors_to
    elif action.kind == "reply":
        reply = action.reply or ReplySpec()
        if reply.to is None:
            reply.to = str(ctx.variables.get("reply_address") or "")
        child = router.special_child(f">{reply.to}", "reply", "reply_transport", parent, ctx)
        child.reply = reply
    else:
        option = {"file": "file_transport", "directory": "directory_transport",
                  "pipe": "pipe_transport"}[action.kind]
        target = f"|{action.target}" if action.kind == "pipe" else action.target
        child = router.special_child(target, action.kind, option, parent, ctx)
        child.expand_pipe = action.expand_pipe
        child.file_mode = action.mode
    if action.noerror:
        child.errors_address = ""       # errors for this delivery are ignored
    return child
