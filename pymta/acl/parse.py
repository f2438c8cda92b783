"""Parsing ACL text (inline ACLs and ACL files) into :class:`AclStatement` lists.

The configuration reader parses the ``begin acl`` section itself; this module handles the
other two sources Exim allows: an ACL option whose expanded value is inline ACL text, and an
ACL read from a file (a value starting with "/").  Lines are processed like configuration
lines: backslash continuation, blank lines and ``#`` comments ignored.
"""
from __future__ import annotations

from pymta.config.model import AclStatement, ConfigError, OptionSetting

VERBS = ("accept", "defer", "deny", "discard", "drop", "require", "warn")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations; drop comments and blank lines."""
    out: list[tuple[int, str]] = []
    pending: str | None = None
    start = 0
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip()
        if pending is not None:
            line = pending + line.lstrip()
        else:
            start = n
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = None
        out.append((start, line))
    if pending is not None and pending.strip():
        out.append((start, pending))
    return out


def split_item(text: str) -> OptionSetting:
    """Split one condition/modifier ``name = value`` (``endpass`` has no value).

    ``set acl_m0 = x`` keeps ``set acl_m0`` as the name so the variable is known.
    """
    text = text.strip()
    name, eq, value = text.partition("=")
    name = " ".join(name.split())
    if name.startswith("! "):
        name = "!" + name[2:]
    return OptionSetting(name=name, value=value.strip() if eq else "", file="", line=0)


def parse_acl_text(text: str, file: str = "inline ACL") -> list[AclStatement]:
    """Parse ACL statements from text (newlines separate items; a verb starts a statement).

    An inline ACL may also be written on one line (``accept hosts = 1.2.3.4``): the first
    word is the verb and the rest is its first condition or modifier.
    """
    statements: list[AclStatement] = []
    for lineno, line in _logical_lines(text):
        stripped = line.strip()
        word, _, rest = stripped.partition(" ")
        verb = word.lower()
        if verb in VERBS:
            stmt = AclStatement(verb=verb, file=file, line=lineno)
            statements.append(stmt)
            rest = rest.strip()
            if rest:
                item = split_item(rest)
                item.file, item.line = file, lineno
                stmt.items.append(item)
        else:
            if not statements:
                raise ConfigError(f"unknown ACL verb \"{word}\" in \"{stripped}\"", file, lineno)
            item = split_item(stripped)
            item.file, item.line = file, lineno
            statements[-1].items.append(item)
    return statements
