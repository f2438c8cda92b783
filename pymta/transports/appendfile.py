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
import socket
import stat
import time
from typing import Any

from pymta.config.option_tables import driver_options
from pymta.config.options import parse_int
from pymta.config.values import main_option
from pymta.drivers import register
from pymta.errnos import EximErrno
from pymta.osutil import fsync_dir as _fsync_dir
from pymta.osutil import switched_ids
from pymta.taint import is_tainted
from pymta.transports.base import (
    Transport,
    TransportError,
    check_never_users,
    expand,
    is_forced_fail,
    set_results,
)
from pymta.transports.content import body_size, write_message

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




def _parse_quota(text: str) -> int:
    t = text.strip()
    if not t:
        return 0
    # Exim allows a fractional value with K/M/G, e.g. 1.5M.
    if "." in t:
        mult = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}.get(t[-1].lower(), 1)
        num = t[:-1] if mult != 1 else t
        return int(float(num) * mult)
    return parse_int(t)


def _dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


@register("transport", "appendfile")
class AppendfileTransport(Transport):
    """Local delivery into a mailbox file or a (maildir) directory."""

    options = driver_options("transport", "appendfile")
    is_local = True
    _data: Any = None          # the open -D file during a delivery
    _first_address: Any = None

    def __init__(self, instance: Any, config: Any):
        super().__init__(instance, config)
        self._stored_defaults: set[str] = set()
        # Like Exim, store the effective defaults of the format-dependent options so
        # that -bP shows them: none for directory deliveries, "." / ".." for batch SMTP.
        if self.opt("use_bsmtp") or (self.opt("directory") and not self.opt("file")):
            for name in FORMAT_DEFAULTS["mbox"]:
                if not self.explicitly_set(name):
                    instance.options[name] = self.format_option(
                        name, directory=bool(self.opt("directory")))
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

    def _write(self, f: Any, job: Any, ctx: Any, rp: str, mbox: bool) -> int:
        prefix, suffix = self._prefix_suffix(ctx, rp, mbox)
        check, escape = self._check_escape(mbox)
        header = self.header_block(job, ctx, rp)
        bsmtp = bool(self.opt("use_bsmtp"))
        if bsmtp:
            # Batch SMTP: the envelope as SMTP commands, then the dot-stuffed message.
            nl = "\r\n" if self.opt("use_crlf") else "\n"
            env = f"MAIL FROM:<{rp}>{nl}" + "".join(
                f"RCPT TO:<{a.address}>{nl}" for a in job.addresses) + f"DATA{nl}"
            prefix += env.encode("utf-8", "surrogateescape")
        return write_message(f, header, self._data or job.data_path, prefix=prefix,
                             suffix=suffix, use_crlf=self.opt("use_crlf"),
                             check_string=check, escape_string=escape,
                             body_only=self.opt("body_only"),
                             headers_only=self.opt("headers_only"), end_dot=bsmtp)

    def _quota(self, ctx: Any) -> int:
        q = self._expand_opt("quota", ctx)
        try:
            return _parse_quota(q) if q else 0
        except ValueError:
            raise TransportError(f'Invalid value "{q}" for quota in {self.name} transport')

    def _check_quota(self, ctx: Any, job: Any, used: int, path: str) -> None:
        quota = self._quota(ctx)
        if not quota:
            return
        size = (body_size(self._data or job.data_path)
                + sum(len(h.text) for h in job.message.headers))
        total = used + (size if self.opt("quota_is_inclusive") else 0)
        if total > quota:
            raise TransportError("mailbox is full (MTA-imposed quota exceeded while "
                                 f"writing to {path})", errno=EximErrno.EXIMQUOTA)

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
            with switched_ids(*ids) if ids is not None else contextlib.nullcontext():
                if is_dir:
                    if self.opt("maildir_format"):
                        self._deliver_maildir(job, ctx, rp, path)
                    else:
                        self._deliver_directory(job, ctx, rp, path)
                else:
                    self._deliver_mbox(job, ctx, rp, path)
        finally:
            self._data.close()
            self._data = None
        set_results(job.addresses, "ok")

    # mbox ----------------------------------------------------------------------
    def _lockfile(self, path: str) -> str | None:
        if not self.opt("use_lockfile"):
            return None
        lock = path + ".lock"
        retries = max(0, int(self.opt("lock_retries")))
        for attempt in range(retries + 1):
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             self.opt("lockfile_mode"))
                os.close(fd)
                return lock
            except FileExistsError:
                try:
                    if time.time() - os.stat(lock).st_mtime > self.opt("lockfile_timeout"):
                        os.unlink(lock)  # stale lock left by a crashed process
                        continue
                except FileNotFoundError:
                    continue
            except OSError as e:
                raise TransportError(f"failed to create lock file {lock}: {e.strerror}",
                                     errno=EximErrno.LOCKFAILED)
            if attempt < retries:
                time.sleep(self.opt("lock_interval"))
        raise TransportError(f"failed to lock mailbox {path} (lock file)",
                             errno=EximErrno.LOCKFAILED)

    def _fcntl_lock(self, fd: int, path: str) -> None:
        if not self.opt("use_fcntl_lock"):
            return
        retries = max(0, int(self.opt("lock_retries")))
        for attempt in range(retries + 1):
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as e:
                if e.errno not in (_errno.EACCES, _errno.EAGAIN):
                    raise
            if attempt < retries:
                time.sleep(self.opt("lock_interval"))
        raise TransportError(f"failed to lock mailbox {path} (fcntl)",
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
            raise TransportError(f"mailbox {path} has the wrong owner",
                                 errno=EximErrno.BADUGID)
        flags = os.O_WRONLY | (0 if self.opt("allow_symlink") else os.O_NOFOLLOW)
        fd = os.open(path, flags)
        fst = os.fstat(fd)
        if (fst.st_ino, fst.st_dev) != (st.st_ino, st.st_dev):
            os.close(fd)
            raise TransportError(f"mailbox {path} changed while opening",
                                 errno=EximErrno.UNKNOWNERROR)
        extra = stat.S_IMODE(fst.st_mode) & ~mode
        if mode != self.opt("mode") and stat.S_IMODE(fst.st_mode) != mode:
            os.fchmod(fd, mode)         # a filter's "save file mode" sets the mode
        elif extra:
            # Existing mailbox more permissive than configured: narrow it like Exim.
            os.fchmod(fd, stat.S_IMODE(fst.st_mode) & mode)
        return fd, False

    def _deliver_mbox(self, job: Any, ctx: Any, rp: str, path: str) -> None:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            if not self.opt("create_directory"):
                raise TransportError(f"directory for {path} does not exist",
                                     errno=_errno.ENOENT)
            _makedirs(parent, self.opt("directory_mode"))
        lock = self._lockfile(path)
        try:
            fd, _created = self._open_mbox(path, self._mode(job))
            try:
                self._fcntl_lock(fd, path)
                start = os.lseek(fd, 0, os.SEEK_END)
                self._check_quota(ctx, job, start, path)
                try:
                    with os.fdopen(os.dup(fd), "wb", buffering=1 << 16) as f:
                        self._write(f, job, ctx, rp, mbox=True)
                        f.flush()
                        os.fsync(f.fileno())
                except BaseException:
                    # Leave the mailbox as it was: a half-written message corrupts it.
                    os.ftruncate(fd, start)
                    raise
            finally:
                os.close(fd)  # also releases the fcntl lock
        finally:
            if lock:
                try:
                    os.unlink(lock)
                except OSError:
                    pass

    # maildir -------------------------------------------------------------------
    def _deliver_maildir(self, job: Any, ctx: Any, rp: str, path: str) -> None:
        dmode = self.opt("directory_mode")
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
            import re
            if re.search(regex, path):
                mf = os.path.join(path, "maildirfolder")
                if not os.path.exists(mf):
                    os.close(os.open(mf, os.O_WRONLY | os.O_CREAT, self.opt("mode")))
        if self.opt("quota"):
            self._check_quota(ctx, job, _dir_size(path), path)
        host = self._hostname()
        for _ in range(max(1, int(self.opt("maildir_retries")))):
            sec, usec = _unique_stamp()
            # Exim 4.96 writes "<sec>.M<usec>P<pid>.<host>" (its manual says ".H").
            name = f"{sec}.M{usec}P{os.getpid()}.{host}"
            tmp = os.path.join(path, "tmp", name)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.opt("mode"))
                break
            except FileExistsError:
                time.sleep(0.01)
        else:
            raise TransportError(f"failed to create a unique file in {path}/tmp",
                                 errno=_errno.EEXIST)
        self._write_and_rename(fd, tmp, job, ctx, rp, lambda _inode: os.path.join(
            path, "new", name + (self._expand_opt("maildir_tag", ctx) or "")))
        _fsync_dir(os.path.join(path, "new"))

    # plain directory (one file per message) ------------------------------------------
    def _deliver_directory(self, job: Any, ctx: Any, rp: str, path: str) -> None:
        if not os.path.isdir(path):
            if not self.opt("create_directory"):
                raise TransportError(f"directory {path} does not exist",
                                     errno=_errno.ENOENT)
            _makedirs(path, self.opt("directory_mode"))
        if self.opt("quota"):
            self._check_quota(ctx, job, _dir_size(path), path)
        tmp = os.path.join(path, f"temp.{os.getpid()}.{self._hostname()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.opt("mode"))

        def final_path(inode: int) -> str:
            name = expand(self.opt("directory_file"), ctx.child(inode=str(inode)))
            if is_tainted(name) or "/" in name:
                raise TransportError(f"bad directory_file name \"{name}\" in {self.name} "
                                     "transport")
            return os.path.join(path, name)

        self._write_and_rename(fd, tmp, job, ctx, rp, final_path)
        _fsync_dir(path)

    def _write_and_rename(self, fd: int, tmp: str, job: Any, ctx: Any, rp: str,
                          final_path: Any) -> None:
        """Write the message to the new file ``tmp`` (open as ``fd``), fsync it and
        rename it to ``final_path(inode)``; on any failure the file is removed."""
        try:
            os.fchmod(fd, self.opt("mode"))
            inode = os.fstat(fd).st_ino
            with os.fdopen(fd, "wb", buffering=1 << 16) as f:
                self._write(f, job, ctx, rp, mbox=False)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, final_path(inode))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _hostname(self) -> str:
        return main_option(self.config, "primary_hostname") or socket.gethostname()
