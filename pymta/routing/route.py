"""Running an address through the configured routers (Exim's route_address loop)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

from pymta import match
from pymta.address import Address
from pymta.config.protocols import ConfigView
from pymta.debuglog import debug
from pymta.errnos import EximErrno
from pymta.expand.context import ExpandContext
from pymta.routing import support
from pymta.routing.base import (
    ACCEPT,
    DECLINE,
    DEFER,
    DISCARD,
    FAIL,
    PASS,
    Router,
    RouterReply,
    to_bool,
)
from pymta.routing.percent import percent_hack
from pymta.taint import taint
from pymta.truth import exim_true

UNROUTEABLE = "Unrouteable address"
_MAX_GENERATIONS = 100   # guards against redirection loops that escape the ancestor check


@dataclass
class RouteResult:
    """The outcome of routing one address and everything it was redirected to.

    ``status`` is "accept" (all routed or discarded), "defer" (something deferred, nothing
    failed) or "fail"; ``message`` is the first failure/deferral text.  ``addresses`` are
    the addresses assigned to transports (with ``router``, ``transport``, ``hosts``), in
    routing order; ``failed``/``deferred``/``discarded`` carry their own ``message``.
    """

    status: str
    message: str | None = None
    addresses: list[Address] = field(default_factory=list)
    failed: list[Address] = field(default_factory=list)
    deferred: list[Address] = field(default_factory=list)
    discarded: list[Address] = field(default_factory=list)
    freeze: bool = False
    #: what routers asked to be logged / sent (see RouterReply.notes and .report)
    notes: list[str] = field(default_factory=list)
    reports: list[tuple[str, str]] = field(default_factory=list)
    #: (text, address) for each address a router froze for ``self``: Exim logs the text,
    #: adding "(while verifying <address> from host ...)" or "(while routing <address>)"
    #: outside a delivery
    self_frozen: list[tuple[str, str]] = field(default_factory=list)
    # (status, address) for every final address in the order Exim processes them:
    # breadth first; a redirection's file/pipe items first, then its addresses last-first.
    sequence: list[tuple[str, Address]] = field(default_factory=list)


def get_routers(config: ConfigView) -> list[Router]:
    """The router objects in configuration order (instantiated on first use)."""
    import pymta.routing  # noqa: F401  (registers the drivers)
    from pymta.drivers import get_driver
    out = []
    for inst in config.routers:
        if inst.obj is None:
            cls = get_driver("router", inst.driver) or UnavailableRouter
            inst.obj = cls(inst, config)
        out.append(inst.obj)
    return out


class UnavailableRouter(Router):
    """Stands in for a router whose driver pymta does not implement yet: addresses that
    pass its preconditions are deferred, so nothing is lost or misrouted."""

    def route(self, addr: Address, ctx: Any, verify: Any = False) -> RouterReply:
        return RouterReply(DEFER, f'{self.name} router: driver "{self.instance.driver}" '
                                  f"is not available")


def address_context(config: ConfigView, addr: Address, ctx: ExpandContext | None) -> ExpandContext:
    """A context with the address variables ($local_part, $domain, $original_*, ...)."""
    base = ctx if ctx is not None else ExpandContext(config)
    c = base.child()
    if c.config is None:
        c.config = config
    for name in ("domain_data", "local_part_data", "home", "local_part_prefix",
                 "local_part_suffix", "local_part_prefix_v", "local_part_suffix_v"):
        c.variables.pop(name, None)
    top = addr.top_parent()
    c.variables.update({
        "local_part": taint(addr.local_part),
        "domain": taint(addr.domain),
        "original_local_part": taint(top.local_part),
        "original_domain": taint(top.domain),
    })
    if addr.parent is not None:
        c.variables["parent_local_part"] = taint(addr.parent.local_part)
        c.variables["parent_domain"] = taint(addr.parent.domain)
    if addr.address_data is not None:
        c.variables["address_data"] = addr.address_data
    return c


def _ancestor_routed_by(addr: Address, router_name: str) -> bool:
    """A router skips an address whose identically named ancestor it already handled."""
    anc = addr.parent
    while anc is not None:
        if anc.router == router_name and anc.address == addr.address:
            return True
        anc = anc.parent
    return False


def _any_ancestor_routed_by(addr: Address, router_name: str) -> bool:
    """repeat_use = false: any ancestor at all handled by this router."""
    anc = addr.parent
    while anc is not None:
        if anc.router == router_name:
            return True
        anc = anc.parent
    return False


def _inherit(child: Address, parent: Address) -> None:
    child.parent = parent
    if child.address_data is None:
        child.address_data = parent.address_data
    if child.errors_address is None:
        child.errors_address = parent.errors_address
    child.extra_headers = list(parent.extra_headers) + child.extra_headers
    child.remove_headers = list(parent.remove_headers) + child.remove_headers
    child.unique = child.address if child.kind == "address" else f"{child.address}:{parent.address}"


def _route_one(config: ConfigView, routers: list[Router], addr: Address, ctx: ExpandContext | None,
               verify: Any, address_test: bool,
               generated: list[Address] | None = None) -> RouterReply:
    """Offer ``addr`` to the routers from ``addr.start_router``; the first decisive answer
    wins.  ``addr.router`` is set to the router that decided.  Addresses generated by a
    router that then declined (a filter without a significant delivery) are added to
    ``generated``."""
    if generated is None:
        generated = []
    index = {r.name: i for i, r in enumerate(routers)}
    last_offered: tuple[Router, ExpandContext] | None = None
    declined = None     # a declining router's own reason wins over cannot_route_message
    i = addr.start_router
    if addr.parent is not None:
        match.forget_domain_answers()       # Exim remembers them per address
    if debug.route:
        debug.printf(">" * 35 + f"\nrouting {addr.address}")
    while i < len(routers):
        r = routers[i]
        if _ancestor_routed_by(addr, r.name) or (
                not r.flag("repeat_use") and "repeat_use" in r.options
                and _any_ancestor_routed_by(addr, r.name)):
            i += 1
            continue
        if debug.route and not debug.host_checking:
            debug.printf(f"--------> {r.name} router <--------")
        actx = address_context(config, addr, ctx)
        actx.variables["router_name"] = r.name      # $router_name while it runs
        # Exim uses the message of the last router the address was offered to, even
        # one whose preconditions then fail; when that router has none, the default.
        last_offered = (r, actx)
        try:
            skip = r.check_preconditions(addr, actx, verify, address_test)
        except support.ExpandDefer as exc:
            return _decided(addr, r, RouterReply(DEFER, str(exc)))
        except support.ExpandError as exc:
            return _decided(addr, r, RouterReply(DEFER, f"{r.name} router: {exc}"))
        if skip is not None:
            if debug.route and not debug.host_checking:
                debug.printf(f"{r.name} router skipped: {skip}")
            i += 1
            continue
        try:
            if r.opt("address_data") is not None:
                addr.address_data = support.expand(r.opt("address_data"), actx)
                actx.variables["address_data"] = addr.address_data
            if debug.route:
                debug.printf(f"calling {r.name} router")
            reply = r.route(addr, actx, verify)
            if reply.status == ACCEPT:
                reply.unseen = _expanded_flag(r, "unseen", actx)
        except support.ExpandFail:
            reply = RouterReply(DECLINE)
        except support.ExpandDefer as exc:
            reply = RouterReply(DEFER, str(exc))
        except support.ExpandError as exc:
            reply = RouterReply(DEFER, f"{r.name} router: {exc}")
        if debug.route:
            _trace_reply(r, addr, reply)
        if reply.status == PASS:
            target = r.opt("pass_router")
            i = index.get(target, i + 1) if target else i + 1
            continue
        if reply.status == DECLINE:
            if reply.children:
                # a filter that set up no significant delivery: what it generated is
                # delivered, and the address itself goes on to the next router
                for child in reply.children:
                    _inherit(child, addr)
                generated.extend(reply.children)
            declined = reply.message or declined
            try:
                more = _expanded_flag(r, "more", actx)
            except support.ExpandFail:
                more = True
            except support.ExpandDefer as exc:
                return _decided(addr, r, RouterReply(DEFER, str(exc)))
            except support.ExpandError as exc:
                return _decided(addr, r, RouterReply(DEFER, f"{r.name} router: {exc}"))
            if not more:
                if debug.route:
                    debug.printf('"more" is false: skipping remaining routers')
                    debug.printf("no more routers")
                return _decided(addr, r, RouterReply(
                    FAIL, declined or _cannot_route(last_offered) or UNROUTEABLE))
            i += 1
            continue
        if reply.status in (ACCEPT, DISCARD):
            _after_accept(r, addr, actx, reply, index, i)
        elif reply.status == FAIL:
            _apply_errors_to(r, addr, actx)     # a :fail: is bounced to errors_to too
        return _decided(addr, r, reply)
    if debug.route:
        debug.printf("no more routers")
    return RouterReply(FAIL, declined or _cannot_route(last_offered) or UNROUTEABLE)


def _expanded_flag(r: Router, name: str, actx: ExpandContext) -> bool:
    """A router's boolean that may be an expansion (more, unseen), for this address."""
    value = r.opt(name)
    if isinstance(value, str) and "$" in value:
        text = str(support.expand(value, actx)).strip()
        if text.lower() not in _BOOLEAN_WORDS:
            raise support.ExpandDefer(f'"{text}" is not a valid value for the "{name}" '
                                      f"option in the {r.name} router")
        return exim_true(text)
    return to_bool(value)


#: what an expanded boolean may come to, as Exim reads one
_BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no"})


def _trace_reply(r: Router, addr: Address, reply: RouterReply) -> None:
    """+route: a router's answer in Exim's words."""
    if reply.status == DECLINE:
        debug.printf(f"{r.name} router declined for {addr.address}")
    elif reply.status == PASS:
        debug.printf(f"{r.name} router passed for {addr.address}")
    elif reply.status == FAIL:
        debug.printf(f"{r.name} router forced address failure")
    elif reply.status == DEFER:
        debug.printf(f"{r.name} router: defer for {addr.address}\n"
                     f"  message: {reply.message or ''}")
    else:
        debug.printf(f"routed by {r.name} router" + (" (unseen)" if reply.unseen else ""))


def _cannot_route(last_offered: tuple[Router, ExpandContext] | None) -> str | None:
    """cannot_route_message of the last router the address was offered to, expanded now
    that routing has failed; a failed expansion (not a forced one) goes to the main and
    panic logs, as in Exim, and the default message is used."""
    if last_offered is None:
        return None
    r, actx = last_offered
    text = r.opt("cannot_route_message")
    if text is None:
        return None
    try:
        return support.expand(text, actx)
    except support.ExpandFail:
        return None
    except support.ExpandError as exc:
        if actx.log is not None:
            actx.log.panic(f"failed to expand cannot_route_message in {r.name} router: {exc}")
        return None


def _decided(addr: Address, r: Router, reply: RouterReply) -> RouterReply:
    addr.router = r.name
    if reply.status == DEFER:
        key = addr.address if r.flag("retry_use_local_part") else addr.domain
        addr.retry_key = f"R:{key}"
    if reply.freeze:
        addr.freeze = True
    return reply


def _translate_ip_addresses(r: Router, addr: Address, actx: ExpandContext) -> None:
    """translate_ip_address: each host's IP address may be replaced by the expansion
    (run with $host and $host_address); an empty or failed expansion keeps it."""
    import ipaddress
    for h in addr.hosts:
        if not h.address:
            continue
        try:
            value = support.expand(r.opt("translate_ip_address"),
                                   actx.child(host=h.name, host_address=h.address))
        except support.ExpandError:
            continue
        value = (value or "").strip()
        try:
            ipaddress.ip_address(value)
        except ValueError:
            continue
        h.address = value


def _apply_errors_to(r: Router, addr: Address, actx: ExpandContext) -> None:
    """The router's errors_to: where failures of this address are reported."""
    if r.opt("errors_to") is None:
        return
    try:
        value = support.expand(r.opt("errors_to"), actx)
    except support.ExpandError:
        return
    if value is not None:
        # "<>" (or empty) means: ignore delivery errors for this address
        value = value.strip()
        addr.errors_address = "" if value in ("", "<>") else value


def _after_accept(r: Router, addr: Address, actx: ExpandContext, reply: RouterReply,
                  index: dict[str, int], i: int) -> None:
    """Generic post-acceptance options: errors_to, headers_add/remove, redirect_router,
    the transport's directories, initgroups and translate_ip_address."""
    _apply_errors_to(r, addr, actx)
    for option, attr in (("transport_home_directory", "transport_home"),
                         ("transport_current_directory", "transport_cwd")):
        if r.opt(option) is not None:
            try:
                setattr(addr, attr, support.expand(r.opt(option), actx) or None)
            except support.ExpandError:
                pass
    addr.initgroups = r.flag("initgroups")
    if r.opt("translate_ip_address") is not None:
        _translate_ip_addresses(r, addr, actx)
    for opt, target in (("headers_add", addr.extra_headers),
                        ("headers_remove", addr.remove_headers)):
        text = r.opt(opt)
        if text is None:
            continue
        try:
            value = support.expand(text, actx)
        except support.ExpandError:
            continue
        if value:
            if opt == "headers_add":
                target.append(value if value.endswith("\n") else value + "\n")
            else:
                target.extend(support.split_list(value))
    start = index.get(r.opt("redirect_router"), 0) if r.opt("redirect_router") else 0
    for child in reply.children:
        _inherit(child, addr)
        child.start_router = start


#: What an address in hold_domains or queue_domains gets instead of routing (Exim's
#: errno and words): the status in RouteResult.sequence, errno, message.
HELD = ("held", -23, "domain is held")
QUEUE_DOMAIN = ("queue_domain", -56, "domain is in queue_domains")


def route_address(config: ConfigView, addr: Address | str, ctx: ExpandContext | None = None,
                  verify: Any = False, *, address_test: bool = False,
                  success_on_redirect: bool = False,
                  held: Callable[[Address], tuple[str, int, str] | None] | None = None
                  ) -> RouteResult:
    """Route ``addr`` and all addresses generated from it.

    ``verify`` is False for delivery, True/"recipient" or "sender" for verification;
    ``success_on_redirect`` (a verify option) stops verification at any redirection.
    An address for which ``held`` (hold_domains and queue_domains, in a delivery) gives
    (status, errno, message) is not routed: it is deferred with that status.
    """
    if isinstance(addr, str):
        addr = Address(addr)
    routers = get_routers(config)
    result = RouteResult(ACCEPT)
    queue = [addr]
    generations = 0
    while queue:
        a = queue.pop(0)
        generations += 1
        if a.kind != "address":             # file/pipe from a redirection: already routed
            result.addresses.append(a)
            result.sequence.append((ACCEPT, a))
            continue
        if generations > _MAX_GENERATIONS * 10:
            a.message = "too many generated addresses (redirection loop?)"
            result.deferred.append(a)
            result.sequence.append((DEFER, a))
            continue
        hacked = percent_hack(a.local_part, a.domain, config,
                              ctx if ctx is not None else ExpandContext(config))
        if hacked is not None:
            # percent_hack_domains: the address is routed as the original's child
            queue.insert(0, Address(hacked, parent=a))
            continue
        stop = held(a) if held is not None else None
        if stop is not None:
            status, a.basic_errno, a.message = stop
            result.deferred.append(a)
            result.sequence.append((status, a))
            continue
        generated: list[Address] = []
        reply = _route_one(config, routers, a, ctx, verify, address_test, generated)
        a.message = reply.message
        if reply.status == DEFER:
            a.router_error = reply.error
            if reply.error:             # bad redirection data: Exim's ERRNO_BADREDIRECT
                a.basic_errno = EximErrno.BADFORWARD
            if reply.user_message is not None:
                a.user_message = reply.user_message
        result.notes.extend(reply.notes)
        if reply.self_frozen is not None:
            result.self_frozen.append((reply.self_frozen, a.address))
        if reply.report is not None:
            result.reports.append(reply.report)
        _queue_children(queue, generated, address_test)
        if reply.status == ACCEPT and reply.children and verify and \
                (len(reply.children) > 1 or success_on_redirect):
            # verification stops at a redirection to several addresses: it has succeeded
            result.addresses.append(a)
            result.sequence.append((ACCEPT, a))
        elif reply.status == ACCEPT and reply.children:
            _queue_children(queue, reply.children, address_test)
            if reply.unseen:
                _requeue_unseen(a, routers, queue, address_test)
        elif reply.status == ACCEPT:
            result.addresses.append(a)
            result.sequence.append((ACCEPT, a))
            if reply.unseen:
                _requeue_unseen(a, routers, queue, address_test)
        elif reply.status == DISCARD:
            result.discarded.append(a)
            result.sequence.append((DISCARD, a))
        elif reply.status == FAIL:
            result.failed.append(a)
            result.sequence.append((FAIL, a))
        else:
            if reply.freeze:
                result.freeze = True
            result.deferred.append(a)
            result.sequence.append((DEFER, a))
    if verify:
        _apply_fail_verify(routers, result, verify)
    if result.failed:
        result.status, result.message = FAIL, result.failed[0].message
    elif result.deferred:
        result.status, result.message = DEFER, result.deferred[0].message
    return result


def _router(routers: list[Router], addr: Address) -> Router:
    return next(r for r in routers if r.name == addr.router)


def _queue_children(queue: list[Address], children: list[Address], address_test: bool) -> None:
    """Queue what a router generated: file and pipe deliveries first, then the addresses
    (last first).  For -bt (``address_test``) in Exim's order: the generated addresses
    are routed next, in the order they were generated, before the rest of the queue."""
    specials = [c for c in children if c.kind != "address"]
    normal = [c for c in children if c.kind == "address"]
    if address_test:
        queue[0:0] = specials + normal
    else:
        queue.extend(specials + normal[::-1])


def _requeue_unseen(a: Address, routers: list[Router], queue: list[Address],
                    address_test: bool = False) -> None:
    """``unseen``: the address also continues with the next router, as a copy (for -bt
    routed next, as Exim does).  Both copies count one more unseen level."""
    idx = next(i for i, r in enumerate(routers) if r.name == a.router)
    a.unseen_level += 1
    dup = copy.copy(a)
    dup.hosts = []
    dup.extra_headers, dup.remove_headers = list(a.extra_headers), list(a.remove_headers)
    dup.transport = None
    dup.start_router = idx + 1
    dup.router = None
    if address_test:
        queue.insert(0, dup)
    else:
        queue.append(dup)


def _apply_fail_verify(routers: list[Router], result: RouteResult, verify: Any) -> None:
    """fail_verify_sender/recipient: a successful verification by such a router fails."""
    which = "fail_verify_sender" if verify == "sender" else "fail_verify_recipient"
    keep = []
    for a in result.addresses:
        r = _router(routers, a) if a.router else None
        if r is not None and (r.flag(which) if r.is_set(which) else r.flag("fail_verify")):
            a.message = a.message or UNROUTEABLE
            result.failed.append(a)
        else:
            keep.append(a)
    result.addresses = keep


def expand_once(config: ConfigView, addr: Address,
                ctx: ExpandContext | None = None) -> RouterReply:
    """SMTP EXPN: route ``addr`` alone, as a verification that skips the routers whose
    ``expn`` is false; a redirection's reply has the addresses it generated (they are
    not routed themselves: one level, as in Exim)."""
    generated: list[Address] = []
    reply = _route_one(config, get_routers(config), addr, ctx, "expn", False, generated)
    if reply.status == ACCEPT and generated and not reply.children:
        reply.children = generated
    return reply


def route_addresses(config: ConfigView, addrs: list[Address], ctx: ExpandContext | None = None,
                    verify: Any = False) -> RouteResult:
    """Route several addresses; the lists of the individual results are concatenated."""
    total = RouteResult(ACCEPT)
    for a in addrs:
        r = route_address(config, a, ctx, verify)
        total.addresses += r.addresses
        total.failed += r.failed
        total.deferred += r.deferred
        total.discarded += r.discarded
        total.freeze = total.freeze or r.freeze
        total.sequence += r.sequence
        total.notes += r.notes
        total.reports += r.reports
        total.self_frozen += r.self_frozen
    if total.failed:
        total.status, total.message = FAIL, total.failed[0].message
    elif total.deferred:
        total.status, total.message = DEFER, total.deferred[0].message
    return total
