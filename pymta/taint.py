"""Exim's taint tracking: data that came from outside (a message or an SMTP session).

A tainted value is a :class:`Tainted` instance (a ``str`` subclass).  String operations on a
``str`` subclass return plain ``str``, so code that builds strings from tainted parts must
re-taint the result explicitly; the expansion evaluator does this for every item.
Tainted strings may never be used as file names or commands (see :func:`check_untainted`).
"""
from __future__ import annotations


class Tainted(str):
    """A string that came from an untrusted source."""

    __slots__ = ()


class TaintError(Exception):
    """A tainted value was about to be used where Exim forbids it."""


def taint(value: str) -> str:
    return value if isinstance(value, Tainted) else Tainted(value)


def is_tainted(value: object) -> bool:
    return isinstance(value, Tainted)


def check_untainted(value: str, what: str) -> str:
    """Raise TaintError if ``value`` is tainted; ``what`` names the use ("file name", ...)."""
    if isinstance(value, Tainted):
        raise TaintError(f"Tainted '{value}' (with {what}) not permitted")
    return value
