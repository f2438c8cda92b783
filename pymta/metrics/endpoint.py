"""The master's metrics endpoint: ``GET /metrics`` on a loopback address.

The master serves it from its own select loop, without a thread (it forks, and a
thread would be copied into every child in whatever state it was in): the listening
socket and each scrape connection are in the master's selector, reads and writes are
non-blocking, and a connection that has not sent its request within a few seconds is
closed.  A scrape reads the processes' count files and the queue directory; nothing in
it waits for a child.
"""
from __future__ import annotations

import glob
import ipaddress
import os
import selectors
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import CollectorRegistry

from pymta.config.values import main_opt
from pymta.metrics import counters
from pymta.metrics.multiproc import Folder, enable, metrics_directory
from pymta.metrics.queue import DaemonCollector

REQUEST_LIMIT = 8192            # bytes of request head we read before giving up
REQUEST_SECONDS = 5.0           # a scrape connection's whole life


class _CountFiles(MultiProcessCollector):
    """prometheus_client's collector over the processes' count files, leaving out a
    file a child has only just created: it is empty until the child sizes it, and
    reading it would fail the whole scrape (seen in CI while children were forked)."""

    def collect(self) -> Any:
        files = [f for f in glob.glob(os.path.join(self._path, "*.db")) if _sized(f)]
        return self.merge(files, accumulate=True)


def _sized(path: str) -> bool:
    try:
        return os.path.getsize(path) >= 8     # the header that says how much is used
    except OSError:
        return False


class MetricsAddressError(ValueError):
    """metrics_listen is not a loopback address and port."""


def parse_metrics_listen(text: str) -> tuple[str, int] | None:
    """``127.0.0.1:9325`` or ``[::1]:9325`` -> (address, port); "" -> None (off)."""
    text = text.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise MetricsAddressError(f"metrics_listen: {text!r} is not address:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise MetricsAddressError(f"metrics_listen: {host!r} is not an IP address") from None
    if not ip.is_loopback:
        # The endpoint has no access control: it is for a local scraper (or an exporter
        # proxy) only.
        raise MetricsAddressError(f"metrics_listen: {host} is not a loopback address")
    return str(ip), int(port)


def bind_metrics(address: tuple[str, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(16)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def metrics_socket(config: Any) -> socket.socket | None:
    """The listening socket metrics_listen asks for, or None.  Raises
    MetricsAddressError for a bad value and OSError when it cannot be bound."""
    address = parse_metrics_listen(str(main_opt(config, "metrics_listen") or ""))
    return bind_metrics(address) if address is not None else None


def reload_metrics(endpoint: "MetricsEndpoint | None", config: Any, log: Any) -> None:
    """SIGHUP: follow a changed metrics_listen where that can be done in place."""
    try:
        address = parse_metrics_listen(str(main_opt(config, "metrics_listen") or ""))
    except MetricsAddressError as exc:
        log.panic(f"SIGHUP: {exc}: metrics endpoint unchanged")
        return
    if endpoint is not None:
        endpoint.rebind(address, log)
    elif address is not None:
        # Counting has to start before the children are forked.
        log.main("metrics_listen is set: the metrics endpoint starts at the next "
                 "daemon restart (a reload cannot start it)")


def open_endpoint(sock: socket.socket, spool_dir: str) -> "MetricsEndpoint":
    """In the master, before it forks: turn counting on (files under
    ``<spool>/metrics/<pid>``) and make the endpoint serving ``sock``."""
    directory = metrics_directory(spool_dir, os.getpid())
    enable(directory)
    return MetricsEndpoint(sock, directory, spool_dir)


@dataclass
class _Scrape:
    deadline: float
    inbuf: bytes = b""
    outbuf: bytes = b""


class MetricsEndpoint:
    """The HTTP endpoint and the folding of ended processes' counts.

    ``start(selector, processes)`` registers it in the master's loop; the master calls
    ``ready(fileobj)`` for its selector events, ``process_ended(pid)`` for every child
    it reaps, ``tick()`` once per loop turn and ``in_child(transports)`` after a fork."""

    def __init__(self, sock: socket.socket, directory: str, spool_dir: str):
        self.sock: socket.socket | None = sock
        self.directory = directory
        self.folder = Folder(directory)
        self.spool_dir = spool_dir
        self.sel: selectors.BaseSelector | None = None
        self.live_pids: Callable[[], set[int]] = lambda: set()
        self.registry = CollectorRegistry(auto_describe=False)
        self.scrapes: dict[socket.socket, _Scrape] = {}

    def start(self, sel: selectors.BaseSelector,
              processes: Callable[[], dict[str, int]],
              live_pids: Callable[[], set[int]]) -> None:
        self.sel = sel
        self.live_pids = live_pids
        _CountFiles(self.registry, path=self.directory)
        self.registry.register(DaemonCollector(self.spool_dir, processes))
        if self.sock is not None:
            sel.register(self.sock, selectors.EVENT_READ, self)

    def rebind(self, address: tuple[str, int] | None, log: Any) -> None:
        """A reload changed metrics_listen: listen on the new address (None: stop)."""
        if self.sock is not None and self.sock.getsockname()[:2] == address:
            return
        new = None
        if address is not None:
            try:
                new = bind_metrics(address)
            except OSError as exc:
                log.panic(f"metrics_listen: keeping the old address: {exc}")
                return
        self._close_listener()
        self.sock = new
        if new is not None and self.sel is not None:
            self.sel.register(new, selectors.EVENT_READ, self)

    def _close_listener(self) -> None:
        if self.sock is not None:
            if self.sel is not None:
                try:
                    self.sel.unregister(self.sock)
                except (KeyError, ValueError):
                    pass
            self.sock.close()
            self.sock = None

    def in_child(self, transports: Iterable[str]) -> None:
        """In a forked child: keep none of the endpoint's sockets; open the child's
        count files (see counters.start_process)."""
        if self.sock is not None:
            self.sock.close()
        for conn in self.scrapes:
            conn.close()
        counters.start_process(transports)

    def process_ended(self, pid: int) -> None:
        self.folder.fold(pid)

    def ready(self, fileobj: Any) -> None:
        if fileobj is self.sock:
            self._accept()
        elif fileobj in self.scrapes:
            self._serve(fileobj)

    def tick(self) -> None:
        """Close scrape connections past their deadline."""
        now = time.monotonic()
        for conn, scrape in list(self.scrapes.items()):
            if now > scrape.deadline:
                self._finish(conn)

    def _accept(self) -> None:
        assert self.sock is not None and self.sel is not None
        try:
            conn, _peer = self.sock.accept()
        except OSError:
            return
        conn.setblocking(False)
        self.scrapes[conn] = _Scrape(time.monotonic() + REQUEST_SECONDS)
        self.sel.register(conn, selectors.EVENT_READ, self)

    def _serve(self, conn: socket.socket) -> None:
        scrape = self.scrapes[conn]
        try:
            if scrape.outbuf:
                sent = conn.send(scrape.outbuf)
                scrape.outbuf = scrape.outbuf[sent:]
                if not scrape.outbuf:
                    self._finish(conn)
                return
            data = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._finish(conn)
            return
        if not data:
            self._finish(conn)
            return
        scrape.inbuf += data
        if b"\r\n\r\n" not in scrape.inbuf and b"\n\n" not in scrape.inbuf:
            if len(scrape.inbuf) > REQUEST_LIMIT:
                self._finish(conn)
            return
        scrape.outbuf = self.response(scrape.inbuf)
        assert self.sel is not None
        self.sel.modify(conn, selectors.EVENT_WRITE, self)

    def _finish(self, conn: socket.socket) -> None:
        self.scrapes.pop(conn, None)
        if self.sel is not None:
            try:
                self.sel.unregister(conn)
            except (KeyError, ValueError):
                pass
        conn.close()

    def response(self, request: bytes) -> bytes:
        """The HTTP/1.0 response to a request head (the connection closes after it)."""
        line = request.split(b"\n", 1)[0].decode("latin-1").split()
        if len(line) < 2 or not line[0].isupper():
            return _http(400, "Bad Request", b"bad request\n")
        method, target = line[0], line[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return _http(405, "Method Not Allowed", b"only GET\n", ("Allow: GET, HEAD",))
        if target != "/metrics":
            return _http(404, "Not Found", b"try /metrics\n")
        try:
            self.folder.fold_orphans(self.live_pids() | {os.getpid()})
            body = generate_latest(self.registry)
        except Exception as exc:
            # The master must not fail with a scrape (an unreadable count file, ...).
            return _http(500, "Internal Server Error", f"metrics: {exc}\n".encode())
        response = _http(200, "OK", body, (f"Content-Type: {CONTENT_TYPE_LATEST}",))
        return response[:len(response) - len(body)] if method == "HEAD" else response


def _http(code: int, reason: str, body: bytes, headers: tuple[str, ...] = ()) -> bytes:
    head = [f"HTTP/1.0 {code} {reason}", f"Content-Length: {len(body)}",
            "Connection: close", *headers]
    if not any(h.startswith("Content-Type") for h in headers):
        head.append("Content-Type: text/plain; charset=utf-8")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body
