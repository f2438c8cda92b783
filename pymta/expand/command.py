"""Exim's way of building a command from configuration text (pipe and lmtp transports,
queryprogram router): the text is split into words first and each word is expanded on
its own, so an expanded value can never add arguments or quoting; no word of the result
may be tainted."""
from __future__ import annotations

from typing import Any, Callable

from pymta.expand import ExpandError, ExpandFail, expand_string
from pymta.expand.evaluator import split_raw_command
from pymta.taint import is_tainted


class CommandExpansionFailed(Exception):
    """A word of the command did not expand; the message is Exim's."""


class CommandTainted(Exception):
    """An expanded word of the command is tainted; the message is Exim's."""


def command_argv(raw: str, ctx: Any, owner: str,
                 special: Callable[[str], list[str] | None] | None = None) -> list[str]:
    """The argument vector for ``raw``; ``owner`` names the driver in messages ("p
    transport", "q router").  ``special(word)`` may return the untainted arguments a
    word stands for ($pipe_addresses), used instead of expanding it."""
    argv: list[str] = []
    for word in split_raw_command(raw):
        replaced = special(word) if special is not None else None
        if replaced is not None:
            argv.extend(replaced)
            continue
        try:
            value = expand_string(word, ctx)
        except ExpandFail:
            raise CommandExpansionFailed(f'Expansion of "{word}" from command "{raw}" in '
                                         f"{owner} failed (forced)") from None
        except ExpandError as e:
            raise CommandExpansionFailed(f'Expansion of "{word}" from command "{raw}" in '
                                         f"{owner} failed: {e}") from None
        if is_tainted(value):
            raise CommandTainted(f"Tainted arg {len(argv)} for {owner} command: '{value}'")
        argv.append(value)
    return argv
