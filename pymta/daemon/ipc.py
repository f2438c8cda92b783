"""Messages between the daemon's processes.

Receivers and the queue runner send short datagrams to the master over a Unix datagram
socketpair created before forking:  ``M <id>`` a message was accepted, ``Q <id>`` a queue
run found a due message (``F <id>`` for -qf: retry times ignored; ``Z <id>`` for -qff:
frozen too), ``B <pid>``/``I <pid>`` a receiver became busy/idle.  Datagrams
may be lost (full buffer): that only delays a delivery until the next queue run, because
the spool is the source of truth.

The master talks to each delivery worker over a stream socketpair, one line per message:
master -> worker ``<id>\\n`` (``<id> forced`` for -qf, ``<id> forced thaw`` for -qff);
worker -> master ``D <id>\\n`` when done.
"""
from __future__ import annotations

import os
import socket
import time


def notify_pair() -> tuple[socket.socket, socket.socket]:
    """(master end, children end) of the notification channel."""
    master, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    master.setblocking(False)
    child.setblocking(False)
    return master, child


class Notifier:
    """The children's side: fire-and-forget datagrams to the master."""

    __slots__ = ("sock", "pid")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.pid = os.getpid()

    def send(self, kind: str, value: str) -> bool:
        try:
            self.sock.send(f"{kind} {value}".encode("ascii", "replace"))
            return True
        except OSError:
            # Full buffer or master gone: the next queue run finds the message anyway.
            return False

    #: how long a receiver waits, in steps, for room to announce a new message
    MESSAGE_RETRY = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)

    def message(self, msgid: str) -> None:
        """Tell the master a message was accepted (the SMTP session's notify callback).

        Unlike the other notifications this one waits a little for room when the
        master is behind (under a burst the buffer fills): a dropped one would leave
        the message to the next queue run, and a daemon may have none."""
        data = f"M {msgid}".encode("ascii", "replace")
        for pause in (0.0, *self.MESSAGE_RETRY):
            if pause:
                time.sleep(pause)
            try:
                self.sock.send(data)
                return
            except (BlockingIOError, InterruptedError):
                continue            # full: the master is draining it
            except OSError:
                return              # the master is gone

    __call__ = message

    def busy(self) -> None:
        self.send("B", str(os.getpid()))

    def idle(self) -> None:
        self.send("I", str(os.getpid()))


def read_notifications(sock: socket.socket, limit: int = 1000) -> list[tuple[str, str]]:
    """Drain up to ``limit`` pending datagrams as (kind, value) pairs."""
    out: list[tuple[str, str]] = []
    for _ in range(limit):
        try:
            data = sock.recv(512)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            break
        kind, _, value = data.decode("ascii", "replace").partition(" ")
        if kind and value:
            out.append((kind, value.strip()))
    return out


def worker_pair() -> tuple[socket.socket, socket.socket]:
    """(master end, worker end) of a worker's command channel."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
