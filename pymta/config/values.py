"""Typed values of main options that Exim 4.96 defines as expanded strings.

Several numeric options (message_size_limit, queue_run_max, ...) are expandable in 4.96, so
the configuration keeps their source text; these helpers expand and convert them at use.
"""
from __future__ import annotations

import functools
import os
from typing import Any

from pymta.config.model import ConfigError
from pymta.config.option_tables import MAIN_TABLE
from pymta.config.options import OptionSpec, parse_value


def default_log_file_path(spool: str) -> str:
    """Where the logs go when log_file_path is unset: ``<spool>/log/%slog``."""
    return os.path.join(spool, "log", "%slog")


def default_pid_file_path(spool: str) -> str:
    """The daemon's pid file when pid_file_path is unset."""
    return os.path.join(spool, "pymta-daemon.pid")


def main_option(config: Any, name: str, default: Any = None) -> Any:
    """A main option's value, or ``default`` when unset or when there is no config."""
    main = getattr(config, "main", None)
    if main is None:
        return default
    try:
        value = getattr(main, name)
    except (AttributeError, KeyError):
        return default
    return default if value is None else value


def main_opt(config: Any, name: str, default: Any = None) -> Any:
    """A main option's typed value; when it is unset (or ``config`` is a partial stand-in),
    ``default`` if given, else the option table's default."""
    value = main_option(config, name, None)
    if value is None:
        if default is not None:
            return default
        entry = MAIN_TABLE.get(name)
        value = entry[1] if entry is not None else None
    return value


def expanded_int(config: Any, name: str, ctx: Any = None, default: int = 0) -> int:
    """Expand the option ``name`` and read it as an integer with K/M/G suffixes.

    Raises ConfigError when the expansion fails or the result is not a number, so the
    caller can answer with a temporary error as Exim does.
    """
    raw = main_option(config, name, default)
    if isinstance(raw, int):
        return raw
    text = str(raw)
    if "$" in text or "\\" in text:
        from pymta.expand import expand_string
        from pymta.expand.context import ExpandContext
        try:
            text = expand_string(text, ctx if ctx is not None else ExpandContext(config=config))
        except Exception as exc:  # ExpandError/ExpandFail/ExpandDefer
            raise ConfigError(f"failed to expand {name}: {exc}") from exc
    return _parse_int_option(name, text.strip(), default)


@functools.lru_cache(maxsize=256)
def _parse_int_option(name: str, text: str, default: int) -> int:
    # Cached: constant option texts (the usual case) are read on every message.
    if not text:
        return default
    return int(parse_value(OptionSpec(name, "int", default), text))
