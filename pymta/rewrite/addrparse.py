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
from pymta.rfc5322 import address_list_items, strip_comments


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
    for item in address_list_items(value):
        start, end = _trim(value, item.start, item.end)
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
        address = "".join(strip_comments(value[a_start:a_end]).split())
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
