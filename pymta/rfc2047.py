"""RFC 2047 encoded-words in header lines (``=?charset?Q?caf=C3=A9?=``), decoded as Exim
decodes them for ``$h_``, ``$bh_``, ``${rfc2047d:}``, ``$mime_filename`` and the T= field,
and made as Exim makes them (:func:`encode`).

* Only the encoded-words change; every other character, white space and folding
  included, stays as it is.  White space that only separates two encoded-words is
  dropped (RFC 2047 section 6.2).
* With ``check_length`` (the main option check_rfc2047_length, true by default) a word
  longer than the RFC's 75 characters is not an encoded-word and stays as written.
* A word whose B or Q text cannot be decoded, or whose bytes are not valid in its
  charset, stays as written.
* Converted to text, a word in a charset Python does not know raises
  :class:`CharsetError`; the callers decide (``$h_`` keeps the header as it is,
  ``${rfc2047d:}`` fails).  Unconverted (``$bh_``) the word's bytes are kept.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re
from collections.abc import Callable

#: RFC 2047's limit on the length of one encoded-word.
MAX_WORD_LENGTH = 75

_WORD = r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?="
_ONE_WORD = re.compile(_WORD)
_RUN_OF_WORDS = re.compile(f"{_WORD}(?:\\s+{_WORD})*")


class CharsetError(ValueError):
    """An encoded-word names a charset that cannot be converted to text."""

    def __init__(self, charset: str) -> None:
        super().__init__(charset)
        self.charset = charset


def _raw(word: str) -> tuple[str, bytes] | None:
    """(charset, decoded bytes) of one encoded-word; None when its text is malformed."""
    charset, encoding, data = word[2:-2].split("?", 2)
    try:
        if encoding in "bB":
            raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
        else:
            raw = quopri.decodestring(data.replace("_", " ").encode("ascii"), header=True)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None
    # RFC 2231 allows a language after the charset: "utf-8*en"
    return charset.split("*", 1)[0], raw


def _as_text(charset: str, raw: bytes) -> str | None:
    """The bytes as text; None when they are not valid in their charset."""
    try:
        codecs.lookup(charset)
    except LookupError:
        raise CharsetError(charset) from None
    try:
        return raw.decode(charset)
    except UnicodeDecodeError:
        return None


def decode(text: str, check_length: bool = True,
           from_bytes: Callable[[bytes], str] | None = None) -> str:
    """``text`` with its encoded-words decoded: to text (raising :class:`CharsetError`
    for an unknown charset), or with ``from_bytes`` the bytes as they are, made a str
    by that function."""
    if "=?" not in text:
        return text

    def word(match: re.Match[str]) -> str:
        w = match.group(0)
        if check_length and len(w) > MAX_WORD_LENGTH:
            return w
        decoded = _raw(w)
        if decoded is None:
            return w
        charset, raw = decoded
        if from_bytes is not None:
            return from_bytes(raw)
        as_text = _as_text(charset, raw)
        return w if as_text is None else as_text

    def run(match: re.Match[str]) -> str:
        words = list(_ONE_WORD.finditer(match.group(0)))
        if check_length and any(len(w.group(0)) > MAX_WORD_LENGTH for w in words):
            # a word that is not one keeps the white space on either side of it
            return _ONE_WORD.sub(word, match.group(0))
        return "".join(word(w) for w in words)

    return _RUN_OF_WORDS.sub(run, text)


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
