"""Exim-style log files: mainlog, rejectlog, paniclog and the per-message msglog.

Every line is ``YYYY-MM-DD HH:MM:SS [id ]text`` in local time (``log_timezone`` adds the
zone offset, ``log_selector = +pid`` adds ``[pid]``).  Files are opened with O_APPEND and
each entry is one write(), so concurrent processes interleave whole lines.  A file that
was renamed away (log rotation) is noticed by a stat() at most once a second and
reopened.  ``syslog`` in ``log_file_path`` sends the same lines to syslog as well or
instead (:mod:`pymta.syslogger`).  The ``log_selector`` items pymta does not implement
are configuration errors (:func:`check_log_selector`).
"""
from __future__ import annotations

import os
import time
from typing import Any, Iterable

from pymta.config.model import ConfigError
from pymta.config.options import format_time
from pymta.config.values import default_log_file_path
from pymta.debuglog import debug
from pymta.osutil import give_to_dir_owner
from pymta.syslogger import SyslogWriter

LOG_FILE_MODE = 0o640
_CHECK_INTERVAL = 1.0


# log_selector items (Exim 4.96 names).  Those pymta acts on in both directions:
LOG_SELECTORS_SUPPORTED = frozenset("""
    etrn host_lookup_failed incoming_interface incoming_port lost_incoming_connection pid
    proxy queue_run sender_verify_fail size_reject smtp_protocol_error smtp_syntax_error
    tls_certificate_verified tls_cipher tls_peerdn tls_resumption tls_sni
    dkim
    dkim_verbose
    8bitmime
    pipelining
    receive_time
    received_recipients
    received_sender
    subject
    msg_id_created
    ident_timeout
    connection_reject
    smtp_connection
    smtp_incomplete_transaction
    smtp_no_mail
    smtp_mailauth
    arguments
    all_parents
    deliver_time
    delivery_size
    millisec
    outgoing_interface
    outgoing_port
    queue_time
    queue_time_exclusive
    queue_time_overall
    return_path_on_delivery
    sender_on_delivery
    msg_id
    smtp_confirmation
    address_rewrite
    retry_defer
    rejected_header
    acl_warn_skipped
    dnslist_defer
    skip_delivery
    delay_delivery
    unknown_in_list
    dnssec
""".split())
# address_rewrite (above): each rewrite by the rewrite section is logged
# ('"old" from env-to rewritten as "new" by rule 1'; pymta/rewrite/engine.py).
# Items Exim 4.96 turns on by default, among those pymta acts on.
LOG_SELECTORS_DEFAULT_ON = frozenset("etrn host_lookup_failed lost_incoming_connection "
                                     "queue_run sender_verify_fail size_reject "
                                     "tls_certificate_verified tls_cipher".split()
                                     + ["dkim"]
                                     + ["connection_reject"]
                                     + ["outgoing_interface"]
                                     + ["msg_id"]
                                     + ["smtp_confirmation"]
                                     + ["retry_defer"]
                                     + ["rejected_header"]
                                     + ["acl_warn_skipped"]
                                     + ["dnslist_defer"]
                                     + ["skip_delivery"]
                                     + ["delay_delivery"])
# Exim defaults that pymta always logs: "+name" is accepted, "-name" is not supported.
LOG_SELECTORS_ALWAYS: frozenset[str] = frozenset()
# Every other item Exim knows.
LOG_SELECTORS_EXIM = frozenset("""
    8bitmime address_rewrite all_parents arguments connection_reject delay_delivery
    deliver_time delivery_size dkim dkim_verbose dnslist_defer dnssec ident_timeout
    millisec msg_id_created outgoing_interface outgoing_port queue_time
    queue_time_exclusive queue_time_overall pipelining receive_time
    received_recipients received_sender return_path_on_delivery sender_on_delivery
    skip_delivery smtp_connection smtp_incomplete_transaction smtp_mailauth smtp_no_mail
    subject
""".split()) | LOG_SELECTORS_SUPPORTED | LOG_SELECTORS_ALWAYS


def check_log_selector(text: str, file: str | None = None, line: int | None = None) -> None:
    """Raise ConfigError for a log_selector item that is unknown or not supported.

    ``+all`` and ``-all`` are accepted: they switch every item pymta implements.
    """
    for word in text.split():
        sign, name = word[:1], word[1:]
        if sign not in "+-" or not sign or (name not in LOG_SELECTORS_EXIM and name != "all"):
            raise ConfigError(f"unknown log_selector setting: {word}", file, line)
        if name == "all" or name in LOG_SELECTORS_SUPPORTED:
            continue
        if name in LOG_SELECTORS_ALWAYS and sign == "+":
            continue
        raise ConfigError(f'log_selector item "{word}" is not supported in this version of '
                          "pymta", file, line)


# The one parse of log_selector per configuration text (a reload brings a new one).
_SELECTED: dict[str, frozenset[str]] = {}


def selected_items(text: str) -> frozenset[str]:
    """The items a log_selector setting turns on: Exim's defaults, then each ``+name``
    / ``-name`` (``+all`` / ``-all``) in order.  Items pymta always logs stay on."""
    hit = _SELECTED.get(text)
    if hit is not None:
        return hit
    on = set(LOG_SELECTORS_DEFAULT_ON)
    for word in text.split():
        sign, item = word[:1], word[1:]
        if item == "all":
            on = set(LOG_SELECTORS_SUPPORTED) if sign == "+" else set()
        elif sign == "+":
            on.add(item)
        elif sign == "-":
            on.discard(item)
    result = frozenset(on | LOG_SELECTORS_ALWAYS)
    _SELECTED[text] = result
    return result


def log_selected(config: Any, name: str) -> bool:
    """Whether log_selector (applied to Exim's defaults) turns item ``name`` on."""
    main = getattr(config, "main", None)
    return name in selected_items(str(getattr(main, "log_selector", "") or ""))


def duration(seconds: float, millisec: bool) -> str:
    """A time on a log line (QT=, DT=, RT=, D=): whole seconds in Exim's ``1m2s`` form;
    with ``millisec`` (log_selector +millisec) a time under five seconds has
    milliseconds (``0.304s``), as Exim 4.96 writes it."""
    seconds = max(seconds, 0.0)
    if seconds >= 5 or not millisec:
        return format_time(int(seconds))
    ms = int(seconds * 1000)
    return f"{ms // 1000}.{ms % 1000:03d}s"


def log_duration(config: Any, seconds: float) -> str:
    """:func:`duration` as ``config``'s log_selector asks for it."""
    return duration(seconds, log_selected(config, "millisec"))


def _timestamp(now: float, with_zone: bool, millisec: bool = False) -> str:
    msec = int(now * 1000)      # one truncation, so the seconds and ".mmm" agree
    tm = time.localtime(msec // 1000)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", tm)
    if millisec:       # log_selector +millisec: ".mmm" after the seconds
        stamp += f".{msec % 1000:03d}"
    if with_zone:
        stamp += " " + time.strftime("%z", tm)
    return stamp


def one_line(text: str) -> str:
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


def split_log_file_path(text: str) -> tuple[str | None, bool]:
    """The file template and whether syslog is used, from an (expanded) log_file_path.

    Items are colon-separated (never another separator), at most two: ``syslog``, a path
    with ``%s``, or empty for the default path.  Only ``syslog`` gives no file template
    (None); an unset option gives ("", False), the default path.
    """
    template: str | None = None
    syslog = False
    for item in text.split(":"):
        item = item.strip()
        if item == "syslog":
            syslog = True
        elif template is None:
            template = item
    if template is None and not syslog:
        template = ""
    return template, syslog


def log_directories(config: Any) -> list[str]:
    """The directories the main, reject and panic logs of ``config`` go to (none when
    it logs to syslog only)."""
    logger = Logger(config)
    if not logger.to_files:
        return []
    dirs: list[str] = []
    for which in ("main", "reject", "panic"):
        d = os.path.dirname(logger.path_for(which))
        if d and d not in dirs:
            dirs.append(d)
    return dirs


def log_files(config: Any) -> list[str]:
    """The current main, reject and panic log files of ``config`` (none when it logs to
    syslog only)."""
    logger = Logger(config)
    if not logger.to_files:
        return []
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
    empty item means ``<spool_directory>/log/%slog``; a ``syslog`` item sends the lines to
    syslog too (alone: to syslog only), with the ``syslog_*`` main options.
    """

    def __init__(self, config: Any):
        self.config = config
        main = getattr(config, "main", None)
        self.spool_dir = str(getattr(main, "spool_directory", "") or "/var/spool/pymta")
        self.to_syslog = False
        self.to_files = True
        self.template = self._choose_path(getattr(main, "log_file_path", None))
        self.syslog: SyslogWriter | None = None
        if self.to_syslog:
            self.syslog = SyslogWriter(
                str(getattr(main, "syslog_facility", None) or "mail"),
                str(getattr(main, "syslog_processname", None) or "exim"))
        self.syslog_duplication = bool(getattr(main, "syslog_duplication", True))
        self.syslog_timestamp = bool(getattr(main, "syslog_timestamp", True))
        self.syslog_pid = bool(getattr(main, "syslog_pid", True))
        self.with_zone = bool(getattr(main, "log_timezone", False))
        self.write_rejectlog = bool(getattr(main, "write_rejectlog", True))
        # message_logs = false: no spool/msglog files at all
        self.message_logs = bool(getattr(main, "message_logs", True))
        self.log_pid = log_selected(config, "pid")
        self.millisec = log_selected(config, "millisec")
        # -rejected_header: a rejectlog entry without the envelope and header lines
        self.rejected_header = log_selected(config, "rejected_header")
        self._files: dict[str, _LogFile] = {}

    # ------------------------------------------------------------------ paths
    def _choose_path(self, setting: Any) -> str:
        default = default_log_file_path(self.spool_dir)
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
        template, self.to_syslog = split_log_file_path(text)
        if template is None:           # syslog only: no files (path_for still answers)
            self.to_files = False
            return default
        return template or default

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
        parts = [_timestamp(now, self.with_zone, self.millisec)]
        if self.log_pid:
            parts.append(f"[{os.getpid()}]")
        if msgid:
            parts.append(msgid)
        parts.append(one_line(text))
        return " ".join(parts) + "\n"

    def _syslog_text(self, data: str) -> str:
        """``data`` as syslog gets it: without pymta's time stamp (syslog_timestamp =
        false) or its ``[pid]`` field (syslog_pid = false)."""
        if self.syslog_timestamp and (self.syslog_pid or not self.log_pid):
            return data
        fields = 3 if self.with_zone else 2        # date, time[, zone]
        head = data.split(" ", fields)
        stamp, rest = " ".join(head[:fields]), (head[fields] if len(head) > fields else "")
        if not self.syslog_pid and self.log_pid and rest.startswith("["):
            rest = rest.split("] ", 1)[1] if "] " in rest else rest
        return stamp + " " + rest if self.syslog_timestamp else rest

    def _write(self, which: str, data: str, now: float, syslog: bool = True) -> None:
        """Write ``data`` to log ``which``'s file and (``syslog``) to syslog.  Callers
        pass ``syslog=False`` for the copy syslog_duplication = false suppresses."""
        if debug.any and which != "reject":
            debug.log_line(which, data)      # as Exim's debug output shows log lines
            if which == "panic":
                debug.paniclog_written()     # control = debug/.../trigger=paniclog
        if self.syslog is not None and syslog:
            self.syslog.send(which, self._syslog_text(data), now)
        if not self.to_files:
            return
        raw = data.encode("utf-8", "surrogateescape")
        try:
            self._file(which, now).write(raw)
        except OSError as exc:
            # A full or broken log filesystem must not stop mail handling half-way
            # (e.g. between a delivery and its -H update): the line goes to stderr.
            try:
                os.write(2, f"pymta: cannot write {which}log ({exc.strerror}): ".encode()
                         + raw)
            except OSError:
                pass

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
        self._write("main", line, now, syslog=self.syslog_duplication
                    or not self.write_rejectlog)
        if not self.write_rejectlog:
            return
        if not self.rejected_header:
            envelope = headers = None
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

    def to_logs(self, targets: Iterable[str], text: str, msgid: str | None = None,
                headers: Iterable[Any] | None = None,
                envelope: Iterable[str] | None = None) -> None:
        """The same line in each of the named logs ("main", "reject", "panic"), as the
        ACL modifiers logwrite and log_reject_target ask (no log: nothing written)."""
        wanted = set(targets)
        now = time.time()
        line = self.format_line(text, msgid, now)
        # syslog_duplication = false: one syslog copy, the reject or panic one
        single = not self.syslog_duplication and (
            "panic" in wanted or ("reject" in wanted and self.write_rejectlog))
        if "main" in wanted:
            self._write("main", line, now, syslog=not single)
        if not self.rejected_header:
            headers = None
        if "reject" in wanted and self.write_rejectlog:
            extra = "".join(e.rstrip("\n") + "\n" for e in envelope or ()) + \
                "".join((f"{h.flag} {h.text}" if hasattr(h, "flag") else f"  {h}")
                        .rstrip("\n") + "\n" for h in headers or ())
            self._write("reject", line + extra, now)
        if "panic" in wanted:
            self._write("panic", line, now)

    def panic(self, text: str, msgid: str | None = None) -> None:
        """A serious error: to paniclog and mainlog."""
        now = time.time()
        line = self.format_line(text, msgid, now)
        try:
            self._write("panic", line, now)
        finally:
            self._write("main", line, now, syslog=self.syslog_duplication)

    def msglog(self, spool_dir: str, msgid: str, text: str, stamp: bool = True) -> None:
        """A time-stamped line in spool/msglog/ID (the message's own log); nothing when
        message_logs is false.  ``stamp`` False: the line as it is (Exim's "*** Frozen")."""
        if not self.message_logs:
            return
        now = time.time()
        line = one_line(text) + "\n"
        if stamp:
            line = _timestamp(now, self.with_zone, self.millisec) + " " + line
        from pymta.spool.files import msglog_path
        path = msglog_path(spool_dir, msgid)
        directory = os.path.dirname(path)
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
        """Close all open log files and the syslog socket (they reopen on the next
        write)."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        if self.syslog is not None:
            self.syslog.close()
