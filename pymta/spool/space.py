"""Free-space checks before accepting a message (Exim's check_spool_space & co).

``check_spool_space`` and ``check_log_space`` are held in kilobytes, the ``*_inodes``
options count inodes.  The spool partition is checked when either spool option is
nonzero or a message size is given (SMTP ``SIZE=``, added to the space wanted); the log
partition when either log option is nonzero.  A failed check is logged as Exim logs it,
e.g. ``spool directory space check failed: space=812 inodes=4021``.
"""
from __future__ import annotations

import os
from typing import Any

from pymta.config.values import main_option
from pymta.log import Logger

SPACE_SHORTAGE = "Space shortage, please try later"     # Exim's 452 text at MAIL
INSUFFICIENT = "insufficient disk space"                # command-line refusal


def free_space(path: str) -> tuple[int, int]:
    """(free kilobytes, free inodes) available to unprivileged users on the filesystem
    holding ``path``; -1 for a value that cannot be known (as Exim's $spool_space)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return -1, -1
    inodes = st.f_favail if st.f_files else -1      # no inode concept: not checked
    return st.f_bavail * st.f_frsize // 1024, inodes


def log_directory(config: Any, log: Any = None) -> str:
    """The directory the main log file is written in (``log``: the process's Logger,
    if it has one, saves building another)."""
    path_for = getattr(log, "path_for", None) or Logger(config).path_for
    return os.path.dirname(path_for("main")) or "."


def _int(config: Any, name: str) -> int:
    try:
        return int(main_option(config, name, 0) or 0)
    except (TypeError, ValueError):
        return 0


def check_spool(config: Any, msg_size: int = 0) -> str | None:
    """The log text of a failed spool check, or None when there is room.

    ``msg_size`` (bytes, from SIZE=) is added, rounded up to kilobytes, to
    check_spool_space: the message must not take the spool below the threshold.
    """
    want_kb = _int(config, "check_spool_space")
    want_inodes = _int(config, "check_spool_inodes")
    if want_kb <= 0 and want_inodes <= 0 and msg_size <= 0:
        return None
    want_kb += (max(msg_size, 0) + 1023) // 1024
    spool = str(main_option(config, "spool_directory", "."))
    space, inodes = free_space(spool)
    if (space >= 0 and space < want_kb) or (inodes >= 0 and inodes < want_inodes):
        return f"spool directory space check failed: space={space} inodes={inodes}"
    return None


def check_log(config: Any, log: Any = None) -> str | None:
    """The log text of a failed log-partition check, or None when there is room."""
    want_kb = _int(config, "check_log_space")
    want_inodes = _int(config, "check_log_inodes")
    if want_kb <= 0 and want_inodes <= 0:
        return None
    space, inodes = free_space(log_directory(config, log))
    if (space >= 0 and space < want_kb) or (inodes >= 0 and inodes < want_inodes):
        return f"log directory space check failed: space={space} inodes={inodes}"
    return None


def check_fs(config: Any, log: Any = None, msg_size: int = 0) -> bool:
    """Exim's check before accepting a message: spool, then log partition.  A failure
    is written to the main log (if ``log`` is given) and False returned."""
    failure = check_spool(config, msg_size) or check_log(config, log)
    if failure is None:
        return True
    if log is not None:
        log.main(failure)
    return False
