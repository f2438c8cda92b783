"""Writing to the logs an ACL names: ``logwrite = :main,reject: text`` and the
``log_reject_target`` modifier (spec 44.21).

:func:`write_to` puts one line in each named log when the log object can (the real
:class:`pymta.log.Logger` has ``to_logs``); stand-ins such as ``-bh``'s, which show every
line once, get it once.  :class:`TargetedLog` is a log whose ``reject`` goes where
``log_reject_target`` said.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from pymta.config.model import ConfigError

LOG_NAMES = ("main", "reject", "panic")


def parse_targets(text: str, what: str,
                  unknown: Callable[[str], None] | None = None) -> tuple[str, ...]:
    """The log names of a colon (logwrite: comma) separated list.  Another name is
    passed to ``unknown`` with Exim's text and left out (as Exim does), or is an ACL
    error when there is no ``unknown``."""
    names = [n.strip() for n in text.replace(",", ":").split(":") if n.strip()]
    for name in names:
        if name not in LOG_NAMES:
            if unknown is None:
                raise ConfigError(f'unknown log name "{name}" in "{what}"')
            unknown(f'unknown log name "{name}" in "{what}"')
    return tuple(n for n in LOG_NAMES if n in names)


def write_to(log: Any, targets: Iterable[str], text: str, msgid: str | None = None,
             **extra: Any) -> None:
    """One line in each log of ``targets``."""
    wanted = tuple(targets)
    if not wanted or log is None:
        return
    to_logs = getattr(log, "to_logs", None)
    if to_logs is not None:
        to_logs(wanted, text, msgid, **extra)
    elif wanted == ("panic",):
        log.panic(text, msgid)
    elif "reject" in wanted:
        log.reject(text, msgid)
    else:
        log.main(text, msgid)


class TargetedLog:
    """A log whose rejection lines go to the logs ``log_reject_target`` named."""

    def __init__(self, log: Any, targets: tuple[str, ...]):
        self.log = log
        self.targets = targets

    def reject(self, text: str, msgid: str | None = None, **extra: Any) -> None:
        write_to(self.log, self.targets, text, msgid, **extra)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)
