"""Queue runs: list the spool, skip what must not be delivered now, deliver the rest.

A plain run skips frozen messages (``-qff`` includes them) and messages another process
holds locked.  Whether each address is due for a retry is decided by
``deliver_message`` itself (``forced=True`` for ``-qf``/``-qff`` ignores retry times), so a
message is never pre-locked here in a way that would stop its delivery.
"""
from __future__ import annotations

import os
import random
import time
import traceback
from typing import Any, Callable, Iterable

from pymta import proctitle
from pymta.daemon.util import main_opt, spool_directory
from pymta.delivery import deliver_message
from pymta.delivery.bounce import auto_thaw_due
from pymta.log import log_selected
from pymta.logevents import QueueRun, write_event
from pymta.osutil import load_average
from pymta.spool.space import check_log, check_spool
from pymta.spool.tidy import set_aside_corrupt, tidy_spool


def space_shortage(config: Any, log: Any) -> bool:
    """True (and a log line) when the spool or log partition is below its check_*
    threshold: a queue run then delivers nothing more, as every delivery needs spool
    room to record what it did; the messages stay queued for a later run."""
    failure = check_spool(config) or check_log(config, log)
    if failure is None:
        return False
    log.main(f"{failure}: queue run paused, messages stay on the queue")
    return True


def load_too_high(config: Any, log: Any, flags: str = "", queue: str = "") -> bool:
    """deliver_queue_load_max: is the load average over it?  Then the queue run is
    abandoned (and Exim's line says so); the messages wait for a later run."""
    limit = main_opt(config, "deliver_queue_load_max")
    if limit is None:
        return False
    load = load_average()
    if load is None or load <= int(limit):
        return False
    named = f"'{queue}' " if queue else ""
    log.main(f"Abandon {named}queue run: pid={os.getpid()}" + (f" {flags}" if flags else "")
             + f" (load {load / 1000:.2f}, max {int(limit) / 1000:.2f})")
    return True


def _release(lock: Any) -> None:
    for name in ("release", "unlock", "close"):
        fn = getattr(lock, name, None)
        if callable(fn):
            fn()
            return


def is_locked(spool_dir: str, msgid: str) -> bool:
    """True when another process is delivering the message right now."""
    from pymta.spool import lock
    checker = getattr(lock, "is_locked", None)
    if checker is not None:
        return bool(checker(spool_dir, msgid))
    held = lock.lock_message(spool_dir, msgid)
    if held is None:
        return True
    _release(held)
    return False


def is_frozen(spool_dir: str, msgid: str, log: Any = None,
              config: Any = None) -> bool | None:
    """True/False, or None when the -H file is gone or unreadable (skip it).  With
    ``config``, a frozen message whose auto_thaw time has come counts as not frozen.

    With ``log``, a -H file with a format error is moved aside (see pymta.spool.tidy)."""
    from pymta.spool.files import SpoolFormatError, read_header
    try:
        msg = read_header(spool_dir, msgid)
    except SpoolFormatError as exc:
        if log is not None:
            set_aside_corrupt(spool_dir, msgid, exc, log)
        return None
    except Exception:
        return None
    frozen = msg.frozen_at is not None or "frozen" in getattr(msg, "flags", ())
    if frozen and config is not None and auto_thaw_due(config, msg, time.time()):
        return False
    return frozen


def _never_tried(spool_dir: str, msgid: str) -> bool:
    """-qi: a message no delivery attempt has finished with yet."""
    from pymta.spool.files import read_header
    try:
        return "deliver_firsttime" in read_header(spool_dir, msgid).flags
    except Exception:       # gone or unreadable: the normal checks deal with it
        return False


LOCKED = "Spool file is locked (another process is handling this message)"
FROZEN = "Message is frozen"


def skipped(config: Any, log: Any, msgid: str, why: str) -> None:
    """A queue run passes over a message (log_selector skip_delivery, on by default)."""
    if log is not None and log_selected(config, "skip_delivery"):
        log.main(why, msgid)


def due_messages(config: Any, *, force_frozen: bool = False,
                 ids: Iterable[str] | None = None, log: Any = None, queue: str = "",
                 initial_only: bool = False,
                 select: Callable[[str], bool] | None = None) -> list[str]:
    """Message ids a queue run should deliver: in arrival order with
    queue_run_in_order, otherwise in an arbitrary (shuffled) order, as in Exim.

    With ``log``, files left behind are tidied first and messages whose -H file is
    corrupt are moved aside (pymta.spool.tidy); a frozen or locked message the run
    passes over gets Exim's line ("Message is frozen", "Spool file is locked ...").
    ``select`` (-R, -S, ETRN) keeps only the ids it accepts, before those lines."""
    spool_dir = spool_directory(config)
    if log is not None:
        tidy_spool(spool_dir, log)
    if ids is None:
        from pymta.spool.queue import list_queue
        ids = list_queue(spool_dir, queue)
        if not main_opt(config, "queue_run_in_order"):
            random.shuffle(ids)
    if initial_only:
        ids = [i for i in ids if _never_tried(spool_dir, i)]
    out = []
    for msgid in ids:
        if select is not None and not select(msgid):
            continue
        frozen = is_frozen(spool_dir, msgid, log, config)
        if frozen is None:
            continue
        if frozen and not force_frozen:
            skipped(config, log, msgid, FROZEN)
            continue
        if is_locked(spool_dir, msgid):
            skipped(config, log, msgid, LOCKED)
            continue
        out.append(msgid)
    return out


def run_queue(config: Any, log: Any, *, force: bool = False, force_frozen: bool = False,
              ids: Iterable[str] | None = None,
              deliver: Callable[..., Any] | None = None,
              select: Callable[[str], bool] | None = None, force_first: bool = False,
              queue: str = "", two_phase: bool = False, initial_only: bool = False,
              local_only: bool = False) -> int:
    """One queue run in this process (``pymta -q``); returns the number of messages tried.

    ``select`` keeps only the message ids it accepts (``-R`` / ``-S``); ``force_first``
    forces delivery of the first message tried, as Exim does for those runs.  ``queue``
    is a named queue (-qG<name>); ``initial_only`` (-qi) takes only messages never
    tried; ``local_only`` (-ql) makes only local deliveries.  ``two_phase`` (-qq): a
    first pass makes the local deliveries and notes the host each message waits for,
    and the second delivers the rest host by host, so that messages for one host go
    down one connection (the smtp transport keeps it open between messages)."""
    deliver = deliver if deliver is not None else deliver_message
    pid = os.getpid()
    flags = "-qff" if force_frozen else "-qf" if force else ""
    write_event(log, config, QueueRun(pid, flags, queue=queue))
    proctitle.queue_run(flags, queue)
    tried = 0
    order = due_messages(config, force_frozen=force_frozen, ids=ids, log=log, queue=queue,
                         initial_only=initial_only, select=select)
    phases = [True, False] if two_phase and not local_only else [local_only]
    for only_local in phases:
        waiting: dict[str, str] = {}
        for msgid in order:
            if space_shortage(config, log) or load_too_high(config, log, flags, queue):
                break
            if select is not None and not select(msgid):
                continue
            forced = force or (force_first and tried == 0)
            if only_local or not two_phase:
                tried += 1          # -qq's second pass delivers the same messages again
            proctitle.delivering(msgid, "running queue: ")
            try:
                if force_frozen:
                    # -qff: frozen messages are tried as though thawed, like Exim.
                    outcome = deliver(config, msgid, log, forced=True, manual=True,
                                      queue=queue, local_only=only_local)
                else:
                    outcome = deliver(config, msgid, log, forced=forced, queue=queue,
                                      local_only=only_local)
            except Exception:
                log.panic(f"{msgid} delivery crashed: "
                          + traceback.format_exc().replace("\n", "\n  "))
                continue
            hosts = getattr(outcome, "waiting_hosts", None)
            if hosts:
                waiting[msgid] = hosts[0]
        if two_phase and only_local:
            # the second pass: what waits for the same host, one after the other
            position = {m: i for i, m in enumerate(order)}
            order = sorted(waiting, key=lambda m: (waiting[m], position[m]))
    write_event(log, config, QueueRun(pid, flags, end=True, queue=queue))
    return tried


def queue_scan_main(config: Any, log: Any, notifier: Any, *, force: bool = False,
                    force_frozen: bool = False, queue: str = "") -> int:
    """Daemon queue-runner child: hand every due id to the master (workers deliver);
    a message of a named queue goes as "queue/id"."""
    flags = "-qff" if force_frozen else "-qf" if force else ""
    proctitle.queue_run(flags, queue)
    for msgid in due_messages(config, force_frozen=force_frozen, log=log, queue=queue):
        if space_shortage(config, log) or load_too_high(config, log, flags, queue):
            break
        # Blocking sends with back-off so a busy master slows us down rather than losing ids.
        for _ in range(50):
            kind = "Z" if force_frozen else "F" if force else "Q"
            if notifier.send(kind, f"{queue}/{msgid}" if queue else msgid):
                break
            time.sleep(0.02)
    return 0
