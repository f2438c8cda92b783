"""Parsing ACL text (inline ACLs and ACL files) into :class:`AclStatement` lists.

The configuration reader parses the ``begin acl`` section itself; this module handles the
other two sources Exim allows: an ACL option whose expanded value is inline ACL text, and an
ACL read from a file (a value starting with "/").  Lines are processed like configuration
lines: backslash continuation, blank lines and ``#`` comments ignored.

It also says which ACL conditions, modifiers and controls pymta implements: an Exim name
outside those tables is refused with "not supported in this version" wherever an ACL is read
(:func:`check_acl_item`), so no condition is accepted only to never match.
"""
from __future__ import annotations

from pymta.config.model import AclStatement, ConfigError, OptionSetting

VERBS = ("accept", "defer", "deny", "discard", "drop", "require", "warn")

#: Conditions and modifiers pymta acts on.
ACL_CONDITIONS = frozenset("""
    acl authenticated condition decode dkim_signers dkim_status dmarc_status dnslists
    domains encrypted hosts local_parts malware mime_regex ratelimit recipients regex
    seen sender_domains senders spam spf spf_guess verify""".split())
ACL_MODIFIERS = frozenset("""
    add_header continue control delay endpass log_message log_reject_target logwrite
    message queue remove_header set udpsend""".split())
#: Exim 4.96 conditions and modifiers pymta does not implement.
ACL_UNSUPPORTED: frozenset[str] = frozenset()
#: Every name Exim knows (anything else is "unknown", as in Exim).
ACL_ITEMS = ACL_CONDITIONS | ACL_MODIFIERS | ACL_UNSUPPORTED

#: Controls pymta acts on.
ACL_CONTROLS = frozenset("""
    debug dscp
    allow_auth_unadvertised caseful_local_part caselower_local_part cutthrough_delivery
    enforce_sync fakedefer fakereject freeze no_callout_flush no_delay_flush no_enforce_sync
    no_mbox_unspool no_multiline_responses no_pipelining queue queue_only submission
    dkim_disable_verify dmarc_disable_verify dmarc_enable_forensic
    suppress_local_fixups utf8_downconvert wellknown""".split())
#: Controls accepted although they change nothing, with the reason.
ACL_CONTROLS_IGNORED: dict[str, str] = {}
#: Exim controls that pymta does not implement.
ACL_CONTROLS_UNSUPPORTED: frozenset[str] = frozenset()
#: ``verify =`` kinds Exim has and pymta does not.
VERIFY_UNSUPPORTED: frozenset[str] = frozenset()
#: Options of address verification (``verify = recipient/...``) pymta does not have.
VERIFY_OPTIONS_UNSUPPORTED: frozenset[str] = frozenset()
#: Parameters of ``callout=`` pymta does not have.
CALLOUT_UNSUPPORTED: frozenset[str] = frozenset()

_NOT_SUPPORTED = "is not supported in this version of pymta"


def check_acl_item(name: str, value: str, file: str | None, line: int | None) -> None:
    """Refuse a condition, modifier, control or verify kind pymta does not implement.

    ``name`` is the bare item name (no "!"); values containing "$" are checked only for
    their literal text, since the rest is known only when expanded.
    """
    if name in ACL_UNSUPPORTED:
        raise ConfigError(f'error in ACL: ACL condition "{name}" {_NOT_SUPPORTED}', file,
                          line)
    word = value.strip().split("/", 1)[0].strip().lower()
    if "$" in word:
        return
    if name == "control" and word in ACL_CONTROLS_UNSUPPORTED:
        raise ConfigError(f'error in ACL: control "{word}" {_NOT_SUPPORTED}', file, line)
    if name == "verify" and word in VERIFY_UNSUPPORTED:
        raise ConfigError(f'error in ACL: "verify = {word}" {_NOT_SUPPORTED}', file, line)
    if name == "verify" and "$" not in value:
        for part in value.split("/")[1:]:
            option, _, params = part.strip().lower().partition("=")
            if option in VERIFY_OPTIONS_UNSUPPORTED:
                raise ConfigError(f'error in ACL: verify option "{option}" {_NOT_SUPPORTED}',
                                  file, line)
            if option == "callout" and CALLOUT_UNSUPPORTED & {
                    p.strip() for p in params.split(",")}:
                raise ConfigError(f'error in ACL: "callout=hold" {_NOT_SUPPORTED}',
                                  file, line)


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
                stmt.items.append(_checked_item(rest, file, lineno))
        else:
            if not statements:
                raise ConfigError(f"unknown ACL verb \"{word}\" in \"{stripped}\"", file, lineno)
            statements[-1].items.append(_checked_item(stripped, file, lineno))
    return statements


def _checked_item(text: str, file: str, lineno: int) -> OptionSetting:
    item = split_item(text)
    item.file, item.line = file, lineno
    check_acl_item(item.name.lstrip("!").split(" ")[0], item.value, file, lineno)
    return item
