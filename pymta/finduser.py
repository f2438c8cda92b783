"""Looking up a user by name for routing, transports and the passwd lookup, as Exim's
route_finduser does: with max_username_length set above 0, a longer name is not looked
up at all and counts as "no such user" (for systems whose getpwnam() truncates long
names instead of failing).  exim_user and the other start-up ids are not limited.
"""
from __future__ import annotations

import pwd

_max_length = 0


def configure_max_username_length(length: int) -> None:
    """Set max_username_length for this process (0: no limit)."""
    global _max_length
    _max_length = max(0, length)


def getpwnam(name: str) -> pwd.struct_passwd:
    """``pwd.getpwnam`` that raises KeyError for a name over max_username_length."""
    if _max_length and len(name) > _max_length:
        raise KeyError(f"user name too long: {name}")
    return pwd.getpwnam(name)
