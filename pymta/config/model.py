"""The parsed configuration: immutable-by-convention objects built once at start-up.

Everything a running process needs from the configuration file is reachable from a
:class:`Config`.  Values of main options are already typed (bool, int, seconds, str);
expandable strings are kept as their source text and expanded by the caller with
:func:`pymta.expand.expand_string` at the moment of use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConfigError(Exception):
    """A configuration problem; ``str()`` names the file and line like Exim does."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.message = message
        self.file = file
        self.line = line
        where = ""
        if file is not None:
            where = f"{file}" + (f" line {line}" if line is not None else "") + ": "
        super().__init__(f"{where}{message}")

    def cli_text(self, program: str = "pymta") -> str:
        """The one-line message the command line prints, Exim style."""
        if self.file is None:
            return f"{program}: configuration error: {self.message}"
        where = self.file + (f" line {self.line}" if self.line is not None else "")
        return f"{program}: error in configuration file {where}: {self.message}"


@dataclass
class OptionSetting:
    """One ``name = value`` line as written in the file (value still unparsed)."""

    name: str
    value: str
    file: str
    line: int
    raw: str = ""                 # the whole logical line (used to re-parse driver options)


@dataclass
class DriverInstance:
    """A router, transport or authenticator instance from its section.

    ``options`` maps option name to its typed value after the driver class's option table
    validated it; ``settings`` keeps the raw lines (for error messages and -bP).
    ``driver_class`` is the registered class for ``driver =``; ``obj`` is the instantiated
    driver, created by the config loader (see :mod:`pymta.drivers`).
    """

    kind: str                     # "router" | "transport" | "authenticator"
    name: str
    driver: str
    settings: list[OptionSetting] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    file: str = ""
    line: int = 0
    obj: Any = None
    driver_class: Any = None      # registered class, or None when only the tables know it
    explicit: set = field(default_factory=set)   # option names set in the file
    hidden: set = field(default_factory=set)     # option names -bP must not display


@dataclass
class AclStatement:
    """One ACL statement: a verb followed by conditions and modifiers, in order."""

    verb: str                     # accept deny defer discard drop require warn
    items: list[OptionSetting] = field(default_factory=list)   # name = value, in file order
    file: str = ""
    #: the last physical line of the verb's logical line (as Exim names it)
    line: int = 0


@dataclass
class RetryRule:
    """One line of the retry section: pattern, error, and the F/G/H rule chain."""

    pattern: str
    error: str                    # "*" or e.g. "rcpt_4xx", "timeout", "quota"
    senders: str | None
    # (kind, cutoff_seconds, params): kind "F" -> (interval,), "G" -> (interval, factor),
    # "H" -> (interval, factor) as in the Exim spec chapter "Retry configuration"
    rules: list[tuple[str, int, tuple]] = field(default_factory=list)
    file: str = ""
    line: int = 0


@dataclass
class RewriteRule:
    pattern: str
    replacement: str
    flags: str
    file: str = ""
    line: int = 0


@dataclass
class Config:
    """The whole configuration.

    ``main`` is a :class:`MainOptions` (attribute access by Exim option name).
    ``named_lists`` maps "domain"/"host"/"address"/"localpart" to {name: list text}.
    ``acls`` maps ACL name to its statements.  ``routers`` keep file order;
    ``transports`` and ``authenticators`` are by name.
    """

    filename: str
    main: Any                     # pymta.config.main_options.MainOptions
    macros: dict[str, str] = field(default_factory=dict)
    named_lists: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"domain": {}, "host": {}, "address": {}, "localpart": {}})
    #: named lists declared "domainlist_cache" and the like, by kind
    cached_lists: dict[str, set[str]] = field(default_factory=dict)
    acls: dict[str, list[AclStatement]] = field(default_factory=dict)
    routers: list[DriverInstance] = field(default_factory=list)
    transports: dict[str, DriverInstance] = field(default_factory=dict)
    authenticators: dict[str, DriverInstance] = field(default_factory=dict)
    retry_rules: list[RetryRule] = field(default_factory=list)
    rewrite_rules: list[RewriteRule] = field(default_factory=list)
