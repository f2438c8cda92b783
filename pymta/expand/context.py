"""The environment an expansion is evaluated in."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..clock import SYSTEM, Clock

# ACLs sit above expansion in the layering, so expansion cannot import the ACL engine; the
# engine registers here how ``${acl}`` runs an ACL for a caller that set no
# ``ExpandContext.acl_runner`` (pymta.acl.engine does so when imported, and loading a
# configuration imports it).
_default_acl_runner: Callable[..., Any] | None = None


def set_default_acl_runner(runner: Callable[..., Any]) -> None:
    """Register ``runner(name, args, ctx)`` as the ACL runner for contexts without one."""
    global _default_acl_runner
    _default_acl_runner = runner


def default_acl_runner() -> Callable[..., Any] | None:
    """The registered default ACL runner, or None when no ACL engine is loaded."""
    return _default_acl_runner


@dataclass
class ExpandContext:
    """Variables and state visible to one expansion.

    ``variables`` holds Exim variables by name without the ``$`` (``sender_address``,
    ``local_part``, ``domain``, ``sender_host_address``, ``message_id``, ...).  Values that
    came from the network or a message must be :class:`pymta.taint.Tainted`.
    ``acl_vars`` holds ``acl_c*``/``acl_m*`` (shared by reference with the SMTP session so
    ``set acl_c0 = x`` persists).  ``headers`` is the message's header lines (for ``$h_``),
    as full texts including the name.  Variables not found here are looked up in the main
    configuration (``$primary_hostname``, ``$spool_directory``, ...) and computed values
    (``$tod_log``, ``$pid``, ...).  ``numbered`` holds ``$0``..``$9`` from the last match.
    ``acl_runner`` lets ``${acl{name}{args}}`` call back into the ACL engine.
    ``lookup_cache`` keeps the results of single-key file lookups, as Exim's lookup
    cache does; clear it where Exim tidies its lookups (after each message).
    ``recipients`` lists a non-SMTP message's envelope recipients.
    ``forbid`` names expansion features that may not be used (filter files).
    ``clock`` tells the time for the items and variables that depend on it (``${prvs}``,
    ``${srs_encode}``, ``$tod_*`` ...); tests pin it with :class:`pymta.clock.FixedClock`.
    """

    config: Any = None                              # pymta.config.model.Config
    variables: dict[str, str] = field(default_factory=dict)
    acl_vars: dict[str, str] = field(default_factory=dict)
    headers: list[str] | None = None
    numbered: list[str] = field(default_factory=list)
    acl_runner: Callable[..., Any] | None = None
    lookup_cache: dict = field(default_factory=dict)
    clock: Clock = SYSTEM
    #: the envelope recipients of a message received without SMTP (for the
    #: non-SMTP ACL's ``verify = not_blind``); None where ``$recipients`` is enough
    recipients: list[str] | None = None
    #: expansion features locked out here (see :mod:`pymta.expand.forbid`): a user's
    #: filter file under forbid_filter_lookup, forbid_filter_run, ...
    forbid: frozenset[str] = frozenset()
    #: where warnings found while expanding go (a pymta.log.Logger or the session's
    #: log: ``.panic(text)``); None writes none.  SQL lookups log a tainted query that
    #: was not quoted, as Exim 4.96 does
    log: Any = None
    #: the configuration statement being expanded, for such warnings
    #: ("ACL warn, /etc/pymta.conf 10"); "" when not known
    where: str = ""

    def child(self, **variables: str) -> "ExpandContext":
        """A copy sharing acl_vars/headers/config with extra variables set."""
        merged = dict(self.variables)
        merged.update(variables)
        return ExpandContext(self.config, merged, self.acl_vars, self.headers,
                             list(self.numbered), self.acl_runner, self.lookup_cache,
                             self.clock, forbid=self.forbid, log=self.log,
                             where=self.where)
