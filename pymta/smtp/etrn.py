"""What an accepted ETRN command starts (Exim spec 49.8).

With ``smtp_etrn_command`` set, that command runs, its words expanded one by one with
``$domain`` set to the ETRN argument; the argument comes from the network, so it is
tainted and a word that uses it is refused (Exim 4.96 logs "failed to set up ETRN
command: Tainted arg ..." and answers 458).  Without it, only ``ETRN #string`` is valid
and starts a queue run like ``pymta -R string``, for the messages with an undelivered
recipient containing the string (in the named queue the ETRN ACL set with ``queue =``,
if any).  The daemon (and ``-bs``) registers that queue run
(:func:`set_queue_runner`): it runs in the detached process itself, with the session's
configuration and privileges, as a delivery worker would.

The command (or the queue run) is started by a detached process and the client gets
its 250 at once.  With
``smtp_etrn_serialize`` (the default) that process holds a slot named after the argument
in the ``misc`` hints database while the command runs, so a second identical ETRN is
answered "458 Already processing" until it has finished.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from typing import Any, Callable

from pymta.config.values import main_option
from pymta.expand.command import CommandExpansionFailed, CommandTainted, command_argv
from pymta.hints.misc import MiscDB
from pymta.spool.files import configured_spool
from pymta.taint import taint

#: (config, log, selection, queue): one queue run for the messages ``-R selection``
#: selects in the named queue ("" = the default queue).
QueueRunner = Callable[[Any, Any, str, str], Any]
_queue_runner: QueueRunner | None = None


def set_queue_runner(runner: QueueRunner | None) -> None:
    """Register the queue run an ``ETRN #string`` starts (the daemon layer provides it;
    this layer may not import it)."""
    global _queue_runner
    _queue_runner = runner


class EtrnSetupFailed(Exception):
    """smtp_etrn_command could not be turned into a command (expansion, taint)."""


def etrn_command(config: Any, ctx: Any, argument: str) -> list[str]:
    """smtp_etrn_command's argument vector, ``$domain`` being the (tainted) argument."""
    raw = str(main_option(config, "smtp_etrn_command", "") or "")
    saved = ctx.variables.get("domain", "")
    ctx.variables["domain"] = taint(argument)
    try:
        return command_argv(raw, ctx, "ETRN processing")
    except (CommandExpansionFailed, CommandTainted) as exc:
        raise EtrnSetupFailed(str(exc)) from None
    finally:
        ctx.variables["domain"] = saved


def command_job(argv: list[str]) -> Callable[[], Any]:
    """Run ``argv`` (no shell; nothing inherited but /dev/null) and wait for it."""
    def run() -> None:
        try:
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False, close_fds=True)
        except OSError:
            pass       # the client already has its 250, as with Exim
    return run


def queue_run_job(config: Any, log: Any, selection: str, queue: str = ""
                  ) -> Callable[[], Any]:
    """The queue run of ``ETRN #selection`` over ``queue`` (the named queue the ETRN
    ACL set, as Exim's ``-MCG``); EtrnSetupFailed when this process has none
    registered."""
    runner = _queue_runner
    if runner is None:
        raise EtrnSetupFailed("no queue runner in this process")
    return lambda: runner(config, log, selection, queue)


def start_etrn(config: Any, job: Callable[[], Any], serialize_key: str | None,
               *, close_sockets: bool = True) -> bool:
    """Run ``job`` in a detached process.  False when ``serialize_key`` is already held
    by another ETRN process (nothing was started).  OSError when the fork failed.
    ``close_sockets`` (for a command, which may run long): the process keeps none of
    the connection's or the daemon's sockets; a queue run keeps them (it reports to
    the daemon through one)."""
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid > 0:
        os.close(ready_w)
        os.waitpid(pid, 0)             # the intermediate child exits at once
        answer = os.read(ready_r, 1)
        os.close(ready_r)
        return answer != b"0"
    # Intermediate child, then the detached grandchild that runs and waits for argv.
    status = 0
    try:
        os.close(ready_r)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        status = _run_detached(config, job, serialize_key, ready_w, close_sockets)
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _run_detached(config: Any, job: Callable[[], Any], key: str | None,
                  ready_w: int, close_sockets: bool) -> int:
    devnull = os.open(os.devnull, os.O_RDWR)
    for n in (0, 1, 2):
        os.dup2(devnull, n)
    if close_sockets:
        _close_sockets()
    slots = MiscDB(configured_spool(config)) if key is not None else None
    if slots is not None and not slots.acquire(key or "", 1):
        os.write(ready_w, b"0")
        return 0
    os.write(ready_w, b"1")
    os.close(ready_w)
    try:
        job()
    finally:
        if slots is not None:
            slots.release(key or "")
    return 0


def _close_sockets() -> None:
    """Close the inherited sockets (the client's connection, the daemon's listening
    sockets and its notification socket), so that a long queue run keeps no port bound
    after the daemon stops.  Only sockets: other descriptors belong to objects (log
    files, hints databases) that may still close them."""
    for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        n = int(fd)
        try:
            if n > 2 and stat.S_ISSOCK(os.fstat(n).st_mode):
                os.close(n)
        except OSError:
            pass
