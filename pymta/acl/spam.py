"""The ``spam`` ACL condition (spec 45.2, 45.3).

``spam = <user>[:true][/defer_ok]`` sends the message (the .eml file of
:mod:`pymta.acl.mbox`) to spamd for ``user`` and is true when the score reaches the
user's threshold (always, with ``:true``).  It sets ``$spam_score``, ``$spam_score_int``,
``$spam_bar``, ``$spam_report`` and ``$spam_action``.  The answer is kept for the message:
asking again for the same user (and the same spamd_address) does not scan again.  When
no server answers, or an answer cannot be read, the condition defers (the ACL's 451),
or is false with ``defer_ok``; the reason is logged either way.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

from pymta.acl.content import ContentError, ContentScan
from pymta.acl.mbox import spool_mbox
from pymta.acl.scanconfig import ScanConfigError, parse_spamd_address
from pymta.acl.scanconn import ScanDefer
from pymta.acl.spamd import ConnectFailed, query, server_order, spam_variables
from pymta.expand.lists import split_list
from pymta.taint import is_tainted, taint

#: Where spam and malware may be used (Exim 4.96 refuses them in the MIME ACL).
SCAN_WHERES = frozenset(("data", "prdr", "dkim", "notsmtp"))
#: The variables the spam condition sets; they start empty for each message.
SPAM_VARIABLES = ("spam_score", "spam_score_int", "spam_bar", "spam_report", "spam_action")
#: The spam variables saved in the -H file (not $spam_report), as Exim does.
SPOOLED_SPAM_VARIABLES = ("spam_bar", "spam_score", "spam_score_int")
#: What the spam and malware conditions set: nothing of it outlives its message.
SCAN_VARIABLES = SPAM_VARIABLES + ("malware_name", "av_failed")

ScanLog = Callable[[str], None]


@dataclass(frozen=True)
class SpamResult:
    """One scan's outcome, kept for the message."""

    address: str
    user: str
    matched: bool
    variables: dict[str, str]


def spool_spam_variables(variables: dict[str, str], spool: dict[str, str]) -> None:
    """Copy the spam variables a scan set into the -H file's variables."""
    for name in SPOOLED_SPAM_VARIABLES:
        if variables.get(name):
            spool[name] = variables[name]


def where_name(where: str) -> str:
    return {"notsmtp": "non-SMTP", "notsmtp_mime": "non-SMTP-MIME", "mime": "MIME",
            "data": "DATA", "prdr": "PRDR", "dkim": "DKIM"}.get(where, where.upper())


def need_scan(scan: ContentScan | None, where: str, name: str) -> ContentScan:
    """The message to scan; an ACL error where the condition cannot be used."""
    if where not in SCAN_WHERES or scan is None:
        raise ContentError(f"cannot test {name} condition in {where_name(where)} ACL")
    return scan


def split_options(arg: str, name: str) -> tuple[str, bool, list[str]]:
    """The first element of a spam/malware argument, defer_ok, and the other options."""
    items = split_list(arg, "/")
    first = items[0] if items else ""
    defer_ok = False
    rest: list[str] = []
    for item in items[1:]:
        if item.lower() == "defer_ok":
            defer_ok = True
        elif item:
            rest.append(item)
    return first, defer_ok, rest


def check_spam(arg: str, scan: ContentScan | None, where: str, variables: dict[str, str],
               spamd_address: str, expand: Callable[[str], str], log: ScanLog,
               now: float | None = None) -> bool:
    """The spam condition with its (already expanded) argument ``arg``; ``now`` (the
    context's clock) decides which servers' ``time=`` windows are open."""
    scan = need_scan(scan, where, "spam")
    first, defer_ok, rest = split_options(arg, "spam")
    if rest:
        raise ContentError(f'spam: unknown option "{rest[0]}"')
    user, _, flag = first.partition(":")
    user = user.strip()
    override = flag.strip().lower() == "true"
    if not user or user == "0" or user.lower() == "false":
        return False
    try:
        return _scan(scan, user, override, variables, spamd_address, expand, log,
                     time.time() if now is None else now)
    except ScanDefer as exc:
        log(f"spam acl condition: {exc}")
        if defer_ok:
            return False
        raise


def _scan(scan: ContentScan, user: str, override: bool, variables: dict[str, str],
          spamd_address: str, expand: Callable[[str], str], log: ScanLog,
          now: float) -> bool:
    address = spamd_address
    if address.startswith("$"):
        try:
            address = expand(address)
        except Exception as exc:
            raise ScanDefer(f"spamd_address starts with $, but expansion failed: "
                            f"{exc}") from exc
        if is_tainted(address):     # it names sockets and hosts
            raise ScanDefer(f'spamd_address: tainted value refused: "{address}"')
    cached = scan.results.get("spam")
    if isinstance(cached, SpamResult) and cached.address == address \
            and cached.user == user:
        variables.update(cached.variables)
        return override or cached.matched
    try:
        servers = parse_spamd_address(address)
    except ScanConfigError as exc:
        raise ScanDefer(str(exc)) from exc
    mbox = spool_mbox(scan, variables.get("sender_address", "") or "",
                      variables.get("recipients", "") or "")

    def connected(where: str) -> None:
        variables["callout_address"] = where

    local = time.localtime(now)
    second = local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec
    for server in server_order(servers, second, random.Random()):
        try:
            answer = query(server, user, mbox, connected)
        except ConnectFailed as exc:
            log(f"spam acl condition: {exc}")
            continue
        values = spam_variables(answer)
        # spamd's report quotes the message (its "Content preview"): data, not config
        values["spam_report"] = taint(values["spam_report"])
        matched = answer.score >= answer.threshold
        variables.update(values)
        scan.results["spam"] = SpamResult(address, user, matched, values)
        return override or matched
    raise ScanDefer("all spamd servers failed")
