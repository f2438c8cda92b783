"""Scanning RFC 5322 address lists: where their items are, and their text without
comments.

Header checks (``verify = header_syntax``, pymta/acl/addrlist.py) and header rewriting
(pymta/rewrite/addrparse.py) both split a header's value at its top-level commas --
those outside quoted strings, comments, domain literals and angle brackets -- and
both skip a group's ``name:`` label.  They differ in one point, which Exim's two code
paths differ in too: for rewriting a semicolon always ends an item, for the syntax
check only one that closes a group does.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ListItem:
    """One top-level item: ``text[start:end]``; ``label_start`` is where the label of
    a group opened by this item begins (``label_start == start`` without one), so
    ``text[label_start:start]`` is that label with its colon."""

    label_start: int
    start: int
    end: int


def address_list_items(text: str, *, semicolon_ends_item: bool = True) -> list[ListItem]:
    """The top-level items of an address list.  ``semicolon_ends_item`` false: a
    semicolon ends an item only when it closes a group."""
    items: list[ListItem] = []
    item_start = label_start = 0
    in_group = False
    quote = angle = bracket = False
    depth = 0
    seen_address = False                 # "<" or "@": a colon after it is no label
    i, n = 0, len(text)
    while i < n:
        c = text[i]
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
            angle = seen_address = True
        elif c == ">":
            angle = False
        elif c == "@":
            seen_address = True
        elif not angle and (c == "," or (c == ";" and (semicolon_ends_item or in_group))):
            items.append(ListItem(label_start, item_start, i))
            item_start = label_start = i + 1
            seen_address = False
            in_group = in_group and c == ","
        elif not angle and c == ":" and not seen_address:
            # "group-name:" opens a group; the name is not an address
            label_start, item_start = item_start, i + 1
            in_group = True
        i += 1
    items.append(ListItem(label_start, item_start, n))
    return items


def strip_comments(text: str) -> str:
    """``text`` with each (comment) replaced by a space, quoted strings and quoted
    pairs kept as they are."""
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
            out.append(" ")
        else:
            out.append(c)
            quote = c == '"'
        i += 1
    return "".join(out)
