"""Expansion features a caller may lock out (the redirect router's forbid_filter_*).

A context's ``forbid`` set names the features; using one raises :class:`ExpandError`
with the text Exim gives, when it is reached (so ``${expand:...}`` cannot get round it).
"""
from __future__ import annotations

from typing import Any

from .errors import ExpandError

MESSAGES = {
    "lookup": "lookup expansions are not permitted",
    "run": "running a command is not permitted",
    "readfile": "file insertions are not permitted",
    "readsocket": "socket insertions are not permitted",
    "exists": "File existence tests are not permitted",
    "stat": "Use of the stat() expansion is not permitted",
    "perl": "Perl calls are not permitted",
    "dlfunc": "dynamically-loaded functions are not permitted",
}


def check_allowed(feature: str, ctx: Any) -> None:
    """Raise ExpandError when ``feature`` is in the context's ``forbid`` set."""
    forbid = getattr(ctx, "forbid", None)
    if forbid and feature in forbid:
        raise ExpandError(MESSAGES[feature])
