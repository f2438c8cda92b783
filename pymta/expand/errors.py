"""Exceptions raised by string expansion."""
from __future__ import annotations


class ExpandError(Exception):
    """An expansion failed; ``message`` is Exim-style text (shown as ``Failed: ...``)."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class ExpandFail(ExpandError):
    """Forced failure: the ``fail`` keyword or a failed ``${if ...}`` with ``fail``."""


class ExpandDefer(ExpandError):
    """A lookup could not be completed now (temporary error); the caller should defer.

    ``list_item``: when the lookup was an item of a list being matched, that item.
    """

    list_item: str | None = None
