"""Exim's ``transport_filter``: the message a transport writes, passed through a command.

The command is built like the pipe transport's (split, then each argument expanded; no
shell; ``$pipe_addresses`` gives one argument per address; tainted arguments refused).
It runs as the delivery user in a process group of its own.  A thread writes the message
to it exactly as the transport would write it -- header lines after headers_add/remove/
rewrite, then the body, LF line ends and no SMTP dot-stuffing, check/escape strings or
CRLF -- while the transport reads the command's output (standard error joined to it) and
applies those conversions to that instead.  Reading waits at most
``transport_filter_timeout`` for each piece of output; an exit status other than 0, a
command that cannot be started and a timeout raise :class:`TransportFilterFailed`.
"""
from __future__ import annotations

import errno as _errno
import os
import select
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from pymta.errnos import EximErrno
from pymta.expand.command import CommandExpansionFailed, CommandTainted
from pymta.osutil import can_switch_ids
from pymta.transports import command
from pymta.transports.base import TransportError
from pymta.transports.command import EXEC_FAILED

CHUNK = 1 << 16


class TransportFilterFailed(Exception):
    """The filter did not produce the whole message: it exited with a non-zero
    ``status`` (127: it could not be started) or ``timed_out``."""

    def __init__(self, status: int | None = None, timed_out: bool = False):
        self.status = status
        self.timed_out = timed_out
        super().__init__(self.text())

    @property
    def errno(self) -> int:
        """Address.basic_errno for the deferral (ETIMEDOUT or Exim's -24)."""
        return _errno.ETIMEDOUT if self.timed_out else EximErrno.FILTER_FAIL

    def text(self, where: str = "") -> str:
        """Exim's wording; ``where`` (" while writing to FILE") goes in the middle."""
        if self.timed_out:
            return f"error{where}" if where else "transport filter timed out"
        out = f"transport filter process failed ({self.status}){where}"
        if self.status == EXEC_FAILED:
            out += ": unable to execute command"
        return out


@dataclass
class TransportFilter:
    """One configured filter, ready to run for one delivery (see the module doc)."""

    argv: list[str]
    env: dict[str, str]
    ids: tuple[int, int] | None
    groups: list[int] | None
    timeout: float

    def output(self, feed: Callable[[Any], Any]) -> Iterator[bytes]:
        """Start the command, let ``feed(stdin)`` write the message to it from a thread
        and yield its output as it comes; raise TransportFilterFailed at the end when
        the command failed or when it was silent for longer than the timeout."""
        try:
            proc = command.start(self.argv, self.env, self.ids, self.groups)
        except (OSError, subprocess.SubprocessError):
            raise TransportFilterFailed(EXEC_FAILED) from None
        assert proc.stdin is not None and proc.stdout is not None
        writer = threading.Thread(target=command.feed_stdin, args=(feed, proc.stdin),
                                  daemon=True)
        writer.start()
        fd = proc.stdout.fileno()
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], self.timeout or None)
                if not ready:
                    command.kill_group(proc)
                    raise TransportFilterFailed(timed_out=True)
                chunk = _read(fd)
                if not chunk:
                    break
                yield chunk
            status = self._wait(proc)
        finally:
            if proc.returncode is None:
                command.kill_group(proc)
                proc.wait()
            proc.stdout.close()
            writer.join(5)
        if status != 0:
            raise TransportFilterFailed(status if status > 0 else 128 - status)

    def _wait(self, proc: subprocess.Popen) -> int:
        """The exit status, once its output has ended (within the timeout)."""
        deadline = time.monotonic() + (self.timeout or 3600)
        while True:
            try:
                return proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                command.kill_group(proc)
                proc.wait()
                raise TransportFilterFailed(timed_out=True) from None


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, CHUNK)
    except OSError:
        return b""


def transport_filter(transport: Any, job: Any, ctx: Any, ids: tuple[int, int] | None,
                     groups: list[int] | None = None) -> TransportFilter | None:
    """The transport's filter for this delivery, or None when transport_filter is unset
    or expands to nothing; it runs as ``ids`` (None: as this process).  Problems with
    the command raise TransportError: an argument that does not expand defers, a tainted
    one fails (Exim's wording for both)."""
    text = transport.opt("transport_filter")
    if not text or not str(text).strip():
        return None
    owner = f"{transport.name} transport filter"
    try:
        argv = command.build_argv(str(text), ctx, owner, job)
    except CommandExpansionFailed as e:
        raise TransportError(str(e), "defer", 0) from None
    except CommandTainted as e:
        # Exim names no transport here: "Tainted arg 1 for transport filter command"
        raise TransportError(str(e).replace(f"for {owner} command",
                                            "for transport filter command"), "fail") from None
    if not argv or not argv[0]:
        return None
    if ids is None and can_switch_ids():
        # A worker keeps a saved uid 0: the filter must not inherit it (or a real uid
        # 0), so it gets the current effective ids as its real, effective and saved.
        ids = (os.geteuid(), os.getegid())
    # Exim starts the filter with its own environment (what keep_environment left).
    return TransportFilter(argv, dict(os.environ), ids, groups,
                           float(transport.opt("transport_filter_timeout") or 0))
