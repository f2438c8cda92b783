"""Exim-style log files: mainlog, rejectlog, paniclog and the per-message msglog.

Every line is ``YYYY-MM-DD HH:MM:SS [id ]text`` in local time (``log_timezone`` adds the
zone offset, ``log_selector = +pid`` adds ``[pid]``).  Files are opened with O_APPEND and
each entry is one write(), so concurrent processes interleave whole lines.  A file that
was renamed away (log rotation) is noticed by a stat() at most once a second and
reopened.  ``syslog`` in ``log_file_path`` is ignored (files only); other
``log_selector`` settings are not implemented yet.
"""
from __future__ import annotations

import os
import time
from typing import Any, Iterable

from pymta.osutil import give_to_dir_owner

LOG_FILE_MODE = 0o640
_CHECK_INTERVAL = 1.0


def _timestamp(now: float, with_zone: bool) -> str:
    tm = time.localtime(now)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", tm)
    if with_zone:
        stamp += " " + time.strftime("%z", tm)
    return stamp


def _clean(text: str) -> str:
    """No raw line breaks inside one log line (they would forge log entries)."""
    if "\n" in text or "\r" in text:
        text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text


def panic_path_from(template: str) -> str:
    """Remove %D/%M from a log path for the (never datestamped) panic log.

    After a slash, a following non-alphanumeric character goes too; otherwise a preceding
    one does (so "/x/%slog-%D" gives "/x/paniclog").
    """
    out = template
    for tok in ("%D", "%M"):
        i = out.find(tok)
        while i >= 0:
            before = out[:i]
            after = out[i + 2:]
            if before.endswith("/"):
                if after and not after[0].isalnum():
                    after = after[1:]
            elif before and not before[-1].isalnum():
                before = before[:-1]
            out = before + after
            i = out.find(tok)
    return out


def log_directories(config: Any) -> list[str]:
    """The directories the main, reject and panic logs of ``config`` go to."""
    logger = Logger(config)
    dirs: list[str] = []
    for which in ("main", "reject", "panic"):
        d = os.path.dirname(logger.path_for(which))
        if d and d not in dirs:
            dirs.append(d)
    return dirs


def log_files(config: Any) -> list[str]:
    """The current main, reject and panic log files of ``config``."""
    logger = Logger(config)
    return [logger.path_for(which) for which in ("main", "reject", "panic")]


class _LogFile:
    """One append-only log file that follows rotation."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None
        self.ident: tuple[int, int] | None = None
        self.checked = 0.0
        self.pid = 0

    def _open(self) -> None:
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, mode=0o750, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     LOG_FILE_MODE)
        give_to_dir_owner(self.path)     # root must not leave exim_user a log it cannot write
        st = os.fstat(fd)
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd, self.ident = fd, (st.st_dev, st.st_ino)
        self.checked = time.monotonic()
        self.pid = os.getpid()

    def write(self, data: bytes) -> None:
        if self.fd is None:
            self._open()
        else:
            now = time.monotonic()
            if now - self.checked >= _CHECK_INTERVAL:
                self.checked = now
                try:
                    st = os.stat(self.path)
                    stale = (st.st_dev, st.st_ino) != self.ident
                except FileNotFoundError:
                    stale = True
                if stale:
                    self._open()
        assert self.fd is not None
        os.write(self.fd, data)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Logger:
    """Writes Exim's logs for one process; construct with the loaded ``Config``.

    ``log_file_path`` (expanded if it contains ``$``) chooses the files; unset or an
    empty item means ``<spool_directory>/log/%slog``.
    """

    def __init__(self, config: Any):
        self.config = config
        main = getattr(config, "main", None)
        self.spool_dir = str(getattr(main, "spool_directory", "") or "/var/spool/pymta")
        self.template = self._choose_path(getattr(main, "log_file_path", None))
        self.with_zone = bool(getattr(main, "log_timezone", False))
        self.write_rejectlog = bool(getattr(main, "write_rejectlog", True))
        selector = str(getattr(main, "log_selector", "") or "")
        self.log_pid = "+pid" in selector.split() or "+all" in selector.split()
        self._files: dict[str, _LogFile] = {}

    # ------------------------------------------------------------------ paths
    def _choose_path(self, setting: Any) -> str:
        default = os.path.join(self.spool_dir, "log", "%slog")
        if not setting:
            return default
        text = str(setting)
        if "$" in text:
            try:
                from pymta.expand import expand_string
                from pymta.expand.context import ExpandContext
                text = str(expand_string(text, ExpandContext(config=self.config)))
            except Exception:       # a log path must never stop us from logging
                return default
        for item in text.split(":"):
            item = item.strip()
            if item == "syslog":
                continue
            return item or default
        return default           # only syslog: we still keep files

    def path_for(self, which: str, now: float | None = None) -> str:
        """The file name for "main", "reject" or "panic" at time ``now``."""
        template = self.template
        if which == "panic":
            template = panic_path_from(template)
        elif "%D" in template or "%M" in template:
            tm = time.localtime(time.time() if now is None else now)
            template = template.replace("%D", time.strftime("%Y%m%d", tm)) \
                               .replace("%M", time.strftime("%Y%m", tm))
        return template.replace("%s", which)

    def _file(self, which: str, now: float) -> _LogFile:
        path = self.path_for(which, now)
        f = self._files.get(which)
        if f is None or f.path != path:
            if f is not None:
                f.close()
            f = self._files[which] = _LogFile(path)
        return f

    # ------------------------------------------------------------------ writing
    def format_line(self, text: str, msgid: str | None = None,
                    now: float | None = None) -> str:
        """One log line (with newline) as it would be written."""
        now = time.time() if now is None else now
        parts = [_timestamp(now, self.with_zone)]
        if self.log_pid:
            parts.append(f"[{os.getpid()}]")
        if msgid:
            parts.append(msgid)
        parts.append(_clean(text))
        return " ".join(parts) + "\n"

    def _write(self, which: str, data: str, now: float) -> None:
        self._file(which, now).write(data.encode("utf-8", "surrogateescape"))

    def main(self, text: str, msgid: str | None = None) -> None:
        """A line in the main log."""
        now = time.time()
        self._write("main", self.format_line(text, msgid, now), now)

    def reject(self, text: str, msgid: str | None = None,
               headers: Iterable[Any] | None = None,
               envelope: Iterable[str] | None = None) -> None:
        """A rejection: the line goes to mainlog and rejectlog.

        ``headers`` (SpoolHeader objects or plain header texts) and ``envelope`` lines
        (e.g. "Envelope-from: <x>") are appended to the rejectlog entry only, in one
        write so the entry stays together.
        """
        now = time.time()
        line = self.format_line(text, msgid, now)
        self._write("main", line, now)
        if not self.write_rejectlog:
            return
        extra = []
        for e in envelope or ():
            extra.append(e.rstrip("\n") + "\n")
        for h in headers or ():
            if hasattr(h, "flag"):
                extra.append(f"{h.flag} {h.text}")
            else:
                extra.append(f"  {h}")
            if not extra[-1].endswith("\n"):
                extra[-1] += "\n"
        self._write("reject", line + "".join(extra), now)

    def panic(self, text: str, msgid: str | None = None) -> None:
        """A serious error: to paniclog and mainlog."""
        now = time.time()
        line = self.format_line(text, msgid, now)
        try:
            self._write("panic", line, now)
        finally:
            self._write("main", line, now)

    def msglog(self, spool_dir: str, msgid: str, text: str) -> None:
        """A time-stamped line in spool/msglog/ID (the message's own log)."""
        now = time.time()
        line = _timestamp(now, self.with_zone) + " " + _clean(text) + "\n"
        directory = os.path.join(spool_dir, "msglog")
        path = os.path.join(directory, msgid)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         LOG_FILE_MODE)
        except FileNotFoundError:
            os.makedirs(directory, mode=0o750, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         LOG_FILE_MODE)
        try:
            os.write(fd, line.encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close all open log files (they reopen on the next write)."""
        for f in self._files.values():
            f.close()
        self._files.clear()
