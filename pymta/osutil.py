"""Small operating-system helpers shared by the spool, transports and routing."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import grp
import ipaddress
import os
import pwd
import signal
import socket
from typing import Any, Iterator

_FALLOC_FL_KEEP_SIZE = 1
# errno values meaning "this filesystem or kernel cannot reserve space", not "no room"
_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV}


def fsync_dir(path: str) -> None:
    """fsync a directory so that a rename or create inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def give_to_dir_owner(path: str) -> None:
    """A file root just created in a directory that belongs to another user (the Exim
    user's spool, db/ or log directory) is given to that user, so that the unprivileged
    processes can still use it.  Nothing for other callers."""
    if os.geteuid() != 0:
        return
    try:
        st = os.stat(os.path.dirname(path) or ".")
        if st.st_uid != 0 and os.lstat(path).st_uid == 0:
            os.lchown(path, st.st_uid, st.st_gid)
    except OSError:
        pass


def can_switch_ids() -> bool:
    """True when this process may change to another user: root, or a process that kept
    a saved uid 0 (a daemon delivery worker running as the Exim user)."""
    return 0 in os.getresuid()


@contextlib.contextmanager
def switched_ids(uid: int, gid: int, groups: list[int] | None = None) -> Iterator[None]:
    """Run the body with effective ids ``uid``/``gid`` (and no other groups, or
    ``groups`` -- initgroups), then go back to the ids before.  Needs
    :func:`can_switch_ids`; root is regained for the change and dropped again
    afterwards."""
    euid, egid, old_groups = os.geteuid(), os.getegid(), os.getgroups()
    if euid != 0:
        os.seteuid(0)
    try:
        os.setgroups(groups if groups is not None else [gid])
        os.setegid(gid)
        os.seteuid(uid)
    except BaseException:
        _restore_ids(euid, egid, old_groups)
        raise
    try:
        yield
    finally:
        _restore_ids(euid, egid, old_groups)


def _restore_ids(euid: int, egid: int, groups: list[int]) -> None:
    if os.geteuid() != 0:
        os.seteuid(0)
    os.setgroups(groups)
    os.setegid(egid)
    os.seteuid(euid)


@functools.lru_cache(maxsize=1)
def _libc_fallocate() -> object | None:
    """libc's fallocate(2) wrapper, or None where there is none (not Linux)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


def reserve_beyond_eof(fd: int, offset: int, length: int) -> bool:
    """Allocate disk blocks for ``length`` bytes from ``offset`` without changing the
    file size (fallocate with FALLOC_FL_KEEP_SIZE), so that later writes there cannot
    fail for lack of space.

    Returns False when the filesystem or system cannot do this; raises OSError (ENOSPC,
    EDQUOT...) when there is no room.
    """
    fn = _libc_fallocate()
    if fn is None or length <= 0:
        return fn is not None
    if fn(fd, _FALLOC_FL_KEEP_SIZE, offset, length) == 0:   # type: ignore[operator]
        return True
    err = ctypes.get_errno()
    if err in _NO_FALLOCATE:
        return False
    raise OSError(err, os.strerror(err))


@functools.lru_cache(maxsize=1)
def interface_addresses() -> frozenset[str]:
    """The IP addresses of this host's network interfaces (loopback always included)."""
    ips = {"127.0.0.1", "::1"}
    try:
        import psutil  # type: ignore[import-untyped]  # no stubs installed
        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family in (socket.AF_INET, socket.AF_INET6):
                    ips.add(a.address.split("%")[0])
    except Exception:   # psutil missing or the platform refuses: loopback is enough
        pass
    return frozenset(ips)


def user_groups(uid: int, gid: int) -> list[int]:
    """All the groups of the user ``uid`` (what initgroups() would set)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return [gid]
    return os.getgrouplist(name, gid)


def resolve_user(value: Any) -> tuple[int, int] | None:
    """exim_user as a name or number -> (uid, primary gid); None when unset/unknown."""
    if value is None or value == "":
        return None
    try:
        pw = pwd.getpwuid(value) if isinstance(value, int) else (
            pwd.getpwuid(int(value)) if str(value).isdigit() else pwd.getpwnam(str(value)))
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def resolve_group(value: Any) -> int | None:
    """exim_group (or any group option) as a name or number -> gid; None when
    unset/unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    try:
        return grp.getgrnam(str(value)).gr_gid
    except KeyError:
        return None


# Well-known names, so that a machine without /etc/services still understands them.
_SERVICES = {"smtp": 25, "submission": 587, "submissions": 465, "smtps": 465, "lmtp": 24}


def tcp_port(text: str) -> int:
    """A port given as a number or a service name (ValueError when it is neither)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if text in _SERVICES:
        return _SERVICES[text]
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise ValueError(f'invalid port "{text}"') from None


def become_user_in_child(ids: tuple[int, int] | None,
                         groups: list[int] | None = None) -> None:
    """In a child process about to exec a delivery command: a session (process group)
    of its own, so that a timeout can kill everything it starts, and the delivery user
    for real -- real, effective and saved ids, no supplementary groups (or ``groups``:
    initgroups).  A daemon worker runs with a saved uid 0 for exactly this."""
    os.setsid()
    if ids is not None:
        if os.geteuid() != 0:
            os.seteuid(0)
        os.setgroups(groups or [])
        os.setresgid(ids[1], ids[1], ids[1])
        os.setresuid(ids[0], ids[0], ids[0])


def kill_process_group(pid: int) -> None:
    """SIGKILL the process group a command leads (become_user_in_child made it one), and
    so whatever it started.  A command running as another user can be killed only as
    root: a process running as the Exim user with a saved uid 0 takes root back for it."""
    try:
        os.killpg(pid, signal.SIGKILL)
        return
    except ProcessLookupError:
        return
    except PermissionError:
        if os.geteuid() == 0 or 0 not in os.getresuid():
            return
    euid = os.geteuid()
    try:
        os.seteuid(0)
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.seteuid(euid)


#: Test-only: a fixed load average for the whole process (see :func:`load_average`).
LOAD_AVERAGE_ENV = "PYMTA_TEST_LOAD_AVERAGE"


def load_average() -> int | None:
    """The one-minute load average in thousandths, as Exim's fixed-point options hold it
    (None where the system cannot tell).

    Test-only: ``PYMTA_TEST_LOAD_AVERAGE`` (a decimal number such as ``3.5``) replaces
    the kernel's figure, because a test cannot make a shared machine busy or idle on
    demand; never set it for a real mail server."""
    fixed = os.environ.get(LOAD_AVERAGE_ENV)
    if fixed:
        return int(round(float(fixed) * 1000))
    try:
        return int(os.getloadavg()[0] * 1000)
    except OSError:
        return None


def interface_for(items: list[str], peer: str) -> tuple[str, int] | None:
    """The smtp transport's ``interface``: the first listed IP address of ``peer``'s
    family, as (address, 0) to bind to; None when the list has none (items that are not
    addresses are skipped)."""
    want6 = ":" in peer
    for item in items:
        try:
            ip = ipaddress.ip_address(item)
        except ValueError:
            continue
        if (ip.version == 6) == want6:
            return (str(ip), 0)
    return None
