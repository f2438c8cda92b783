"""Splitting RFC 5322 address lists (pymta/rfc5322.py), shared by the header syntax
check and header rewriting."""
from __future__ import annotations

from pymta.rfc5322 import address_list_items, strip_comments


def _texts(text: str, **kw) -> list[tuple[str, str]]:
    return [(text[i.label_start:i.start], text[i.start:i.end])
            for i in address_list_items(text, **kw)]


def test_top_level_commas_only():
    text = '"Doe, J" <j@x.example>, (a, comment) b@y.example, c@[1.2.3.4,5], <d@z>'
    assert [t for _, t in _texts(text)] == [
        '"Doe, J" <j@x.example>', " (a, comment) b@y.example", " c@[1.2.3.4,5]", " <d@z>"]
    # a quoted pair does not open a quoted string
    assert [t for _, t in _texts(r'a\"b@x, c@y')] == [r'a\"b@x', " c@y"]


def test_groups_and_semicolons():
    text = "friends: a@x, b@y; c@z; d@w"
    # rewriting: every semicolon ends an item
    assert _texts(text) == [("friends:", " a@x"), ("", " b@y"), ("", " c@z"), ("", " d@w")]
    # the syntax check: only the semicolon that closes the group
    assert _texts(text, semicolon_ends_item=False) == [
        ("friends:", " a@x"), ("", " b@y"), ("", " c@z; d@w")]
    # a colon after the address has started is no group label
    assert _texts("<a:b@x>, c@y") == [("", "<a:b@x>"), ("", " c@y")]


def test_strip_comments():
    assert strip_comments('a(x (nested) y)b "q(uoted)" \\(c') == 'a b "q(uoted)" \\(c'
