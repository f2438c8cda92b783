"""Exim's printing characters, and how it shows the others.

Text from outside (what a client sent, header values, command arguments) is written
into log lines and some expansions with the characters that are not printing shown as
escapes, so a log line stays one line that a terminal shows as it is.  A printing
character is one from space to tilde; with the main option print_topbitchars, bytes
of 128 and above too.  The others are shown as a C escape where there is one (``\\n``,
``\\r``, ``\\b``, ``\\v``, ``\\f``, ``\\t``), else as a backslash and three octal
digits, a byte at a time.
"""
from __future__ import annotations

_C_ESCAPES = {10: b"\\n", 13: b"\\r", 8: b"\\b", 11: b"\\v", 12: b"\\f", 9: b"\\t"}

#: print_topbitchars of the configuration this process runs (set by configure_printing)
_topbit_printing = False


def configure_printing(print_topbitchars: bool) -> None:
    """Make the configuration's print_topbitchars the rule for this process."""
    global _topbit_printing
    _topbit_printing = bool(print_topbitchars)


def topbit_printing() -> bool:
    """Whether bytes of 128 and above count as printing (print_topbitchars)."""
    return _topbit_printing


def string_printing(text: str, *, tab: bool = True, c_escapes: bool = True,
                    escaped: str = "", encoding: str = "utf-8") -> str:
    """``text`` with its non-printing characters escaped.

    ``tab``: a tab is left as it is (else escaped); ``c_escapes``: the C escapes are
    used (else every non-printing byte is octal); ``escaped``: printing characters
    that get a backslash in front (a quoted field's quote and backslash).
    ``encoding``: how ``text`` maps to bytes ("latin-1" for text that holds one
    character per byte received)."""
    if text.isascii() and text.isprintable() and not any(c in text for c in escaped):
        return text
    topbit = _topbit_printing
    extra = escaped.encode("ascii")
    out = bytearray()
    for b in text.encode(encoding, "surrogateescape" if encoding == "utf-8" else "strict"):
        if 32 <= b < 127:
            if b in extra:
                out.append(92)
            out.append(b)
        elif (b == 9 and tab) or (b >= 128 and topbit):
            out.append(b)
        elif c_escapes and b in _C_ESCAPES:
            out += _C_ESCAPES[b]
        else:
            out += b"\\%03o" % b
    return out.decode(encoding, "surrogateescape" if encoding == "utf-8" else "strict")
