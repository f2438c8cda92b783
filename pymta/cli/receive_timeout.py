"""receive_timeout (and -or): the longest a non-SMTP message (-bm, -t, sendmail) may
take to arrive on standard input; a caller that stalls longer loses the message, with
Exim's log line and error text."""
from __future__ import annotations

import contextlib
import signal
from types import FrameType
from typing import Any, Iterator

from pymta.config.values import main_option

#: What the caller is told (after "pymta: "), as Exim words it.
ABANDONED = "timed out while reading - message abandoned"
#: The main-log line, after the message id.
LOGGED = "timed out while reading local message"


class ReceiveTimeout(Exception):
    """Standard input did not finish within receive_timeout."""


def receive_timeout(config: Any) -> int:
    """Seconds (0: wait for ever)."""
    return int(main_option(config, "receive_timeout", 0) or 0)


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise ReceiveTimeout in the body once ``seconds`` have passed (none for 0).

    One alarm for the whole message, as Exim sets it: a caller that trickles a line
    now and then cannot keep the reader waiting for ever."""
    if seconds <= 0:
        yield
        return

    def expired(_signum: int, _frame: FrameType | None) -> None:
        raise ReceiveTimeout()
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
