"""Finding the addresses in a header line, for rewriting them in place.

A header such as ``To: Ford <fp42@x.example>, b@y (Bee)`` is a list of address
items separated by top-level commas (groups ``name: a, b;`` allowed).  Rewriting
changes only the working address of an item -- inside the angle brackets, or the
bare addr-spec -- and leaves phrases and comments alone, unless a ``w`` rule
replaces the whole item.
"""
from __future__ import annotations

from dataclasses import dataclass

from pymta.expand.operators import parse_address


@dataclass(frozen=True)
class AddressItem:
    """One address of a header value: ``start``/``end`` delimit the whole item
    (without surrounding white space), ``addr_start``/``addr_end`` its working
    address, and ``address`` is that address without comments or white space."""

    start: int
    end: int
    addr_start: int
    addr_end: int
    address: str


def _split_items(value: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level item, split at commas (and group syntax)."""
    spans: list[tuple[int, int]] = []
    start = 0
    depth = 0
    quote = angle = bracket = False
    seen_addr = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == "\\" and i + 1 < n:
            i += 2
            continue
        if quote:
            quote = c != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(c, 0)
        elif bracket:
            bracket = c != "]"
        elif c == '"':
            quote = True
        elif c == "(":
            depth = 1
        elif c == "[":
            bracket = True
        elif c == "<":
            angle = True
            seen_addr = True
        elif c == ">":
            angle = False
        elif c == "@":
            seen_addr = True
        elif not angle and c in ",;":
            spans.append((start, i))
            start, seen_addr = i + 1, False
        elif not angle and c == ":" and not seen_addr:
            start = i + 1                    # "group-name:" is not an address
        i += 1
    spans.append((start, n))
    return spans


def _strip_comments(text: str) -> str:
    out: list[str] = []
    depth = 0
    quote = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            if not depth:
                out.append(text[i:i + 2])
            i += 2
            continue
        if quote:
            out.append(c)
            quote = c != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(c, 0)
        elif c == "(":
            depth = 1
        else:
            out.append(c)
            quote = c == '"'
        i += 1
    return "".join(out)


def _trim(value: str, start: int, end: int) -> tuple[int, int]:
    while start < end and value[start] in " \t\r\n":
        start += 1
    while end > start and value[end - 1] in " \t\r\n":
        end -= 1
    return start, end


def _angle(value: str, start: int, end: int) -> tuple[int, int] | None:
    """The span inside the item's top-level <...>, if it has one."""
    quote = False
    depth = 0
    for i in range(start, end):
        c = value[i]
        if quote:
            quote = c != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(c, 0)
        elif c == '"':
            quote = True
        elif c == "(":
            depth = 1
        elif c == "<":
            gt = value.find(">", i, end)
            return (i + 1, gt) if gt >= 0 else None
    return None


def address_items(value: str) -> list[AddressItem]:
    """The address items of a header value (the text after the colon)."""
    items: list[AddressItem] = []
    for s, e in _split_items(value):
        start, end = _trim(value, s, e)
        if start >= end:
            continue
        inner = _angle(value, start, end)
        if inner is not None:
            a_start, a_end = _trim(value, *inner)
        else:
            a_start, a_end = start, end
            # a trailing comment is not part of the working address
            while a_end > a_start and value[a_end - 1] == ")":
                opened = value.rfind("(", a_start, a_end)
                if opened < 0:
                    break
                a_start, a_end = _trim(value, a_start, opened)
        address = "".join(_strip_comments(value[a_start:a_end]).split())
        if inner is not None and ":" in address:      # an obsolete source route
            address = address.rsplit(":", 1)[1]
        if address:
            items.append(AddressItem(start, end, a_start, a_end, address))
    return items


def working_address(text: str) -> tuple[str | None, str]:
    """The working address of one complete RFC 2822 address (phrase, brackets and
    comments allowed): (address, "") or (None, why not)."""
    address = parse_address(text)
    if not address:
        return None, f"malformed address: {text}"
    return address, ""
