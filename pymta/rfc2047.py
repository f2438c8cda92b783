"""RFC 2047 encoded-words in header lines (``=?charset?Q?caf=C3=A9?=``), decoded as Exim
decodes them for ``$h_``, ``$bh_``, ``${rfc2047d:}``, ``$mime_filename`` and the T= field,
and made as Exim makes them (:func:`encode`).

* Only the encoded-words change; every other character, white space and folding
  included, stays as it is.  White space that only separates two encoded-words is
  dropped (RFC 2047 section 6.2).
* With ``check_length`` (the main option check_rfc2047_length, true by default) a word
  longer than the RFC's 75 characters is not an encoded-word and stays as written.
* A word whose B or Q text cannot be decoded stays as written.  Converted to UTF-8,
  a UTF-8 word's bytes are taken as they are, and from the first byte that does not
  convert the rest of a word is kept as it is (as Exim's iconv loop does).
* Converted to text, a word in a charset Python does not know raises
  :class:`CharsetError`; the callers decide (``$h_`` keeps the header as it is,
  ``${rfc2047d:}`` fails).  Unconverted (``$bh_``) the word's bytes are kept.
"""
from __future__ import annotations

import base64
import codecs
from collections.abc import Callable

#: RFC 2047's limit on the length of one encoded-word.
MAX_WORD_LENGTH = 75

class CharsetError(ValueError):
    """An encoded-word names a charset that cannot be converted to text."""

    def __init__(self, charset: str) -> None:
        super().__init__(charset)
        self.charset = charset


_SPACE = b" \t\n\v\f\r"
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _q_bytes(data: bytes) -> bytes | None:
    """Q text decoded; None when malformed (a "=" without two hex digits, a blank)."""
    out = bytearray()
    i = 0
    while i < len(data):
        c = data[i]
        if c == 0x5F:                               # "_"
            out.append(0x20)
        elif c == 0x3D:                             # "="
            pair = data[i + 1:i + 3]
            if len(pair) < 2 or not _HEX.issuperset(pair):
                return None
            out.append(int(pair, 16))
            i += 2
        elif c in (0x20, 0x09):
            return None
        else:
            out.append(c)
        i += 1
    return bytes(out)


def _b_bytes(data: bytes) -> bytes | None:
    """B text decoded; None when malformed.  White space is skipped; the groups of four
    must be whole, the last perhaps padded, and nothing may follow the padding."""
    data = data.translate(None, _SPACE)
    body = data.rstrip(b"=")
    if len(data) % 4 or len(data) - len(body) > 2 or not _B64.issuperset(body):
        return None
    return base64.b64decode(data)


def _next_word(text: bytes, pos: int, check_length: bool
               ) -> tuple[int, int, bytes, bytes] | None:
    """The next encoded-word at or after ``pos``, found as Exim finds it: "=?", the
    charset up to a "?", one encoding letter and "?", the text up to the next "?=";
    one that is too long or does not decode is skipped and the search goes on from
    just after its "=?".  (start, end, charset, decoded bytes), or None."""
    while True:
        start = text.find(b"=?", pos)
        if start < 0:
            return None
        q1 = text.find(b"?", start + 2)
        q2 = text.find(b"?", q1 + 1) if q1 >= 0 else -1
        end = text.find(b"?=", q2 + 1) if q2 >= 0 else -1
        if end < 0:
            return None
        pos = start + 2
        if (check_length and end + 2 - start > MAX_WORD_LENGTH) or q2 - q1 != 2:
            continue
        encoding = text[q1 + 1:q2].upper()
        data = text[q2 + 1:end]
        raw = _b_bytes(data) if encoding == b"B" else _q_bytes(data) if encoding == b"Q" \
            else None
        if raw is not None:
            return start, end + 2, text[start + 2:q1], raw


def _to_utf8(charset: str, raw: bytes) -> bytes:
    """The word's bytes converted to UTF-8 as Exim converts them with iconv: nothing to
    do for UTF-8 itself; from the first byte that does not convert, the rest as it
    is; an empty charset is the C locale's (ASCII)."""
    if charset.lower() == "utf-8":
        return raw
    try:
        codec = codecs.lookup(charset or "ascii")
    except LookupError:
        raise CharsetError(charset) from None
    try:
        return raw.decode(codec.name).encode("utf-8", "surrogateescape")
    except UnicodeDecodeError as e:
        return raw[:e.start].decode(codec.name).encode("utf-8", "surrogateescape") + \
            raw[e.start:]


def decode(text: str, check_length: bool = True,
           from_bytes: Callable[[bytes], str] | None = None) -> str:
    """``text`` with its encoded-words decoded: to UTF-8 (raising :class:`CharsetError`
    for an unknown charset), or with ``from_bytes`` the bytes as they are, made a str
    by that function."""
    if "=?" not in text:
        return text
    data = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    pos = 0
    found = _next_word(data, 0, check_length)
    while found is not None:
        start, end, charset, raw = found
        out += data[pos:start]
        if from_bytes is None:
            raw = _to_utf8(charset.decode("utf-8", "surrogateescape"), raw)
        out += raw
        pos = end
        found = _next_word(data, pos, check_length)
        if found is not None and not data[pos:found[0]].strip(_SPACE):
            pos = found[0]          # white space between two encoded-words goes
    out += data[pos:]
    if from_bytes is not None:
        return from_bytes(bytes(out))
    return out.decode("utf-8", "surrogateescape")


def decode_or_keep(text: str, check_length: bool = True) -> str:
    """:func:`decode` to text; when a charset cannot be converted, ``text`` unchanged
    (what Exim's ``$h_`` gives for such a header)."""
    try:
        return decode(text, check_length)
    except CharsetError:
        return text


def check_length_of(config: object) -> bool:
    """The configuration's check_rfc2047_length (true when there is none)."""
    main = getattr(config, "main", None)
    value = getattr(main, "check_rfc2047_length", True) if main is not None else True
    return value is not False


# Q-encoded as well as the bytes outside printable ASCII (space becomes "_").
_Q_SPECIALS = frozenset(b'?=()<>@,;:\\".[]_')
# A word is closed once its text (after the first word, the "=?charset?Q?" too) is
# longer than this, though not after an odd number of encoded bytes in a row (Exim's
# way of keeping the two bytes of a character together; a longer sequence may still
# be split, as in Exim).
_Q_WORD_TEXT = 67


def encode(text: str, charset: str, fold: bool = False) -> str:
    """``text`` (its UTF-8 bytes, labelled ``charset``) as Q encoded-words, the way
    Exim's ${rfc2047:} and created headers have them: unchanged when nothing but
    spaces would need encoding; else words of about 70 characters, separated by a
    space (``fold``: by a newline and a space)."""
    head = f"=?{charset}?Q?"
    out = [head]
    count, coded, second_byte = 0, False, False
    for b in text.encode("utf-8", "surrogateescape"):
        if count > _Q_WORD_TEXT and not second_byte:
            out.append("?=\n " if fold else "?= ")
            out.append(head)
            count = len(head)
        if b < 33 or b > 126 or b in _Q_SPECIALS:
            piece = "_" if b == 32 else "=%02X" % b
            coded = coded or b != 32
            second_byte = not second_byte
        else:
            piece, second_byte = chr(b), False
        out.append(piece)
        count += len(piece)
    if not coded:
        return text
    out.append("?=")
    return "".join(out)
