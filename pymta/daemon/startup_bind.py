"""daemon_startup_retries and daemon_startup_sleep: when a listening address is still in
use at start-up (an old daemon not quite gone), try again a few times before giving up,
logging each wait in Exim's words."""
from __future__ import annotations

import errno
import socket
import time
from typing import Callable

from pymta.config.options import format_time
from pymta.daemon import listen


def _in_use(exc: listen.BindError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE


def bind_with_retries(addrs: list[tuple[str, int]], retries: int, pause: int,
                      note: Callable[[str], None],
                      sleep: Callable[[float], None] = time.sleep) -> list[socket.socket]:
    """Bind every address; while one is in use, ``note`` Exim's "waiting ..." line, wait
    ``pause`` seconds and try again, at most ``retries`` times.  Any other failure, or
    the last one, raises :class:`~pymta.daemon.listen.BindError`."""
    left = retries
    while True:
        try:
            return listen.bind_listeners(addrs)
        except listen.BindError as exc:
            if left <= 0 or not _in_use(exc):
                raise
            more = "1 more try" if left == 1 else f"{left} more tries"
            note(f"{exc}: waiting {format_time(pause)} before trying again ({more})")
            sleep(pause)
            left -= 1
