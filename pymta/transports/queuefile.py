"""The queuefile transport (Exim 4.96, experimental): puts a copy of the message's spool
files, ``<id>-D`` and ``<id>-H``, into ``directory`` -- hard links where the directory
is on the spool's file system, copies elsewhere -- for another program (an archiver, a
scanner) to pick up.  The -D file comes first and -H last, so a reader that waits for
-H never sees half a message; the copy is the delivery.
"""
from __future__ import annotations

import contextlib
import errno as _errno
import os
import shutil
from typing import Any

from pymta.config.option_tables import driver_options
from pymta.drivers import register
from pymta.errnos import EximErrno
from pymta.expand import ExpandError, expand_string
from pymta.osutil import fsync_dir, switched_ids
from pymta.spool import files
from pymta.taint import is_tainted
from pymta.transports.base import Transport, TransportError, check_never_users, set_results


@register("transport", "queuefile")
class QueuefileTransport(Transport):
    """Copy the message's spool files into a directory."""

    options = driver_options("transport", "queuefile")
    is_local = True

    def deliver(self, job: Any) -> None:
        try:
            self._deliver(job)
            set_results(job.addresses, "ok")
        except TransportError as e:
            set_results(job.addresses, e.result, e.message, e.errno)
        except OSError as e:
            set_results(job.addresses, "defer", f"{self.name} transport: "
                        f"{e.strerror or e}", e.errno or EximErrno.UNKNOWNERROR)

    def _deliver(self, job: Any) -> None:
        ctx = self.context(job, job.addresses[0])
        text = self.opt("directory")
        if not text:
            raise TransportError(f"directory must be set for the {self.name} transport")
        try:
            directory = str(expand_string(str(text), ctx))
        except ExpandError as e:
            raise TransportError(f'Expansion of "{text}" (directory for {self.name} '
                                 f"transport) failed: {e}", errno=EximErrno.EXPANDFAIL)
        if is_tainted(directory) or not directory.startswith("/"):
            raise TransportError(f"{self.name} transport: directory {directory!r} must be "
                                 "an absolute path free of message data")
        ids = self.delivery_ids(ctx, job.addresses[0])
        if ids is not None:
            check_never_users(self.config, ids[0], self.name)
        msgid = job.message.id
        sources = [files.data_path(job.spool_dir, msgid),
                   files.header_path(job.spool_dir, msgid)]
        with open(sources[0], "rb") as data, open(sources[1], "rb") as header:
            # opened while privileged; written as the delivery user
            groups = self.delivery_groups(ids, job.addresses[0])
            with switched_ids(*ids, groups) if ids is not None else \
                    contextlib.nullcontext():
                if not os.path.isdir(directory):
                    raise TransportError(f"{self.name} transport: directory {directory} "
                                         "does not exist", errno=_errno.ENOENT)
                for src, fh in zip(sources, (data, header)):
                    self._place(src, fh, os.path.join(directory, os.path.basename(src)))
                fsync_dir(directory)

    @staticmethod
    def _place(src: str, fh: Any, dest: str) -> None:
        """A hard link where possible, else a copy (written under a temporary name)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
        tmp = f"{dest}.{os.getpid()}.tmp"
        with open(tmp, "wb") as out:
            shutil.copyfileobj(fh, out)
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, dest)
