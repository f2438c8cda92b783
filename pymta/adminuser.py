"""Exim's admin users: who may list the queue, prod deliveries and act on queued messages.

An admin user is root, the Exim user, or a caller one of whose groups (the current group
or a supplementary one) is the Exim group or is listed in ``admin_groups``.  When
``exim_user`` is unset, or pymta is started by an ordinary user (it then receives and
delivers as that user, whatever ``exim_user`` says), pymta runs as whoever starts it, so
the owner of the spool directory stands in for the Exim user: it can read the queue's
files anyway, and refusing it would lock an ordinary user out of its own queue.

Shared by the command line (queue listing, -M, -q, -bP's hidden values); it sits beside
pymta.caller (the trusted users) and below the cli package.
"""
from __future__ import annotations

import grp
import os
from typing import Any

from pymta.config.values import main_opt
from pymta.expand.lists import split_list
from pymta.osutil import resolve_group, resolve_user


class AdminGroupError(Exception):
    """A group named in admin_groups does not exist (Exim refuses the configuration)."""


def admin_group_ids(config: Any) -> set[int]:
    """admin_groups as group ids; numbers are taken as they are, names must exist."""
    gids: set[int] = set()
    for name in split_list(str(main_opt(config, "admin_groups") or "")):
        if name.isdigit():
            gids.add(int(name))
            continue
        try:
            gids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            raise AdminGroupError(f"group {name} was not found") from None
    return gids


def _exim_group(config: Any, exim: tuple[int, int] | None) -> int | None:
    group = main_opt(config, "exim_group")
    if group is not None and group != "":
        return resolve_group(group)
    return exim[1] if exim is not None else None


def _spool_owner(config: Any) -> int | None:
    spool = main_opt(config, "spool_directory")
    try:
        return os.stat(str(spool)).st_uid if spool else None
    except OSError:
        return None


def caller_is_admin(config: Any) -> bool:
    """Whether the calling process is an Exim admin user (see the module docstring).

    Raises :class:`AdminGroupError` for an unknown group in admin_groups, whoever calls
    (Exim rejects such a configuration outright)."""
    admin_gids = admin_group_ids(config)
    uid = os.getuid()
    if uid == 0:
        return True
    exim = resolve_user(main_opt(config, "exim_user"))
    if exim is not None and exim[0] == uid:
        return True
    if _spool_owner(config) == uid:
        return True
    mine = {os.getgid(), *os.getgroups()}
    exim_gid = _exim_group(config, exim)
    if exim_gid is not None:
        admin_gids.add(exim_gid)
    return bool(mine & admin_gids)
