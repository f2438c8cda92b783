"""Address verification for ``verify = sender`` / ``recipient`` / ``header_sender``
(spec 44.45-44.47): route the address in verify mode, then, with the ``callout`` option,
call the hosts it routes to.

:func:`parse_verify_options` reads the ``/``-separated options; :func:`verify_address`
returns an :class:`AddressVerdict` with the texts Exim uses for the reply and the logs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymta import routing
from pymta.acl.callout import (
    CalloutHost,
    CalloutOptions,
    CalloutOutcome,
    CalloutTarget,
    CalloutTimeError,
    parse_callout_options,
    run_callout,
)
from pymta.acl.callout_hold import CalloutHoldSlot
from pymta.acl.parse import VERIFY_OPTIONS_UNSUPPORTED
from pymta.acl.quotaverify import QuotaOptions, parse_quota_options, verify_quota
from pymta.address import Address, Host
from pymta.clock import SYSTEM
from pymta.config.model import ConfigError
from pymta.config.values import main_option
from pymta.debuglog import debug
from pymta.events import connection_events
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.errors import ExpandDefer, ExpandFail
from pymta.expand.lists import split_list
from pymta.hints.callout import CacheExpiry, CalloutCache
from pymta.hints.store import open_hints
from pymta.osutil import interface_for, tcp_port
from pymta.routing import hosts as hostmod
from pymta.smtp.socks import parse_socks_proxies

# ACLs that run before there is a sender or a recipient to verify.
_NO_SENDER_YET = {"connect", "helo", "auth", "starttls", "etrn", "quit", "notquit",
                  "mailauth"}
_RECIPIENT_WHERES = {"rcpt", "vrfy", "prdr"}


def allowed_in(where: str) -> set[str]:
    """Which of "sender" and "recipient" an ACL run at ``where`` can verify."""
    out = set() if where in _NO_SENDER_YET else {"sender"}
    if where in _RECIPIENT_WHERES:
        out.add("recipient")
    return out


@dataclass
class VerifyOptions:
    """The options after ``verify = sender|recipient|header_sender``."""

    defer_ok: bool = False
    no_details: bool = False
    success_on_redirect: bool = False
    callout: CalloutOptions | None = None
    quota: QuotaOptions | None = None


def split_verify(arg: str) -> list[str]:
    """The ``/``-separated parts of a verify condition (``//`` is a literal ``/``)."""
    return split_list(arg, "/")


def parse_verify_options(kind: str, opts: list[str]) -> VerifyOptions:
    """Parse the options of an address-verifying ``verify`` condition."""
    out = VerifyOptions()
    callout_defer_ok = check_postmaster = False
    for raw in opts:
        opt = raw.strip()
        name, eq, value = opt.partition("=")
        name = name.strip().lower()
        if name == "defer_ok" and not eq:
            out.defer_ok = True
        elif name == "no_details" and not eq:
            out.no_details = True
        elif name == "success_on_redirect" and not eq:
            out.success_on_redirect = True
        elif name == "callout":
            try:
                out.callout = parse_callout_options(value if eq else None)
            except CalloutTimeError:
                condition = "/".join([kind, *opts])
                raise CalloutTimeError(f'bad time value in ACL condition "verify '
                                       f'{condition}"') from None
        elif name == "quota" and kind == "recipient":
            out.quota = parse_quota_options(value if eq else None)
        elif name == "callout_defer_ok" and not eq:       # the old syntax
            callout_defer_ok = True
        elif name == "check_postmaster" and not eq:       # the old syntax
            check_postmaster = True
        elif name in VERIFY_OPTIONS_UNSUPPORTED:
            raise ConfigError(f'"verify = {kind}/{name}" is not supported in this version '
                              "of pymta")
        elif opt:
            raise ConfigError(f'unknown option "{opt}" in ACL condition "verify {kind}"')
    if out.callout is not None:
        out.callout.defer_ok = out.callout.defer_ok or callout_defer_ok
        if check_postmaster and out.callout.postmaster_mailfrom is None:
            out.callout.postmaster_mailfrom = ""
        if out.callout.mailfrom is not None and kind != "header_sender":
            raise ConfigError("callout option mailfrom= is only for verify = header_sender")
        if kind != "recipient" and (out.callout.use_sender or out.callout.use_postmaster):
            raise ConfigError("callout options use_sender and use_postmaster are only for "
                              "verify = recipient")
        if kind != "recipient" and out.callout.hold:
            raise ConfigError("callout option hold is only for verify = recipient")
    return out


@dataclass
class AddressVerdict:
    """The outcome of verifying one address.

    ``status`` is "ok", "fail" or "defer"; ``failure`` the word for
    ``$sender_verify_failure`` / ``$recipient_verify_failure``; ``user_text`` what the
    client is told (for a sender: the lines after ``head``); ``log_text`` the detail for
    the log (None: the same as ``user_text``); ``head`` the first line of a sender
    failure reply (None: Exim's "Verification failed for <address>").
    """

    status: str
    failure: str = ""
    user_text: str = ""
    log_text: str | None = None
    head: str | None = None
    plain_reply: bool = False     # the client gets the ACL's text, not user_text
    #: (text, address) of routers' ``self = freeze``, for the log (RouteResult.self_frozen)
    self_frozen: tuple[tuple[str, str], ...] = ()


def _expand(text: str, ctx: ExpandContext) -> str:
    return expand_string(text, ctx)


def _transport(config: Any, name: Any) -> Any:
    inst = (getattr(config, "transports", {}) or {}).get(name) if name else None
    return inst


def _source(transport: Any, ctx: ExpandContext) -> Any:
    """The transport's ``interface`` as a function of the host called."""
    text = transport.opt("interface") if transport is not None else None
    if not text:
        return None
    items = split_list(_expand(text, ctx))

    def pick(host: CalloutHost) -> tuple[str, int] | None:
        return interface_for(items, host.address)
    return pick


def callout_target(config: Any, rr: Any, ctx: ExpandContext) -> CalloutTarget | None:
    """The hosts a routed address would be delivered to by an smtp transport (spec
    44.46), or None when there is nobody to call."""
    for a in rr.addresses:
        inst = _transport(config, a.transport)
        transport = getattr(inst, "obj", None)
        if inst is not None and inst.driver != "smtp":
            continue          # callouts are only for smtp transports
        hosts = list(a.hosts or [])
        if transport is not None and transport.opt("hosts") and \
                (not hosts or transport.opt("hosts_override")):
            hosts = []
            for item in split_list(_expand(transport.opt("hosts"), ctx)):
                name, port, _ = hostmod.parse_host_item(item)
                hosts.append(Host(name, name if hostmod.is_ip(name) else None, port))
        if not hosts:
            continue
        port_text = transport.opt("port") if transport is not None else None
        lmtp = transport is not None and transport.opt("protocol") == "lmtp"
        default_port = tcp_port(_expand(port_text, ctx)) if port_text else (24 if lmtp else 25)
        called: list[CalloutHost] = []
        for h in hosts:
            addresses = [h.address] if h.address else _addresses(h.name)
            called.extend(CalloutHost(h.name, ip, h.port or default_port) for ip in addresses)
        helo_text = transport.opt("helo_data") if transport is not None else None
        helo = _expand(helo_text, ctx) if helo_text else \
            str(ctx.variables.get("smtp_active_hostname") or
                main_option(config, "primary_hostname", ""))
        socks_text = transport.opt("socks_proxy") if transport is not None else None
        socks = parse_socks_proxies(_expand(socks_text, ctx)) if socks_text else []
        include_affixes = bool(transport.opt("rcpt_include_affixes")) if transport else False
        return CalloutTarget(called, helo.strip(), lmtp, _source(transport, ctx),
                             a.rcpt_address(include_affixes),
                             events=connection_events(transport, ctx), socks=socks)
    return None


def _addresses(name: str) -> list[str]:
    try:
        return hostmod.resolve_name(name)
    except (hostmod.HostNotFound, hostmod.HostLookupDefer):
        return []


def callout_cache(config: Any, opts: CalloutOptions) -> CalloutCache:
    """The callout cache of the spool, with the configured expiry times."""
    expiry = CacheExpiry(
        float(main_option(config, "callout_positive_expire", 86400)),
        float(main_option(config, "callout_negative_expire", 7200)),
        float(main_option(config, "callout_domain_positive_expire", 7 * 86400)),
        float(main_option(config, "callout_domain_negative_expire", 3 * 3600)))
    spool = main_option(config, "spool_directory", None)
    db = open_hints(str(spool), "callout") if spool and not opts.no_cache else None
    return CalloutCache(db, expiry)


def _callout_sender(kind: str, opts: CalloutOptions, config: Any, ctx: ExpandContext) -> str:
    if opts.mailfrom is not None:
        return opts.mailfrom
    if kind == "recipient" and opts.use_sender:
        return str(ctx.variables.get("sender_address") or "")
    if kind == "recipient" and opts.use_postmaster:
        qd = main_option(config, "qualify_domain", "") or \
            main_option(config, "primary_hostname", "")
        return f"postmaster@{qd}"
    return ""


def _callout_verdict(kind: str, outcome: CalloutOutcome, address: str,
                     opts: VerifyOptions) -> AddressVerdict:
    if outcome.status == "ok":
        return AddressVerdict("ok", outcome.failure)
    if outcome.status == "defer":
        head = f"Could not complete {kind if kind == 'recipient' else 'sender'} verify callout"
        return AddressVerdict("defer", "", head, f"{head}: {outcome.log_text}")
    if kind == "recipient":
        return AddressVerdict("fail", outcome.failure, outcome.recipient_text(),
                              outcome.recipient_log())
    if opts.no_details:
        return AddressVerdict("fail", outcome.failure, "", "", head="")
    return AddressVerdict("fail", outcome.failure, outcome.sender_detail(),
                          outcome.log_text, head=outcome.sender_head(address))


def _keep_address_data(ctx: ExpandContext, role: str, rr: Any) -> None:
    """$address_data after verifying a recipient, $sender_address_data after a sender:
    the last value a router set, even when verification failed (spec 44.26)."""
    routed = list(getattr(rr, "addresses", [])) + list(getattr(rr, "failed", [])) + \
        list(getattr(rr, "deferred", []))
    data = next((a.address_data for a in reversed(routed)
                 if getattr(a, "address_data", None) is not None), None)
    if role == "recipient":
        ctx.variables["address_data"] = data or ""
    elif data is not None:
        ctx.variables["sender_address_data"] = data


def verify_address(config: Any, ctx: ExpandContext, kind: str, address: str,
                   opts: VerifyOptions, skip_callout: bool = False,
                   hold_slot: CalloutHoldSlot | None = None) -> AddressVerdict:
    """Verify ``address`` as a ``kind`` ("sender", "recipient", "header_sender");
    ``skip_callout`` (-bh) stops after routing; ``hold_slot`` is the session's place
    for a connection kept by ``callout=hold``."""
    if not debug.verify:
        return _verify_address(config, ctx, kind, address, opts, skip_callout, hold_slot)
    verdict = _verify_address(config, ctx, kind, address, opts, skip_callout, hold_slot)
    if not debug.host_checking:
        debug.printf(f"verify {kind} {address}: {verdict.status.upper()}"
                     + (f" ({verdict.log_text or verdict.user_text})"
                        if verdict.status != "ok" else ""))
    if kind != "header_sender":         # (Exim draws no line after a header's address)
        debug.printf("----------- end verify ------------")
    return verdict


def _verify_address(config: Any, ctx: ExpandContext, kind: str, address: str,
                    opts: VerifyOptions, skip_callout: bool,
                    hold_slot: CalloutHoldSlot | None) -> AddressVerdict:
    role = "recipient" if kind == "recipient" else "sender"
    if opts.quota is not None and role == "recipient":
        qv = verify_quota(config, ctx, address, opts.quota)
        if qv.status == "defer":
            return AddressVerdict("defer", "", qv.text)
        return AddressVerdict(qv.status, qv.failure, qv.text, qv.text, plain_reply=True)
    try:
        rr = routing.route_address(config, Address(address), ctx, verify=role,
                                   success_on_redirect=opts.success_on_redirect)
        status, message = rr.status, getattr(rr, "message", None) or ""
    except ExpandDefer as exc:
        rr, status, message = None, "defer", str(exc)
    if rr is not None:
        _keep_address_data(ctx, role, rr)
    if status == "defer":
        deferred = next(iter(getattr(rr, "deferred", None) or []), None)
        if deferred is not None and deferred.user_message and not deferred.router_error:
            # a redirection's ":defer: text": the client and the log get the text
            return AddressVerdict("defer", "", deferred.user_message,
                                  deferred.user_message)
        return AddressVerdict("defer", "", message,
                              self_frozen=tuple(getattr(rr, "self_frozen", ())))
    if status != "accept":
        text = message or "Unrouteable address"
        if role == "sender" and opts.no_details:
            return AddressVerdict("fail", "route", text, "", head="")
        return AddressVerdict("fail", "route", text)
    if opts.callout is None or rr is None or skip_callout:
        return AddressVerdict("ok")
    try:
        target = callout_target(config, rr, ctx)
    except (ExpandFail, ExpandDefer, ValueError) as exc:
        return AddressVerdict("defer", "", f"Could not complete {role} verify callout",
                              f"Could not complete {role} verify callout: {exc}")
    if target is None:
        return AddressVerdict("ok")
    random_part = ""
    if opts.callout.random:
        try:
            random_part = _expand(str(main_option(
                config, "callout_random_local_part", "$primary_hostname-$tod_epoch-testing")),
                ctx)
        except (ExpandFail, ExpandDefer) as exc:
            raise ConfigError(f"failed to expand callout_random_local_part: {exc}") from exc
    sender = _callout_sender(kind, opts.callout, config, ctx)
    called = target.address or address
    if debug.verify:
        debug.printf(f"callout for {called} (MAIL FROM:<{sender}>)")
    outcome = run_callout(called, sender, opts.callout, target,
                          callout_cache(config, opts.callout), random_part, SYSTEM.time(),
                          hold_slot if role == "recipient" else None)
    if debug.verify:
        where = f" via {outcome.connected.address}" if outcome.connected else " (cached)"
        debug.printf(f"callout for {called}{where}: {outcome.status.upper()}")
    if outcome.connected is not None:
        # $callout_address: kept from the last connection (a cache answer leaves it).
        ctx.variables["callout_address"] = \
            f"[{outcome.connected.address}]:{outcome.connected.port}"
    if role == "recipient" and outcome.status == "ok":
        # The remote host vouched for the address: its parts become untainted data.
        local, _, domain = called.rpartition("@")
        ctx.variables["local_part_data"] = str.__str__(local)
        ctx.variables["domain_data"] = str.__str__(domain)
    return _callout_verdict(role, outcome, address, opts)
