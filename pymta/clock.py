"""Wall-clock time: one place that says what time it is.

Code whose result depends on the date or the time of day (the expansion items
``${prvs}``, ``${prvscheck}``, ``${srs_encode}``, the ``inbound_srs`` condition,
``$tod_*``) asks a :class:`Clock` instead of calling :func:`time.time`, so a test can
pin the time with :class:`FixedClock`.  :data:`SYSTEM` is the clock everything uses
unless told otherwise.

Test-only: the environment variable ``PYMTA_TEST_CLOCK_OFFSET`` moves the clock of a
whole pymta process (and of a test process that imports pymta) by an offset: a number of
seconds, or a number with one of the suffixes ``s``, ``m``, ``h``, ``d`` (``400d``,
``-3h``).  Because much of pymta still reads :func:`time.time` directly, setting it also
shifts the wall-clock functions of the :mod:`time` module for the process (``time``,
``time_ns``, ``localtime``, ``gmtime``, ``ctime``, ``strftime`` without a time).
Monotonic clocks, :func:`time.sleep`, :mod:`datetime` and file modification times are
not moved.  It exists to run the test suite "on another date" (see tests/run_elsewhen.py);
never set it for a real mail server.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Protocol

#: The environment variable that moves the clock (test-only, see the module docstring).
OFFSET_ENV = "PYMTA_TEST_CLOCK_OFFSET"

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_real_time = time.time          # the unshifted system clock, kept before any shifting


class Clock(Protocol):
    """Something that tells the wall-clock time, in seconds since the epoch (UTC)."""

    def time(self) -> float:
        """Seconds since 1970-01-01 00:00:00 UTC."""


def parse_offset(text: str) -> float:
    """Seconds in an offset text such as ``400d``, ``-90m``, ``3600`` or ``1.5h``."""
    m = re.fullmatch(r"\s*([+-]?\d+(?:\.\d*)?)\s*([smhd]?)\s*", text or "")
    if not m:
        raise ValueError(f"{OFFSET_ENV}: bad offset {text!r} (want e.g. 400d, -3h, 90)")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class SystemClock:
    """The system's clock, moved by ``offset`` seconds (0 unless testing)."""

    offset: float = 0.0

    def time(self) -> float:
        """Now, in seconds since the epoch."""
        return _real_time() + self.offset


@dataclass(frozen=True)
class FixedClock:
    """A clock that always says ``at`` (seconds since the epoch): for tests."""

    at: float

    def time(self) -> float:
        """The pinned time."""
        return self.at


def _offset_from_environment() -> float:
    text = os.environ.get(OFFSET_ENV, "").strip()
    return parse_offset(text) if text else 0.0


def _shift_time_module(offset: float) -> None:
    """Move the :mod:`time` module's wall-clock readings by ``offset`` seconds, so code
    that calls time.time() / time.localtime() / time.strftime(fmt) directly agrees with
    :data:`SYSTEM` (test-only)."""
    real_time_ns = time.time_ns
    real_localtime, real_gmtime = time.localtime, time.gmtime
    real_ctime, real_strftime = time.ctime, time.strftime
    offset_ns = int(offset * 1_000_000_000)

    def shifted_time() -> float:
        return _real_time() + offset

    def shifted_time_ns() -> int:
        return real_time_ns() + offset_ns

    def shifted_localtime(secs: float | None = None) -> time.struct_time:
        return real_localtime(shifted_time() if secs is None else secs)

    def shifted_gmtime(secs: float | None = None) -> time.struct_time:
        return real_gmtime(shifted_time() if secs is None else secs)

    def shifted_ctime(secs: float | None = None) -> str:
        return real_ctime(shifted_time() if secs is None else secs)

    def shifted_strftime(fmt: str, t: tuple | time.struct_time | None = None) -> str:
        return real_strftime(fmt, shifted_localtime() if t is None else t)

    time.time, time.time_ns = shifted_time, shifted_time_ns
    time.localtime, time.gmtime, time.ctime = shifted_localtime, shifted_gmtime, shifted_ctime  # type: ignore[assignment]  # stdlib monkeypatch
    time.strftime = shifted_strftime


#: The clock pymta uses unless a caller passes another.
SYSTEM = SystemClock(_offset_from_environment())
if SYSTEM.offset:
    _shift_time_module(SYSTEM.offset)


def now(clock: Clock | None = None) -> float:
    """The time by ``clock`` (default: :data:`SYSTEM`), in seconds since the epoch."""
    return (clock or SYSTEM).time()


def day_number(clock: Clock | None = None) -> int:
    """Whole days since 1970-01-01 by ``clock`` (a UTC day, as Exim counts for BATV and
    SRS time stamps)."""
    return int(now(clock)) // 86400
