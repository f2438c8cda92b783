"""Pieces the admin commands share: Exim's time format, and finding and running the
``pymta`` command itself."""
from __future__ import annotations

import os
import shutil
import sys
import time

from pymta.hints import inventory

#: The order and names of exim_dumpdb's usage line.
DB_LIST = "retry | misc | wait-<transport-name> | callout | ratelimit | tls | seen | mtasts"


def print_time(stamp: float, utc: bool = False) -> str:
    """A time as Exim's hints utilities print it: ``04-Dec-2026 15:14:18`` (local
    time, or UTC with ``utc``)."""
    t = time.gmtime(stamp) if utc else time.localtime(stamp)
    return time.strftime("%d-%b-%Y %H:%M:%S", t)


def hints_usage(tool: str, flags: str) -> str:
    """The usage text exim_dumpdb/exim_tidydb/exim_fixdb print (on stdout, status 1)."""
    return (f"Usage: pymta-{tool}{flags}  <spool-directory> <database-name>\n"
            f"  <database-name> = {DB_LIST}\n")


def writable_db_or_exit(spool: str, name: str) -> None:
    """Exit with exim_tidydb/exim_fixdb's message when the database cannot be opened
    for writing."""
    problem = inventory.open_problem(spool, name)
    if problem is not None:
        sys.stdout.write(f"** Failed to open DBM file {inventory.db_path(spool, name)} "
                         f"for writing:\n   {problem}\n")
        raise SystemExit(1)


def pymta_command() -> list[str]:
    """How to run ``pymta``: the script installed beside this one, else the one on
    PATH, else this Python with pymta's main module."""
    here = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "pymta")
    if os.access(here, os.X_OK):
        return [here]
    found = shutil.which("pymta")
    if found:
        return [found]
    return [sys.executable, "-m", "pymta.cli.main"]
