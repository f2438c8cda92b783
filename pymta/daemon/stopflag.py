"""A process-wide stop flag that signal handlers set and SMTP sessions poll."""
from __future__ import annotations


class StopFlag:
    """Quacks like threading.Event for ``is_set()``; safe to set from a signal handler."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def __bool__(self) -> bool:
        return self._set
