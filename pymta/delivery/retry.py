"""Retry rules: choosing the rule for a failure and computing the next retry time.

Follows the spec chapter "Retry configuration": rules are tried in order (pattern, error
name, optional senders); the F/G/H parameter sets are scanned for the first whose cutoff,
measured from the first failure, has not passed; with no rule at all a temporary error is
treated as permanent.
"""
from __future__ import annotations

import errno as _errno
import random
import re
from typing import Any

from pymta.config.options import parse_time
from pymta.config.values import main_option
from pymta.errnos import EximErrno
from pymta.expand.context import ExpandContext
from pymta.hints.retry import RetryRecord
from pymta.routing import support

DEFAULT_INTERVAL_MAX = 24 * 3600
DEFAULT_DATA_EXPIRE = 7 * 24 * 3600


# ------------------------------------------------------------------ error names
def error_name(addr: Any) -> str | None:
    """The retry-rule error name for an address's last deferral (None if unknown)."""
    if getattr(addr, "error_kind", None):
        return addr.error_kind
    e = addr.basic_errno
    host = getattr(addr, "host_used", None)
    suffix = "_MX" if host is not None and host.mx >= 0 else "_A"
    code = str(addr.more_errno) if 400 <= (addr.more_errno or 0) < 500 else "4xx"
    if e == _errno.ECONNREFUSED:
        return "refused" + suffix
    if e in (_errno.ETIMEDOUT, EximErrno.CONNECTTIMEOUT):
        return "timeout_connect" + suffix
    if e == EximErrno.RCPT4XX:
        return f"rcpt_{code}"
    if e == EximErrno.MAIL4XX:
        return f"mail_{code}"
    if e == EximErrno.DATA4XX:
        return f"data_{code}"
    if e == EximErrno.SMTPCLOSED:
        return "lost_connection"
    if e in (EximErrno.EXIMQUOTA, _errno.EDQUOT, _errno.ENOSPC):
        return "quota"
    if e == EximErrno.UNKNOWNHOST:
        return "lookup"
    return None


def error_matches(rule_error: str, error: str | None) -> bool:
    """Whether a retry rule's error field applies to ``error``."""
    if rule_error == "*":
        return True
    if not error:
        return False
    r, e = rule_error.lower(), error.lower()
    m = re.fullmatch(r"(rcpt|mail|data)_4(..)", r)
    if m:
        em = re.fullmatch(rf"{m.group(1)}_(4..)", e)
        return em is not None and all(p in ("x", c)
                                      for p, c in zip(m.group(2), em.group(1)[1:]))
    if r == "refused":
        return e.startswith("refused")
    if r in ("refused_mx", "refused_a"):
        return e == r
    if r == "timeout":
        return e.startswith("timeout")
    if r == "timeout_connect":
        return e.startswith("timeout_connect")
    if r in ("timeout_mx", "timeout_a"):
        return e.startswith("timeout") and e.endswith(r[7:])
    if r in ("timeout_connect_mx", "timeout_connect_a"):
        return e == r
    if r.startswith("quota_"):
        # "quota_<age>" errors carry the mailbox's idle time in seconds: quota_<n>
        em = re.fullmatch(r"quota_(\d+)", e)
        if not em:
            return False
        try:
            limit = parse_time(r[6:])
        except (ImportError, ValueError):
            return False
        return int(em.group(1)) >= limit
    if r == "quota":
        return e == "quota" or e.startswith("quota_")
    return r == e


# ------------------------------------------------------------------ rule matching
def _pattern_matches(pattern: str, subject: str, ctx: Any) -> bool:
    """Match one retry pattern (a one-item address list) against an address or a
    bare domain/host name."""
    neg = pattern.startswith("!")
    if neg:
        pattern = pattern[1:].strip()
    lp, at, domain = subject.rpartition("@")
    if not at:
        lp, domain = "*", subject
    if pattern == "*":
        hit = True
    elif pattern.startswith("^"):
        hit = re.search(pattern, f"{lp}@{domain}", re.I) is not None
    elif "@" in pattern:
        plp, _, pdom = pattern.rpartition("@")
        hit = (plp == "*" or plp.lower() == lp.lower()) and (
            pdom == "*" or support.match_domain(domain, pdom, ctx))
    else:
        hit = support.match_domain(domain, pattern, ctx)
    return hit != neg


def _senders_match(senders: str, sender: str | None, ctx: Any) -> bool:
    if sender is None:
        return False        # as with -brt without -f: sender-specific rules never match
    if sender == "":
        items = [i.strip() for i in senders.split(":")]
        return "" in items or not senders.strip()
    return support.match_address(sender, senders, ctx)


def find_retry_rule(config: Any, subject: str, error: str | None, sender: str | None = None,
                    alt_domain: str | None = None, ctx: Any = None) -> Any:
    """The first rule of ``config.retry_rules`` matching ``subject`` (a host name, domain or
    address) — or, failing that, ``alt_domain`` — and the error and sender.  None if no
    rule applies."""
    if ctx is None:
        ctx = ExpandContext(config)
    for rule in getattr(config, "retry_rules", []):
        if not error_matches(rule.error, error):
            continue
        if rule.senders is not None and not _senders_match(rule.senders, sender, ctx):
            continue
        if _pattern_matches(rule.pattern, subject, ctx) or (
                alt_domain is not None and _pattern_matches(rule.pattern, alt_domain, ctx)):
            return rule
    return None


def final_cutoff(rule: Any) -> int:
    return max((c for _, c, _ in rule.rules), default=0)


# ------------------------------------------------------------------ computing
def compute_next(rule: Any, old: RetryRecord | None, now: int, *, basic_errno: int = 0,
                 more_errno: int = 0, text: str = "",
                 interval_max: int = DEFAULT_INTERVAL_MAX,
                 data_expire: int = DEFAULT_DATA_EXPIRE,
                 first_failed: int | None = None) -> RetryRecord:
    """The updated retry record after a failure at ``now``.

    ``first_failed`` may force an earlier start (message-related errors use the message's
    arrival time).  ``expired`` is set once the final cutoff has passed, or when the rule has
    no parameter sets at all (the address then fails at once).
    """
    if old is not None and now - old.last_try > data_expire:
        old = None          # stale hints are ignored
    first = old.first_failed if old is not None else now
    if first_failed is not None:
        first = min(first, first_failed)
    if not rule.rules:
        return RetryRecord(first, now, now, True, basic_errno, more_errno, text)
    age = now - first
    chosen = None
    for r in rule.rules:
        if age < r[1]:
            chosen = r
            break
    expired = chosen is None
    kind, _cutoff, params = chosen if chosen is not None else rule.rules[-1]
    if kind == "F":
        gap = params[0]
    else:
        if old is not None:
            last_gap = min(old.next_try - old.last_try, now - old.last_try)
        else:
            last_gap = 0
        grown = int(last_gap * params[1])
        if kind == "G":
            gap = params[0] if last_gap < params[0] else grown
        else:  # H: random between the minimum and the grown maximum
            gap = params[0]
            if grown > params[0]:
                spread = grown - params[0]
                gap += spread // 2 + random.randint(0, max(spread // 2, 0))
    gap = min(max(gap, 1), interval_max)
    return RetryRecord(first, now, now + gap, expired, basic_errno, more_errno, text)


def is_due(record: RetryRecord | None, now: int, data_expire: int = DEFAULT_DATA_EXPIRE) -> bool:
    """Whether a retry may be attempted now (no record, stale record, or time reached)."""
    if record is None or now - record.last_try > data_expire:
        return True
    return now >= record.next_try


def config_limits(config: Any) -> tuple[int, int]:
    """(retry_interval_max, retry_data_expire) from the main options."""
    imax = main_option(config, "retry_interval_max", DEFAULT_INTERVAL_MAX)
    expire = main_option(config, "retry_data_expire", DEFAULT_DATA_EXPIRE)
    return min(int(imax), DEFAULT_INTERVAL_MAX), int(expire)
