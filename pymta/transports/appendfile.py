"""The appendfile transport: mbox files (``file``) and directory deliveries
(``directory``, with ``maildir_format`` for maildir).

Every delivered file is fsynced (and for maildir the ``new/`` directory too) before the
addresses are marked "ok", so a logged ``=>`` is never lost in a crash.
"""
from __future__ import annotations

import contextlib
import errno as _errno
import fcntl
import os
import re
import socket
import stat
import time
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from pymta.config.option_tables import driver_options
from pymta.config.values import main_option
from pymta.drivers import register
from pymta.errnos import EximErrno
from pymta.osutil import fsync_dir as _fsync_dir
from pymta.osutil import switched_ids
from pymta.spool.ids import base62
from pymta.taint import is_tainted
from pymta.transports import quota
from pymta.transports.base import (
    Transport,
    TransportError,
    check_never_users,
    expand,
    is_forced_fail,
    set_results,
)
from pymta.transports.content import body_size, write_message
from pymta.transports.filter import TransportFilter, TransportFilterFailed, transport_filter

# Exim's defaults for the options that depend on the kind of delivery; the mbox ones are
# also the option table's defaults.
_MBOX = driver_options("transport", "appendfile")
FORMAT_DEFAULTS: dict[str, dict[str, str | None]] = {
    "mbox": {n: _MBOX[n].default for n in ("check_string", "escape_string",
                                           "message_prefix", "message_suffix")},
    "directory": {"check_string": "", "escape_string": "", "message_prefix": "",
                  "message_suffix": ""},
    "bsmtp": {"check_string": ".", "escape_string": "..", "message_prefix": "",
              "message_suffix": ""},
}

# Maildir names must be unique per (second, microsecond, pid): remember the last one.
_last_maildir_stamp: tuple[int, int] = (0, 0)


def tod_bsdinbox(t: float | None = None) -> str:
    """Exim's $tod_bsdinbox: local time as in a BSD mailbox "From " line."""
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(t))


def _unique_stamp() -> tuple[int, int]:
    global _last_maildir_stamp
    while True:
        now = time.time_ns() // 1000
        stamp = (now // 1_000_000, now % 1_000_000)
        if stamp > _last_maildir_stamp:
            _last_maildir_stamp = stamp
            return stamp


def _makedirs(path: str, mode: int) -> None:
    """Create ``path`` and missing parents with exactly ``mode`` (umask ignored)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path:
        _makedirs(parent, mode)
    try:
        os.mkdir(path, mode)
        os.chmod(path, mode)
    except FileExistsError:
        pass




_DEFAULT_WARN_MESSAGE = (
    "To: $local_part@$domain\nSubject: Your mailbox\n\n"
    "This message is automatically created by mail delivery software.\n\n"
    "The size of your mailbox has exceeded a warning threshold that is\n"
    "set by the system administrator.\n")


@dataclass
class _Quotas:
    """The expanded quota, quota_filecount and quota_warn_threshold of a delivery."""

    size: quota.Limit
    filecount: quota.Limit
    warn: int

    @property
    def active(self) -> bool:
        return bool(self.size.value or self.filecount.value or self.warn)


@register("transport", "appendfile")
class AppendfileTransport(Transport):
    """Local delivery into a mailbox file or a (maildir) directory."""

    options = driver_options("transport", "appendfile")
    is_local = True
    _data: Any = None          # the open -D file during a delivery
    _filter: TransportFilter | None = None    # transport_filter, during a delivery
    _size_file_dir: str | None = None   # the maildirsize directory of this delivery
    _ctx: Any = None           # the expansion context of the delivery in progress
    _first_address: Any = None

    def __init__(self, instance: Any, config: Any):
        super().__init__(instance, config)
        self._stored_defaults: set[str] = set()
        # Like Exim, store the effective defaults of the format-dependent options so
        # that -bP shows them: none for directory deliveries, "." / ".." for batch SMTP.
        # A maildir or mailstore transport delivers into a directory even when the
        # directory comes from a router (address_directory).
        directory = bool(self.opt("directory") and not self.opt("file")) or \
            bool(self.opt("maildir_format")) or bool(self.opt("mailstore_format"))
        if self.opt("use_bsmtp") or directory:
            for name in FORMAT_DEFAULTS["mbox"]:
                if not self.explicitly_set(name):
                    instance.options[name] = self.format_option(name, directory=directory)
                    self._stored_defaults.add(name)

    def explicitly_set(self, name: str) -> bool:
        """Whether the configuration gave ``name`` a value of its own (instances made
        without the loader have no ``explicit`` set: a non-default value counts)."""
        if name in getattr(self.instance, "explicit", ()):
            return True
        if name in getattr(self, "_stored_defaults", ()):
            return False
        value = self.instance.options.get(name)
        spec = self.options.get(name)
        return value is not None and (spec is None or value != spec.default)

    def format_option(self, name: str, directory: bool) -> str | None:
        """check_string, escape_string, message_prefix or message_suffix: the setting,
        or Exim's default for this kind of delivery (mbox file, directory, batch SMTP)."""
        if self.explicitly_set(name):
            return self.instance.options.get(name)
        kind = "bsmtp" if self.opt("use_bsmtp") else "directory" if directory else "mbox"
        return FORMAT_DEFAULTS[kind][name]

    def deliver(self, job: Any) -> None:
        addrs = job.addresses
        try:
            self._deliver(job)
        except TransportError as e:
            set_results(addrs, e.result, e.message, e.errno)
        except OSError as e:
            set_results(addrs, "defer", f"{e.strerror or e}", e.errno or EximErrno.UNKNOWNERROR)

    # -- option helpers -------------------------------------------------------
    def _expand_opt(self, name: str, ctx: Any, what: str | None = None) -> str | None:
        text = self.opt(name)
        if text is None:
            return None
        try:
            return expand(text, ctx)
        except Exception as e:  # noqa: BLE001 - expansion errors defer the delivery
            if is_forced_fail(e) and what is None:
                return None
            raise TransportError(f'Expansion of "{text}" '
                                 f"({what or name} for {self.name} transport) failed: {e}",
                                 errno=EximErrno.EXPANDFAIL)

    def _mode(self, job: Any) -> int:
        """The mailbox mode: a filter's ``save`` may give its own."""
        first = job.addresses[0]
        return first.file_mode if first.file_mode is not None else self.opt("mode")

    def _delivery_path(self, ctx: Any) -> tuple[str, bool]:
        """Expanded file or directory name and whether it is a directory delivery.

        Without ``file`` and ``directory`` the path is ``$address_file`` (a redirect
        router's ``/path`` target; one ending in ``/`` is a directory).
        """
        if self.opt("file") or self.opt("directory"):
            is_dir = not self.opt("file")
            path = self._expand_opt("directory" if is_dir else "file", ctx,
                                    "file or directory name")
        else:
            path = (ctx.variables.get("address_file") if ctx is not None else None)
            if not path:
                raise TransportError(f"Mandatory file or directory option missing from "
                                     f"{self.name} transport")
            is_dir = path.endswith("/")
        if is_tainted(path):
            # Exim 4.94+: a path built from message data is never used.  Exim 4.96
            # logs this as "defer (-1)" (and also writes it to the panic log).
            raise TransportError(f"Tainted '{path}' (file or directory name for "
                                 f"{self.name} transport) not permitted",
                                 errno=EximErrno.UNKNOWNERROR)
        if not path or not path.startswith("/"):
            raise TransportError(f'appendfile: file or directory name "{path}" is not '
                                 "absolute", errno=EximErrno.NOTABSOLUTE)
        if is_dir and len(path) > 1:
            path = path.rstrip("/")
        return path, is_dir

    def _prefix_suffix(self, ctx: Any, rp: str, mbox: bool) -> tuple[bytes, bytes]:
        """Expanded message_prefix and message_suffix (defaults depend on the format)."""
        out = []
        for name in ("message_prefix", "message_suffix"):
            text = self.format_option(name, directory=not mbox)
            if text and name == "message_prefix" and not self.explicitly_set(name):
                # the default "From " line is built natively (same text as expanding it)
                text = f"From {rp or 'MAILER-DAEMON'} {tod_bsdinbox()}\n"
            elif text:
                text = self._expand_text(name, text, ctx) or ""
            out.append((text or "").encode("utf-8", "surrogateescape"))
        return out[0], out[1]

    def _expand_text(self, name: str, text: str, ctx: Any) -> str | None:
        try:
            return expand(text, ctx)
        except Exception as e:  # noqa: BLE001 - expansion errors defer the delivery
            if is_forced_fail(e):
                return None
            raise TransportError(f'Expansion of "{text}" ({name} for {self.name} '
                                 f"transport) failed: {e}", errno=EximErrno.EXPANDFAIL)

    def _check_escape(self, mbox: bool) -> tuple[bytes | None, bytes | None]:
        check = self.format_option("check_string", directory=not mbox)
        escape = self.format_option("escape_string", directory=not mbox)
        if not check or escape is None:
            return None, None
        return check.encode(), escape.encode()

    def _write(self, f: Any, job: Any, ctx: Any, rp: str, mbox: bool, where: str) -> int:
        """Write the message to ``f`` (the file ``where``, for error messages)."""
        prefix, suffix = self._prefix_suffix(ctx, rp, mbox)
        check, escape = self._check_escape(mbox)
        header = self.header_block(job, ctx, rp)
        bsmtp = bool(self.opt("use_bsmtp"))
        if bsmtp:
            # Batch SMTP: the envelope as SMTP commands, then the dot-stuffed message.
            nl = "\r\n" if self.opt("use_crlf") else "\n"
            prefix += self.bsmtp_envelope(job, rp, nl)
        try:
            written = write_message(f, header, self._data or job.data_path,
                                    prefix=prefix, suffix=suffix,
                                    use_crlf=self.opt("use_crlf"),
                                    check_string=check, escape_string=escape,
                                    body_only=self.opt("body_only"),
                                    headers_only=self.opt("headers_only"), end_dot=bsmtp,
                                    transport_filter=self._filter)
        except TransportFilterFailed as e:
            raise TransportError(e.text(f" while writing to {where}"), "defer",
                                 e.errno) from None
        for a in job.addresses:
            a.delivered_size = written           # S= on the delivery line
        return written

    # -- quotas -------------------------------------------------------------------
    def _limit(self, name: str, ctx: Any) -> quota.Limit:
        text = self._expand_opt(name, ctx)
        try:
            return quota.parse_limit(text)
        except ValueError:
            raise TransportError(f'Invalid value "{text}" for {name} in {self.name} '
                                 "transport") from None

    def _quotas(self, ctx: Any) -> "_Quotas":
        size = self._limit("quota", ctx)
        try:
            warn = quota.threshold(self._expand_opt("quota_warn_threshold", ctx), size.value)
        except ValueError:
            raise TransportError(f"Invalid value for quota_warn_threshold in {self.name} "
                                 "transport") from None
        return _Quotas(size, self._limit("quota_filecount", ctx), warn)

    def _message_size(self, job: Any) -> int:
        return (body_size(self._data or job.data_path)
                + sum(len(h.text) for h in job.message.headers))

    def _exceeded(self, q: "_Quotas", used: int, count: int, size: int) -> str | None:
        """"quota" or "filecount" when one more message of ``size`` bytes would go over
        that limit, else None."""
        if q.size.value and not q.size.no_check:
            if used + (size if self.opt("quota_is_inclusive") else 0) > q.size.value:
                return "quota"
        if q.filecount.value and not q.filecount.no_check and count + 1 > q.filecount.value:
            return "filecount"
        return None

    def _enforce(self, q: "_Quotas", job: Any, used: int, count: int, where: str) -> None:
        """Refuse the delivery when it would exceed the quota or the file count."""
        size = self._message_size(job) if q.size.value and \
            self.opt("quota_is_inclusive") else 0
        kind = self._exceeded(q, used, count, size)
        if kind is not None:
            what = "quota" if kind == "quota" else "filecount quota"
            raise TransportError(f"mailbox is full (MTA-imposed {what} exceeded while "
                                 f"writing to {where})", errno=EximErrno.EXIMQUOTA)

    def quota_exceeded(self, ctx: Any, message_size: int) -> bool:
        """For ``verify = recipient/quota``: would a message of ``message_size`` bytes
        (0 when unknown) take the mailbox of the address in ``ctx`` over its quota or
        file count?  Nothing is created or written.  Other problems (a bad path, an
        unreadable mailbox) raise TransportError or OSError, as a delivery would."""
        path, is_dir = self._delivery_path(ctx)
        q = self._quotas(ctx)
        if not (q.size.value or q.filecount.value):
            return False
        if is_dir:
            used, count = self._usage(ctx, q, path, bool(self.opt("maildir_format")),
                                      record=False)
        else:
            try:
                used, count = os.stat(path).st_size, 0
            except FileNotFoundError:
                used, count = 0, 0
            if self.opt("mailbox_size"):
                used, _count = self._usage(ctx, q, path, False, record=False)
        return self._exceeded(q, used, count, message_size) is not None

    def _usage(self, ctx: Any, q: "_Quotas", path: str, maildir: bool,
               record: bool = True) -> tuple[int, int]:
        """The mailbox's size and file count: mailbox_size/mailbox_filecount when set,
        else the maildirsize file (maildir_use_size_file), else the directory tree.
        ``record=False`` counts without rewriting a stale maildirsize."""
        if record:
            self._size_file_dir = None
        given_size = self._expand_opt("mailbox_size", ctx)
        given_count = self._expand_opt("mailbox_filecount", ctx)
        if not (q.active or self.opt("maildir_use_size_file") or given_size):
            return 0, 0
        qdir = self._expand_opt("quota_directory", ctx)
        if not qdir:
            qdir = os.path.dirname(path.rstrip("/")) if maildir and os.path.exists(
                os.path.join(path, "maildirfolder")) else path
        size_regex = re.compile(self.opt("quota_size_regex")) \
            if self.opt("quota_size_regex") else None
        if maildir and self.opt("maildir_use_size_file"):
            dir_regex = re.compile(self.opt("maildir_quota_directory_regex"))
            totals = quota.read_maildirsize(qdir, q.size.value, q.filecount.value)
            if totals is None and not record:
                totals = quota.tree_usage(qdir, size_regex, dir_regex)
            if totals is None:      # missing, stale or corrupt: count the mailbox again
                totals = quota.recalculate_maildirsize(qdir, q.size.value,
                                                       q.filecount.value, dir_regex,
                                                       size_regex, self.opt("mode"))
            if record:
                self._size_file_dir = qdir
            used, count = totals
        else:
            used, count = quota.tree_usage(qdir, size_regex)
        try:
            if given_size:
                used = quota.parse_limit(given_size).value
            if given_count:
                count = quota.parse_limit(given_count).value
        except ValueError:
            raise TransportError(f"invalid mailbox_size or mailbox_filecount in {self.name} "
                                 "transport") from None
        return used, count

    def _after_delivery(self, job: Any, ctx: Any, q: "_Quotas", used: int,
                        written: int) -> None:
        """Record the delivery in maildirsize; warn when it crossed the threshold."""
        if self._size_file_dir is not None:
            try:
                quota.append_maildirsize(self._size_file_dir, written)
            except OSError:
                pass            # recalculated next time
        if q.warn and used < q.warn <= used + written:
            self._quota_warning(job, ctx)

    def _quota_warning(self, job: Any, ctx: Any) -> None:
        """The quota_warn_message, submitted like a bounce (null sender)."""
        text = self._expand_opt("quota_warn_message", ctx) or expand(
            _DEFAULT_WARN_MESSAGE, ctx)
        head, sep, body = text.partition("\n\n")
        names = {ln.split(":", 1)[0].strip().lower() for ln in head.split("\n")
                 if ":" in ln and not ln[:1].isspace()}
        recipients = [a for _n, a in getaddresses(
            [ln.split(":", 1)[1] for ln in head.split("\n")
             if ln.lower().startswith(("to:", "cc:", "bcc:"))]) if a]
        if not recipients or job.submit is None:
            return
        extra = "Auto-Submitted: auto-replied\n"
        if "from" not in names:
            qualify = main_option(self.config, "qualify_domain") or self._hostname()
            extra += f"From: Mail Delivery System <Mailer-Daemon@{qualify}>\n"
        data = (extra + head + "\n\n" + (body if sep else "")).encode(
            "utf-8", "surrogateescape")
        try:
            job.submit(data, recipients, job.message.id)
        except Exception as exc:  # noqa: BLE001 - the delivery itself has succeeded
            self.log_panic(job, f"failed to send quota warning: {exc}")

    @staticmethod
    def log_panic(job: Any, text: str) -> None:
        log = getattr(job, "log", None)
        if log is not None:
            log.panic(text, job.message.id)

    # -- delivery ---------------------------------------------------------------
    def _deliver(self, job: Any) -> None:
        ctx = self.context(job, job.addresses[0] if job.addresses else None)
        rp = self.return_path(job)
        path, is_dir = self._delivery_path(ctx)
        self.check_size_limit(job, ctx, body_size(job.data_path)
                              + sum(len(h.text) for h in job.message.headers))
        self._first_address = job.addresses[0] if job.addresses else None
        ids = self.delivery_ids(ctx, self._first_address)
        if ids is not None:
            check_never_users(self.config, ids[0], self.name)
        # Open the spool data file while still privileged; the delivery user may
        # not be able to read the spool.
        self._data = open(job.data_path, "rb")
        try:
            # Effective ids only, so the worker can switch back afterwards.
            groups = self.delivery_groups(ids, self._first_address)
            self._filter = transport_filter(self, job, ctx, ids, groups)
            with switched_ids(*ids, groups) if ids is not None else contextlib.nullcontext():
                if is_dir:
                    if self.opt("maildir_format"):
                        self._deliver_maildir(job, ctx, rp, path)
                    elif self.opt("mailstore_format"):
                        self._deliver_mailstore(job, ctx, rp, path)
                    else:
                        self._deliver_directory(job, ctx, rp, path)
                else:
                    self._deliver_mbox(job, ctx, rp, path)
        finally:
            self._data.close()
            self._data = None
            self._filter = None
        set_results(job.addresses, "ok")

    # mbox ----------------------------------------------------------------------
    def _lockfile(self, path: str) -> str | None:
        if not self.opt("use_lockfile"):
            return None
        lock = path + ".lock"
        retries = max(0, int(self.opt("lock_retries")))
        for attempt in range(retries + 1):
            # Exim's NFS-safe way: create a uniquely named "hitching post" file, then
            # hard link the lock file name to it (the link count tells, even when link()
            # reports failure over NFS); the error names the hitching post.
            hitch = f"{lock}.{self._hostname()}.{int(time.time()):08x}.{os.getpid():08x}"
            try:
                fd = os.open(hitch, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             self.opt("lockfile_mode"))
            except OSError as e:
                raise TransportError(f"creating lock file hitching post {hitch} "
                                     f"(euid={os.geteuid()} egid={os.getegid()})",
                                     errno=e.errno or EximErrno.LOCKFAILED) from None
            try:
                try:
                    os.link(hitch, lock)
                    linked = True
                except OSError:
                    linked = os.fstat(fd).st_nlink == 2
            finally:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(hitch)
            if linked:
                return lock
            try:
                timeout = self.opt("lockfile_timeout")
                if timeout > 0 and time.time() - os.stat(lock).st_ctime > timeout:
                    os.unlink(lock)  # stale lock left by a crashed process
                    continue
            except FileNotFoundError:
                continue
            if attempt < retries:
                time.sleep(self.opt("lock_interval"))
        raise TransportError(f"failed to lock mailbox {path} (lock file)",
                             errno=EximErrno.LOCKFAILED)

    def _fcntl_lock(self, fd: int, path: str) -> None:
        """The kernel locks on the open mailbox: fcntl (use_fcntl_lock) and/or flock
        (use_flock_lock).  Each attempt waits up to lock_fcntl_timeout /
        lock_flock_timeout (0: does not wait); lock_retries attempts, lock_interval
        apart."""
        if self.opt("use_fcntl_lock"):
            self._kernel_lock(fd, path, "fcntl", lambda: fcntl.lockf(
                fd, fcntl.LOCK_EX | fcntl.LOCK_NB), self.opt("lock_fcntl_timeout"))
        if self.opt("use_flock_lock"):
            self._kernel_lock(fd, path, "flock", lambda: fcntl.flock(
                fd, fcntl.LOCK_EX | fcntl.LOCK_NB), self.opt("lock_flock_timeout"))

    def _kernel_lock(self, fd: int, path: str, kind: str, attempt_lock: Any,
                     timeout: int) -> None:
        retries = max(0, int(self.opt("lock_retries")))
        for attempt in range(retries + 1):
            deadline = time.monotonic() + (timeout or 0)
            while True:
                try:
                    attempt_lock()
                    return
                except OSError as e:
                    if e.errno not in (_errno.EACCES, _errno.EAGAIN, _errno.EWOULDBLOCK):
                        raise
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
            if attempt < retries:
                time.sleep(self.opt("lock_interval"))
        raise TransportError(f"failed to lock mailbox {path} (fcntl/flock)",
                             errno=EximErrno.LOCKFAILED)

    def _open_mbox(self, path: str, mode: int) -> tuple[int, bool]:
        """Open (or create) the mailbox with ``mode``, enforcing Exim's safety checks."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is None:
            if self.opt("file_must_exist"):
                raise TransportError(f"File {path} does not exist",
                                     errno=_errno.ENOENT)
            self._check_create_location(path, self._ctx)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             mode)
                os.fchmod(fd, mode)
                return fd, True
            except FileExistsError:
                st = os.lstat(path)  # lost a race: fall through to the checks
        if stat.S_ISLNK(st.st_mode):
            if not self.opt("allow_symlink"):
                raise TransportError(f"mailbox {path} is a symbolic link",
                                     errno=EximErrno.NOTREGULAR)
            st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) and not (
                stat.S_ISFIFO(st.st_mode) and self.opt("allow_fifo")):
            raise TransportError(f"mailbox {path} is not a regular file",
                                 errno=EximErrno.NOTREGULAR)
        # As root without a delivery user (the router supplied none) there is no
        # owner to compare with; Exim would be running as the local user here.
        if self.opt("check_owner") and os.geteuid() != 0 and st.st_uid != os.geteuid():
            raise TransportError(f"mailbox {path} has wrong uid ({st.st_uid} != "
                                 f"{os.geteuid()})", errno=EximErrno.BADUGID)
        if self.opt("check_group") and os.geteuid() != 0 and st.st_gid != os.getegid():
            raise TransportError(f"mailbox {path} has wrong gid ({st.st_gid} != "
                                 f"{os.getegid()})", errno=EximErrno.BADUGID)
        flags = os.O_WRONLY | (0 if self.opt("allow_symlink") else os.O_NOFOLLOW)
        fd = os.open(path, flags)
        fst = os.fstat(fd)
        if (fst.st_ino, fst.st_dev) != (st.st_ino, st.st_dev):
            os.close(fd)
            raise TransportError(f"mailbox {path} changed while opening",
                                 errno=EximErrno.UNKNOWNERROR)
        have = stat.S_IMODE(fst.st_mode)
        if mode != self.opt("mode") and have != mode:
            os.fchmod(fd, mode)         # a filter's "save file mode" sets the mode
        elif mode & ~have:
            # Narrower than configured (missing a bit, whatever else it has): Exim
            # defers, or with mode_fail_narrower false delivers with the mode as it is.
            if self.opt("mode_fail_narrower") is not False:
                os.close(fd)
                raise TransportError(f"mailbox {path} has the wrong mode {have:o} "
                                     f"({mode:o} expected)", errno=EximErrno.BADMODE)
        elif have != mode:
            os.fchmod(fd, mode)         # more permissive than configured: narrowed
        return fd, False

    def _deliver_mbox(self, job: Any, ctx: Any, rp: str, path: str) -> None:
        self._ctx = ctx
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            if not self.opt("create_directory"):
                raise TransportError(f"directory for {path} does not exist",
                                     errno=_errno.ENOENT)
            _makedirs(parent, self.opt("directory_mode"))
        q = self._quotas(ctx)
        lock = self._lockfile(path)
        try:
            fd, _created = self._open_mbox(path, self._mode(job))
            try:
                self._fcntl_lock(fd, path)
                start = os.lseek(fd, 0, os.SEEK_END)
                used = start
                if self.opt("mailbox_size"):
                    used, _count = self._usage(ctx, q, path, False)
                self._enforce(q, job, used, 0, path)
                try:
                    with os.fdopen(os.dup(fd), "wb", buffering=1 << 16) as f:
                        written = self._write(f, job, ctx, rp, mbox=True, where=path)
                        f.flush()
                        os.fsync(f.fileno())
                except BaseException:
                    # Leave the mailbox as it was: a half-written message corrupts it.
                    os.ftruncate(fd, start)
                    raise
            finally:
                os.close(fd)  # also releases the fcntl lock
            self._size_file_dir = None
            self._after_delivery(job, ctx, q, used, written)
            if self.opt("notify_comsat"):
                notify_comsat(job.addresses[0].local_part, start)
        finally:
            if lock:
                try:
                    os.unlink(lock)
                except OSError:
                    pass

    # maildir -------------------------------------------------------------------
    def _deliver_maildir(self, job: Any, ctx: Any, rp: str, path: str) -> None:
        dmode = self.opt("directory_mode")
        if not os.path.isdir(path) and self.opt("create_directory"):
            self._check_create_location(path, ctx, "directory")
        for sub in ("tmp", "new", "cur"):
            d = os.path.join(path, sub)
            if not os.path.isdir(d):
                if not self.opt("create_directory"):
                    raise TransportError(f"maildir directory {d} does not exist",
                                         errno=_errno.ENOENT)
                try:
                    _makedirs(d, dmode)
                except OSError as e:
                    raise TransportError(f"failed to create directory {d}: {e.strerror}",
                                         errno=e.errno or EximErrno.UNKNOWNERROR)
        regex = self.opt("maildirfolder_create_regex")
        if regex:
            if re.search(regex, path):
                mf = os.path.join(path, "maildirfolder")
                if not os.path.exists(mf):
                    os.close(os.open(mf, os.O_WRONLY | os.O_CREAT, self.opt("mode")))
        q = self._quotas(ctx)
        used, count = self._usage(ctx, q, path, True)
        host = self._hostname()
        for _ in range(max(1, int(self.opt("maildir_retries")))):
            sec, usec = _unique_stamp()
            # Exim 4.96 writes "<sec>.M<usec>P<pid>.<host>" (its manual says ".H").
            name = f"{sec}.M{usec}P{os.getpid()}.{host}"
            tmp = os.path.join(path, "tmp", name)
            if q.active:
                self._enforce(q, job, used, count, f"tmp/{name}")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.opt("mode"))
                break
            except FileExistsError:
                time.sleep(0.01)
        else:
            raise TransportError(f"failed to create a unique file in {path}/tmp",
                                 errno=_errno.EEXIST)
        written = self._write_and_rename(fd, tmp, job, ctx, rp, lambda _inode: os.path.join(
            path, "new", name + (self._expand_opt("maildir_tag", ctx) or "")))
        _fsync_dir(os.path.join(path, "new"))
        self._after_delivery(job, ctx, q, used, written)

    # plain directory (one file per message) ------------------------------------------
    def _deliver_directory(self, job: Any, ctx: Any, rp: str, path: str) -> None:
        tmp = os.path.join(path, f"temp.{os.getpid()}.{self._hostname()}")
        q, used = self._prepare_directory(job, ctx, path, os.path.basename(tmp))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.opt("mode"))

        def final_path(inode: int) -> str:
            name = expand(self.opt("directory_file"), ctx.child(inode=str(inode)))
            if is_tainted(name) or "/" in name:
                raise TransportError(f"bad directory_file name \"{name}\" in {self.name} "
                                     "transport")
            return os.path.join(path, name)

        written = self._write_and_rename(fd, tmp, job, ctx, rp, final_path)
        _fsync_dir(path)
        self._after_delivery(job, ctx, q, used, written)

    # mailstore: an envelope file and a message file ---------------------------------
    def _deliver_mailstore(self, job: Any, ctx: Any, rp: str, path: str) -> None:
        base = os.path.join(path, f"{job.message.id}-{base62(os.getpid(), 6)}")
        q, used = self._prepare_directory(job, ctx, path, base + ".msg")
        names = ctx.child(mailstore_basename=base)
        envelope = "".join([
            self._mailstore_text("mailstore_prefix", names),
            f"{rp}\n", *(f"{a.address}\n" for a in job.addresses),
            self._mailstore_text("mailstore_suffix", names)])
        tmp = base + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.opt("mode"))
        try:
            os.write(fd, envelope.encode("utf-8", "surrogateescape"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            msg = os.open(base + ".msg", os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                          self.opt("mode"))
            written = self._write_and_rename(msg, base + ".msg", job, names, rp,
                                             lambda _inode: base + ".msg")
            os.rename(tmp, base + ".env")       # readers wait for the .env file
        except BaseException:
            for leftover in (tmp, base + ".msg"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
            raise
        _fsync_dir(path)
        self._after_delivery(job, ctx, q, used, written)

    def _prepare_directory(self, job: Any, ctx: Any, path: str,
                           where: str) -> tuple["_Quotas", int]:
        """A one-file-per-message directory: create it if allowed, check the quotas
        (``where`` names the file in the refusal); the quotas and the usage so far."""
        self._create_directory(path, ctx)
        q = self._quotas(ctx)
        used, count = self._usage(ctx, q, path, False)
        if q.active:
            self._enforce(q, job, used, count, where)
        return q, used

    def _mailstore_text(self, name: str, ctx: Any) -> str:
        """mailstore_prefix ends with a newline; the suffix is written as it is (as
        Exim 4.96 writes it, whatever its manual says)."""
        text = self._expand_opt(name, ctx) or ""
        if name == "mailstore_suffix":
            return text
        return text if not text or text.endswith("\n") else text + "\n"

    def _create_directory(self, path: str, ctx: Any) -> None:
        if not os.path.isdir(path):
            if not self.opt("create_directory"):
                raise TransportError(f"directory {path} does not exist",
                                     errno=_errno.ENOENT)
            self._check_create_location(path, ctx, "directory")
            _makedirs(path, self.opt("directory_mode"))

    def _check_create_location(self, path: str, ctx: Any, what: str = "mailbox") -> None:
        """create_file: where this transport may create a mailbox file or directory
        (anywhere, inhome, belowhome, or below a given directory)."""
        where = str(self.opt("create_file") or "anywhere").strip()
        if where == "anywhere":
            return
        if where.startswith("/"):
            top, mode = where, "belowhome"
        else:
            top, mode = str(ctx.variables.get("home") or ""), where
            if mode not in ("inhome", "belowhome"):
                raise TransportError(f'invalid create_file setting "{where}" in '
                                     f"{self.name} transport")
            if not top:
                raise TransportError(f"create_file = {where} but no home directory set "
                                     f"for {self.name} transport")
        top = top.rstrip("/")
        parent = os.path.dirname(path.rstrip("/"))
        inside = parent == top if mode == "inhome" else (
            os.path.normpath(path).startswith(top + "/") and "/../" not in path + "/")
        if not inside:
            place = "the home directory" if not where.startswith("/") else top
            raise TransportError(f"{what} {path} does not exist, but creation outside "
                                 f"{place} is not permitted", errno=EximErrno.BADCREATE)

    def _write_and_rename(self, fd: int, tmp: str, job: Any, ctx: Any, rp: str,
                          final_path: Any) -> int:
        """Write the message to the new file ``tmp`` (open as ``fd``), fsync it and
        rename it to ``final_path(inode)``; on any failure the file is removed.
        Returns the number of bytes written."""
        try:
            os.fchmod(fd, self.opt("mode"))
            inode = os.fstat(fd).st_ino
            with os.fdopen(fd, "wb", buffering=1 << 16) as f:
                # a maildir's file is named as Exim does, from inside the maildir
                parent = os.path.dirname(tmp)
                where = (os.path.join("tmp", os.path.basename(tmp))
                         if os.path.basename(parent) == "tmp" else tmp)
                written = self._write(f, job, ctx, rp, mbox=False, where=where)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, final_path(inode))
            return written
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _hostname(self) -> str:
        return main_option(self.config, "primary_hostname") or socket.gethostname()


def notify_comsat(local_part: str, offset: int) -> None:
    """notify_comsat: tell the local comsat (biff) daemon that a message for
    ``local_part`` begins at ``offset`` of its mailbox, in the datagram Exim sends
    ("user@offset", a newline and a NUL).  Nobody listening is no error."""
    try:
        port = socket.getservbyname("biff", "udp")
    except OSError:
        port = 512
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(f"{local_part}@{offset}\n\0".encode("utf-8", "surrogateescape"),
                        ("127.0.0.1", port))
    except OSError:
        pass
