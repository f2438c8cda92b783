"""Polling helpers for tests that wait on other processes (files, logs, queues)."""

from __future__ import annotations

import os
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Call ``predicate`` until it returns a true value and return that value.

    Raises ``TimeoutError`` if it is still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


def count_files(directory: str | os.PathLike, suffix: str = "") -> int:
    """Number of regular files directly in ``directory`` ending in ``suffix`` (0 if missing)."""
    try:
        return sum(1 for e in os.scandir(directory) if e.is_file() and e.name.endswith(suffix))
    except FileNotFoundError:
        return 0


def wait_for_files(directory: str | os.PathLike, n: int, timeout: float = 10.0,
                   suffix: str = "") -> list[str]:
    """Wait until ``directory`` holds at least ``n`` files; return their sorted paths.

    Handy for maildirs: ``wait_for_files(maildir / "new", 1)``.
    """
    wait_until(lambda: count_files(directory, suffix) >= n, timeout)
    return sorted(os.path.join(directory, e.name) for e in os.scandir(directory)
                  if e.is_file() and e.name.endswith(suffix))
