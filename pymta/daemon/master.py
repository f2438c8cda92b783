"""The daemon master: binds sockets, supervises receivers, workers and queue runs.

The master does as little as possible itself, so that nothing a child does can kill it:
it forks children, reads their notifications, hands message ids to idle delivery workers,
reaps and replaces crashed children (logging to the paniclog), starts a queue-run child
every ``-q`` interval, reloads the configuration on SIGHUP (new children get the new
configuration, old ones retire after their current job) and stops cleanly on SIGTERM.
"""
from __future__ import annotations

import collections
import ctypes
import gc
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, cast

import pymta
from pymta import proctitle
from pymta.config.values import default_pid_file_path
from pymta.daemon import ipc, listen
from pymta.daemon.conntable import TELL_ALWAYS, TELL_IDLE, ConnectionTable
from pymta.daemon.preload import preload_for
from pymta.daemon.sdnotify import sd_notify
from pymta.daemon.startup_bind import bind_with_retries
from pymta.daemon.util import (
    PrivilegeError,
    drop_privileges,
    exim_effective,
    fork_detached,
    main_opt,
    make_logger,
    prepare_spool,
    privileged,
    root_exim_ids,
    spool_directory,
)
from pymta.daemon.warmup import compile_expansions, warm_up
from pymta.debuglog import debug
from pymta.hints.store import is_shared, open_hints
from pymta.log import log_selected
from pymta.logevents import DaemonStarted
from pymta.metrics import counters as metrics_counters
from pymta.metrics.endpoint import (
    MetricsAddressError,
    MetricsEndpoint,
    metrics_socket,
    open_endpoint,
    reload_metrics,
)
from pymta.spool.tidy import tidy_spool
from pymta.tls.errors import TLSConfigError
from pymta.tls.serverconf import check_server_tls, force_tls_on_connect, server_tls
from pymta.tls.tickets import SharedTicketKeys, TicketKeyRotation

MIN_SPARE_RECEIVERS = 5
MAX_SPARE_RECEIVERS = 10
RETIRE_INTERVAL = 1.0           # seconds between retirements of surplus idle receivers
UNLIMITED_RECEIVERS = 256       # smtp_accept_max = 0 means "no limit"; keep a sane cap
STOP_GRACE_SECONDS = 30
CRASH_PAUSE_SECONDS = 0.5       # after a child crash, respawn no sooner than this
_WORKER_FLAGS = {"M": " reception", "Q": "", "F": " forced", "Z": " forced thaw"}
_MASTER_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1}


#: Modules the receivers, workers and queue runs use; imported by the master before forking.
PRELOAD_MODULES = (
    "pymta.smtp.session", "pymta.smtp.server", "pymta.smtp.client", "pymta.acl",
    "pymta.expand", "pymta.expand.compiled", "pymta.match", "pymta.lookups",
    "pymta.message.receive",
    "pymta.spool.queue", "pymta.spool.lock", "pymta.hints.db", "pymta.hints.retry",
    "pymta.delivery.deliver", "pymta.delivery.bounce", "pymta.delivery.retry",
    "pymta.routing", "pymta.transports", "json", "email.message", "email.utils",
)


@dataclass
class DaemonOptions:
    """What the command line asked of the daemon."""

    listen: bool = True                 # -bd/-bdf (False: -q<time> alone, queue runs only)
    foreground: bool = False            # -bdf
    queue_interval: int | None = None   # -q30m -> 1800
    queue_flags: str = ""               # "", "f" or "ff"
    queue_name: str = ""                # -qG<name>/<time>: runs of a named queue
    oX: str | None = None
    pid_file: str | None = None         # -oP
    config_path: str | None = None
    macros: dict[str, str] = field(default_factory=dict)
    workers: int | None = None          # default: queue_run_max
    queue_only: bool = False            # -odq / queue_only: new messages wait for a queue run
    tls_on_connect: bool = False        # -tls-on-connect
    inetd_wait: bool = False            # -bw: the listening socket is standard input
    inetd_wait_timeout: int = 0         # -bw<time>: exit after this long without a connection
    debug_children: bool = True         # False for -dd: only the master writes -d output


@dataclass
class Child:
    pid: int
    kind: str                            # receiver | worker | queuerunner
    conn: socket.socket | None = None    # worker command channel (master end)
    busy: str | None = None              # worker: message id being delivered
    retiring: bool = False
    buf: bytes = b""
    generation: int = 0
    #: receiver: its entries in the ConnectionTable, one per session it serves at a time
    slots: list[int] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        """Sessions this receiver serves at a time."""
        return max(1, len(self.slots))


def daemon_addresses(config: Any, oX: str | None) -> list[tuple[str, int]]:
    """The (address, port) pairs this daemon listens on, after -oX."""
    interfaces = main_opt(config, "local_interfaces")
    ports = main_opt(config, "daemon_smtp_ports")
    if oX:
        interfaces, ports = listen.apply_oX(oX, interfaces, ports)
    return listen.listen_addresses(interfaces, ports)


def pid_file_path(config: Any, opts: DaemonOptions) -> str | None:
    """-oP wins; with -oX, or queue-runs only, no pid file unless -oP (as Exim)."""
    if opts.pid_file:
        return opts.pid_file
    if opts.oX or not opts.listen or opts.inetd_wait:
        return None                 # -bw: one daemon per inetd socket, none of them "the" one
    path = main_opt(config, "pid_file_path") or ""
    if path:
        return str(path)
    return default_pid_file_path(spool_directory(config))


def start_line(pid: int, opts: DaemonOptions, addrs: list[tuple[str, int]]) -> str:
    """Exim's "daemon started" log line, with pymta's name and version."""
    return DaemonStarted(pymta.__version__, pid, opts.queue_flags, opts.queue_interval or 0,
                         tuple(listen.format_listener(a, p) for a, p in addrs),
                         inetd_wait=opts.inetd_wait,
                         inetd_wait_timeout=opts.inetd_wait_timeout).text()


def inherited_listener() -> socket.socket:
    """-bw: the listening socket inetd passed as standard input (fd 0), which then
    becomes /dev/null.  ValueError when fd 0 is not a listening TCP socket."""
    try:
        sock = socket.socket(fileno=os.dup(0))
    except OSError:
        raise ValueError("-bw: standard input is not a socket") from None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if sock.type != socket.SOCK_STREAM or not listening or \
            sock.family not in (socket.AF_INET, socket.AF_INET6):
        sock.close()
        raise ValueError("-bw: standard input is not a listening TCP socket")
    sock.setblocking(False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return sock


def detach() -> None:
    """Become a daemon: double fork, new session, standard files on /dev/null."""
    if not fork_detached():
        os._exit(0)


def _libc() -> Any:
    """The C library's handle, opened once in the master (a child opening it would
    allocate, and so copy pages, in every process)."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the master dies (a SIGKILLed master must not leave
    receivers listening); receivers also poll getppid() as a portable backstop."""
    try:
        _LIBC.prctl(1, signal.SIGTERM, 0, 0, 0)     # PR_SET_PDEATHSIG
    except Exception:
        pass


class Master:
    """The supervising process.  ``run()`` returns the exit status."""

    def __init__(self, config: Any, log: Any, listeners: list[socket.socket],
                 opts: DaemonOptions, *, pid_file: str | None = None,
                 load_config: Callable[..., Any] | None = None,
                 run_session: Callable[..., Any] | None = None,
                 deliver: Callable[..., Any] | None = None,
                 log_factory: Callable[[Any], Any] | None = None,
                 metrics: MetricsEndpoint | None = None,
                 held_signals: set[int] | None = None):
        self.config = config
        self.metrics = metrics              # metrics_listen: pymta/metrics/
        self.log = log
        self.listeners = listeners
        self.opts = opts
        self.pid_file = pid_file
        self.load_config = load_config
        self.run_session = run_session
        self.deliver = deliver
        self.log_factory = log_factory      # rebuilds the logger on reload (log_file_path)
        self.children: dict[int, Child] = {}
        self.generation = 0
        # (message id, worker flags): "" or " forced" (-qf) or " forced thaw" (-qff)
        self.pending: collections.deque[tuple[str, str]] = collections.deque()
        self.pending_set: set[str] = set()
        # what every receiver is serving, for the per-host and reserve limits, and which
        # receivers are busy (see conntable: they tell the master only when it matters)
        self.connections = ConnectionTable(max(UNLIMITED_RECEIVERS, self.max_sessions()))
        self.signals: set[int] = set()
        # signals that arrived while the daemon was starting (see hold_signals)
        self.held_signals = held_signals if held_signals is not None else set()
        self.stopping = False
        self.next_queue_run = time.monotonic() if opts.queue_interval else None
        self.notify_master, self.notify_child = ipc.notify_pair()
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        self._last_crash = 0.0
        self._last_retire = 0.0
        self._saturated = False
        self._tickets = self._ticket_rotation()
        self.last_connection = time.monotonic()     # -bw<time>: idle since

    # ---- TLS session tickets --------------------------------------------------------------

    def _ticket_rotation(self) -> TicketKeyRotation | None:
        """Hourly new session-ticket keys for the receivers (tls_resumption_hosts)."""
        if not main_opt(self.config, "tls_resumption_hosts"):
            return None
        try:
            tls = server_tls(self.config)
        except TLSConfigError:
            return None                 # logged at start: no STARTTLS at all
        shared = None
        if is_shared("tls"):            # a fleet's nodes resume each other's sessions
            shared = SharedTicketKeys(open_hints(spool_directory(self.config), "tls",
                                                 self.log))
        return TicketKeyRotation(tls, time.monotonic(), shared=shared,
                                 on_error=lambda e: self.log.panic(f"TLS: {e}"))

    def _rotate_ticket_keys(self) -> None:
        """Receivers forked from now on get the new keys; idle ones are replaced."""
        if self._tickets is None or not self._tickets.rotate_if_due(time.monotonic()):
            return
        busy = self.busy_receivers
        for c in list(self.children.values()):
            if c.kind == "receiver" and not busy.get(c.pid) and not c.retiring:
                self._retire(c, signal.SIGUSR1)

    # ---- limits -------------------------------------------------------------------------

    @property
    def busy_receivers(self) -> dict[int, int]:
        """The receivers serving connections now, with how many each (from the
        connection table)."""
        return self.connections.busy_counts()

    def _publish_pool(self) -> None:
        """Tell the receivers what the master wants to hear of (see conntable)."""
        tell = TELL_ALWAYS if self.opts.inetd_wait else TELL_IDLE if self._saturated else 0
        slots = sum(c.capacity for c in self._of_kind("receiver"))
        self.connections.publish(slots, MIN_SPARE_RECEIVERS, tell)

    def max_sessions(self) -> int:
        """SMTP sessions served at once at most: smtp_accept_max, or a sane cap."""
        n = int(main_opt(self.config, "smtp_accept_max") or 0)
        return n if n > 0 else UNLIMITED_RECEIVERS

    def receiver_threads(self) -> int:
        """Sessions one receiver serves at once (smtp_receiver_threads)."""
        return max(1, int(main_opt(self.config, "smtp_receiver_threads") or 1))

    def _idle_slots(self, receivers: list[Child], busy: dict[int, int]) -> int:
        return sum(max(0, c.capacity - busy.get(c.pid, 0)) for c in receivers)

    def worker_count(self) -> int:
        if self.opts.workers:
            return self.opts.workers
        n = int(main_opt(self.config, "queue_run_max") or 0)
        return max(1, n)

    def _of_kind(self, kind: str, *, live_only: bool = True) -> list[Child]:
        return [c for c in self.children.values()
                if c.kind == kind and not (live_only and c.retiring)]

    # ---- forking ------------------------------------------------------------------------

    def _fork(self, kind: str, body: Callable[[], int], conn: socket.socket | None = None,
              child_end: socket.socket | None = None) -> Child | None:
        # Block our signals across fork: a SIGTERM reaching the child before it has
        # installed its own handlers would otherwise hit the master's handler and be lost.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _MASTER_SIGNALS)
        master_pid = os.getpid()
        gc.freeze()
        try:
            pid = os.fork()
        except OSError as exc:
            gc.unfreeze()
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            self.log.panic(f"daemon: fork of {kind} failed: {exc}")
            return None
        if pid == 0:
            status = 1
            try:
                self._in_child(keep=child_end)
                if kind != "worker":
                    # Receivers and queue scans never need root again; workers keep a
                    # saved root uid to switch to local users for local deliveries.
                    drop_privileges(self.config)
                _die_with_parent()     # again: Linux forgets it when the ids change
                if os.getppid() != master_pid:
                    os._exit(0)        # the master died before we could ask to follow it
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
                status = body()
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                try:
                    self.log.panic(f"{kind} process crashed: "
                                   + traceback.format_exc().replace("\n", "\n  "))
                except Exception:
                    pass
            finally:
                os._exit(status)
        gc.unfreeze()          # the master's own cycles stay collectable
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        if child_end is not None:
            child_end.close()
        child = Child(pid, kind, conn=conn, generation=self.generation)
        self.children[pid] = child
        if conn is not None:
            conn.setblocking(False)
            self.sel.register(conn, selectors.EVENT_READ, pid)
        return child

    def _in_child(self, keep: socket.socket | None) -> None:
        """Undo master-only state in a freshly forked child."""
        _die_with_parent()
        if not self.opts.debug_children:
            debug.stop()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGCHLD,
                    signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
        try:
            self.sel.close()
        except Exception:
            pass
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)
        self.notify_master.close()
        if self.metrics is not None:
            self.metrics.in_child(getattr(self.config, "transports", {}))
        for c in self.children.values():
            if c.conn is not None and c.conn is not keep:
                c.conn.close()

    def spawn_receiver(self, sessions: int = 1) -> bool:
        """Fork a receiver serving up to ``sessions`` connections at once (one thread
        each when more than one); False if it could not be."""
        from pymta.daemon.receiver import receiver_main
        notifier = ipc.Notifier(self.notify_child)
        config, log, listeners, rs = self.config, self.log, self.listeners, self.run_session
        slots = self.connections.free_slots(
            {s for c in self.children.values() for s in c.slots}, sessions)
        if not slots:
            # smtp_accept_max was raised by a reload beyond the table made at start
            self.log.panic("daemon: no room for another receiver in the connection table "
                           f"({self.connections.slots} slots); restart the daemon")
            return False
        table = self.connections
        for slot in slots:
            table.release(slot)          # whatever a dead predecessor left there

        def body() -> int:
            notifier.pid = os.getpid()
            return receiver_main(listeners, config, log, notifier, rs,
                                 connections=(table, slots))
        child = self._fork("receiver", body)
        if child is None:
            return False
        child.slots = slots
        return True

    def spawn_worker(self) -> None:
        from pymta.daemon.worker import worker_main
        master_end, worker_end = ipc.worker_pair()
        config, log, deliver = self.config, self.log, self.deliver

        def body() -> int:
            for s in self.listeners:
                s.close()
            return worker_main(worker_end, config, log, deliver)
        if self._fork("worker", body, conn=master_end, child_end=worker_end) is None:
            master_end.close()

    def spawn_queue_run(self) -> None:
        from pymta.daemon.queuerunner import queue_scan_main
        notifier = ipc.Notifier(self.notify_child)
        config, log, flags = self.config, self.log, self.opts.queue_flags
        queue = self.opts.queue_name

        def body() -> int:
            for s in self.listeners:
                s.close()
            return queue_scan_main(config, log, notifier, force=flags == "f",
                                   force_frozen=flags == "ff", queue=queue)
        self._fork("queuerunner", body)

    # ---- the loop -----------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.add(signum)

    def run(self) -> int:
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        self.signals |= self.held_signals
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        # Type=notify: listening, and only now, with the handlers in place, may systemctl
        # stop or reload us (SIGTERM or SIGHUP before would kill the master outright);
        # as root, who may write to the socket, not exim_user
        with privileged():
            sd_notify(f"READY=1\nMAINPID={os.getpid()}")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.sel.register(self.notify_master, selectors.EVENT_READ, "notify")
        if self.metrics is not None:
            self.metrics.start(self.sel, self._process_counts, lambda: set(self.children))
        while True:
            try:
                self._step()
            except Exception:
                # The master must survive anything, even a failing logger; carry on.
                text = "daemon master error: " + traceback.format_exc().replace("\n", "\n  ")
                try:
                    self.log.panic(text)
                except Exception:
                    try:
                        sys.stderr.write(text + "\n")
                    except Exception:
                        pass
                time.sleep(0.5)
            if self.stopping and not self.children:
                break
        self._cleanup()
        return 0

    def _step(self) -> None:
        if not self.stopping:
            self._maintain_pools()
        # While saturated the master answers connections itself: look at the table
        # often, so an idle receiver gets the next one (its notice may have crossed
        # the flag that asks for it).
        timeout = 0.05 if self._saturated else 1.0
        if self.next_queue_run is not None and not self.stopping:
            timeout = max(0.0, min(timeout, self.next_queue_run - time.monotonic()))
        for key, _ in self.sel.select(timeout):
            if key.data == "wake":
                try:
                    os.read(self.wake_r, 4096)
                except OSError:
                    pass
            elif key.data == "notify":
                self._handle_notifications()
            elif key.data == "listener":
                self._refuse_connection(cast(socket.socket, key.fileobj))
            elif isinstance(key.data, MetricsEndpoint):
                key.data.ready(key.fileobj)
            else:
                self._handle_worker(key.data)
        self._reap()
        if self.metrics is not None:
            self.metrics.tick()
        if not self.stopping:
            self._rotate_ticket_keys()
        self._update_saturation()
        sigs, self.signals = self.signals, set()
        if signal.SIGTERM in sigs or signal.SIGINT in sigs:
            self._begin_stop(signal.SIGTERM if signal.SIGTERM in sigs else signal.SIGINT)
        elif self._inetd_wait_over():
            self._begin_stop(None)
        elif signal.SIGHUP in sigs and not self.stopping:
            self._reload()
        if self.stopping:
            self._stop_progress()
            return
        self._dispatch()
        interval = self.opts.queue_interval
        if self.next_queue_run is not None and interval is not None \
                and time.monotonic() >= self.next_queue_run:
            self.next_queue_run = time.monotonic() + interval
            if not self._of_kind("queuerunner", live_only=False):
                self.spawn_queue_run()

    def _update_saturation(self) -> None:
        """At smtp_accept_max with every receiver busy, the master answers new
        connections itself with Exim's 421 instead of leaving them in the backlog."""
        receivers = self._of_kind("receiver")
        full = (bool(self.listeners) and not self.stopping
                and sum(c.capacity for c in receivers) >= self.max_sessions()
                and self._idle_slots(receivers, self.busy_receivers) == 0)
        changed, self._saturated = full != self._saturated, full
        self._publish_pool()
        if not changed:
            return
        for s in self.listeners:
            try:
                if full:
                    self.sel.register(s, selectors.EVENT_READ, "listener")
                else:
                    self.sel.unregister(s)
            except (KeyError, ValueError, OSError):
                pass

    def listeners_saturation_off(self) -> None:
        """Take the listening sockets out of the master's selector."""
        for s in self.listeners:
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError, OSError):
                pass
        self._saturated = False

    def _refuse_connection(self, sock: socket.socket) -> None:
        try:
            conn, peer = sock.accept()
        except OSError:
            return
        try:
            host = main_opt(self.config, "primary_hostname") or socket.gethostname()
            conn.setblocking(False)
            conn.send(f"421 {host} Too many concurrent SMTP connections; "
                      "please try again later\r\n".encode())
        except OSError:
            pass
        finally:
            conn.close()
        if log_selected(self.config, "connection_reject"):
            self.log.main(f"Connection from [{peer[0]}] refused: too many connections")
        metrics_counters.connection("refused")

    def _maintain_pools(self) -> None:
        if not self._crash_pause_over():
            return
        workers = self._of_kind("worker")
        for _ in range(self.worker_count() - len(workers)):
            self.spawn_worker()
        if not self.listeners:
            return
        # Counted in session slots: a receiver with smtp_receiver_threads has several.
        receivers = self._of_kind("receiver")
        busy = self.busy_receivers
        idle = self._idle_slots(receivers, busy)
        room = self.max_sessions() - sum(c.capacity for c in receivers)
        want = min(MIN_SPARE_RECEIVERS - idle, room)
        if want > 0:
            threads = self.receiver_threads()
            while want > 0 and room > 0:
                n = min(threads, room)
                if not self.spawn_receiver(n):
                    break
                want, room = want - n, room - n
            self._publish_pool()
        elif idle > MAX_SPARE_RECEIVERS:
            # One at a time, at most once a second (as Apache's prefork does): under
            # bursty load the idle count swings, and retiring the surplus at once only
            # to fork it again a moment later costs more than the load itself.
            quiet = [c for c in receivers if not busy.get(c.pid)
                     and idle - c.capacity >= MIN_SPARE_RECEIVERS]
            now = time.monotonic()
            if quiet and now - self._last_retire >= RETIRE_INTERVAL:
                self._last_retire = now
                self._retire(quiet[-1], signal.SIGUSR1)

    def _crash_pause_over(self) -> bool:
        # After a crash, wait a moment before respawning so a crash loop cannot spin.
        return time.monotonic() - self._last_crash > CRASH_PAUSE_SECONDS

    def _retire(self, child: Child, sig: int) -> None:
        child.retiring = True
        try:
            os.kill(child.pid, sig)
        except ProcessLookupError:
            pass

    def _handle_notifications(self) -> None:
        for kind, value in ipc.read_notifications(self.notify_master):
            if kind in ("M", "Q", "F", "Z"):
                if kind == "M" and self.opts.queue_only:
                    continue
                if value not in self.pending_set and not self._in_flight(value):
                    self.pending.append((value, _WORKER_FLAGS[kind]))
                    self.pending_set.add(value)
            elif kind in ("B", "I"):       # the table says who; this says "look now"
                self.last_connection = time.monotonic()

    def _in_flight(self, msgid: str) -> bool:
        return any(c.busy == msgid for c in self.children.values() if c.kind == "worker")

    def _handle_worker(self, pid: int) -> None:
        child = self.children.get(pid)
        if child is None or child.conn is None:
            return
        try:
            data = child.conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_conn(child)
            return
        child.buf += data
        while b"\n" in child.buf:
            line, child.buf = child.buf.split(b"\n", 1)
            if line.startswith(b"D "):
                child.busy = None

    def _close_conn(self, child: Child) -> None:
        if child.conn is not None:
            try:
                self.sel.unregister(child.conn)
            except (KeyError, ValueError):
                pass
            child.conn.close()
            child.conn = None

    def _dispatch(self) -> None:
        idle = [c for c in self._of_kind("worker") if c.busy is None and c.conn is not None]
        while idle and self.pending:
            msgid, flags = self.pending.popleft()
            self.pending_set.discard(msgid)
            if self._in_flight(msgid):
                continue
            worker = idle.pop()
            assert worker.conn is not None          # workers have their channel
            try:
                worker.conn.sendall(f"{msgid}{flags}\n".encode("ascii"))
                worker.busy = msgid
            except OSError:
                self._close_conn(worker)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            for slot in child.slots:
                self.connections.release(slot)
            if self.metrics is not None:
                self.metrics.process_ended(pid)
            self._close_conn(child)
            clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            expected = child.retiring or self.stopping or self._stop_signalled()
            if not clean and not expected:
                how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                       else f"exit status {os.WEXITSTATUS(status)}")
                self.log.panic(f"daemon: {child.kind} process {pid} ended unexpectedly ({how})")
                self._last_crash = time.monotonic()
            elif child.kind == "worker" and not expected:
                self.log.panic(f"daemon: worker process {pid} exited unexpectedly")

    def _stop_signalled(self) -> bool:
        """A SIGTERM or SIGINT has arrived but not been acted on yet: a signal sent to
        the whole process group (timeout(1), kill -TERM -pgid, Ctrl-C) also ends the
        children, which may be reaped before the master begins its stop."""
        return bool(self.signals & {signal.SIGTERM, signal.SIGINT})

    # ---- reload and stop -------------------------------------------------------------

    def _reload(self) -> None:
        pid = os.getpid()
        self.log.main(f"pid {pid}: SIGHUP received: reloading configuration")
        if self.load_config is None or not self.opts.config_path:
            return
        try:
            with privileged():     # the file (and TLS keys) may be readable by root only
                new = self.load_config(self.opts.config_path, self.opts.macros or None)
                tls_warning = check_server_tls(new, daemon=True)
                if tls_warning:
                    self.log.main(f"pid {pid}: {tls_warning}")
        except Exception as exc:
            self.log.panic(f"pid {pid}: SIGHUP: configuration not reloaded: {exc}")
            return
        if self.listeners and not self.opts.inetd_wait:    # -bw: inetd's socket stays
            try:
                want = daemon_addresses(new, self.opts.oX)
                have = {_sock_key(s): s for s in self.listeners}
                want_keys = [_addr_key(a, p) for a, p in want]
                if sorted(want_keys) != sorted(have):
                    # Keep sockets still wanted (rebinding them would clash with the
                    # old receivers' copies); bind only the new addresses.
                    self.listeners_saturation_off()
                    with privileged():     # ports below 1024
                        fresh = listen.bind_listeners(
                            [(a, p) for (a, p), k in zip(want, want_keys) if k not in have])
                    for k, sock in have.items():
                        if k not in want_keys:
                            sock.close()
                    self.listeners = [have[k] for k in want_keys if k in have] + fresh
            except (OSError, ValueError) as exc:
                self.log.panic(f"pid {pid}: SIGHUP: keeping old listening sockets: {exc}")
        reload_metrics(self.metrics, new, self.log)
        compile_expansions(new)        # shared by the children forked from now on
        self.config = new
        if self.log_factory is not None:
            self.log = self.log_factory(new)
        self.generation += 1
        for c in list(self.children.values()):
            if c.kind == "receiver":
                self._retire(c, signal.SIGUSR1)
            elif c.kind == "worker":
                self._retire(c, signal.SIGTERM)
        self._tickets = self._ticket_rotation()
        if self.next_queue_run is not None:
            self.next_queue_run = time.monotonic()

    def _process_counts(self) -> dict[str, int]:
        return dict(collections.Counter(c.kind for c in self.children.values()))

    def _inetd_wait_over(self) -> bool:
        """-bw<time>: no connection for that long (and none in progress)."""
        timeout = self.opts.inetd_wait_timeout if self.opts.inetd_wait else 0
        return (bool(timeout) and not self.stopping and not self.busy_receivers
                and time.monotonic() - self.last_connection >= timeout)

    def _begin_stop(self, sig: int | None) -> None:
        """Stop on a signal, or (``sig`` None) because the -bw wait timed out."""
        if self.stopping:
            return
        self.stopping = True
        self._stop_deadline = time.monotonic() + STOP_GRACE_SECONDS
        self._update_saturation()
        for s in self.listeners:
            s.close()
        self.listeners = []
        for c in list(self.children.values()):
            self._retire(c, signal.SIGTERM)
        # Logged after the children were told, so the line means "sessions will now
        # get 421" to anyone watching the log.
        if sig is None:
            self.log.main(f"pymta {pymta.__version__} daemon terminating, "
                          "inetd wait timeout reached.")
        else:
            name = "SIGTERM" if sig == signal.SIGTERM else "SIGINT"
            self.log.main(f"pid {os.getpid()}: {name} received: daemon terminating")

    def _stop_progress(self) -> None:
        if self.children and time.monotonic() > self._stop_deadline:
            for c in list(self.children.values()):
                try:
                    os.kill(c.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _cleanup(self) -> None:
        if self.pid_file:
            try:
                with privileged():     # it was written as root
                    os.unlink(self.pid_file)
            except OSError:
                pass


def _addr_key(addr: str, port: int) -> tuple[str, int]:
    import ipaddress
    try:
        return str(ipaddress.ip_address(addr.split("%", 1)[0])), port
    except ValueError:
        return addr, port


def _sock_key(sock: socket.socket) -> tuple[str, int]:
    name = sock.getsockname()
    return _addr_key(name[0], name[1])


def write_pid_file(path: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def start_daemon(config: Any, opts: DaemonOptions, *,
                 load_config: Callable[..., Any] | None = None) -> int:
    """Everything ``pymta -bd``/``-bdf``/``-q<time>`` does; returns the exit status.

    Started as root, the daemon needs exim_user: it gives the spool to that user, binds
    its ports and writes the pid file as root, then runs as exim_user (keeping a saved
    root uid for its delivery workers' local deliveries and for reloads).
    """
    try:
        ids = root_exim_ids(config)
        if ids is not None:
            prepare_spool(config, ids, repair=True)
    except (PrivilegeError, OSError) as exc:
        sys.stderr.write(f"pymta: {exc}\n")
        return 1
    try:
        # Before forking and while still root (keys are often root's): a bad certificate
        # stops the start, and every receiver inherits the contexts and their ticket keys.
        tls_warning = check_server_tls(config, daemon=True)
        if opts.tls_on_connect:
            force_tls_on_connect()             # inherited by every receiver
    except TLSConfigError as exc:
        sys.stderr.write(f"pymta: {exc}\n")
        return 1
    try:
        metrics_sock = metrics_socket(config)
    except MetricsAddressError as exc:
        sys.stderr.write(f"pymta: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"pymta: metrics_listen: {exc}: daemon abandoned\n")
        return 1
    listeners: list[socket.socket] = []
    addrs: list[tuple[str, int]] = []
    if opts.inetd_wait:
        try:
            listeners = [inherited_listener()]
        except ValueError as exc:
            sys.stderr.write(f"pymta: {exc}\n")
            return 1
    elif opts.listen:
        try:
            addrs = daemon_addresses(config, opts.oX)
            listeners = bind_with_retries(
                addrs, int(main_opt(config, "daemon_startup_retries") or 0),
                int(main_opt(config, "daemon_startup_sleep") or 0),
                lambda text: _log_as_exim_user(config, ids, text))
        except ValueError as exc:
            sys.stderr.write(f"pymta: {exc}\n")
            return 1
        except OSError as exc:
            # Exim: "socket bind() to port 25 for address ... failed: ...: daemon abandoned"
            text = f"{exc}: daemon abandoned"
            sys.stderr.write(f"pymta: {text}\n")
            try:
                drop_privileges(config, keep_root=True)   # the log belongs to exim_user
                make_logger(config).panic(text)
            except Exception:
                pass
            return 1
    held = hold_signals()
    if not opts.foreground:
        detach()
    pid_path = pid_file_path(config, opts)
    if pid_path:
        try:
            write_pid_file(pid_path)
        except OSError as exc:
            sys.stderr.write(f"pymta: failed to write pid file {pid_path}: {exc}\n")
    # Preload what children need before giving up root: exim_user may not be able to read
    # the Python installation, and no child should import per connection or delivery.
    for mod in PRELOAD_MODULES:
        __import__(mod)
    preload_for(ids)
    drop_privileges(config, keep_root=True)
    # Before metric counting starts and the process title is set: the receivers' code
    # paths taken once here are shared by every receiver instead of copied into each.
    warm_up(config)
    log = make_logger(config)
    log.main(start_line(os.getpid(), opts, addrs))
    proctitle.daemon(pymta.__version__, opts.queue_flags, opts.queue_interval, addrs)
    if tls_warning:
        log.main(tls_warning)
    tidy_spool(spool_directory(config), log)    # what processes killed earlier left behind
    metrics = None
    if metrics_sock is not None:
        try:
            metrics = open_endpoint(metrics_sock, spool_directory(config))
        except OSError as exc:
            # Mail goes on without metrics; the paniclog says why.
            log.panic(f"metrics_listen: cannot keep counts in the spool: {exc}: no metrics")
            metrics_sock.close()
    master = Master(config, log, listeners, opts, pid_file=pid_path, load_config=load_config,
                    log_factory=make_logger, metrics=metrics, held_signals=held)
    return master.run()


def hold_signals() -> set[int]:
    """From the pid file on, until the master's own handlers are in place: a SIGTERM,
    SIGINT or SIGHUP (an init script's stop or reload straight after the start) is kept
    for the master to act on, instead of killing the daemon half started and leaving
    its pid file."""
    held: set[int] = set()

    def keep(signum: int, frame: Any) -> None:
        held.add(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, keep)
    return held


def _log_as_exim_user(config: Any, ids: Any, text: str) -> None:
    """A main-log line written before privileges are dropped (the start-up bind
    retries); the log files it may create belong to exim_user."""
    try:
        with exim_effective(ids):
            make_logger(config).main(text)
    except Exception:
        sys.stderr.write(f"pymta: {text}\n")
