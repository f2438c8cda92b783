"""Small helpers shared by the daemon processes and the command line."""
from __future__ import annotations

import os
import sys
from typing import Any

from pymta.config.values import main_option


def main_opt(config: Any, name: str, default: Any = None) -> Any:
    """A main option's typed value; when it is unset (or ``config`` is a partial stand-in),
    ``default`` if given, else the option table's default."""
    value = main_option(config, name, None)
    if value is None:
        if default is not None:
            return default
        from pymta.config.option_tables import MAIN_TABLE
        entry = MAIN_TABLE.get(name)
        value = entry[1] if entry is not None else None
    return value


def spool_directory(config: Any) -> str:
    return str(main_opt(config, "spool_directory"))


def make_logger(config: Any) -> Any:
    """The Exim-format logger (mainlog/rejectlog/paniclog) for ``config``."""
    from pymta.log import Logger
    return Logger(config)


def resolve_user(value: Any) -> tuple[int, int] | None:
    """exim_user as a name or number -> (uid, primary gid); None when unset/unknown."""
    if value is None or value == "":
        return None
    import pwd
    try:
        pw = pwd.getpwuid(value) if isinstance(value, int) else (
            pwd.getpwuid(int(value)) if str(value).isdigit() else pwd.getpwnam(str(value)))
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def resolve_group(value: Any) -> int | None:
    if value is None or value == "":
        return None
    import grp
    if isinstance(value, int):
        return value
    if str(value).isdigit():
        return int(value)
    try:
        return grp.getgrnam(str(value)).gr_gid
    except KeyError:
        return None


def drop_privileges(config: Any) -> bool:
    """When root and exim_user is set, become exim_user/exim_group. True if dropped."""
    if os.geteuid() != 0:
        return False
    user = resolve_user(main_opt(config, "exim_user"))
    if user is None:
        return False
    uid, gid = user
    group = resolve_group(main_opt(config, "exim_group"))
    if group is not None:
        gid = group
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    return True


def fork_detached() -> bool:
    """Double fork into a new session with standard files on /dev/null.

    Returns True in the detached grandchild and False in the caller, which continues
    once the intermediate child has exited (so no zombie is left behind).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid > 0:
        os.waitpid(pid, 0)
        return False
    try:
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        fd = os.open(os.devnull, os.O_RDWR)
        for n in (0, 1, 2):
            os.dup2(fd, n)
        if fd > 2:
            os.close(fd)
    except BaseException:
        os._exit(1)
    return True

