"""The local caller of the command line: trust (who may set the sender with -f) and the
qualification domains for unqualified addresses.

Shared by command-line submission (pymta.cli.submit) and the local SMTP session on stdin
(pymta.smtp.local, ``-bs``/``-bh``), so it lives below both.
"""
from __future__ import annotations

import grp
import os
import pwd
import socket
from typing import Any

from pymta.config.values import main_opt
from pymta.expand.context import ExpandContext
from pymta.expand.lists import split_list
from pymta.match import match_address
from pymta.osutil import resolve_user


def qualify_domains(config: Any) -> tuple[str, str]:
    """(qualify_domain, qualify_recipient) with Exim's fallbacks to primary_hostname."""
    primary = main_opt(config, "primary_hostname") or socket.getfqdn()
    qd = main_opt(config, "qualify_domain") or primary
    qr = main_opt(config, "qualify_recipient") or qd
    return str(qd), str(qr)


def qualify(address: str, domain: str) -> str:
    """Add ``@domain`` to an unqualified address (the empty sender stays empty)."""
    if not address or "@" in address:
        return address
    return f"{address}@{domain}"


def caller_is_trusted(config: Any, uid: int | None = None) -> bool:
    """Exim's trusted callers, who may set the envelope sender with -f: root, the
    exim_user, and members of trusted_users or trusted_groups (primary or supplementary
    group of the caller)."""
    uid = os.getuid() if uid is None else uid
    if uid == 0:
        return True
    exim = resolve_user(main_opt(config, "exim_user"))
    if exim is not None and exim[0] == uid:
        return True
    try:
        pw = pwd.getpwuid(uid)
        login, gid = pw.pw_name, pw.pw_gid
    except KeyError:
        login, gid = str(uid), None
    users = split_list(str(main_opt(config, "trusted_users") or ""))
    if login in users or str(uid) in users:
        return True
    groups = split_list(str(main_opt(config, "trusted_groups") or ""))
    if not groups:
        return False
    mine = set(os.getgroups()) if uid == os.getuid() else set()
    if gid is not None:
        mine.add(gid)
    for name in groups:
        try:
            g = int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
        except KeyError:
            continue
        if g in mine:
            return True
    return False


def untrusted_may_set_sender(config: Any, address: str, login: str) -> bool:
    """Whether a caller who is not trusted may make ``address`` (qualified; "" for
    ``<>``) the envelope sender of a local message (-f, or MAIL with -bs/-bS): the empty
    sender always, another one when it is in the address list untrusted_set_sender,
    which is expanded with $sender_ident holding the caller's login."""
    if not address:
        return True
    text = main_opt(config, "untrusted_set_sender")
    if not text:
        return False
    ctx = ExpandContext(config=config)
    ctx.variables["sender_ident"] = login
    try:
        return match_address(address, str(text), ctx)
    except Exception:            # noqa: BLE001 - a list that cannot be checked allows nothing
        return False
