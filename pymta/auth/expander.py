"""How authenticators expand their options without depending on the SMTP session.

An :class:`Expander` expands one option string with extra variables ($auth1.. and any
driver-specific ones) and raises :class:`ExpansionForcedFail` for a forced failure and
:class:`ExpansionError` for any other failure.  :func:`check_condition` applies Exim's rules
for ``server_condition``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pymta.truth import exim_true

from .results import DEFER, FAIL, OK


class ExpansionError(Exception):
    """An expansion failed (not forced): the message is Exim's error text."""


class ExpansionForcedFail(ExpansionError):
    """An expansion was forced to fail (``fail``, or a failed lookup with ``fail``)."""


class Expander(Protocol):
    """Expand ``text`` with ``variables`` added to the session's variables."""

    def __call__(self, text: str, variables: Mapping[str, str]) -> str: ...


def auth_variables(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """$auth1.. (and, for compatibility, $1..) from a driver's data strings."""
    variables = {f"auth{i}": v for i, v in enumerate(values, 1)}
    return variables


def check_condition(expander: Expander, condition: str | None,
                    variables: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """Evaluate server_condition as Exim does.

    Returns ``(status, user_message, log_message)``: unset or true ("1", "yes", "true") is
    OK; forced failure, "", "0", "no", "false" is FAIL; any other result is DEFER with the
    result as the message for the client; an expansion error is DEFER with the error only
    in the log.
    """
    if condition is None:
        return OK, None, None
    try:
        value = expander(condition, variables)
    except ExpansionForcedFail:
        return FAIL, None, None
    except ExpansionError as e:
        return DEFER, None, str(e)
    if not exim_true(value):
        return FAIL, None, None
    if value.strip().lower() in ("1", "yes", "true"):
        return OK, None, None
    return DEFER, value, None


def expand_set_id(expander: Expander, server_set_id: str | None,
                  variables: Mapping[str, str]) -> str | None:
    """server_set_id expanded; None when unset or its expansion fails (Exim ignores it)."""
    if server_set_id is None:
        return None
    try:
        return expander(server_set_id, variables)
    except ExpansionError:
        return None
