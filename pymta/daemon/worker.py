"""A long-lived delivery worker: message ids in from the master, one delivery at a time.

SIGTERM while idle ends the worker at once; while delivering, the current delivery is
finished first (the master waits for it).
"""
from __future__ import annotations

import signal
import socket
import traceback
from typing import Any, Callable

from pymta import proctitle
from pymta.delivery import deliver_message


class _Exit(Exception):
    pass


def worker_main(conn: socket.socket, config: Any, log: Any,
                deliver: Callable[..., Any] | None = None) -> int:
    """The worker process body; returns the exit status."""
    deliver = deliver if deliver is not None else deliver_message
    state = {"busy": False, "stop": False}

    def on_term(signum, frame):
        state["stop"] = True
        if not state["busy"]:
            raise _Exit()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    buf = b""
    proctitle.worker_idle()
    try:
        while not state["stop"]:
            while b"\n" not in buf:
                data = conn.recv(4096)
                if not data:
                    return 0          # master went away
                buf += data
            line, buf = buf.split(b"\n", 1)
            fields = line.decode("ascii", "replace").split()
            if not fields:
                continue
            item, forced, thaw = fields[0], "forced" in fields[1:], "thaw" in fields[1:]
            # "queue/id" for a message in a named queue
            queue, _, msgid = item.rpartition("/")
            state["busy"] = True
            proctitle.delivering(msgid)
            try:
                if thaw:
                    deliver(config, msgid, log, forced=True, manual=True, queue=queue)
                elif forced:
                    deliver(config, msgid, log, forced=True, queue=queue)
                elif "reception" in fields[1:]:     # just received: queue_domains applies
                    deliver(config, msgid, log, queue=queue, at_reception=True)
                else:
                    deliver(config, msgid, log, queue=queue)
            except Exception:
                # The message stays queued; the next queue run retries it.
                log.panic(f"{msgid} delivery crashed: "
                          + traceback.format_exc().replace("\n", "\n  "))
            finally:
                state["busy"] = False
                proctitle.worker_idle()
            conn.sendall(f"D {item}\n".encode("ascii"))
    except _Exit:
        pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    return 0
