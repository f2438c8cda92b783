"""The originator of a locally submitted message: the caller's login and full name.

The name comes from the passwd gecos field as Exim derives it: "&" stands for the login
with its first letter in upper case; when both gecos_pattern and gecos_name are set and
the pattern matches the field, gecos_name is expanded with ``$0``..``$n`` from the match
and used instead (an expansion failure keeps the field).  A caller whose uid has no
passwd entry is refused unless unknown_login gives a login (expanded, with
``$caller_uid``/``$caller_gid``); its name is then unknown_username.
"""
from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass
from typing import Any

from pymta.config.values import main_opt
from pymta.expand import ExpandError, expand_string
from pymta.expand.context import ExpandContext


class UnknownCallerError(Exception):
    """The caller's uid has no passwd entry and unknown_login is unset."""


@dataclass
class Originator:
    """Login and full name of the user who submits a message locally."""
    login: str
    name: str


def gecos_full_name(config: Any, gecos: str, login: str) -> str:
    """The full name from a gecos field (see the module docstring)."""
    field = gecos.replace("&", login[:1].upper() + login[1:])
    pattern = main_opt(config, "gecos_pattern")
    template = main_opt(config, "gecos_name")
    if not pattern or not template:
        return field
    try:
        m = re.search(str(pattern), field)
    except re.error:
        return field
    if m is None:
        return field
    ctx = ExpandContext(config=config, numbered=[m.group(0)] + [g or "" for g in m.groups()])
    try:
        return expand_string(str(template), ctx)
    except ExpandError:
        return field


def caller_originator(config: Any, uid: int | None = None, gid: int | None = None) -> Originator:
    """The login and full name of the calling user (``uid``, default ours).

    Raises :class:`UnknownCallerError` with Exim's text for a uid without a passwd
    entry when unknown_login is unset (or expands to nothing)."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        template = main_opt(config, "unknown_login")
        login = ""
        if template:
            ctx = ExpandContext(config=config, variables={"caller_uid": str(uid),
                                                          "caller_gid": str(gid)})
            try:
                login = expand_string(str(template), ctx)
            except ExpandError:
                login = ""
        if not login:
            raise UnknownCallerError(f"Failed to get user name for uid {uid}") from None
        return Originator(login, str(main_opt(config, "unknown_username") or ""))
    return Originator(pw.pw_name, gecos_full_name(config, pw.pw_gecos, pw.pw_name))
