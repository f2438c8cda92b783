"""``pymta-tidydb [-t <time>] [-f] <spool-directory> <database-name>``: remove old
records from a hints database, as exim_tidydb does.

A record last written more than ``-t`` ago (default 30 days) is deleted ("too old").
Records that name messages are checked against the spool: in ``wait-<transport>`` the
ids of messages no longer queued are removed ("updated"), and a record left without
any is deleted ("empty"); a retry record whose key ends in the id of a message no
longer queued is deleted ("no message").  A record whose age cannot be told (a TLS
session, a damaged record) is left alone.  ``-f`` is accepted as exim_tidydb 4.96
accepts it, and changes nothing.
"""
from __future__ import annotations

import os
import sys
import time

import click

from pymta.admin.common import hints_usage, writable_db_or_exit
from pymta.cli.args import parse_time
from pymta.hints import inventory, wait
from pymta.spool import files
from pymta.spool.ids import is_message_id

USAGE_FLAGS = " [-t <time>] [-f]"
DEFAULT_AGE = 30 * 86400


def on_spool(spool: str, msgid: str) -> bool:
    """True if the message is still queued (its -D file exists)."""
    return os.path.exists(files.data_path(spool, msgid))


def tidy(spool: str, name: str, oldest: float, out: list[str]) -> None:
    """Tidy one database, appending exim_tidydb's comments to ``out``.  Each change
    is made only if the record has not changed since it was read (a running daemon
    may be updating it)."""
    kind = inventory.db_type(name)

    def change(key: str, value: bytes, new: bytes | None, comment: str) -> None:
        if inventory.replace_if_unchanged(spool, name, key, value, new):
            out.append(comment)

    for key, value in inventory.records(spool, name):
        stamp = inventory.record_time(name, key, value)
        if stamp is not None and stamp < oldest:
            change(key, value, None, f"deleted {key} (too old)")
        elif kind == "wait":
            ids = wait.decode_ids(value)
            kept = [i for i in ids if is_message_id(i) and on_spool(spool, i)]
            if not kept:
                change(key, value, None, f"deleted {key} (empty)")
            elif kept != ids:
                change(key, value, wait.encode_ids(kept), f"updated {key}")
        elif kind == "retry":
            last = key.rsplit(":", 1)[-1]
            if is_message_id(last) and not on_spool(spool, last):
                change(key, value, None, f"deleted {key} (no message)")


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-t", "age", default=None, help="remove records older than this (30d)")
@click.option("-f", "force", is_flag=True, help="accepted for exim_tidydb compatibility")
@click.argument("args", nargs=-1)
def command(age: str | None, force: bool, args: tuple[str, ...]) -> None:
    """Tidy a pymta hints database."""
    seconds = DEFAULT_AGE if age is None else parse_time(age)
    if len(args) != 2 or inventory.db_type(args[1]) is None or seconds is None:
        sys.stdout.write(hints_usage("tidydb", USAGE_FLAGS))
        raise SystemExit(1)
    spool, name = args
    writable_db_or_exit(spool, name)
    print(f"Tidying Exim hints database {inventory.db_path(spool, name)}")
    out: list[str] = []
    tidy(spool, name, time.time() - seconds, out)
    for line in out:
        print(line)
    print("Tidying complete")


def main() -> None:
    """Console entry point: click's usage errors become exim_tidydb's usage text."""
    try:
        command.main(standalone_mode=False)
    except click.UsageError:
        sys.stdout.write(hints_usage("tidydb", USAGE_FLAGS))
        raise SystemExit(1) from None
