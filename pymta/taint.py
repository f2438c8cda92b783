"""Exim's taint tracking: data that came from outside (a message or an SMTP session).

A tainted value is a :class:`Tainted` instance (a ``str`` subclass).  String operations on a
``str`` subclass return plain ``str``, so code that builds strings from tainted parts must
re-taint the result explicitly; the expansion evaluator does this for every item.
Tainted strings may never be used as file names or commands (see :func:`check_untainted`).
"""
from __future__ import annotations

import re


class Tainted(str):
    """A string that came from an untrusted source."""

    __slots__ = ()


class Quoted(Tainted):
    """Tainted data that came out of a ``${quote_<lookup>:...}`` operator (or was made
    from such a value), as Exim 4.96 marks the memory of quoted strings.

    A concatenation is quoted when its last tainted part is (Exim 4.96 moves the
    growing string into the memory of each tainted piece appended to it).  A
    query-style lookup logs a warning for a tainted query that is not quoted.
    """

    __slots__ = ()


def is_quoted(value: object) -> bool:
    return isinstance(value, Quoted)


class TaintError(Exception):
    """A tainted value was about to be used where Exim forbids it."""


def captures(m: re.Match[str], subject: str, whole: str | None = None) -> list[str]:
    """$0, $1 ... of a regular expression's match ``m`` on ``subject`` (``whole`` for $0
    instead of the matched text): tainted when the subject is, as Exim copies them out
    of it, so a captured piece of a client's address is never a safe file name."""
    parts = [m.group(0) if whole is None else whole] + [g or "" for g in m.groups()]
    return [Tainted(p) for p in parts] if isinstance(subject, Tainted) else parts


def taint(value: str) -> str:
    return value if isinstance(value, Tainted) else Tainted(value)


def is_tainted(value: object) -> bool:
    return isinstance(value, Tainted)


def check_untainted(value: str, what: str) -> str:
    """Raise TaintError if ``value`` is tainted; ``what`` names the use ("file name", ...)."""
    if isinstance(value, Tainted):
        raise TaintError(f"Tainted '{value}' (with {what}) not permitted")
    return value
