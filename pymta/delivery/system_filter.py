"""The system filter (main option system_filter, Exim spec chapter 47).

It runs once per delivery attempt, before routing, as system_filter_user.  It may add
and remove headers (for this and later attempts), set up deliveries of its own (to
addresses, which are routed, and to files, pipes and replies through the
system_filter_*_transport options), and freeze, fail or defer the whole message.  If it
sets up a significant delivery the original recipients are not delivered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymta.address import Address
from pymta.config.values import main_option
from pymta.expand import ExpandContext, ExpandError, expand_string
from pymta.filter import FilterError, FilterResult
from pymta.filter.exim_filter import FilterEnvironment, run_exim_filter
from pymta.message.headers import header_flag
from pymta.osutil import resolve_user
from pymta.rewrite import Where
from pymta.rewrite.setup import main_rewriter
from pymta.routing import support
from pymta.spool.model import SpoolHeader, SpoolMessage
from pymta.taint import taint

#: the pseudo-address the system filter's deliveries descend from (as in Exim's log)
SYSTEM_FILTER = "system-filter"

_TRANSPORT_OPTIONS = {"file": "system_filter_file_transport",
                      "directory": "system_filter_directory_transport",
                      "pipe": "system_filter_pipe_transport",
                      "reply": "system_filter_reply_transport"}


@dataclass
class SystemFilterOutcome:
    """What the system filter decided: its result (None: no system filter), the
    deliveries it set up, and an error text when it could not be run."""

    result: FilterResult | None = None
    generated: list[Address] = field(default_factory=list)
    error: str | None = None


def system_filter_ids(config: Any) -> tuple[int, int] | None:
    user = main_option(config, "system_filter_user")
    ids = resolve_user(user) if user not in (None, "") else None
    group = main_option(config, "system_filter_group")
    if ids is not None and group not in (None, ""):
        import grp
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(str(group)).gr_gid
            ids = (ids[0], gid)
        except KeyError:
            pass
    return ids


def run_system_filter(config: Any, msg: SpoolMessage, ctx: ExpandContext,
                      first_delivery: bool) -> SystemFilterOutcome:
    """Run the configured system filter; the headers it changes are changed in ``msg``
    and ``ctx`` at once, and $sn0-$sn9 are set in ``ctx`` for users' filters."""
    path = main_option(config, "system_filter")
    if not path:
        return SystemFilterOutcome()
    try:
        with open(str(path), encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read()
    except OSError as exc:
        return SystemFilterOutcome(error=f"failed to open system filter file {path}: "
                                   f"{exc.strerror or exc}")
    ids = system_filter_ids(config)
    ctx.headers = list(ctx.headers or [])
    env = FilterEnvironment(
        ctx, system=True, error_message=not msg.sender, first_delivery=first_delivery,
        manually_thawed="manual_thaw" in msg.flags,
        qualify_domain=support.qualify_recipient(config), log_ids=ids)
    try:
        result = run_exim_filter(text, env)
    except FilterError as exc:
        return SystemFilterOutcome(error=exc.text())
    _apply_headers(msg, result)
    for i, value in enumerate(result.user_vars):
        ctx.variables[f"sn{i}"] = str(value)
    try:
        generated = _generated(config, result, ctx, ids, msg.id)
    except ValueError as exc:
        return SystemFilterOutcome(result, error=str(exc))
    return SystemFilterOutcome(result, generated)


def _apply_headers(msg: SpoolMessage, result: FilterResult) -> None:
    """headers remove marks the stored headers deleted; headers add appends."""
    names = set(result.headers_remove)
    if names:
        for h in msg.headers:
            if h.flag != "*" and h.text.partition(":")[0].strip().lower() in names:
                h.flag = "*"
    for text in result.headers_add:
        msg.headers.append(SpoolHeader(header_flag(text.partition(":")[0]), text))


def _generated(config: Any, result: FilterResult, ctx: ExpandContext,
               ids: tuple[int, int] | None, msgid: str) -> list[Address]:
    parent = Address(SYSTEM_FILTER, local_part=SYSTEM_FILTER, domain="")
    # addresses the filter generates go through the rewrite section as recipients
    log = ctx.log if hasattr(ctx.log, "main") else None
    rewriter = main_rewriter(config, log, dict(ctx.variables), msgid)
    out = []
    for action in result.actions:
        if action.kind == "address":
            target = action.target if rewriter is None \
                else rewriter.address(taint(action.target), Where.ENV_TO).address
            child = Address(target, parent=parent)
            child.errors_address = action.errors_to
        else:
            option = _TRANSPORT_OPTIONS[action.kind]
            name = main_option(config, option)
            if not name:
                raise ValueError(f"{option} is not set (needed for the system filter's "
                                 f"{action.kind} delivery to {action.target})")
            try:
                transport = expand_string(str(name), ctx).strip()
            except ExpandError as exc:
                raise ValueError(f"failed to expand {option}: {exc}") from None
            target = {"pipe": f"|{action.target}",
                      "reply": f">{(action.reply.to if action.reply else '') or ''}"
                      }.get(action.kind, action.target)
            child = Address(target, local_part=target, domain="", parent=parent)
            child.kind = action.kind
            child.transport = transport
            child.expand_pipe = action.expand_pipe
            child.file_mode = action.mode
            child.reply = action.reply
            if action.reply is not None and action.reply.to is None:
                action.reply.to = str(ctx.variables.get("reply_address") or "")
                child.address = child.local_part = f">{action.reply.to}"
            if ids is not None:
                child.uid, child.gid = ids
        if action.noerror:
            child.errors_address = ""
        child.unique = child.address if child.kind == "address" else \
            f"{child.address}:{SYSTEM_FILTER}"
        out.append(child)
    return out
