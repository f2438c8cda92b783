"""A preforked SMTP receiver: accept() on the inherited sockets, one session at a time.

All receivers poll the same non-blocking listening sockets; the one whose accept() wins
gets the connection, the others see EAGAIN and go back to waiting.  SIGTERM sets the stop
flag (the session in progress answers 421 at its next command); SIGUSR1 asks the receiver
to retire after its current session without disturbing it (pool shrink, reload).
"""
from __future__ import annotations

import functools
import inspect
import os
import select
import selectors
import signal
import socket
import threading
import time
import traceback
from typing import Any, Callable

from pymta import proctitle
from pymta.config.values import main_opt
from pymta.daemon.conntable import ConnectionTable
from pymta.daemon.ipc import Notifier
from pymta.daemon.keepalive import accept_keepalive, set_keepalive
from pymta.daemon.queue_select import message_filter, run_selected
from pymta.daemon.queuerunner import due_messages
from pymta.daemon.stopflag import StopFlag
from pymta.delivery.callout_hold import deliver_held
from pymta.delivery.cutthrough import open_cutthrough
from pymta.log import log_selected
from pymta.metrics import counters as metrics
from pymta.smtp.etrn import QueueRunner, set_queue_runner
from pymta.smtp.limits import counted_limits, daemon_refusal
from pymta.smtp.session import run_session as smtp_run_session

PARENT_CHECK_SECONDS = 2.0


class AcceptWait:
    """Waits until a listening socket has a connection or the wake-up pipe a byte.

    On Linux the listeners are registered with EPOLLEXCLUSIVE, so a new connection wakes
    one idle receiver rather than every one of them (the others would only find
    accept() failing, at a few hundred microseconds of CPU for each per connection).  A
    receiver that is woken and does not accept (it is retiring) leaves the connection to
    the others' next timed wake-up, at most PARENT_CHECK_SECONDS later."""

    def __init__(self, listeners: list[socket.socket], wake_fd: int) -> None:
        self.by_fd: dict[int, socket.socket | None] = {s.fileno(): s for s in listeners}
        self.by_fd[wake_fd] = None
        self.epoll = select.epoll() if hasattr(select, "epoll") else None
        self.selector: selectors.BaseSelector | None = None
        if self.epoll is not None:
            exclusive = getattr(select, "EPOLLEXCLUSIVE", 0)
            for s in listeners:
                self.epoll.register(s.fileno(), select.EPOLLIN | exclusive)
            self.epoll.register(wake_fd, select.EPOLLIN)
        else:
            self.selector = selectors.DefaultSelector()
            for fd in self.by_fd:
                self.selector.register(fd, selectors.EVENT_READ)

    def wait(self, timeout: float) -> list[socket.socket | None]:
        """The ready listeners (None for the wake-up pipe); [] on timeout."""
        if self.epoll is not None:
            ready = [fd for fd, _ in self.epoll.poll(timeout)]
        else:
            assert self.selector is not None
            ready = [int(key.fd) for key, _ in self.selector.select(timeout)]
        return [self.by_fd.get(fd) for fd in ready]

    def close(self) -> None:
        if self.epoll is not None:
            self.epoll.close()
        if self.selector is not None:
            self.selector.close()


def _session_caller(run_session: Callable[..., Any]) -> Callable[..., Any]:
    """Bind run_session once, passing stop_event and accept_count only when it accepts
    them."""
    try:
        params = inspect.signature(run_session).parameters
        anything = any(p.kind is p.VAR_KEYWORD for p in params.values())
        takes_stop = "stop_event" in params or anything
        takes_count = "accept_count" in params or anything
    except (TypeError, ValueError):
        takes_stop = takes_count = False

    def call(conn, config, listener, log, notify, stop, accept_count=0):
        kw: dict[str, Any] = {}
        if takes_stop:
            kw["stop_event"] = stop
        if takes_count:
            kw["accept_count"] = accept_count
        return run_session(conn, config, listener, log, notify, **kw)
    return call


#: The daemon's own session function, bound once when the master imports this module
#: (inspect.signature touches much code and allocates: not again in every receiver).
_SMTP_SESSION = _session_caller(functools.partial(smtp_run_session,
                                                  cutthrough_opener=open_cutthrough,
                                                  hold_deliverer=deliver_held))


def etrn_queue_run(config: Any, log: Any, selection: str, queue: str = "") -> None:
    """The queue run of ``ETRN #selection`` outside the daemon (-bs): ``-R selection``
    over ``queue``, delivered in the ETRN process."""
    run_selected(config, log, ("", selection), None, queue=queue)


def etrn_handoff(notifier: Notifier) -> QueueRunner:
    """The daemon's queue run for ``ETRN #selection``: the messages ``-R selection``
    selects go to the master, whose delivery workers deliver them (they keep the
    privileges local deliveries need; ids already waiting or being delivered are not
    queued twice).  The first is forced, as in a -R run."""
    def run(config: Any, log: Any, selection: str, queue: str = "") -> None:
        selected = message_filter(config, ("", selection), None)
        first = True
        for msgid in due_messages(config, log=log, queue=queue, select=selected):
            kind, first = ("F" if first else "Q"), False
            item = f"{queue}/{msgid}" if queue else msgid     # as the workers take it
            for _ in range(50):        # a busy master slows us down; ids are not lost
                if notifier.send(kind, item):
                    break
                time.sleep(0.02)
    return run


def receiver_main(listeners: list[socket.socket], config: Any, log: Any,
                  notifier: Notifier, run_session: Callable[..., Any] | None = None,
                  connections: tuple[ConnectionTable, int | list[int]] | None = None) -> int:
    """The receiver process body; returns the exit status.  ``connections`` is the
    daemon's table of connections and this receiver's slots in it: one per session it
    serves at a time.  With several slots (smtp_receiver_threads) each has a thread of
    its own that accepts and serves connections; signals reach the main thread, which
    only waits for them."""
    call = _session_caller(run_session) if run_session is not None else _SMTP_SESSION
    set_queue_runner(etrn_handoff(notifier))
    stop = StopFlag()
    retire = StopFlag()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)

    def wake_all() -> None:
        # The byte the signal wrote to the pipe may have been seen before these flags
        # were set; this one is seen after, and nobody drains it once retiring (every
        # session thread's wait must see it).
        try:
            os.write(wake_w, b"\0")
        except OSError:
            pass

    def on_term(signum, frame):
        stop.set()
        retire.set()
        wake_all()

    def on_usr1(signum, frame):
        retire.set()
        wake_all()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    table: ConnectionTable | None = None
    slots: list[int | None] = [None]
    if connections is not None:
        table, given = connections
        slots = list(given) if isinstance(given, list) else [given]
    parent = os.getppid()
    if parent == 1:
        return 0
    loop = _AcceptLoop(listeners, config, log, notifier, call, stop, retire, wake_r,
                       parent, table)
    proctitle.receiver_idle()
    if len(slots) == 1:
        loop.run(slots[0])
    else:
        threads = [threading.Thread(target=loop.run, args=(slot,), daemon=True,
                                    name=f"session-{slot}") for slot in slots]
        for t in threads:
            t.start()
        while alive := [t for t in threads if t.is_alive()]:
            if len(alive) < len(threads) and not retire.is_set():
                # a session thread died of an error: retire, and the master replaces
                # this receiver with a whole one
                log.panic("SMTP receiver: a session thread ended unexpectedly; retiring")
                retire.set()
                wake_all()
            alive[0].join(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                retire.set()
                wake_all()
    for sock in listeners:
        sock.close()
    return 0


class _AcceptLoop:
    """Accept connections and serve them, one at a time, until told to retire; a
    receiver runs one of these per session slot (in a thread of its own when it has
    several)."""

    def __init__(self, listeners: list[socket.socket], config: Any, log: Any,
                 notifier: Notifier, call: Callable[..., Any], stop: StopFlag,
                 retire: StopFlag, wake_r: int, parent: int,
                 table: ConnectionTable | None) -> None:
        self.listeners, self.config, self.log = listeners, config, log
        self.notifier, self.call, self.stop, self.retire = notifier, call, stop, retire
        self.wake_r, self.parent, self.table = wake_r, parent, table
        self.names = {s: _listener_name(s) for s in listeners}
        # tcp_nodelay (default true): replies go out at once.  Without it a reply
        # written in two pieces (a TLS handshake's last records, a multi-line EHLO)
        # waits for the client's delayed ACK, up to 40 ms per exchange on Linux.
        self.nodelay = bool(main_opt(config, "tcp_nodelay"))
        self.keepalive = accept_keepalive(config)
        # counting connections costs a scan of the table: only when a limit or the
        # "SMTP connection from" line (log_selector +smtp_connection) needs it
        self.counting = table is not None and (counted_limits(config)
                                               or log_selected(config, "smtp_connection"))

    def run(self, slot: int | None) -> None:
        waiter = AcceptWait(self.listeners, self.wake_r)
        try:
            while not self.retire.is_set():
                try:
                    ready = waiter.wait(PARENT_CHECK_SECONDS)
                except InterruptedError:
                    continue
                if not ready and os.getppid() != self.parent:
                    break      # the master is gone: stop listening on its sockets
                for listener in ready:
                    if listener is None:                  # the wake-up pipe
                        if self.retire.is_set():
                            break
                        try:
                            os.read(self.wake_r, 512)
                        except OSError:
                            pass
                        continue
                    if self.retire.is_set():
                        break
                    try:
                        conn, peer_addr = listener.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        continue   # another receiver won the race
                    except OSError as exc:
                        self.log.panic(f"accept() failed: {exc}")
                        continue
                    self.serve(conn, peer_addr, listener, slot)
                    break   # re-poll: readiness of other sockets may be stale
        finally:
            waiter.close()

    def serve(self, conn: socket.socket, peer_addr: Any, listener: socket.socket,
              slot: int | None) -> None:
        """One accepted connection, from the limits to the end of its session."""
        table, notifier = self.table, self.notifier
        proctitle.handling_connection(f"[{_peer(peer_addr)[0]}]")
        try:
            conn.setblocking(True)
            if self.nodelay and conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            set_keepalive(conn, self.keepalive)
            accept_count, refusal = 0, None
            if table is None or slot is None:
                notifier.busy()
            else:
                address, port = _peer(peer_addr)
                table.claim(slot, os.getpid(), address)
                if table.tell_busy():        # the pool runs short: the master forks
                    notifier.busy()
                if self.counting:
                    accept_count, from_host = table.counts(address)
                    refusal = daemon_refusal(self.config, self.log, address, port,
                                             from_host)
            if refusal is not None:
                _send_quietly(conn, refusal)
                metrics.connection("refused")
            else:
                self.call(conn, self.config, self.names[listener], self.log, notifier,
                          self.stop, accept_count)
        except Exception:
            # A session crash must never take the receiver (or 250) with it.
            self.log.panic("SMTP session crashed: "
                           + traceback.format_exc().replace("\n", "\n  "))
        finally:
            try:
                conn.close()
            except OSError:
                pass
            if table is None or slot is None:
                notifier.idle()
            else:
                table.release(slot)
                if table.tell_idle():
                    notifier.idle()
            proctitle.receiver_idle()


def _listener_name(sock: socket.socket) -> tuple[str, int]:
    addr = sock.getsockname()
    return addr[0], addr[1]


def _peer(addr: Any) -> tuple[str, int]:
    """(address, port) of an accepted connection ("", 0 for a Unix socket)."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return str(addr[0]), int(addr[1])
    return "", 0


def _send_quietly(conn: socket.socket, data: bytes) -> None:
    try:
        conn.sendall(data)
    except OSError:
        pass
