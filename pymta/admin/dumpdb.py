"""``pymta-dumpdb [-z] [-k] <spool-directory> <database-name>``: every record of a
hints database, in exim_dumpdb's format (``-z``: times in UTC; ``-k``: keys only)."""
from __future__ import annotations

import sys

import click

from pymta.admin.common import hints_usage
from pymta.admin.formats import Corrupted, record_text
from pymta.hints import inventory


def dump(spool: str, name: str, utc: bool, keys_only: bool) -> int:
    """Write the database to stdout; the exit status."""
    problem = inventory.open_problem(spool, name)
    if problem is not None:
        sys.stdout.write(f"** Failed to open DBM file {inventory.db_path(spool, name)} "
                         f"for reading:\n   {problem}\n")
        return 1
    status = 0
    out = sys.stdout.buffer
    for key, value in inventory.records(spool, name):
        if keys_only:
            out.write(f"  {key}\n".encode("utf-8", "surrogateescape"))
            continue
        try:
            out.write(record_text(name, key, value, utc))
        except Corrupted:
            out.flush()
            sys.stderr.write(f"**** Data for {key} corrupted\n")
            status = 1
    out.flush()
    return status


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-z", "utc", is_flag=True, help="times in UTC")
@click.option("-k", "keys_only", is_flag=True, help="print only the keys")
@click.argument("args", nargs=-1)
def command(utc: bool, keys_only: bool, args: tuple[str, ...]) -> None:
    """Dump a pymta hints database."""
    if len(args) != 2 or inventory.db_type(args[1]) is None:
        sys.stdout.write(hints_usage("dumpdb", " [-z] [-k]"))
        raise SystemExit(1)
    raise SystemExit(dump(args[0], args[1], utc, keys_only))


def main() -> None:
    """Console entry point: click's usage errors become exim_dumpdb's usage text."""
    try:
        command.main(standalone_mode=False)
    except click.UsageError:
        sys.stdout.write(hints_usage("dumpdb", " [-z] [-k]"))
        raise SystemExit(1) from None
