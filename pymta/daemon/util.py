"""Small helpers shared by the daemon processes and the command line."""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator

from pymta.config.values import main_opt, main_option  # noqa: F401  (main_opt re-exported)
from pymta.osutil import resolve_group, resolve_user  # noqa: F401  (re-exported)


def spool_directory(config: Any) -> str:
    """The spool directory; also sets the layout for new messages
    (split_spool_directory), which every process learns here."""
    from pymta.spool.files import configured_spool
    return configured_spool(config)


def make_logger(config: Any) -> Any:
    """The Exim-format logger (mainlog/rejectlog/paniclog) for ``config``."""
    from pymta.log import Logger
    return Logger(config)


class PrivilegeError(Exception):
    """exim_user cannot be used: unset, unknown, root, or unable to use the spool."""


@dataclass(frozen=True)
class EximIds:
    """The Exim user and group: who receives and delivers when pymta starts as root."""

    uid: int
    gid: int
    name: str            # for initgroups()


def _where(config: Any, name: str) -> str:
    """" (set in FILE line N)" for an option the configuration set, else ""."""
    main = getattr(config, "main", None)
    loc = getattr(main, "locations", {}).get(name) if main is not None else None
    if not loc:
        return ""
    file, line = loc
    return f" (set in {file}" + (f" line {line}" if line is not None else "") + ")"


def _config_name(config: Any) -> str:
    return str(getattr(config, "filename", None) or "the configuration")


def exim_ids(config: Any) -> EximIds | None:
    """exim_user/exim_group resolved to ids; None when exim_user is unset.

    Raises :class:`PrivilegeError` (naming the file and line of the setting) when the
    user or group does not exist, or when exim_user is root.
    """
    import pwd
    value = main_opt(config, "exim_user")
    if value is None or value == "":
        return None
    try:
        pw = (pwd.getpwuid(value) if isinstance(value, int) else
              pwd.getpwuid(int(value)) if str(value).isdigit() else pwd.getpwnam(str(value)))
    except KeyError:
        raise PrivilegeError(f'exim_user: user "{value}" was not found'
                             + _where(config, "exim_user")) from None
    if pw.pw_uid == 0:
        raise PrivilegeError("exim_user must not be root: pymta never receives or delivers "
                             "as root" + _where(config, "exim_user"))
    gid = pw.pw_gid
    group = main_opt(config, "exim_group")
    if group is not None and group != "":
        gid_or_none = resolve_group(group)
        if gid_or_none is None:
            raise PrivilegeError(f'exim_group: group "{group}" was not found'
                                 + _where(config, "exim_group"))
        gid = gid_or_none
    return EximIds(pw.pw_uid, gid, pw.pw_name)


def root_exim_ids(config: Any) -> EximIds | None:
    """For a process started as root: the ids to receive and deliver as (an error when
    exim_user is unset).  None when not root: then nobody is switched to."""
    if not is_root_capable():
        return None
    ids = exim_ids(config)
    if ids is None:
        raise PrivilegeError(
            f"exim_user is not set in {_config_name(config)}: started as root, pymta "
            "receives and delivers mail as exim_user and never as root; set exim_user "
            "(and exim_group) in the main section to an unprivileged user, or run pymta "
            "as an ordinary user")
    return ids


def is_root_capable() -> bool:
    """True when this process runs as root or can become root again (saved uid 0)."""
    return 0 in os.getresuid()


def _groups_of(ids: EximIds) -> list[int]:
    try:
        return os.getgrouplist(ids.name, ids.gid)
    except OSError:
        return [ids.gid]


def drop_privileges(config: Any, keep_root: bool = False) -> bool:
    """When root (or able to become root again), become exim_user/exim_group with its
    supplementary groups.  True if the ids were changed.

    Without ``keep_root`` the change is permanent (receivers).  With it the saved uid
    stays 0 (real and effective uid are exim_user), so that a delivery worker can switch
    to a local user for a local delivery (:func:`pymta.osutil.switched_ids`).
    """
    if not is_root_capable():
        return False
    ids = exim_ids(config)
    if ids is None:
        return False
    os.seteuid(0)
    os.setgroups(_groups_of(ids))
    os.setresgid(ids.gid, ids.gid, ids.gid)
    os.setresuid(ids.uid, ids.uid, 0 if keep_root else ids.uid)
    return True


@contextlib.contextmanager
def exim_effective(ids: EximIds | None) -> Iterator[None]:
    """Run the body with exim_user's effective ids (files it creates belong to it);
    the real uid, and so the caller's identity, is kept.  Nothing when ``ids`` is None."""
    if ids is None or os.geteuid() != 0:
        yield
        return
    egid, groups = os.getegid(), os.getgroups()
    os.setgroups(_groups_of(ids))
    os.setegid(ids.gid)
    os.seteuid(ids.uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(egid)
        os.setgroups(groups)


@contextlib.contextmanager
def privileged() -> Iterator[None]:
    """Root's effective uid for the body (binding ports on reload, removing the pid file)
    in a process that kept a saved uid 0; nothing otherwise."""
    euid = os.geteuid()
    if euid == 0 or not is_root_capable():
        yield
        return
    os.seteuid(0)
    try:
        yield
    finally:
        os.seteuid(euid)


def prepare_spool(config: Any, ids: EximIds, repair: bool = False) -> None:
    """As root: create the spool and log directories, give them to exim_user, and check
    that exim_user can use them (a parent directory may be closed to it).

    With ``repair`` (daemon start), files an earlier root process left to root in
    input/, msglog/, db/ and the log files are given to exim_user too.
    """
    from pymta.log import log_directories, log_files
    from pymta.spool.files import ensure_spool_dirs
    spool = spool_directory(config)
    ensure_spool_dirs(spool, owner=(ids.uid, ids.gid))
    dirs = [spool] + [os.path.join(spool, sub) for sub in ("input", "msglog", "db")]
    for d in log_directories(config):
        os.makedirs(d, mode=0o750, exist_ok=True)
        os.chown(d, ids.uid, ids.gid)
        dirs.append(d)
    if repair:
        paths = list(log_files(config))
        for d in dirs[1:4]:
            paths += [os.path.join(d, name) for name in os.listdir(d)]
        for path in paths:
            try:
                if os.lstat(path).st_uid == 0:
                    os.lchown(path, ids.uid, ids.gid)
            except FileNotFoundError:
                pass
    with exim_effective(ids):
        closed = [d for d in dirs if not os.access(d, os.W_OK | os.X_OK, effective_ids=True)]
    if closed:
        raise PrivilegeError(
            f"exim_user {ids.name} cannot write to {closed[0]}: make that directory and "
            f"every directory above it accessible to {ids.name} (or set spool_directory "
            "and log_file_path to a place it can use)")


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

