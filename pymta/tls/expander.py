"""The expansion callable the TLS package takes, and an adapter to :mod:`pymta.expand`.

The package never imports the SMTP code: whoever builds a context passes an
:class:`Expander`, a callable ``(text, variables) -> str`` that expands an Exim
string with extra variables set (``tls_in_sni`` while re-expanding the
certificate options for SNI, ``host`` for the transport's options).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..expand import ExpandContext, ExpandFail, expand_string
from ..taint import Tainted

# Variables whose values come from the peer and so are tainted (Exim marks $tls_in_sni).
_TAINTED = frozenset({"tls_in_sni", "tls_sni"})


class Expander(Protocol):
    """Expand an Exim string with ``variables`` set; raise on failure."""

    def __call__(self, text: str, variables: Mapping[str, str]) -> str: ...


def no_expansion(text: str, variables: Mapping[str, str]) -> str:
    """An :class:`Expander` for literal option values (tests, fixed paths)."""
    return text


class ContextExpander:
    """An :class:`Expander` that expands in a child of a :class:`pymta.expand.ExpandContext`."""

    def __init__(self, base: ExpandContext) -> None:
        self.base = base

    def __call__(self, text: str, variables: Mapping[str, str]) -> str:
        values = {k: (Tainted(v) if k in _TAINTED else v) for k, v in variables.items()}
        return expand_string(text, self.base.child(**values))


def expand_option(expand: Expander, text: str | None,
                  variables: Mapping[str, str]) -> str | None:
    """Expand an optional option value; unset or a forced failure gives None.

    Exim treats a forced expansion failure of the TLS options as "not set".
    """
    if text is None:
        return None
    try:
        return expand(text, variables)
    except ExpandFail:
        return None
