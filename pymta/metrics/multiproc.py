"""Where the daemon's processes keep their counts: prometheus_client's multiprocess mode.

Each process writes its counters and histograms to its own memory-mapped files in a
directory of the spool (``<spool>/metrics/<master pid>/counter_<pid>.db``, ...): an
increment is a store into shared memory, no system call, and a count survives its
process, because the file stays.  The master reads all the files at scrape time.

So that the directory does not grow with every receiver ever forked, the master folds
the files of a process that has ended into its own ``counter_folded.db`` /
``histogram_folded.db`` (the values added key by key: the files hold plain totals and
per-bucket counts) and removes them.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import struct

from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict

from pymta.metrics import counters

#: the kinds of file a process may write (the daemon's gauges are the master's own)
FILE_KINDS = ("counter", "histogram")
FOLDED = "folded"
_PROCESS_FILE = re.compile(r"^(counter|histogram)_(\d+)\.db$")

_pid = {"value": os.getpid()}


def _refresh_pid() -> None:
    _pid["value"] = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def _process_identifier() -> int:
    # prometheus_client asks this on every increment (to notice a fork); the default,
    # os.getpid, is a system call each time, this is a dictionary look-up.
    return _pid["value"]


def metrics_directory(spool_dir: str, master_pid: int) -> str:
    return os.path.join(spool_dir, "metrics", str(master_pid))


def enable(directory: str) -> None:
    """Turn counting on for this process and every process it forks from now on.

    Called once in the master, before any child is forked.  Directories that other,
    dead, daemons left under the same parent are removed."""
    parent = os.path.dirname(directory)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    for old in os.listdir(parent):
        path = os.path.join(parent, old)
        if path != directory and old.isdigit() and not _alive(int(old)):
            shutil.rmtree(path, ignore_errors=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.unlink(stale)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)
    counters.activate()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True             # someone else's process
    return True


class Folder:
    """The master's side: fold the files of ended processes into its own."""

    def __init__(self, directory: str):
        self.directory = directory
        self._folded: dict[str, MmapedDict] = {}

    def fold(self, pid: int) -> None:
        """Add the counts of process ``pid`` (which has ended) to the folded files."""
        for kind in FILE_KINDS:
            path = os.path.join(self.directory, f"{kind}_{pid}.db")
            try:
                entries = list(MmapedDict.read_all_values_from_file(path))
            except FileNotFoundError:
                continue
            except (RuntimeError, ValueError, struct.error):
                # Torn by a process killed mid-write: its counts are lost, and the file
                # is put aside (out of the collector's *.db) so every scrape does not fail.
                os.replace(path, path + ".damaged")
                continue
            target = self._target(kind)
            for key, value, _timestamp, _pos in entries:
                total, _ = target.read_value(key)
                target.write_value(key, total + value, 0.0)
            os.unlink(path)

    def fold_orphans(self, keep: set[int]) -> None:
        """Fold files of processes that are gone but were never reaped as our children
        (a receiver's grandchild, such as an ETRN queue run)."""
        for name in os.listdir(self.directory):
            m = _PROCESS_FILE.match(name)
            if m and int(m.group(2)) not in keep and not _alive(int(m.group(2))):
                self.fold(int(m.group(2)))

    def _target(self, kind: str) -> MmapedDict:
        target = self._folded.get(kind)
        if target is None:
            target = MmapedDict(os.path.join(self.directory, f"{kind}_{FOLDED}.db"))
            self._folded[kind] = target
        return target
