"""Process titles: what each pymta process is doing, for ``ps`` and ``pymta-what``.

Exim keeps a one-line "process info" per process ("daemon(4.96): -q30m, listening for SMTP
on port 25", "handling incoming connection from (helo) [192.0.2.1]", "delivering
1xyz-000000-AB") that ``exiwhat`` collects.  pymta puts the same kind of line in the
process title (setproctitle), behind the marker ``pymta: ``, so ``ps`` shows it and
``pymta-what`` finds every pymta process by that marker.

Titles change only at state changes (a connection accepted, HELO, a message received, a
delivery started, back to idle), never per SMTP command: one setproctitle call is a few
microseconds, cheap at that rate.
"""
from __future__ import annotations

import re
import threading

from setproctitle import getproctitle, setproctitle

from pymta.config.options import format_time

#: what every pymta process title starts with; pymta-what looks for it
MARKER = "pymta: "
#: a title longer than this is cut (the kernel shows only the original argv's room anyway)
MAX_LENGTH = 200

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_last_title: str | None = None


def set_title(text: str) -> None:
    """Set this process's title to the marker and ``text`` (made printable: a HELO name
    or an address from the network must not put control characters in ``ps``)."""
    global _last_title
    if text == _last_title:
        return                  # a session's EHLOs repeat it; setting it is a syscall
    _last_title = text
    setproctitle(MARKER + _UNPRINTABLE.sub("?", text)[:MAX_LENGTH])


def current() -> str:
    """This process's title without the marker ("" when pymta has not set one)."""
    title = getproctitle()
    return title[len(MARKER):] if title.startswith(MARKER) else ""


def daemon(version: str, queue_flags: str, queue_interval: int | None,
           listeners: list[tuple[str, int]]) -> None:
    """The master: ``daemon(<version>): -q30m, listening for SMTP on [::]:25`` (the
    words of its "daemon started" log line)."""
    q = (f"-q{queue_flags}{format_time(queue_interval)}" if queue_interval
         else "no queue runs")
    where = ("listening for SMTP on " + " ".join(f"[{a}]:{p}" for a, p in listeners)
             if listeners else "not listening for SMTP")
    set_title(f"daemon({version}): {q}, {where}")


#: A receiver with session threads (smtp_receiver_threads): each thread's session, by
#: thread; the title shows them all.
_sessions: dict[int, str] = {}
_sessions_lock = threading.Lock()
_IDLE = "receiver: waiting for an SMTP connection"


def _session_title(text: str | None) -> None:
    """Set (None: clear) the calling thread's session in a receiver's title."""
    with _sessions_lock:
        if text is None:
            _sessions.pop(threading.get_ident(), None)
        else:
            _sessions[threading.get_ident()] = text
        set_title("; ".join(_sessions.values()) if _sessions else _IDLE)


def receiver_idle() -> None:
    """A preforked receiver between connections."""
    _session_title(None)


def handling_connection(ident: str, tls: bool = False) -> None:
    """A receiver in a session; ``ident`` is Exim's host_and_ident: ``(helo) [ip]``."""
    _session_title(f"handling incoming {'TLS ' if tls else ''}connection from {ident}")


def message_received(msgid: str, ident: str) -> None:
    """A message was accepted in the current session (it continues)."""
    _session_title(f"handling incoming connection from {ident}: received {msgid}")


def worker_idle() -> None:
    """A delivery worker waiting for the master to hand it a message."""
    set_title("delivery worker: waiting for a message")


def delivering(msgid: str, where: str = "") -> None:
    """Any process delivering a message (``where``: "running queue: " or "")."""
    set_title(f"{where}delivering {msgid}")


def delivering_to_host(msgid: str, name: str, address: str | None) -> None:
    """The smtp transport trying one host for a message."""
    set_title(f"delivering {msgid} to {name or address} [{address or ''}]")


def queue_run(flags: str = "", queue: str = "") -> None:
    """A queue runner (the daemon's scan, or ``pymta -q``); ``flags`` such as ``-qf``."""
    named = f" '{queue}'" if queue else ""
    set_title(f"running queue{named}" + (f": {flags}" if flags else ""))


def local_smtp(user: str) -> None:
    """``pymta -bs``: SMTP with a local caller on standard input."""
    set_title(f"handling local SMTP from {user}")


def host_check(address: str) -> None:
    """``pymta -bh``: a fake SMTP session, testing a host's treatment."""
    set_title(f"testing SMTP from host {address} (-bh)")
