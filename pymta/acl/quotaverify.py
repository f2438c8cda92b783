"""``verify = recipient/quota`` (spec 44.45, 44.49): route the recipient and ask its
appendfile transport whether the mailbox has room, without delivering anything.

As Exim 4.96 does it: the quota check takes the place of the ordinary routing check;
the answer is remembered in the ``callout`` hints database under the bare address (the
key a callout without a sender uses), five minutes when good and an hour when bad unless
``quota=cachepos=<time>,cacheneg=<time>`` or ``no_cache`` says otherwise.  Only an
exceeded quota fails; any other trouble with the transport (a bad path, an unreadable
mailbox, another driver) counts as room.  A routing failure fails without being cached.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pymta import routing
from pymta.address import Address
from pymta.clock import SYSTEM
from pymta.config.model import ConfigError
from pymta.config.options import OptionSpec, parse_value
from pymta.config.values import main_option
from pymta.expand.context import ExpandContext
from pymta.expand.errors import ExpandDefer
from pymta.hints.callout import ACCEPT, REJECT, CacheExpiry, CalloutCache
from pymta.hints.store import open_hints
from pymta.taint import taint

OVER_QUOTA = "Over quota"
CACHED_QUOTA_FAILURE = "Previous (cached) quota verification failure"


class QuotaChecker(Protocol):
    """What an appendfile transport offers for the check."""

    def quota_exceeded(self, ctx: Any, message_size: int) -> bool: ...


@dataclass(frozen=True)
class QuotaOptions:
    """The parameters of ``quota[=...]``: cache lifetimes in seconds (0: no record)."""

    cachepos: float = 300.0
    cacheneg: float = 3600.0


@dataclass
class QuotaVerdict:
    """``status`` "ok", "fail" or "defer"; ``failure`` the word for
    ``$recipient_verify_failure`` ("quota" or "route"); ``text`` the reason, which
    becomes ``$acl_verify_message`` and the log text (the client is given the ACL's
    own message, as Exim does)."""

    status: str
    failure: str = ""
    text: str = ""


def _time(text: str) -> float:
    try:
        return float(parse_value(OptionSpec("quota", "time", 0), text.strip()))
    except (ValueError, ConfigError):
        raise ConfigError(f'bad time value "{text.strip()}" in ACL condition '
                          '"verify recipient/quota"') from None


def parse_quota_options(text: str | None) -> QuotaOptions:
    """The options of ``quota=<text>`` (None for a bare ``quota``)."""
    pos, neg = QuotaOptions.cachepos, QuotaOptions.cacheneg
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if name == "cachepos" and eq:
            pos = _time(value)
        elif name == "cacheneg" and eq:
            neg = _time(value)
        elif name == "no_cache" and not eq:
            pos = neg = 0.0
        else:
            raise ConfigError(f'bad parameter "{item}" in quota option in ACL verify '
                              "condition")
    return QuotaOptions(pos, neg)


def _cache(config: Any, opts: QuotaOptions) -> CalloutCache | None:
    if not (opts.cachepos or opts.cacheneg):
        return None
    spool = main_option(config, "spool_directory", None)
    if not spool:
        return None
    return CalloutCache(open_hints(str(spool), "callout"),
                        CacheExpiry(positive=opts.cachepos, negative=opts.cacheneg))


def _message_size(ctx: ExpandContext) -> int:
    """The size the client announced with MAIL SIZE=, else -1 (Exim's $message_size
    then; its quota check adds it as it is, so a mailbox one byte over still passes)."""
    try:
        return int(str(ctx.variables.get("message_size") or "-1"))
    except ValueError:
        return -1


def _transport_context(config: Any, a: Address, ctx: ExpandContext) -> ExpandContext:
    """The variables a transport sees for the routed address (as for a delivery)."""
    c = routing.address_context(config, a, ctx)
    for name, value in (("local_part_data", a.local_part_data),
                        ("domain_data", a.domain_data), ("address_data", a.address_data),
                        ("home", a.home),
                        ("local_part_prefix", taint(a.prefix) if a.prefix else ""),
                        ("local_part_suffix", taint(a.suffix) if a.suffix else "")):
        if value is not None:
            c.variables[name] = value
    local_part = a.local_part
    if a.prefix and local_part.startswith(a.prefix):
        local_part = local_part[len(a.prefix):]
    if a.suffix and local_part.endswith(a.suffix):
        local_part = local_part[:len(local_part) - len(a.suffix)]
    c.variables["local_part"] = taint(local_part)
    c.variables["transport_name"] = str(a.transport or "")
    return c


def _over_quota(config: Any, rr: Any, ctx: ExpandContext, size: int) -> bool:
    for a in rr.addresses:
        inst = (getattr(config, "transports", {}) or {}).get(a.transport) \
            if a.transport else None
        if inst is None or inst.driver != "appendfile":
            continue
        checker: QuotaChecker = inst.obj
        try:
            if checker.quota_exceeded(_transport_context(config, a, ctx), size):
                return True
        except Exception:  # noqa: BLE001 - as Exim: only an exceeded quota fails
            continue
    return False


def verify_quota(config: Any, ctx: ExpandContext, address: str,
                 opts: QuotaOptions) -> QuotaVerdict:
    """Check the quota of recipient ``address``, from the cache when it knows."""
    cache = _cache(config, opts)
    key = CalloutCache.address_key(address, "")
    now = SYSTEM.time()
    if cache is not None:
        known = cache.address(key, now)
        # A lifetime of 0 keeps no record: not even one written this second counts.
        if known == ACCEPT and opts.cachepos:
            return QuotaVerdict("ok")
        if known == REJECT and opts.cacheneg:
            return QuotaVerdict("fail", "quota", CACHED_QUOTA_FAILURE)
    try:
        rr = routing.route_address(config, Address(address), ctx, verify="recipient")
        status, message = rr.status, getattr(rr, "message", None) or ""
    except ExpandDefer as exc:
        return QuotaVerdict("defer", "", str(exc))
    if status == "defer":
        return QuotaVerdict("defer", "", message)
    if status != "accept":
        return QuotaVerdict("fail", "route", message or "Unrouteable address")
    over = _over_quota(config, rr, ctx, _message_size(ctx))
    if cache is not None and (opts.cacheneg if over else opts.cachepos):
        cache.put_address(key, REJECT if over else ACCEPT, now)
    return QuotaVerdict("fail", "quota", OVER_QUOTA) if over else QuotaVerdict("ok")
