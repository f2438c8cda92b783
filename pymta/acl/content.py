"""Content scanning in ACLs (spec 45.4, 45.5): the ``regex``, ``mime_regex`` and
``decode`` conditions, and what they scan.

A :class:`ContentScan` belongs to one message being received.  The session (or the
non-SMTP receiver) makes it when the message is complete and hands it to the ACL
engine; while the MIME ACL runs, ``part`` is the current :class:`~pymta.acl.mime.MimePart`.

``regex`` matches line by line (at most 32K per line, Exim's limit): in the MIME ACL
the raw lines of the current part, elsewhere the message as Exim's scanner sees it (an
mbox "From " line, the header lines, a blank line, the body).  ``mime_regex`` matches
the first 32K of the current part's decoded content as a whole, decoding it first (to
the default file) if ``decode`` has not.  On a match ``$regex_match_string`` is the
expression that matched and ``$regex1``... its captured groups.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, TypeVar

from pymta.acl.mime import (
    PART_VARIABLES,
    DecodeError,
    MimePart,
    decode_part,
    has_content_type,
    mime_parts,
)
from pymta.acl.verify import WHERE_NAMES
from pymta.expand.evaluator import compile_regex
from pymta.expand.lists import split_list
from pymta.taint import is_tainted, taint

R = TypeVar("R")

#: Exim matches at most this much of a line (regex) or of a decoded part (mime_regex).
SCAN_LIMIT = 32 * 1024
#: How many $regexN variables a match sets.
REGEX_VARS = 9

_REGEX_WHERES = frozenset(("data", "mime", "notsmtp", "notsmtp_mime", "dkim", "prdr"))
_MIME_WHERES = frozenset(("mime", "notsmtp_mime"))


class ContentError(Exception):
    """A content condition cannot be used here, or failed (an ACL error: 451)."""


@dataclass
class ContentScan:
    """The message being scanned: header lines, body, message id, spool directory.

    ``body`` may be a callable that reads the body: a message received with BDAT is in
    a file, and is read only when an ACL scans it.  ``write_body``, when given, copies
    the body to a file a block at a time (the spam and malware scanners' .eml file is
    then written without the body in memory).  ``mbox`` is that file and its size once
    written; ``results`` holds what the spam and malware conditions cache for the
    message."""

    headers: list[str]
    source: bytes | Callable[[], bytes]
    message_id: str
    spool_dir: str
    part: MimePart | None = None
    decode_sequence: list[int] = field(default_factory=lambda: [0])
    write_body: Callable[[BinaryIO], None] | None = None
    mbox: tuple[str, int] | None = None
    results: dict[str, object] = field(default_factory=dict)
    check_rfc2047_length: bool = True        # for encoded MIME file names

    @property
    def body(self) -> bytes:
        if callable(self.source):
            self.source = self.source()
        return self.source

    @property
    def scan_dir(self) -> str:
        return os.path.join(self.spool_dir, "scan", self.message_id)

    def message_lines(self) -> Iterable[bytes]:
        """The whole message as Exim's regex condition reads it."""
        stamp = time.strftime("%a %b %d %H:%M:%S %Y")
        yield f"From MAILER-DAEMON {stamp}\n".encode()
        for h in self.headers:
            yield (h.rstrip("\n") + "\n").encode("utf-8", "surrogateescape")
        yield b"\n"
        yield from self.body.splitlines(keepends=True)

    def cleanup(self) -> None:
        """Remove the files decoded for this message (the scan directory)."""
        if os.path.isdir(self.scan_dir):      # most messages never had one
            shutil.rmtree(self.scan_dir, ignore_errors=True)


def _where_name(where: str) -> str:
    return {"notsmtp_start": "non-SMTP-start", "notsmtp_mime": "non-SMTP-MIME"}.get(
        where, WHERE_NAMES.get(where, where))


def _need(scan: ContentScan | None, where: str, name: str,
          allowed: frozenset[str]) -> ContentScan:
    if where not in allowed or scan is None:
        raise ContentError(f"cannot test {name} condition in {_where_name(where)} ACL")
    return scan


def _patterns(arg: str) -> list[tuple[str, re.Pattern[str]]]:
    try:
        return [(p, compile_regex(p)) for p in split_list(arg)]
    except Exception as exc:
        raise ContentError(str(exc)) from exc


def _set_match(variables: dict[str, str], pattern: str, m: re.Match[str]) -> None:
    groups = m.groups()
    variables["regex_match_string"] = pattern
    for i in range(1, REGEX_VARS + 1):
        value = groups[i - 1] if i <= len(groups) else None
        if value is not None:
            variables[f"regex{i}"] = taint(value)         # text of the message
        else:
            variables.pop(f"regex{i}", None)


def check_regex(arg: str, scan: ContentScan | None, where: str,
                variables: dict[str, str]) -> bool:
    """The ``regex`` condition: any of the listed expressions matches a line."""
    scan = _need(scan, where, "regex", _REGEX_WHERES)
    patterns = _patterns(arg)
    if where in _MIME_WHERES and scan.part is not None:
        lines: Iterable[bytes] = scan.part.raw.splitlines(keepends=True)
    else:
        lines = scan.message_lines()
    for raw in lines:
        line = raw[:SCAN_LIMIT].decode("utf-8", "surrogateescape")
        for text, rx in patterns:
            m = rx.search(line)
            if m:
                _set_match(variables, text, m)
                return True
    return False


def _decode(scan: ContentScan, how: str, variables: dict[str, str]) -> str:
    part = scan.part
    assert part is not None
    path = decode_part(part, how, scan.scan_dir, scan.message_id, scan.decode_sequence)
    variables.update(part.variables())
    return path


def check_mime_regex(arg: str, scan: ContentScan | None, where: str,
                     variables: dict[str, str]) -> bool:
    """The ``mime_regex`` condition: any expression matches the decoded part."""
    scan = _need(scan, where, "mime_regex", _MIME_WHERES)
    patterns = _patterns(arg)
    part = scan.part
    if part is None:
        return False
    try:
        path = part.decoded_filename or _decode(scan, "default", variables)
        with open(path, "rb") as fh:
            text = fh.read(SCAN_LIMIT).decode("utf-8", "surrogateescape")
    except (OSError, DecodeError) as exc:
        raise ContentError(f"mime_regex: cannot read the decoded part: {exc}") from exc
    for pattern, rx in patterns:
        m = rx.search(text)
        if m:
            _set_match(variables, pattern, m)
            return True
    return False


def check_decode(arg: str, scan: ContentScan | None, where: str,
                 variables: dict[str, str]) -> bool:
    """The ``decode`` condition: write the current part to a file."""
    scan = _need(scan, where, "decode", _MIME_WHERES)
    how = arg.strip()
    if scan.part is None or how.lower() in ("", "0", "false"):
        return False
    if is_tainted(arg):
        raise ContentError(f'tainted filename for decode: "{how}"')
    try:
        _decode(scan, how, variables)
    except DecodeError as exc:
        raise ContentError(str(exc)) from exc
    return True


def run_mime_acl(scan: ContentScan, variables: dict[str, str],
                 run_part: Callable[[], R]) -> R | None:
    """Run a MIME ACL (``run_part``) once per MIME part of ``scan``'s message, with the
    part's ``$mime_*`` variables set, stopping at the first result that is not
    "accept" (which is returned; None when every part was accepted).  Afterwards the
    part variables are cleared, except ``$mime_part_count``, which keeps the number of
    the message's last part (-1 for a message without Content-Type:)."""
    last = -1
    try:
        if not has_content_type(scan.headers):
            return None
        for part in mime_parts(scan.headers, scan.body, scan.check_rfc2047_length):
            if not part.is_rfc822:
                last = part.number
            scan.part = part
            variables.update(part.variables())
            result = run_part()
            if getattr(result, "verdict", "accept") != "accept":
                return result
        return None
    finally:
        scan.part = None
        for name in PART_VARIABLES:
            variables.pop(name, None)
        variables["mime_part_count"] = str(last)
