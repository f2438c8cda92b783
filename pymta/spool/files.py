"""Reading and writing Exim 4.96 spool files: -H (envelope + headers), -D (body), -J.

Layout (with ``split_spool_directory`` the files are in ``input/C/`` and ``msglog/C/``,
C being the sixth character of the id; both layouts are read whatever the setting)::

    spool_dir/input/ID-H   envelope, status and headers (see the spec chapter
                           "Format of spool files")
    spool_dir/input/ID-D   "ID-D" line, then the body with LF line endings
    spool_dir/input/ID-J   journal: one delivered address per line
    spool_dir/msglog/ID    per-message log

A message exists iff its -H file exists, so -H is always written last under a temporary
name and renamed into place after fsync.
"""
from __future__ import annotations

import os
from typing import Any, BinaryIO, Protocol

from pymta.osutil import fsync_dir as _fsync_dir
from pymta.osutil import reserve_beyond_eof
from pymta.spool.fdlock import try_write_lock
from pymta.spool.model import SpoolHeader, SpoolMessage, SpoolRecipient
from pymta.taint import Tainted

SPOOL_DIR_MODE = 0o750
SPOOL_FILE_MODE = 0o640
_ENC = "utf-8"
_ERR = "surrogateescape"      # spool files are bytes; keep undecodable bytes round-trippable


class BodyFile(Protocol):
    """A message kept in a file (pymta.message.body.FileBody) that can copy itself."""

    def copy_to(self, fd: int, start: int) -> None: ...


class SpoolFormatError(Exception):
    """A -H (or -J) file is missing, truncated or not in Exim format."""


# Exim writes the "-name" lines in a fixed order; we use it so that files we write look
# like Exim's and files Exim wrote round-trip unchanged.  "@acl" marks where the ACL
# variables go, "@frozen" the -frozen line.  Names not listed follow in their own order.
_ORDER = [
    "received_time_usec", "received_time_complete", "helo_name", "host_address",
    "host_name", "host_auth", "host_auth_pubname", "interface_address", "active_hostname",
    "ident", "received_protocol", "@acl", "debug_selector", "debuglog_name",
    "body_linecount", "body_zerocount",
    "max_received_linelength", "host_lookup_deferred", "host_lookup_failed", "auth_id",
    "auth_sender", "allow_unqualified_recipient", "allow_unqualified_sender",
    "deliver_firsttime", "N", "@frozen", "manual_thaw", "local", "localerror",
    "local_scan", "spam_bar", "spam_score", "spam_score_int", "sender_set_untrusted",
    "smtputf8", "spool_file_wireformat", "tls_certificate_verified", "tls_cipher",
    "tls_peercert", "tls_peerdn", "tls_sni", "tls_ourcert", "tls_ocsp", "tls_resumption",
    "tls_ver",
    "utf8_downcvt", "utf8_optdowncvt", "dsn_envid", "dsn_ret",
]
_RANK = {name: i for i, name in enumerate(_ORDER)}


def input_dir(spool_dir: str) -> str:
    """The top input directory (with split_spool_directory, its 62 subdirectories hold
    the messages)."""
    return os.path.join(spool_dir, "input")


# split_spool_directory: messages go to input/<c>/ and msglog/<c>/, <c> being the sixth
# character of the id.  Messages in the other layout (written before the option was
# changed) are still found, as Exim finds them.
_split_spool = False
_split_dirs_seen: dict[str, bool] = {}        # spool -> input/ has subdirectories
_where: dict[tuple[str, str], bool] = {}      # (spool, id) -> the message is split


def configured_spool(config: Any) -> str:
    """The configuration's spool_directory, with its layout (split_spool_directory)
    set for this process."""
    from pymta.config.values import main_option
    set_split_spool(bool(main_option(config, "split_spool_directory", False)))
    return str(main_option(config, "spool_directory", "/var/spool/pymta"))


def set_split_spool(split: bool) -> None:
    """Lay new messages out in subdirectories (main option split_spool_directory)."""
    global _split_spool
    if split != _split_spool:
        _where.clear()
    _split_spool = split


def _has_subdirs(spool_dir: str) -> bool:
    seen = _split_dirs_seen.get(spool_dir)
    if seen is None:
        try:
            seen = any(len(n) == 1 and os.path.isdir(os.path.join(spool_dir, "input", n))
                       for n in os.listdir(os.path.join(spool_dir, "input")))
        except OSError:
            seen = False
        _split_dirs_seen[spool_dir] = seen
    return seen


# Named queues (the ACL "queue" modifier, -qG<name>): a message in queue Q has its
# files under spool/Q/input and spool/Q/msglog; hints and logs stay in the main spool.
# Whoever learns a message's queue (reception, -qG listing, a worker told by the
# daemon) records it here, and every path below follows.
_queues: dict[tuple[str, str], str] = {}


def set_message_queue(spool_dir: str, msgid: str, queue: str) -> None:
    """Record that ``msgid`` lives in the named queue ``queue`` ("" = the default)."""
    if queue:
        if len(_queues) > 10000:
            _queues.clear()
        _queues[(spool_dir, msgid)] = queue
    else:
        _queues.pop((spool_dir, msgid), None)


def message_queue(spool_dir: str, msgid: str) -> str:
    """The named queue of ``msgid`` ("" for the default queue)."""
    return _queues.get((spool_dir, msgid), "")


def queue_dir(spool_dir: str, queue: str) -> str:
    """The directory holding a queue's input/ and msglog/."""
    if queue and ("/" in queue or queue in (".", "..", "input", "msglog", "db", "log")):
        raise ValueError(f"invalid queue name {queue!r}")
    return os.path.join(spool_dir, queue) if queue else spool_dir


def _base(spool_dir: str, msgid: str) -> str:
    queue = _queues.get((spool_dir, msgid))
    return os.path.join(spool_dir, queue) if queue else spool_dir


def is_split(spool_dir: str, msgid: str) -> bool:
    """Whether this message's files are (or, for a new one, go) in a subdirectory."""
    spool_dir = _base(spool_dir, msgid)
    if not _split_spool and not _has_subdirs(spool_dir):
        return False
    key = (spool_dir, msgid)
    found = _where.get(key)
    if found is not None:
        return found
    top = os.path.join(spool_dir, "input")
    preferred = os.path.join(top, msgid[5], msgid + "-H") if _split_spool else \
        os.path.join(top, msgid + "-H")
    other = os.path.join(top, msgid + "-H") if _split_spool else \
        os.path.join(top, msgid[5], msgid + "-H")
    if os.path.exists(preferred):
        found = _split_spool
    elif os.path.exists(other):
        found = not _split_spool
    else:
        return _split_spool         # a new message: where new ones go (not cached yet)
    if len(_where) > 10000:
        _where.clear()
    _where[key] = found
    return found


def message_input_dir(spool_dir: str, msgid: str) -> str:
    """The directory holding the message's -H, -D and -J files."""
    top = os.path.join(_base(spool_dir, msgid), "input")
    return os.path.join(top, msgid[5]) if is_split(spool_dir, msgid) else top


def header_path(spool_dir: str, msgid: str) -> str:
    """Path of the -H file."""
    return os.path.join(message_input_dir(spool_dir, msgid), msgid + "-H")


def data_path(spool_dir: str, msgid: str) -> str:
    """Path of the -D file."""
    return os.path.join(message_input_dir(spool_dir, msgid), msgid + "-D")


def journal_path(spool_dir: str, msgid: str) -> str:
    """Path of the -J file."""
    return os.path.join(message_input_dir(spool_dir, msgid), msgid + "-J")


def msglog_path(spool_dir: str, msgid: str) -> str:
    """Path of the per-message log."""
    base = _base(spool_dir, msgid)
    if is_split(spool_dir, msgid):
        return os.path.join(base, "msglog", msgid[5], msgid)
    return os.path.join(base, "msglog", msgid)


def input_dirs(spool_dir: str) -> list[str]:
    """input/ and, when there are any, its one-character subdirectories."""
    top = os.path.join(spool_dir, "input")
    try:
        subs = sorted(n for n in os.listdir(top) if len(n) == 1 and
                      os.path.isdir(os.path.join(top, n)))
    except OSError:
        subs = []
    return [top] + [os.path.join(top, n) for n in subs]


def ensure_spool_dirs(spool_dir: str, owner: tuple[int, int] | None = None) -> None:
    """Create spool_dir and its input/, msglog/, db/ subdirectories if missing.

    With ``owner`` (uid, gid), as root: the directories are given to that user (the Exim
    user), also when an earlier root process left them to root.
    """
    # makedirs applies its mode to the last directory only: the spool itself first, so
    # that a new one is closed to other users as Exim's is (0750, not 0777 - umask)
    os.makedirs(spool_dir, mode=SPOOL_DIR_MODE, exist_ok=True)
    for sub in ("input", "msglog", "db"):
        os.makedirs(os.path.join(spool_dir, sub), mode=SPOOL_DIR_MODE, exist_ok=True)
    if owner is not None:
        for path in [spool_dir] + [os.path.join(spool_dir, s) for s in ("input", "msglog", "db")]:
            os.chown(path, *owner)




def _write_all(fd: int, parts: list[bytes | memoryview]) -> None:
    """writev() the parts, looping on short writes; no concatenation of a large body."""
    views = [memoryview(p) for p in parts if p]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]


# ---------------------------------------------------------------------------- writing

def _enc(text: str) -> bytes:
    return text.encode(_ENC, _ERR)


def format_header(msg: SpoolMessage) -> bytes:
    """The complete -H file content for ``msg``."""
    out: list[str] = [
        f"{msg.id}-H\n",
        f"{msg.originator_login} {msg.originator_uid} {msg.originator_gid}\n",
        f"<{msg.sender}>\n",
        f"{msg.received_time} {msg.warning_count}\n",
    ]
    items: list[tuple[int, int, str]] = []   # (rank, seq, text) sorted stably

    def add(name: str, text: str) -> None:
        items.append((_RANK.get(name, len(_ORDER)), len(items), text))

    add("received_time_usec", f"-received_time_usec .{msg.received_time_usec:06d}\n")
    for name, value in msg.variables.items():
        if name == "received_time_usec":
            continue
        dash = "--" if isinstance(value, Tainted) else "-"
        add(name, f"{dash}{name} {value}\n")
    for name in sorted(msg.flags):
        add(name, f"-{name}\n")
    if msg.frozen_at is not None:
        add("@frozen", f"-frozen {msg.frozen_at}\n")
    # Exim writes acl_c* before acl_m*; the value length counts bytes
    acl_lines = []
    for name, value in msg.acl_vars.items():
        if name.startswith("acl_c"):
            kind = 0
        elif name.startswith("acl_m"):
            kind = 1
        else:
            continue
        raw = _enc(value)
        tag = "-aclc" if kind == 0 else "-aclm"
        acl_lines.append((kind, f"{tag} {name[5:]} {len(raw)}\n{value}\n"))
    for _, text in sorted(acl_lines, key=lambda t: t[0]):
        add("@acl", text)
    items.sort()
    out.extend(text for _, _, text in items)

    if msg.nonrecipients:
        _write_tree(sorted(msg.nonrecipients), out)
    else:
        out.append("XX\n")
    out.append(f"{len(msg.recipients)}\n")
    for r in msg.recipients:
        out.append(_format_recipient(r))
    out.append("\n")
    for h in msg.headers:
        raw_len = len(_enc(h.text))
        out.append(f"{raw_len:03d}{h.flag} {h.text}")
    return _enc("".join(out))


def _write_tree(addrs: list[str], out: list[str]) -> None:
    """Write a balanced binary tree of the sorted addresses in Exim's pre-order form."""
    if not addrs:
        return
    mid = len(addrs) // 2
    left, right = addrs[:mid], addrs[mid + 1:]
    out.append(f"{'Y' if left else 'N'}{'Y' if right else 'N'} {addrs[mid]}\n")
    _write_tree(left, out)
    _write_tree(right, out)


def _format_recipient(r: SpoolRecipient) -> str:
    """One recipient line.  Exim 4.96 writes the extended form "address orcpt
    len,dsn_flags errors_to len,pno#3" (the "#3": both field groups present) for any
    recipient with NOTIFY bits, an errors address or a parent number.  It writes a
    recipient with only an ORCPT as a bare address, losing the ORCPT; pymta writes the
    extended form then too (Exim reads it back the same way) so that failure reports
    can name the original recipient as RFC 3464 asks."""
    if r.errors_to is None and r.pno < 0 and not r.orcpt and not r.dsn_flags:
        return f"{r.address}\n"
    errors_to = r.errors_to or ""
    orcpt = r.orcpt or ""
    return (f"{r.address} {orcpt} {len(_enc(orcpt))},{r.dsn_flags} "
            f"{errors_to} {len(_enc(errors_to))},{r.pno}#3\n")


def write_spool(spool_dir: str, msg: SpoolMessage,
                body: bytes | memoryview | tuple[BodyFile, int]) -> None:
    """Durably spool a new message: -D (fsync), then -H via temp name, rename, dir fsync.

    ``body`` is the body's bytes, or (a file holding the message, offset of the body)
    to be copied from there (a BDAT message is never read into memory whole).

    The -D file must not exist yet (message ids are unique).  On failure the partial
    files are removed and the exception propagates.
    """
    idir = message_input_dir(spool_dir, msg.id)
    if not os.path.isdir(idir):
        ensure_spool_dirs(spool_dir)
        if idir != input_dir(spool_dir):
            os.makedirs(idir, mode=SPOOL_DIR_MODE, exist_ok=True)
            os.makedirs(os.path.join(_base(spool_dir, msg.id), "msglog"),
                        mode=SPOOL_DIR_MODE, exist_ok=True)
            _split_dirs_seen[_base(spool_dir, msg.id)] = True
    dpath = data_path(spool_dir, msg.id)
    fd = os.open(dpath, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, SPOOL_FILE_MODE)
    try:
        # Locked like a message being delivered until -H is in place (as Exim does), so a
        # spool tidy never takes this -D for an orphan, whatever the clock says.
        try_write_lock(fd, msg.id)
        try:
            if isinstance(body, tuple):
                _write_all(fd, [_enc(f"{msg.id}-D\n")])
                body[0].copy_to(fd, body[1])
            else:
                _write_all(fd, [_enc(f"{msg.id}-D\n"), body])
            os.fdatasync(fd)      # data + size; enough for a new file
            _write_header_file(spool_dir, msg)
        finally:
            os.close(fd)
    except BaseException:
        for p in (dpath, header_path(spool_dir, msg.id)):
            try:
                os.unlink(p)
            except OSError:
                pass
        raise


def _write_header_file(spool_dir: str, msg: SpoolMessage) -> None:
    """Write -H under a temporary name, fsync, rename into place, fsync input/."""
    idir = message_input_dir(spool_dir, msg.id)
    tmp = os.path.join(idir, f"hdr.{msg.id}.{os.getpid()}")
    data = format_header(msg)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, SPOOL_FILE_MODE)
    try:
        try:
            _write_all(fd, [data])
            os.fdatasync(fd)      # data + size; enough for a new file
        finally:
            os.close(fd)
        os.rename(tmp, header_path(spool_dir, msg.id))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(idir)


def rewrite_header(spool_dir: str, msg: SpoolMessage) -> None:
    """Replace the -H file of an existing message atomically (write new, rename, fsync)."""
    _write_header_file(spool_dir, msg)


# ---------------------------------------------------------------------------- reading

class _Reader:
    """Byte-level cursor over a -H file (lengths in it count bytes)."""

    def __init__(self, data: bytes, name: str):
        self.data = data
        self.pos = 0
        self.name = name

    def fail(self, what: str) -> SpoolFormatError:
        line = self.data.count(b"\n", 0, self.pos) + 1
        return SpoolFormatError(f"{self.name}: format error at line {line}: {what}")

    def line(self) -> str:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise self.fail("unexpected end of file")
        text = self.data[self.pos:end].decode(_ENC, _ERR)
        self.pos = end + 1
        return text

    def take(self, n: int) -> str:
        if self.pos + n > len(self.data):
            raise self.fail("unexpected end of file")
        text = self.data[self.pos:self.pos + n].decode(_ENC, _ERR)
        self.pos += n
        return text

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else -1


def parse_header(data: bytes, msgid: str | None = None, name: str = "-H") -> SpoolMessage:
    """Parse the bytes of a -H file; raise SpoolFormatError if it is not well formed."""
    r = _Reader(data, name)
    first = r.line()
    if not first.endswith("-H") or (msgid is not None and first != f"{msgid}-H"):
        raise r.fail(f"bad first line {first!r}")
    mid = first[:-2]
    try:
        login, uid, gid = r.line().rsplit(" ", 2)
        sender_line = r.line()
        if not (sender_line.startswith("<") and sender_line.endswith(">")):
            raise r.fail("sender line not in <>")
        t, wc = r.line().split()
        msg = SpoolMessage(id=mid, originator_login=login, originator_uid=int(uid),
                           originator_gid=int(gid), sender=sender_line[1:-1],
                           received_time=int(t), warning_count=int(wc))
    except ValueError as e:
        raise r.fail(str(e)) from None

    while r.peek() == ord("-"):
        line = r.line()
        tainted = line.startswith("--")
        body = line[2:] if tainted else line[1:]
        if body.startswith("("):            # "(quoter)" marks lookup-quoted data
            close = body.find(")")
            body = body[close + 1:] if close > 0 else body
        name, sp, value = body.partition(" ")
        try:
            if name in ("aclc", "aclm"):
                rest, length_text = value.rsplit(" ", 1)
                text = r.take(int(length_text))
                if r.take(1) != "\n":
                    raise r.fail("ACL variable not followed by newline")
                msg.acl_vars[("acl_c" if name == "aclc" else "acl_m") + rest] = text
            elif name == "acl":                 # pre-4.61 form: numbers 0-9 c, 10-19 m
                num, var_length = (int(x) for x in value.split())
                text = r.take(var_length)
                r.take(1)
                vname = f"acl_c{num}" if num < 10 else f"acl_m{num - 10}"
                msg.acl_vars[vname] = text
            elif name == "received_time_usec":
                msg.received_time_usec = int(value.lstrip("."))
            elif name == "frozen":
                msg.frozen_at = int(value)
            elif not sp:
                msg.flags.add(name)
            else:
                msg.variables[name] = Tainted(value) if tainted else value
        except ValueError as e:
            raise r.fail(f"bad -{name} line: {e}") from None
    if "spool_file_wireformat" in msg.flags:
        # Exim's spool_wireformat: the -D lines end in CRLF (no dot-stuffing); pymta
        # would deliver them as they are, so the message is left for Exim (reported)
        raise r.fail("the data file is in wire format (written with spool_wireformat), "
                     "which pymta does not read")

    _read_tree(r, msg.nonrecipients)

    try:
        count = int(r.line())
    except ValueError:
        raise r.fail("bad recipient count") from None
    for _ in range(count):
        msg.recipients.append(_parse_recipient(r, r.line()))
    if r.line() != "":
        raise r.fail("missing blank line before headers")

    data_len = len(data)
    while r.pos < data_len:
        # "NNNc text": at least 3 digits, a flag character, a space
        start = r.pos
        p = start
        while p < data_len and 48 <= data[p] <= 57:
            p += 1
        if p - start < 3 or p + 2 > data_len or data[p + 1] != 32:
            raise r.fail("bad header length prefix")
        length = int(data[start:p])
        flag = chr(data[p])
        r.pos = p + 2
        text = r.take(length)
        msg.headers.append(SpoolHeader(flag, text))
    return msg


def _read_tree(r: _Reader, into: set[str]) -> None:
    """Read Exim's pre-order tree dump; "XX" is the empty tree.

    Each node line says whether a left and a right subtree follow, so counting the
    subtrees still owed is enough to know where the tree ends (no recursion needed).
    """
    line = r.line()
    if line == "XX":
        return
    owed = 1
    while True:
        if len(line) < 3 or line[0] not in "YN" or line[1] not in "YN" or line[2] != " ":
            raise r.fail(f"bad non-recipients tree line {line!r}")
        into.add(line[3:])
        owed += (line[0] == "Y") + (line[1] == "Y") - 1
        if owed == 0:
            return
        line = r.line()


def _split_len_field(r: _Reader, text: str) -> tuple[str, int, int]:
    """Split "<prefix> <value> <len>,<num>" from the right: (prefix, value..., num)."""
    head, sp, lens = text.rpartition(" ")
    if not sp:
        raise r.fail(f"bad recipient line {text!r}")
    length, _, num = lens.partition(",")
    length_i, num_i = int(length), int(num)
    return head, length_i, num_i


def _parse_recipient(r: _Reader, line: str) -> SpoolRecipient:
    hash_at = line.rfind("#")
    if hash_at < 0 or not (line[hash_at + 1:].isascii() and line[hash_at + 1:].isdigit()):
        return SpoolRecipient(line)
    bits = int(line[hash_at + 1:])
    rest = line[:hash_at]
    # Read right to left as Exim does: bit 1 is the last group ("errors_to len,pno"),
    # bit 2 the group before it ("orcpt len,dsn_flags").
    try:
        errors_to, pno, orcpt, dsn_flags = None, -1, None, 0
        if bits & 1:
            rest, errors_to, pno = _take_len_field(r, rest)
        if bits & 2:
            rest, orcpt, dsn_flags = _take_len_field(r, rest)
    except ValueError:
        return SpoolRecipient(line)
    return SpoolRecipient(rest, errors_to=errors_to, pno=pno, orcpt=orcpt,
                          dsn_flags=dsn_flags)


def _take_len_field(r: _Reader, text: str) -> tuple[str, str | None, int]:
    """Take "<value> <len>,<num>" off the end of ``text``: (what is left before it,
    the value or None when its length is 0, num)."""
    head, length, num = _split_len_field(r, text)
    raw = _enc(head)
    value = raw[len(raw) - length:].decode(_ENC, _ERR) if length else None
    head = raw[:len(raw) - length].decode(_ENC, _ERR)
    return (head[:-1] if head.endswith(" ") else head), value, num


def read_header(spool_dir: str, msgid: str) -> SpoolMessage:
    """Read and parse ID-H; SpoolFormatError if it is corrupt, FileNotFoundError if gone."""
    with open(header_path(spool_dir, msgid), "rb") as f:
        data = f.read()
    return parse_header(data, msgid, name=f"{msgid}-H")


def open_data(spool_dir: str, msgid: str) -> BinaryIO:
    """Open ID-D for reading, positioned at the start of the body (after the id line)."""
    f = open(data_path(spool_dir, msgid), "rb")
    first = f.readline()
    if first != _enc(f"{msgid}-D\n"):
        f.close()
        raise SpoolFormatError(f"{msgid}-D: bad first line {first[:40]!r}")
    return f


def read_body(spool_dir: str, msgid: str) -> bytes:
    """The whole body of a message (without the -D id line)."""
    with open_data(spool_dir, msgid) as f:
        return f.read()


def body_ends(spool_dir: str, msgid: str, length: int) -> tuple[bytes, bytes, int]:
    """The first and last ``length`` bytes of the body, and the body's size."""
    offset = len(msgid) + 3
    fd = os.open(data_path(spool_dir, msgid), os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size - offset
        head = os.pread(fd, length, offset)
        tail = head if size <= length else os.pread(fd, length, offset + size - length)
    finally:
        os.close(fd)
    return head, tail, max(size, 0)


def body_size(spool_dir: str, msgid: str) -> int:
    """Size of the body in bytes (the -D file less its id line)."""
    return os.stat(data_path(spool_dir, msgid)).st_size - (len(msgid) + 3)


# ---------------------------------------------------------------------------- journal

def append_journal(spool_dir: str, msgid: str, unique: str) -> None:
    """Record a finished address in ID-J (one line, fsynced before returning)."""
    j = Journal(spool_dir, msgid)
    try:
        j.append(unique)
    finally:
        j.close()


class Journal:
    """The -J file written by one delivery attempt (the caller holds the message lock).

    :meth:`reserve` is called before any transport runs and sets aside room for every
    line the attempt may write, so that recording a finished delivery cannot then fail
    for lack of space: a full spool stops a delivery before it happens instead of after
    (which would deliver it again on every later attempt).  The room is allocated beyond
    the end of the file (fallocate KEEP_SIZE), so the file keeps Exim's format; where the
    filesystem cannot do that, the file is padded with NUL bytes, which
    :func:`read_journal` ignores, and lines are written over the padding.
    """

    def __init__(self, spool_dir: str, msgid: str):
        self.path = journal_path(spool_dir, msgid)
        self.fd: int | None = None
        self.offset = 0          # where the next line goes
        self.reserved_end = 0    # file offset up to which writes need no new space

    def _open(self) -> int:
        if self.fd is not None:
            return self.fd
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, SPOOL_FILE_MODE)
        try:
            data = _read_fd(fd)
        except BaseException:
            os.close(fd)
            raise
        pad = data.find(b"\0")
        end = len(data) if pad < 0 else pad
        # the next line goes after the last complete one (over a torn line or padding)
        self.offset = data.rfind(b"\n", 0, end) + 1
        self.reserved_end = len(data)
        self.fd = fd
        return fd

    def reserve(self, nbytes: int) -> None:
        """Make sure ``nbytes`` more can be written; OSError (ENOSPC...) if no room."""
        fd = self._open()
        want = self.offset + nbytes
        if want <= self.reserved_end:
            return
        if not reserve_beyond_eof(fd, self.reserved_end, want - self.reserved_end):
            _pwrite_all(fd, b"\0" * (want - self.reserved_end), self.reserved_end)
        self.reserved_end = want

    def append(self, unique: str) -> None:
        """Write one finished address and fsync it."""
        fd = self._open()
        line = _enc(unique.replace("\n", " ") + "\n")
        _pwrite_all(fd, line, self.offset)
        os.fsync(fd)
        self.offset += len(line)
        self.reserved_end = max(self.reserved_end, self.offset)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _read_fd(fd: int) -> bytes:
    parts: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        offset += len(chunk)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def read_journal(spool_dir: str, msgid: str) -> list[str]:
    """Addresses recorded in ID-J ([] if none); a torn last line and NUL padding
    (see :class:`Journal`) are ignored."""
    try:
        with open(journal_path(spool_dir, msgid), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    # the element after the final newline is empty, or a partial line from a crash
    return [ln.decode(_ENC, _ERR) for ln in lines[:-1] if ln and b"\0" not in ln]


def remove_journal(spool_dir: str, msgid: str) -> None:
    try:
        os.unlink(journal_path(spool_dir, msgid))
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------- removal

def preserve_msglog(spool_dir: str, msgid: str) -> None:
    """preserve_message_logs: move a completed message's msglog to msglog.OLD/ID (beside
    msglog/, not split) instead of deleting it; tidying msglog.OLD is the operator's job."""
    old_dir = os.path.join(_base(spool_dir, msgid), "msglog.OLD")
    try:
        os.makedirs(old_dir, mode=0o750, exist_ok=True)
        os.rename(msglog_path(spool_dir, msgid), os.path.join(old_dir, msgid))
    except FileNotFoundError:
        pass


def remove_message(spool_dir: str, msgid: str) -> None:
    """Remove a message: -H first (so it stops existing), then -D, -J and the msglog."""
    hp = header_path(spool_dir, msgid)
    try:
        os.unlink(hp)
    except FileNotFoundError:
        pass
    else:
        _fsync_dir(message_input_dir(spool_dir, msgid))
    for p in (data_path(spool_dir, msgid), journal_path(spool_dir, msgid),
              msglog_path(spool_dir, msgid)):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def fsync_dirs(*paths: str) -> None:
    """fsync the directories holding ``paths`` (after renames between them)."""
    for directory in dict.fromkeys(os.path.dirname(p) for p in paths):
        _fsync_dir(directory)
