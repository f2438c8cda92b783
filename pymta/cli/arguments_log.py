"""log_selector +arguments: the command line a pymta process was called with, as the
first main log line it writes (``cwd=/dir 4 args: pymta -C /conf -bd``).

As Exim 4.96 writes it: the count includes the program name; an argument with white
space in it is put in double quotes (nothing inside is escaped), and bytes outside
printable ASCII but tab are octal escapes.  The test modes that only answer questions
(-bt, -bv, -bP, -bh, -be, -bf, -brt, -brw) write no such line.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from pymta.log import Logger, log_selected
from pymta.printing import string_printing

#: The actions that do not write the line (Exim's testing modes).
QUIET_ACTIONS = frozenset("bt bv bvs bP bh be bf brt brw z version help".split())


def _shown(arg: str) -> str:
    # octal escapes only (no C escapes), and quotes round an argument with white space
    text = string_printing(arg, c_escapes=False)
    return f'"{text}"' if (" " in arg or "\t" in arg) else text


def arguments_line(cwd: str, argv: Sequence[str]) -> str:
    """The text of the line for ``argv`` (program name first) run in ``cwd``."""
    return f"cwd={cwd} {len(argv)} args: " + " ".join(_shown(a) for a in argv)


def log_arguments(action: str, argv: Sequence[str], load: Callable[[], Any]) -> None:
    """Write the line when the configuration (``load()``) selects +arguments."""
    if action in QUIET_ACTIONS:
        return
    config = load()
    if not log_selected(config, "arguments"):
        return
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "?"
    Logger(config).main(arguments_line(cwd, argv))
