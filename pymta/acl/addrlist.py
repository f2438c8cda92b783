"""RFC 2822 address-list parsing for the header verify conditions.

:func:`parse_address_list` splits a header value (``To:``, ``From:`` ...) into its
addresses and checks each one's syntax the way Exim's header checks need: groups
(``name: a, b;``), display names, ``<route-addr>``, comments and quoted local parts.
"""
from __future__ import annotations

from dataclasses import dataclass

from pymta.rfc5322 import address_list_items, strip_comments

# Characters that cannot appear in an atom (RFC 2822 "specials" plus space).
_SPECIALS = set('()<>@,;:\\".[]')


@dataclass
class ParsedAddress:
    """One element of an address list: ``raw`` is the text as written (stripped);
    ``address`` the addr-spec without comments (None on error); ``error`` the reason."""

    raw: str
    address: str | None
    error: str | None = None
    qualified: bool = True


def _split_elements(text: str) -> list[tuple[str, str]]:
    """Top-level comma-separated elements (a semicolon ends one only when it closes a
    group) as (group label, text): a group label ``name:`` is not part of the address
    but Exim shows it in error messages."""
    return [(text[item.label_start:item.start], text[item.start:item.end])
            for item in address_list_items(text, semicolon_ends_item=False)]


def _take_word(s: str, i: int) -> tuple[str, int] | None:
    """An atom or quoted string starting at ``s[i]`` (after spaces) -> (text, next)."""
    while i < len(s) and s[i] in " \t":
        i += 1
    if i >= len(s):
        return None
    if s[i] == '"':
        j = i + 1
        while j < len(s):
            if s[j] == "\\":
                j += 2
                continue
            if s[j] == '"':
                return s[i:j + 1], j + 1
            j += 1
        return None
    j = i
    while j < len(s) and s[j] not in _SPECIALS and s[j] not in " \t" and ord(s[j]) >= 32:
        j += 1
    if j == i:
        return None
    return s[i:j], j


def _take_label(s: str, i: int, utf8: bool = True) -> tuple[str, int] | None:
    """A domain label (letters, digits, hyphens; non-ASCII when ``utf8``) at ``s[i]``
    after spaces."""
    i = _skip_space(s, i)
    j = i
    while j < len(s) and ((s[j].isascii() and (s[j].isalnum() or s[j] == "-"))
                          or (utf8 and ord(s[j]) > 127)):
        j += 1
    return (s[i:j], j) if j > i else None


def _skip_space(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t":
        i += 1
    return i


def _unmatched_quote(s: str, i: int) -> bool:
    i = _skip_space(s, i)
    return i < len(s) and s[i] == '"' and _take_word(s, i) is None


def _domain_ok(domain: str) -> bool:
    if domain.startswith("["):
        return True
    return all(label and label[0] != "-" and
               all(c.isalnum() or c in "-_" or ord(c) > 127 for c in label)
               for label in domain.split("."))


def parse_addr_spec(spec: str, end_newline: bool = True, *, strip_trailing_dot: bool = False,
                    utf8_domains: bool = True) -> tuple[str | None, str | None, bool]:
    """Check ``local-part[@domain]``: (address, error, qualified).  With
    ``strip_trailing_dot`` (the main option) a dot ending the domain is dropped; without
    ``utf8_domains`` a domain stops at its first non-ASCII character."""
    s = spec.strip()
    # An obsolete source route "@a,@b:" is skipped.
    if s.startswith("@") and ":" in s:
        s = s.split(":", 1)[1].strip()
    nl = "\\n" if end_newline else ""
    if s.startswith("@"):
        return None, ("no local part" if s[1:].strip() else "domain missing or malformed"), True
    parts: list[str] = []
    i = 0
    while True:
        w = _take_word(s, i)
        if w is None:
            if _unmatched_quote(s, i):
                return None, "unmatched doublequote in local part", True
            if parts and i < len(s) and s[i] in "@":
                break     # Exim tolerates a trailing dot in the local part
            if i < len(s) and s[i] == ".":
                i += 1    # ... and leading or doubled ones
                continue
            return None, "missing or malformed local part", True
        parts.append(w[0])
        i = _skip_space(s, w[1])
        if i < len(s) and s[i] == ".":
            i += 1
            continue
        break
    local = ".".join(parts)
    if i >= len(s):
        return local, None, False
    if s[i] != "@":
        if _take_word(s, i) is not None or s[i] == '"':
            return None, 'missing or malformed local part (expected word or "<")', True
        return None, f"malformed address: {s[i:]}{nl} may not follow {s[:i]}", True
    i = _skip_space(s, i + 1)
    if i < len(s) and s[i] == "[":
        j = s.find("]", i)
        if j < 0:
            return None, "malformed domain literal", True
        domain, i = s[i:j + 1], j + 1
    else:
        labels: list[str] = []
        while True:
            w = _take_label(s, i, utf8_domains)
            if w is None:
                return None, "domain missing or malformed", True
            labels.append(w[0])
            i = _skip_space(s, w[1])
            if i < len(s) and s[i] == ".":
                i += 1
                if strip_trailing_dot and _skip_space(s, i) >= len(s):
                    i = len(s)
                    break
                continue
            break
        domain = ".".join(labels)
        if not _domain_ok(domain):
            return None, "domain missing or malformed", True
    if i < len(s):
        return None, f"malformed address: {s[i:]}{nl} may not follow {s[:i]}", True
    return f"{local}@{domain}", None, True


def _top_level_lt(text: str) -> tuple[int, bool]:
    """Index of the first "<" outside quotes (-1 if none), and whether an "@" came first."""
    quote = False
    at = False
    for i, c in enumerate(text):
        if c == '"':
            quote = not quote
        elif quote:
            continue
        elif c == "<":
            return i, at
        elif c == "@":
            at = True
    return -1, at


def _parse_element(raw: str, strip: AddressSyntax) -> ParsedAddress:
    text = strip_comments(raw).strip()
    lt, at_first = _top_level_lt(text)
    if lt >= 0 and not at_first:
        if text[:lt].count('"') % 2:
            return ParsedAddress(raw, None, "unmatched doublequote in local part")
        extra = 0
        while strip.excess_angle_brackets and text[lt + 1 + extra:lt + 2 + extra] == "<":
            extra += 1          # redundant pairs of <> round the address
        gt = text.find(">", lt)
        inner = text[lt + 1 + extra:gt if gt >= 0 else len(text)]
        if not inner.strip():
            return ParsedAddress(raw, None, "missing or malformed local part")
        address, error, qualified = parse_addr_spec(
            inner, end_newline=False, strip_trailing_dot=strip.trailing_dot,
            utf8_domains=strip.utf8_domains)
        if error is None and gt >= 0 and extra:
            if text[gt + 1:gt + 1 + extra] == ">" * extra:
                gt += extra
            elif not text[gt + 1:].strip():
                gt = -1
        if error is None and gt < 0:
            error = "'>' missing at end of address"
        if error is None and text[gt + 1:].strip():
            rest = text[gt + 1:].strip()
            error = (f"malformed address: {rest}\\n may not follow "
                     f"{text[:len(text) - len(rest)]}")
        return ParsedAddress(raw, None if error else address, error, qualified)
    address, error, qualified = parse_addr_spec(text, strip_trailing_dot=strip.trailing_dot,
                                                utf8_domains=strip.utf8_domains)
    return ParsedAddress(raw, address, error, qualified)


@dataclass(frozen=True)
class AddressSyntax:
    """The main options strip_excess_angle_brackets, strip_trailing_dot and
    allow_utf8_domains (or an SMTPUTF8 message), as they apply to addresses in header
    lines.  ``utf8_domains`` defaults to true for callers that take any domain."""

    excess_angle_brackets: bool = False
    trailing_dot: bool = False
    utf8_domains: bool = True


NO_STRIP = AddressSyntax()


def parse_address_list(value: str, strip: AddressSyntax = NO_STRIP) -> list[ParsedAddress]:
    """Every non-empty element of an RFC 2822 address-list header value."""
    text = value.replace("\r", "").replace("\n", " ")
    out: list[ParsedAddress] = []
    for label, element in _split_elements(text):
        if not strip_comments(element).strip():
            continue     # empty elements and empty groups are allowed
        pa = _parse_element(element.strip(), strip)
        if label:
            pa.raw = f"{label.strip()} {pa.raw}"
        out.append(pa)
    return out


def parse_one_address(text: str) -> ParsedAddress:
    """One RFC 2822 address (phrase, brackets and comments allowed), as Exim's
    address extraction sees it: a second address after a comma is an error."""
    pa = _parse_element(text.strip(), NO_STRIP)
    if pa.error:
        pa.error = pa.error.replace("\\n", "")
    return pa
