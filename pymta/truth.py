"""How Exim reads the result of an expanded option or condition as true or false."""
from __future__ import annotations

_FALSE = frozenset(("", "0", "no", "false"))


def exim_true(value: str | None) -> bool:
    """False for None (an unset option), "", "0", "no" and "false" (any case, surrounding
    space ignored); true for anything else, as in ``condition =`` of routers and ACLs."""
    return value is not None and value.strip().lower() not in _FALSE
