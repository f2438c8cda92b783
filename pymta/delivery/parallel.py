"""remote_max_parallel: run several remote transport runs of one message at once.

As in Exim, each parallel delivery is a child process of the delivering process: the
child runs the transport for one batch of addresses and writes what the transport
recorded on each address back through a pipe; the parent applies it to its own address
objects and then does the logging, journalling and retry hints itself.  At most
``limit`` children run at a time; as one finishes the next batch starts, in the
sequential order.  Results are handed to ``done`` as each child ends.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import selectors
from typing import Callable, Generic, Iterable, Sequence, TypeVar

from pymta.address import Address

T = TypeVar("T")

#: attributes never copied back: the parent's own links between addresses stay
_KEEP = frozenset({"parent", "duplicates"})


@dataclasses.dataclass
class _Child(Generic[T]):
    pid: int
    fd: int
    task: T
    addresses: list[Address]
    data: bytearray = dataclasses.field(default_factory=bytearray)


def address_results(addresses: Sequence[Address]) -> list[dict[str, object]]:
    """What a transport run set on each address, in a form that survives a pipe."""
    out: list[dict[str, object]] = []
    for a in addresses:
        fields: dict[str, object] = {}
        for name, value in vars(a).items():
            if name in _KEEP or isinstance(value, Address):
                continue
            try:
                pickle.dumps(value)
            except Exception:     # e.g. an open object; the parent keeps its own
                continue
            fields[name] = value
        out.append(fields)
    return out


def apply_results(addresses: Sequence[Address], results: list[dict[str, object]]) -> None:
    """Copy a child's results onto the parent's address objects."""
    for a, fields in zip(addresses, results):
        for name, value in fields.items():
            setattr(a, name, value)


def run_parallel(tasks: Iterable[tuple[T, list[Address]]], limit: int,
                 work: Callable[[T, list[Address]], None],
                 done: Callable[[T, list[Address], str | None], None]) -> None:
    """Run ``work(task, addresses)`` for each task in a child process, at most ``limit``
    at once.  ``done(task, addresses, error)`` is called in this process as each
    finishes, after the child's results were applied (``error`` says why a child gave
    none; the addresses are then left as they were).  ``tasks`` is read lazily: the
    next one is taken only when a child may start."""
    pending = iter(tasks)
    more = True
    running: dict[int, _Child[T]] = {}
    sel = selectors.DefaultSelector()
    try:
        while more or running:
            while more and len(running) < max(limit, 1):
                try:
                    task, addresses = next(pending)
                except StopIteration:
                    more = False
                    break
                child = _start(task, addresses, work)
                running[child.fd] = child
                sel.register(child.fd, selectors.EVENT_READ)
            if not running:
                break
            for key, _ in sel.select():
                child = running[int(key.fd)]
                chunk = os.read(child.fd, 65536)
                if chunk:
                    child.data += chunk
                    continue
                sel.unregister(child.fd)
                os.close(child.fd)
                del running[child.fd]
                status = _reap(child.pid)
                error = _collect(child, status)
                done(child.task, child.addresses, error)
    finally:
        for child in running.values():
            os.close(child.fd)
            _reap(child.pid)
        sel.close()


def _reap(pid: int) -> int:
    """The child's wait status; 0 when something else reaped it already (its results,
    complete or not, are judged by what came through the pipe)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def _start(task: T, addresses: list[Address],
           work: Callable[[T, list[Address]], None]) -> _Child[T]:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:                                  # the child: one transport run
        code = 0
        try:
            os.close(rfd)
            work(task, addresses)
            payload = pickle.dumps(address_results(addresses))
            view = memoryview(payload)
            while view:
                view = view[os.write(wfd, view):]
        except BaseException:   # noqa: BLE001 - nothing may escape a forked child
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    return _Child(pid=pid, fd=rfd, task=task, addresses=addresses)


def _collect(child: _Child[T], status: int) -> str | None:
    if os.WIFSIGNALED(status):
        return f"delivery process killed by signal {os.WTERMSIG(status)}"
    if os.waitstatus_to_exitcode(status) != 0 or not child.data:
        return "delivery process failed"
    try:
        results = pickle.loads(bytes(child.data))
    except Exception:
        return "delivery process returned unreadable results"
    apply_results(child.addresses, results)
    return None
