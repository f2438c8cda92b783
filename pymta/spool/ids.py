"""Exim 4.96 message ids: ``TTTTTT-PPPPPP-SS`` (base 62).

TTTTTT is the arrival time in seconds, PPPPPP the receiving process id and SS the
sub-second part of the arrival time in units of 1/200 s (what Exim 4.96 writes when
``localhost_number`` is unset).  Two ids made by one process in the same 5 ms tick
would collide, so :func:`new_message_id` waits for the tick to move on in that case,
and a process that made an id waits for its tick to end before exiting, so a re-used
pid cannot repeat it either.  A session thread of a receiver uses its thread id in
place of the pid (see :func:`new_message_id`).
"""
from __future__ import annotations

import atexit
import os
import re
import threading
import time

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VALUE = {c: i for i, c in enumerate(BASE62)}
ID_RESOLUTION = 200          # sub-second units per second
_TICK_NS = 1_000_000_000 // ID_RESOLUTION
_ID_RE = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}\Z")

_last_tick: int = -1         # the tick (ns // _TICK_NS) of this process's last id
_last_pid: int = -1
_atexit_done = False


def base62(value: int, width: int) -> str:
    """``value`` in base 62, zero-padded to ``width`` digits (low digits kept)."""
    out = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        out.append(BASE62[digit])
    return "".join(reversed(out))


def unbase62(text: str) -> int:
    """Decode a base-62 string (Exim's digit order)."""
    value = 0
    for c in text:
        value = value * 62 + _VALUE[c]
    return value


def _wait_until_after(tick: int) -> None:
    """Sleep until the clock has left ``tick`` (at most 5 ms)."""
    end_ns = (tick + 1) * _TICK_NS
    while (now := time.time_ns()) < end_ns:
        # the clock is read once per turn: it may pass end_ns between two readings
        time.sleep((end_ns - now) / 1e9 + 0.0001)


def _wait_tick_end() -> None:
    """Sleep until the clock has left the tick of this process's latest id."""
    if _last_pid == os.getpid():
        _wait_until_after(_last_tick)


#: The tick and thread id of the last id made by each thread but the main one.
_mine = threading.local()
_latest_lock = threading.Lock()


def new_message_id(now_ns: int | None = None) -> str:
    """A new message id, unique on this host (see the module docstring).

    The session threads of a receiver (smtp_receiver_threads) share its pid, so an id
    made in a thread other than the process's main one carries the thread's own id
    (Linux gives threads ids from the same space as processes), and the tick rule
    holds for it: no thread waits for another."""
    global _last_tick, _last_pid, _atexit_done
    pid = os.getpid()
    task = threading.get_native_id()
    tick = (now_ns if now_ns is not None else time.time_ns()) // _TICK_NS
    if task == pid:
        last = _last_tick if _last_pid == pid else -1
    else:
        last = getattr(_mine, "tick", -1) if getattr(_mine, "task", None) == task else -1
    if tick <= last:
        _wait_until_after(last)
        tick = time.time_ns() // _TICK_NS
    if task != pid:
        _mine.tick, _mine.task = tick, task
    with _latest_lock:          # the process's exit waits for its latest tick
        if _last_pid != pid or tick > _last_tick or task == pid:
            _last_tick, _last_pid = max(tick, _last_tick if _last_pid == pid else -1), pid
        if not _atexit_done:
            # after fork the child inherits the registration; _wait_tick_end checks the pid
            atexit.register(_wait_tick_end)
            _atexit_done = True
    seconds, frac = divmod(tick, ID_RESOLUTION)
    return f"{base62(seconds, 6)}-{base62(task, 6)}-{base62(frac, 2)}"


def is_message_id(text: str) -> bool:
    """True if ``text`` has the shape of an Exim 4.96 message id."""
    return bool(_ID_RE.match(text))


def id_time(msgid: str) -> int:
    """The arrival time (Unix seconds) encoded in a message id."""
    return unbase62(msgid[:6])


def id_time_usec(msgid: str) -> int:
    """The sub-second part of the arrival time, in microseconds."""
    return unbase62(msgid[14:16]) * (1_000_000 // ID_RESOLUTION)
