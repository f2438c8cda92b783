"""MIME parts of a received message, as Exim's MIME ACL sees them (spec 45.4).

:func:`mime_parts` walks a message (its header lines and body bytes) and yields one
:class:`MimePart` per MIME part in the order of their position: the message itself
(part 0), the parts of a multipart one after another, nested multiparts depth first.
A ``message/rfc822`` part is followed by the parts of the attached message, counted from
0 again and marked ``is_rfc822``.  Each part carries the values of the ``$mime_*``
variables, normalised as Exim does (the main value of a MIME header lower-cased and
without white space; ``charset``, ``boundary`` and file names as given), and its raw
content: for a multipart, everything up to its end, nested parts included.

:func:`decode_part` writes a part's content, with its transfer encoding undone, to a
file (the ``decode`` condition, and ``mime_regex`` before matching).
"""
from __future__ import annotations

import base64
import binascii
import os
import quopri
import re
import urllib.parse
from dataclasses import dataclass
from typing import Iterator

from pymta import rfc2047
from pymta.taint import taint

#: How deep multiparts and attached messages are followed.
MAX_DEPTH = 20

_MIME_HEADERS = {"content-type": "mime_content_type",
                 "content-disposition": "mime_content_disposition",
                 "content-transfer-encoding": "mime_content_transfer_encoding",
                 "content-id": "mime_content_id",
                 "content-description": "mime_content_description"}
#: The variables set for every part (empty when the part does not say).
PART_VARIABLES = ("mime_anomaly_level", "mime_anomaly_text", "mime_boundary",
                  "mime_charset", "mime_content_description", "mime_content_disposition",
                  "mime_content_id", "mime_content_size", "mime_content_transfer_encoding",
                  "mime_content_type", "mime_decoded_filename", "mime_filename",
                  "mime_is_coverletter", "mime_is_multipart", "mime_is_rfc822",
                  "mime_part_count")


@dataclass
class MimePart:
    """One MIME part: its ``$mime_*`` values and its raw content."""

    number: int                       # $mime_part_count
    content_type: str = ""
    charset: str = ""
    boundary: str = ""
    disposition: str = ""
    transfer_encoding: str = ""
    content_id: str = ""
    description: str = ""
    filename: str = ""
    is_rfc822: bool = False
    is_coverletter: bool = True
    raw: bytes = b""
    anomaly_level: int = 0
    anomaly_text: str = ""
    decoded_filename: str = ""
    content_size: int = 0            # in KB, rounded up, once decoded

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    def variables(self) -> dict[str, str]:
        """The ``$mime_*`` variables for this part."""
        # what the message says is tainted; what pymta computed is not
        return {
            "mime_anomaly_level": str(self.anomaly_level),
            "mime_anomaly_text": self.anomaly_text,
            "mime_boundary": taint(self.boundary), "mime_charset": taint(self.charset),
            "mime_content_description": taint(self.description),
            "mime_content_disposition": taint(self.disposition),
            "mime_content_id": taint(self.content_id),
            "mime_content_size": str(self.content_size),
            "mime_content_transfer_encoding": taint(self.transfer_encoding),
            "mime_content_type": taint(self.content_type),
            "mime_decoded_filename": self.decoded_filename,
            "mime_filename": taint(self.filename),
            "mime_is_coverletter": "1" if self.is_coverletter else "0",
            "mime_is_multipart": "1" if self.is_multipart else "0",
            "mime_is_rfc822": "1" if self.is_rfc822 else "0",
            "mime_part_count": str(self.number)}


def has_content_type(headers: list[str]) -> bool:
    """True when a message has a Content-Type: header (the MIME ACL runs only then)."""
    return any(h.split(":", 1)[0].strip().lower() == "content-type" for h in headers)


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]", " ", value).strip()


def _split_params(text: str) -> list[str]:
    """Split ``a; b="x;y"; c`` at semicolons outside quotes."""
    out, cur, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            cur.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == ";" and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _params(text: str) -> dict[str, str]:
    """Parameters of a MIME header (RFC 2231 continuations and encodings decoded)."""
    plain: dict[str, str] = {}
    pieces: dict[str, dict[int, tuple[bool, str]]] = {}
    for item in _split_params(text)[1:]:
        name, eq, value = item.partition("=")
        if not eq:
            continue
        name = name.strip().lower()
        m = re.fullmatch(r"([^*]+)\*(?:(\d+)(\*)?|)", name)
        if m and (m.group(2) is not None or name.endswith("*")):
            encoded = m.group(2) is None or m.group(3) is not None
            pieces.setdefault(m.group(1), {})[int(m.group(2) or 0)] = (encoded,
                                                                       _unquote(value))
        else:
            plain.setdefault(name, _unquote(value))
    for name, parts in pieces.items():
        charset, raw = "utf-8", b""
        for i, (encoded, value) in enumerate(parts[k] for k in sorted(parts)):
            if encoded:
                if i == 0 and value.count("'") >= 2:
                    charset, _lang, value = value.split("'", 2)
                raw += urllib.parse.unquote_to_bytes(value)
            else:
                raw += value.encode("utf-8", "surrogateescape")
        try:
            plain[name] = raw.decode(charset or "utf-8")
        except (LookupError, UnicodeDecodeError):
            plain[name] = raw.decode("utf-8", "surrogateescape")
    return plain


def _header_map(headers: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for h in headers:
        name, _, value = h.partition(":")
        name = name.strip().lower()
        if name in _MIME_HEADERS and name not in found:
            found[name] = _unfold(value)
    return found


def _main_value(value: str) -> str:
    return re.sub(r"\s+", "", _split_params(value)[0]).lower()


def _part(number: int, headers: list[str], raw: bytes, is_rfc822: bool,
          cover: bool, check_length: bool) -> MimePart:
    part = MimePart(number, raw=raw, is_rfc822=is_rfc822, is_coverletter=cover)
    found = _header_map(headers)
    ctype = found.get("content-type")
    if ctype is not None:
        part.content_type = _main_value(ctype)
        params = _params(ctype)
        part.charset = params.get("charset", "")
        part.boundary = params.get("boundary", "")
        if "name" in params:
            part.filename = rfc2047.decode_or_keep(params["name"], check_length)
    disposition = found.get("content-disposition")
    if disposition is not None:
        part.disposition = _main_value(disposition)
        params = _params(disposition)
        if "filename" in params:
            part.filename = rfc2047.decode_or_keep(params["filename"], check_length)
    part.transfer_encoding = _main_value(found.get("content-transfer-encoding", ""))
    part.content_id = _main_value(found.get("content-id", ""))
    part.description = _main_value(found.get("content-description", ""))
    return part


def split_entity(data: bytes) -> tuple[list[str], bytes]:
    """Header lines (continuations joined) and body of a MIME entity."""
    headers: list[str] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        line_end = len(data) if end < 0 else end + 1
        line = data[pos:line_end]
        text = line.rstrip(b"\r\n")
        if not text:
            return headers, data[line_end:]
        if text[:1] in (b" ", b"\t") and headers:
            headers[-1] += "\n" + text.decode("utf-8", "surrogateescape")
        elif b":" in text:
            headers.append(text.decode("utf-8", "surrogateescape"))
        else:
            return headers, data[pos:]        # not a header: the body starts here
        pos = line_end
    return headers, b""


def _subparts(body: bytes, boundary: str) -> list[bytes]:
    """The parts of a multipart body (preamble and epilogue dropped)."""
    delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    parts: list[bytes] = []
    current: int | None = None
    pos = 0
    while pos < len(body):
        end = body.find(b"\n", pos)
        line_end = len(body) if end < 0 else end + 1
        line = body[pos:line_end].rstrip(b"\r\n")
        if line.startswith(delimiter):
            rest = line[len(delimiter):]
            if rest.startswith(b"--") or not rest.strip():
                if current is not None:
                    parts.append(body[current:pos])
                if rest.startswith(b"--"):
                    return parts
                current = line_end
        pos = line_end
    if current is not None:
        parts.append(body[current:])
    return parts


class _Counter:
    def __init__(self) -> None:
        self.n = -1

    def next(self) -> int:
        self.n += 1
        return self.n


def mime_parts(headers: list[str], body: bytes,
               check_length: bool = True) -> Iterator[MimePart]:
    """Every MIME part of a message, in order (see the module docstring);
    ``check_length`` is check_rfc2047_length, for encoded file names."""
    yield from _walk(headers, body, False, True, _Counter(), 0, check_length)


def _walk(headers: list[str], body: bytes, is_rfc822: bool, cover: bool,
          counter: _Counter, depth: int, check_length: bool) -> Iterator[MimePart]:
    part = _part(counter.next(), headers, body, is_rfc822, cover, check_length)
    yield part
    if depth >= MAX_DEPTH:
        return
    if part.is_multipart and part.boundary:
        keep_cover = part.content_type in ("multipart/alternative", "multipart/related")
        for i, sub in enumerate(_subparts(body, part.boundary)):
            sub_headers, sub_body = split_entity(sub)
            sub_cover = cover and (keep_cover or i == 0)
            yield from _walk(sub_headers, sub_body, is_rfc822, sub_cover, counter,
                             depth + 1, check_length)
    elif part.content_type == "message/rfc822":
        inner = decoded_content(part)
        inner_headers, inner_body = split_entity(inner)
        yield from _walk(inner_headers, inner_body, True, True, _Counter(), depth + 1,
                         check_length)


def decoded_content(part: MimePart) -> bytes:
    """The part's content with its transfer encoding undone (anomalies noted)."""
    cte = part.transfer_encoding
    if cte == "base64":
        text = re.sub(rb"[^A-Za-z0-9+/=]", b"", part.raw)
        bad = re.search(rb"[^A-Za-z0-9+/=\s]", part.raw) is not None
        try:
            data = base64.b64decode(text + b"=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            bad, data = True, b""
        if bad:
            part.anomaly_level, part.anomaly_text = 2, "Broken BASE64 encoding detected"
        return data
    if cte == "quoted-printable":
        if re.search(rb"=(?![0-9A-Fa-f]{2}|\r?\n|$)", part.raw):
            part.anomaly_level, part.anomaly_text = \
                1, "Broken Quoted-Printable encoding detected"
        return quopri.decodestring(part.raw)
    return part.raw


class DecodeError(Exception):
    """A part could not be written to a file."""


def decode_part(part: MimePart, how: str, scan_dir: str, message_id: str,
                sequence: list[int]) -> str:
    """Write ``part``'s decoded content where ``how`` says (the ``decode`` condition's
    value: "default", a directory, a full path or a file name in the scan directory);
    returns the file name and sets ``$mime_decoded_filename``/``$mime_content_size``.
    ``sequence`` holds the number of the next file named after the message id."""
    def default_name(directory: str) -> str:
        name = os.path.join(directory, f"{message_id}-{sequence[0]:05d}")
        sequence[0] += 1
        return name

    if how == "default":
        path = default_name(scan_dir)
    elif how.startswith("/"):
        path = default_name(how) if os.path.isdir(how) else how
    else:
        path = os.path.join(scan_dir, how)
    data = decoded_content(part)
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise DecodeError(f"decode: cannot write {path}: {exc.strerror}") from exc
    part.decoded_filename = path
    part.content_size = (len(data) + 1023) // 1024
    return path
