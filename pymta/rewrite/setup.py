"""Building the :class:`~pymta.rewrite.engine.Rewriter` for a configuration's
``begin rewrite`` section."""
from __future__ import annotations

import socket
import weakref
from typing import Any

from pymta.log import log_selected
from pymta.rewrite.engine import RewriteLog, Rewriter
from pymta.rewrite.rules import Rule, compile_rules

# Compiled once per loaded configuration: a process has one at a time (a reload
# brings a new Config object, which replaces the entry).  The configuration is held
# weakly, so a configuration used once (the daemon's warm-up) is not kept alive here.
_compiled: list[tuple[weakref.ref, tuple[Rule, ...]]] = []


def main_rules(config: Any) -> tuple[Rule, ...]:
    """The configuration's rewrite section, compiled."""
    if _compiled and _compiled[0][0]() is config:
        return _compiled[0][1]
    rules = compile_rules(list(getattr(config, "rewrite_rules", None) or []))
    try:
        _compiled[:] = [(weakref.ref(config), rules)]
    except TypeError:           # a stand-in that cannot be referenced weakly: no cache
        _compiled.clear()
    return rules


def qualify_recipient(config: Any) -> str:
    """qualify_recipient, defaulting to qualify_domain and then the host name."""
    main = getattr(config, "main", None)
    for name in ("qualify_recipient", "qualify_domain", "primary_hostname"):
        value = str(getattr(main, name, "") or "")
        if value:
            return value
    return socket.getfqdn()


def main_rewriter(config: Any, log: RewriteLog | None = None,
                  variables: dict[str, str] | None = None,
                  msgid: str | None = None) -> Rewriter | None:
    """A Rewriter over the rewrite section, or None when it has no rules.

    ``variables`` is used by reference (an SMTP session's variables change as the
    session goes on)."""
    rules = main_rules(config)
    if not rules:
        return None
    return Rewriter(rules, config, log, log_selected(config, "address_rewrite"),
                    qualify_recipient(config),
                    variables if variables is not None else {}, msgid)

