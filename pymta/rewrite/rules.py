"""Compiled rewrite rules: which addresses a rule applies to and how it behaves.

A rule of the ``begin rewrite`` section (or of a transport's headers_rewrite) is
``<pattern> <replacement> <flags>`` (Exim spec chapter 31).  The flags are read once
here into a :class:`Where` mask (the envelope fields and header lines the rule
rewrites) and the process flags q, R, w, Q.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

from pymta.config.model import ConfigError, RewriteRule


class Where(IntFlag):
    """The places an address can be rewritten in (one bit per flag letter)."""

    SENDER = 1          # s: Sender:
    FROM = 2            # f: From:
    TO = 4              # t: To:
    CC = 8              # c: Cc:
    BCC = 16            # b: Bcc:
    REPLY_TO = 32       # r: Reply-To:
    ENV_FROM = 64       # F: the envelope sender
    ENV_TO = 128        # T: the envelope recipients
    SMTP = 256          # S: the MAIL/RCPT data, at SMTP time
    HEADERS = SENDER | FROM | TO | CC | BCC | REPLY_TO
    ENVELOPE = ENV_FROM | ENV_TO
    ALL = HEADERS | ENVELOPE


_FLAG_WHERE = {
    "s": Where.SENDER, "f": Where.FROM, "t": Where.TO, "c": Where.CC, "b": Where.BCC,
    "r": Where.REPLY_TO, "F": Where.ENV_FROM, "T": Where.ENV_TO, "E": Where.ENVELOPE,
    "h": Where.HEADERS, "S": Where.SMTP,
}

# The names Exim uses for each place in -brw output and in "rewritten" log lines.
WHERE_NAMES = {
    Where.SENDER: "sender:", Where.FROM: "from:", Where.TO: "to:", Where.CC: "cc:",
    Where.BCC: "bcc:", Where.REPLY_TO: "reply-to:", Where.ENV_FROM: "env-from",
    Where.ENV_TO: "env-to",
}

# Header names (lower case) whose addresses the rules rewrite; a Resent- version
# counts as the header itself ("h" means all of these).
HEADER_WHERE = {
    "sender": Where.SENDER, "from": Where.FROM, "to": Where.TO, "cc": Where.CC,
    "bcc": Where.BCC, "reply-to": Where.REPLY_TO,
}


def header_where(name: str) -> Where | None:
    """The place a header line of this name is, or None if rules never rewrite it."""
    key = name.strip().lower()
    if key.startswith("resent-"):
        key = key[len("resent-"):]
    return HEADER_WHERE.get(key)


@dataclass(frozen=True)
class Rule:
    """One compiled rewriting rule; ``number`` counts from 1 in its list (log lines
    name the rule by it)."""

    number: int
    pattern: str
    replacement: str
    where: Where
    quit: bool = False          # q: no further rules once this one matched
    repeat: bool = False        # R: apply again to its own result, up to 10 times
    whole: bool = False         # w: in headers replace the whole address item
    qualify: bool = False       # Q: an unqualified result gets qualify_recipient
    file: str = ""
    line: int = 0

    @property
    def smtp(self) -> bool:
        """S: the rule applies to MAIL/RCPT data at SMTP time."""
        return bool(self.where & Where.SMTP)


def compile_rule(rule: RewriteRule, number: int, transport: bool = False) -> Rule:
    """Check and compile one rule; ``transport`` for headers_rewrite (headers only)."""
    where = Where(0)
    for ch in rule.flags:
        where |= _FLAG_WHERE.get(ch, Where(0))
    if transport:
        if where & (Where.ENVELOPE | Where.SMTP):
            raise ConfigError("rewrite rule specifies a non-header rewrite - not allowed "
                              "at transport time -", rule.file, rule.line)
        if not where:
            where = Where.HEADERS
    elif not where:
        where = Where.ALL
    if where & Where.SMTP and not rule.pattern.removeprefix("\\N").startswith("^"):
        raise ConfigError("rewrite rule has the S flag but is not a regular expression",
                          rule.file, rule.line)
    return Rule(number, rule.pattern, rule.replacement, where,
                quit="q" in rule.flags, repeat="R" in rule.flags, whole="w" in rule.flags,
                qualify="Q" in rule.flags, file=rule.file, line=rule.line)


def compile_rules(rules: list[RewriteRule], transport: bool = False) -> tuple[Rule, ...]:
    """All rules of a list, numbered in order."""
    return tuple(compile_rule(r, i + 1, transport) for i, r in enumerate(rules))
