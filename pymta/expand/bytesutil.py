"""Exim strings are byte strings; pymta keeps them as ``str`` where bytes that are not
valid UTF-8 are carried as surrogate escapes.  These helpers convert both ways."""
from __future__ import annotations


def to_bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def from_bytes(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def normalise(s: str) -> str:
    """Re-join escaped bytes that together form valid UTF-8 (``\\xc3\\xa9`` -> é)."""
    for ch in s:
        if "\udc80" <= ch <= "\udcff":
            return from_bytes(to_bytes(s))
    return s


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_lower(s: str) -> str:
    """Lower-case ASCII letters only, as Exim's byte-wise tolower() in the C locale."""
    return s.translate(_LOWER) if not s.isascii() else s.lower()


def ascii_upper(s: str) -> str:
    """Upper-case ASCII letters only (so "ß" and "é" stay as they are)."""
    return s.translate(_UPPER) if not s.isascii() else s.upper()
