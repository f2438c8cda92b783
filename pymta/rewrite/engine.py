"""Applying rewrite rules to one address (Exim spec chapter 31, "Address rewriting").

:class:`Rewriter` holds a rule list and what the rules need around them (the
configuration for expansions and lookups, a logger, qualify_recipient).  Its
:meth:`Rewriter.address` runs the rules in order over an address for one place
(:class:`~pymta.rewrite.rules.Where`); :meth:`Rewriter.smtp` runs the S rules over the
data of a MAIL or RCPT command.

A rule's pattern is a one-item address list, expanded first; the match sets ``$0``..
``$n`` as Exim does for rewriting (the parts matched by ``*`` and the wild and fixed
parts of a partial domain lookup, or a regular expression's groups).  The
replacement is expanded with ``$local_part`` and ``$domain`` of the address being
rewritten; a forced failure abandons that rule only, any other expansion error the
whole rewrite (with a paniclog entry).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymta import match
from pymta.debuglog import debug
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.errors import ExpandError, ExpandFail
from pymta.expand.operators import op_rfc2047
from pymta.lookups import parse_lookup_type
from pymta.rewrite.addrparse import address_items, working_address
from pymta.rewrite.rules import WHERE_NAMES, Rule, Where
from pymta.taint import is_tainted, taint

# A rule with R is re-applied to its own result at most this many times.
MAX_REPEATS = 10

_LOOKUP_ITEM = re.compile(r"^(?:partial\d*(?:-|\([^)]*\)))?[a-z][a-z0-9_]*(?:\*@?)?(?:,[^;]*)?;")


class RewriteLog(Protocol):
    """Where rewriting reports: "rewritten" lines (main log) and failures (paniclog)."""

    def main(self, text: str, msgid: str | None = None) -> None: ...

    def panic(self, text: str, msgid: str | None = None) -> None: ...


@dataclass
class Outcome:
    """The result of rewriting one address: ``address`` is the working address;
    ``whole`` is the complete replacement when a ``w`` rule made the last change
    (for a header, it replaces the whole address item)."""

    address: str
    whole: str | None = None

    @property
    def text(self) -> str:
        """What goes into a header line in place of the address."""
        return self.whole if self.whole is not None else self.address


def _like(source: str, part: str) -> str:
    """``part`` of ``source``, tainted when the source is (slicing loses the mark)."""
    return taint(part) if is_tainted(source) else part


def _encoded_phrase(text: str, ctx: ExpandContext) -> str:
    """A ``w`` replacement whose phrase (the text before "<") has characters outside
    printable ASCII gets it RFC 2047 encoded in headers_charset, as Exim does."""
    lt = text.find("<")
    if lt <= 0:
        return text
    phrase = text[:lt].rstrip()
    if all(32 <= ord(c) <= 126 or c == "\t" for c in phrase):
        return text
    return op_rfc2047(phrase, ctx) + text[len(phrase):]


def _qualified_in(whole: str, qualified: str) -> str:
    """A whole (w) replacement with its working address replaced by ``qualified``."""
    items = address_items(whole)
    if len(items) != 1:
        return qualified
    item = items[0]
    return whole[:item.addr_start] + qualified + whole[item.addr_end:]


def split_address(address: str) -> tuple[str, str]:
    """(local part, domain) at the last "@"; the domain is "" when there is none."""
    at = address.rfind("@")
    if at < 0:
        return address, ""
    return _like(address, address[:at]), _like(address, address[at + 1:])


@dataclass
class Rewriter:
    """A list of compiled rules and the environment they run in.

    ``variables`` are the expansion variables of the message being received (the
    replacement may use ``$sender_host_address`` and the like); ``log_rewrites`` is
    log_selector's address_rewrite; ``msgid`` prefixes the log lines once known.
    """

    rules: tuple[Rule, ...]
    config: Any
    log: RewriteLog | None = None
    log_rewrites: bool = False
    qualify_recipient: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    msgid: str | None = None

    # -- logging -----------------------------------------------------------------------
    def _panic(self, text: str) -> None:
        if self.log is not None:
            self.log.panic(text, self.msgid)

    def _rewritten(self, old: str, where_name: str, new: str, rule: Rule) -> None:
        # -d+rewrite writes the line too, whatever log_selector says (as Exim)
        if (self.log_rewrites or debug.rewrite) and self.log is not None:
            self.log.main(f'"{old}" from {where_name} rewritten as "{new}" '
                          f"by rule {rule.number}", self.msgid)

    def _context(self, **variables: str) -> ExpandContext:
        merged = dict(self.variables)
        merged.update(variables)
        return ExpandContext(self.config, merged, log=self.log)

    # -- matching ----------------------------------------------------------------------
    def _pattern(self, rule: Rule, ctx: ExpandContext, purpose: str) -> str | None:
        try:
            return expand_string(rule.pattern, ctx)
        except ExpandFail:
            return None
        except ExpandError as exc:
            self._panic(f'failed to expand "{rule.pattern}" while checking {purpose}: {exc}')
            return None

    def _match(self, rule: Rule, address: str, ctx: ExpandContext) -> list[str] | None:
        """The numbered variables ($0 first) if the rule's pattern matches, else None."""
        pattern = self._pattern(rule, ctx, "a list")
        if pattern is None:
            return None
        local, domain = split_address(address)
        if pattern.startswith("^"):
            # local parts are caseful, domains are not (the spec's "Rewriting patterns")
            subject = f"{local}@{domain.lower()}" if domain else local
            try:
                m = match.compiled_regex(pattern, False).search(subject)
            except ExpandError as exc:
                self._panic(f"{exc} while checking a rewrite pattern")
                return None
            if m is None:
                return None
            return [address] + [_like(address, g or "") for g in m.groups()]
        if "@" in pattern and not pattern.startswith("@@") \
                and not _LOOKUP_ITEM.match(pattern) and not pattern.startswith("+"):
            found = self._local_at_domain(pattern, address, local, domain, rule, ctx)
            if debug.lists:
                answer = f'yes (matched "{pattern}")' if found is not None \
                    else "no (end of list)"
                debug.printf(f'{address} in "{pattern}"? {answer}')
            return found
        try:
            ok = match.match_address(address, pattern, ctx, expand=False)
        except ExpandFail:
            return None
        except ExpandError as exc:
            self._panic(f'failed to expand "{rule.pattern}" while checking a list: {exc}')
            return None
        if not ok:
            return None
        return [address] + list(ctx.numbered[1:])

    def _local_at_domain(self, pattern: str, address: str, local: str, domain: str,
                         rule: Rule, ctx: ExpandContext) -> list[str] | None:
        """A LOCAL@DOMAIN pattern (local part literal or *suffix, any domain item)."""
        ilocal, _, idomain = pattern.partition("@")
        numbered = [address]
        if ilocal.startswith("*"):
            if not local.endswith(ilocal[1:]):
                return None
            numbered.append(_like(address, local[:len(local) - len(ilocal) + 1]))
        elif local != ilocal:
            return None
        try:
            wild = self._domain(domain, idomain, ctx)
        except ExpandFail:
            return None
        except ExpandError as exc:          # a lookup deferred or went wrong
            self._panic(f'failed to expand "{rule.pattern}" while checking a list: '
                        f"{exc}")
            return None
        if wild is None:
            return None
        return numbered + [_like(address, w) for w in wild]

    def _domain(self, domain: str, item: str, ctx: ExpandContext) -> list[str] | None:
        """Match the domain half of a local@domain pattern: None for no match, else the
        numbered values it contributes."""
        if item.startswith("*") and not _LOOKUP_ITEM.match(item):
            suffix = item[1:]
            if not domain.lower().endswith(suffix.lower()):
                return None
            return [domain[:len(domain) - len(suffix)]]
        if _LOOKUP_ITEM.match(item):
            spec = parse_lookup_type(item.partition(";")[0])
            ctx.variables.pop("_partial_match", None)
            if not match.match_domain(domain, item, ctx, expand=False, data_var=""):
                return None
            if spec.partial is None:
                return []
            key = ctx.variables.pop("_partial_match", None)
            if key is None:         # the full domain itself was found
                return ["", domain]
            fixed = key[len(spec.affix):] if key.startswith(spec.affix) else ""
            wild = domain[:len(domain) - len(fixed)].rstrip(".") if fixed else domain
            return [wild, fixed]
        if not match.match_domain(domain, item, ctx, expand=False, data_var=""):
            return None
        return []

    # -- rewriting ---------------------------------------------------------------------
    def address(self, address: str, where: Where) -> Outcome:
        """Rewrite ``address`` (a working address, no phrase) as found in ``where``."""
        result = Outcome(address)
        where_name = WHERE_NAMES.get(where, "")
        for rule in self.rules:
            if not rule.where & where:
                continue
            changes = 0
            while True:
                current = result.address
                local, domain = split_address(current)
                ctx = self._context(local_part=local, domain=domain)
                numbered = self._match(rule, current, ctx)
                if numbered is None:
                    if changes and rule.quit:
                        return result
                    break
                if rule.replacement == "*":
                    return result           # never rewritten: no further rules
                ctx.numbered = numbered
                try:
                    new = expand_string(rule.replacement, ctx)
                except ExpandFail:
                    if rule.quit:
                        return result
                    break
                except ExpandError as exc:
                    self._panic(f"Expansion of {rule.replacement} failed while rewriting: "
                                f"{exc}")
                    return Outcome(address)
                whole = None
                if rule.whole:
                    whole = _encoded_phrase(new, ctx)
                    extracted, error = working_address(new)
                    if extracted is None:
                        self._panic(f"Rewrite of {current} yielded unparseable address: "
                                    f"{error} in address {new}")
                        break
                    new = extracted
                if "@" not in new:
                    if rule.qualify and self.qualify_recipient:
                        new = f"{new}@{self.qualify_recipient}"
                        if whole is not None:
                            whole = _qualified_in(whole, new)
                    else:
                        self._panic(f'Rewrite of {current} yielded unqualified address '
                                    f'"{new}"')
                        break
                self._rewritten(current, where_name, whole if whole is not None else new,
                                rule)
                result = Outcome(new, whole)
                changes += 1
                if rule.repeat and changes <= MAX_REPEATS:
                    continue            # the rule once, then up to ten repeats
                if rule.quit:
                    return result
                break
        return result

    def smtp(self, data: str, sender: bool) -> str:
        """Apply the S rules to the data of a MAIL (``sender``) or RCPT command.

        The pattern is matched against the whole command data, angle brackets and all;
        the result replaces it.  Exim 4.96 names both commands "smtp recipient" in
        its log line at SMTP time (and "smtp sender" for MAIL only under -brw), so the
        caller says which name it wants through ``sender``.
        """
        current = data
        where_name = "smtp sender" if sender else "smtp recipient"
        for rule in self.rules:
            if not rule.smtp:
                continue
            ctx = self._context()
            pattern = self._pattern(rule, ctx, "for SMTP rewriting")
            if pattern is None:
                continue
            try:
                m = match.compiled_regex(pattern, False).search(current)
            except ExpandError as exc:
                self._panic(f"{exc} while checking for SMTP rewriting")
                continue
            if m is None:
                continue
            if rule.replacement == "*":
                return current
            ctx.numbered = [current] + [_like(current, g or "") for g in m.groups()]
            try:
                new = expand_string(rule.replacement, ctx)
            except ExpandFail:
                if rule.quit:
                    return current
                continue
            except ExpandError as exc:
                self._panic(f"Expansion of {rule.replacement} failed while rewriting: "
                            f"{exc}")
                return data
            if "@" not in new and new != "<>":
                self._panic(f'Rewrite of {current} yielded unqualified address "{new}"')
                continue
            self._rewritten(current, where_name, new, rule)
            current = new
            if rule.quit:
                break
        return current

    @property
    def has_smtp_rules(self) -> bool:
        """Whether any rule has the S flag."""
        return any(r.smtp for r in self.rules)

    @property
    def has_other_rules(self) -> bool:
        """Whether any rule applies to envelope or header addresses."""
        return any(r.where & Where.ALL for r in self.rules)


def rewrite_command_path(rewriter: Rewriter, arg: str) -> str:
    """The argument of MAIL FROM: or RCPT TO: with the S rules applied to its path
    (angle brackets included); the ESMTP parameters after it are kept.  Exim names
    both commands "smtp recipient" in its log line."""
    arg = arg.strip()
    if arg.startswith("<"):
        end = arg.find(">")
        if end < 0:
            return arg
        path, rest = arg[:end + 1], arg[end + 1:]
    else:
        path, sep, rest = arg.partition(" ")
        rest = sep + rest
    return rewriter.smtp(taint(path), sender=False) + rest
