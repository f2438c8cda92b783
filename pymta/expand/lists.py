"""Exim list syntax: colon-separated by default, ``<c`` at the start picks another
separator, a doubled separator stands for one literal separator character."""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable

_WS = " \t\n\r\f\v"


def _can_separate(c: str) -> bool:
    """Exim's test for the character after a leading ``<``: ASCII punctuation or a
    control character (ispunct/iscntrl in the C locale; a tab, not a space)."""
    return c.isascii() and (not c.isalnum() and c != " " or not c.isprintable())


def list_separator(text: str, default: str = ":") -> tuple[str, str]:
    """Return (separator, remaining text) after an optional ``<c`` prefix."""
    i = 0
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    if i < n and text[i] == "<":
        if i + 1 == n:
            return "\x00", ""      # a lone "<": Exim takes the NUL after it, no items
        if _can_separate(text[i + 1]):
            return text[i + 1], text[i + 2:]
    return default, text


def split_list(text: str, default: str = ":") -> list[str]:
    """Split an Exim list into its items (leading/trailing whitespace removed)."""
    if not text:
        return []
    return list(_split_cached(str.__str__(text), default))


def nonempty_items(text: str | None, sep: str = ":") -> list[str]:
    """The non-empty items of an Exim list (``<x`` changes the separator, a doubled
    separator is a literal one); None or "" give no items."""
    if not text:
        return []
    return [item for item in split_list(str(text), sep) if item]


@lru_cache(maxsize=2048)
def _split_cached(text: str, default: str) -> tuple[str, ...]:
    return tuple(_split(text, default))


def _split(text: str, default: str) -> list[str]:
    sep, s = list_separator(text, default)
    return split_with(s, sep)


def split_with(s: str, sep: str) -> list[str]:
    """The items of a list whose separator is fixed (no ``<`` prefix is looked for)."""
    # a control-character separator is never doubled into data (Exim's sep_is_special)
    doubles = sep.isprintable()
    items: list[str] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _WS and s[i] != sep:
            i += 1
        if i >= n:
            break
        buf: list[str] = []
        while i < n:
            c = s[i]
            if c == sep:
                if doubles and i + 1 < n and s[i + 1] == sep:
                    buf.append(sep)
                    i += 2
                    continue
                break
            buf.append(c)
            i += 1
        item = "".join(buf)
        # trailing white space goes, but not a white space character after a backslash
        while item and item[-1] in _WS and not (len(item) > 1 and item[-2] == "\\"):
            item = item[:-1]
        items.append(item)
        if i >= n:
            break
        i += 1      # skip the separator
    return items


def join_list(items: list[str], sep: str = ":") -> str:
    """Join items into a list string, doubling separators inside items."""
    return sep.join(item.replace(sep, sep + sep) for item in items)


def word_in_list(word: str, items: Iterable[str]) -> bool:
    """A result list of the spf, dmarc_status ... conditions, read left to right:
    ``w`` matches ``word`` itself, ``!w`` any other word."""
    for item in items:
        item = item.strip()
        negated = item.startswith("!")
        listed = item[1:].strip() if negated else item
        if (listed == word) != negated:
            return True
    return False
