"""Mailbox quotas for the appendfile transport: sizes and file counts of mailboxes, the
Maildir++ ``maildirsize`` file, and the quota warning threshold.

``maildirsize`` (maildir_use_size_file) starts with the quota definition ("2048S,0C":
bytes and files, 0 meaning none) followed by "size count" lines, one per delivery (or
one total after a recalculation).  A file whose definition differs from the current
quota, that does not parse, or that has grown past 5120 bytes is recalculated from the
mailbox itself, as Maildir++ prescribes.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pymta.config.options import parse_int

MAILDIRSIZE = "maildirsize"
_MAX_SIZE_FILE = 5120


@dataclass
class Limit:
    """A quota value: 0 is no limit; ``no_check`` counts but does not refuse."""

    value: int = 0
    no_check: bool = False


def parse_limit(text: str | None) -> Limit:
    """"10M", "1.5G", "0", with an optional "/no_check" modifier; ValueError if bad."""
    if text is None or not text.strip():
        return Limit()
    value, _, modifiers = text.strip().partition("/")
    no_check = False
    for modifier in filter(None, (m.strip() for m in modifiers.split("/"))):
        if modifier != "no_check":
            raise ValueError(text)
        no_check = True
    value = value.strip()
    if "." in value:
        mult = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}.get(value[-1].lower(), 1)
        number = value[:-1] if mult != 1 else value
        return Limit(int(float(number) * mult), no_check)
    return Limit(parse_int(value), no_check)


def threshold(text: str | None, quota: int) -> int:
    """quota_warn_threshold: bytes, or a percentage of the quota (ignored without one)."""
    if text is None or not text.strip():
        return 0
    t = text.strip()
    if t.endswith("%"):
        return int(quota * float(t[:-1]) / 100) if quota else 0
    return parse_limit(t).value


def _file_size(path: str, name: str, size_regex: re.Pattern[str] | None) -> int:
    if size_regex is not None:
        m = size_regex.search(name)
        if m and m.groups() and m.group(1) and m.group(1).isdigit():
            return int(m.group(1))
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_size


def tree_usage(top: str, size_regex: re.Pattern[str] | None = None,
               dir_regex: re.Pattern[str] | None = None) -> tuple[int, int]:
    """(bytes, files) in the directory tree at ``top``; with ``dir_regex`` only the
    top's subdirectories whose names match count (a maildir's cur, new and folders),
    and the files directly in ``top`` (maildirsize itself) do not."""
    size = count = 0
    if dir_regex is None:
        for root, _dirs, files in os.walk(top):
            for f in files:
                size += _file_size(os.path.join(root, f), f, size_regex)
                count += 1
        return size, count
    try:
        entries = os.listdir(top)
    except OSError:
        return 0, 0
    for entry in entries:
        sub = os.path.join(top, entry)
        if not dir_regex.search(entry) or not os.path.isdir(sub):
            continue
        if entry in ("cur", "new"):
            targets = [sub]
        else:       # a Maildir++ folder: its own cur and new
            targets = [os.path.join(sub, "cur"), os.path.join(sub, "new")]
        for d in targets:
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for f in names:
                size += _file_size(os.path.join(d, f), f, size_regex)
                count += 1
    return size, count


def _definition(quota: int, filecount: int) -> str:
    return f"{quota}S,{filecount}C"


def read_maildirsize(qdir: str, quota: int, filecount: int) -> tuple[int, int] | None:
    """The totals in ``qdir``/maildirsize, or None when it must be recalculated."""
    path = os.path.join(qdir, MAILDIRSIZE)
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_SIZE_FILE + 1)
    except OSError:
        return None
    if len(data) > _MAX_SIZE_FILE:
        return None
    lines = data.decode("ascii", "replace").split("\n")
    if lines[0].strip() != _definition(quota, filecount) or (lines[-1] != ""):
        return None
    size = count = 0
    for line in lines[1:-1]:
        m = re.fullmatch(r"\s*(-?\d+)\s+(-?\d+)\s*", line)
        if not m:
            return None
        size += int(m.group(1))
        count += int(m.group(2))
    return size, count


def recalculate_maildirsize(qdir: str, quota: int, filecount: int,
                            dir_regex: re.Pattern[str],
                            size_regex: re.Pattern[str] | None, mode: int) -> tuple[int, int]:
    """Count the mailbox and write a fresh maildirsize (atomically: tmp file + rename)."""
    size, count = tree_usage(qdir, size_regex, dir_regex)
    tmp = os.path.join(qdir, "tmp", f"{MAILDIRSIZE}.{os.getpid()}")
    if not os.path.isdir(os.path.dirname(tmp)):
        tmp = os.path.join(qdir, f".{MAILDIRSIZE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, f"{_definition(quota, filecount)}\n{size} {count}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(qdir, MAILDIRSIZE))
    return size, count


def append_maildirsize(qdir: str, size: int, count: int = 1) -> None:
    """Record a delivery (or, with negative values, a removal) in maildirsize."""
    fd = os.open(os.path.join(qdir, MAILDIRSIZE), os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"{size} {count}\n".encode())
    finally:
        os.close(fd)
