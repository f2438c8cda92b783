"""RFC 3461 xtext, the encoding of the DSN parameters ENVID= and ORCPT= and of AUTH=.

Printable ASCII other than "+" and "=" stands for itself; any other byte is written
``+HH`` (two upper-case hex digits).
"""
from __future__ import annotations

import re

_PLAIN = re.compile(r"[!-*,-<>-~]")
_HEX = frozenset("0123456789abcdefABCDEF")


def xtext_encode(text: str) -> str:
    """``text`` as xtext (non-ASCII as its UTF-8 bytes)."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        out.append(ch if byte < 128 and _PLAIN.fullmatch(ch) else f"+{byte:02X}")
    return "".join(out)


def xtext_decode(text: str) -> str | None:
    """Decode xtext as Exim does: ``+HH`` is a hex-coded byte; any other character must
    be printable ASCII other than "=".  None when ``text`` is not valid xtext."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if ord(c) < 33 or ord(c) > 127 or c == "=":
            return None
        if c == "+":
            pair = text[i + 1:i + 3]
            if len(pair) != 2 or any(ch not in _HEX for ch in pair):
                return None
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(ord(c))
        i += 1
    return out.decode("utf-8", "surrogateescape")
