"""Small helpers shared by the routers and the delivery code.

They name, in one place, the expansion, list and main-option functions routing uses:
:mod:`pymta.expand`, :mod:`pymta.expand.lists`, :mod:`pymta.match` and
:func:`pymta.config.values.main_option`.
"""
from __future__ import annotations

from typing import Any, overload

from pymta import match as _match
from pymta.config.values import main_option
from pymta.expand import ExpandDefer, ExpandError, ExpandFail, eval_condition, expand_string
from pymta.expand import lists as _lists

__all__ = ["ExpandDefer", "ExpandError", "ExpandFail", "expand", "condition_true",
           "split_list", "match_domain", "match_localpart", "match_address", "main_option",
           "qualify_domain", "qualify_recipient"]


@overload
def expand(text: str, ctx: Any) -> str: ...


@overload
def expand(text: None, ctx: Any) -> None: ...


def expand(text: str | None, ctx: Any) -> str | None:
    """Expand ``text`` in ``ctx``; None stays None."""
    if text is None:
        return None
    return expand_string(text, ctx)


def condition_true(text: str, ctx: Any) -> bool:
    """Evaluate a router ``condition`` (Exim's boolean interpretation of the expansion)."""
    return eval_condition(text, ctx)


split_list = _lists.nonempty_items


# The list matchers, re-exported for the routers (they used to be lazy wrappers).
match_domain = _match.match_domain
match_localpart = _match.match_localpart
match_address = _match.match_address


def qualify_domain(config: Any) -> str:
    """The domain for unqualified addresses (``qualify_domain``, else the host name)."""
    return (main_option(config, "qualify_domain") or main_option(config, "primary_hostname")
            or "localhost")


def qualify_recipient(config: Any) -> str:
    """The domain for unqualified recipients."""
    return main_option(config, "qualify_recipient") or qualify_domain(config)
