"""``pymta-fixdb [-z] <spool-directory> <database-name>``: look at, delete and patch
single hints records, with exim_fixdb's line dialogue on stdin/stdout.

At the ``>`` prompt a key shows its record.  Then ``d`` deletes it; for a retry record
``<field> <value>`` changes a field (0 error number, 1 extra data, 2 first failed,
3 last try, 4 next try -- times as ``yymmddhhmm`` digit pairs, colons allowed -- and
5 expired ``yes``/``no``).  Anything else is the next key; end of input ends.
"""
from __future__ import annotations

import re
import sys
import time
from dataclasses import replace
from typing import TextIO

import click

from pymta.admin.common import hints_usage, print_time, writable_db_or_exit
from pymta.admin.formats import Corrupted, record_text
from pymta.hints import inventory, wait
from pymta.hints.retry import RetryRecord

USAGE_FLAGS = " [-z]"
_FIELD = re.compile(r"^(\d+)\s+(.*)$")
_TIME = re.compile(r"^(\d\d|\d{4})(\d\d)(\d\d)(\d\d)(\d\d)$")


def parse_fix_time(text: str) -> int | None:
    """``[yy]yymmddhhmm`` in local time (colons ignored); None when malformed."""
    m = _TIME.match(text.replace(":", ""))
    if not m:
        return None
    year = int(m.group(1))
    if year < 100:
        year += 2000 if year < 70 else 1900
    fields = (year, int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)))
    if not (1 <= fields[1] <= 12 and 1 <= fields[2] <= 31 and fields[3] < 24
            and fields[4] < 60):
        return None
    return int(time.mktime(fields + (0, 0, 0, -1)))


def _leading_int(text: str) -> int:
    # C's atoi: the leading digits (after a sign), 0 when there are none
    m = re.match(r"\s*([-+]?\d+)", text)
    return int(m.group(1)) if m else 0


class Fixer:
    """The dialogue for one database."""

    def __init__(self, spool: str, name: str, utc: bool, out: TextIO) -> None:
        self.spool, self.name, self.utc, self.out = spool, name, utc, out
        self.kind = inventory.db_type(name)

    def when(self, stamp: float) -> str:
        return print_time(stamp, self.utc)

    def show(self, key: str, value: bytes) -> None:
        stamp = inventory.record_time(self.name, key, value)
        self.out.write(f"{print_time(stamp or 0, self.utc)}\n")
        if self.kind == "retry":
            rec = RetryRecord.decode(value)
            if rec is None:
                self.out.write(f"**** Data for {key} corrupted\n")
                return
            t = self.when
            self.out.write(f"0 error number: {rec.basic_errno} {rec.text}\n"
                           f"1 extra data:   {rec.more_errno}\n"
                           f"2 first failed: {t(rec.first_failed)}\n"
                           f"3 last try:     {t(rec.last_try)}\n"
                           f"4 next try:     {t(rec.next_try)}\n"
                           f"5 expired:      {'yes' if rec.expired else 'no'}\n")
        elif self.kind == "wait":
            ids = wait.decode_ids(value)
            self.out.write("Sequence: 0\n" + "".join(f"{i} " for i in ids) + "\n")
        else:
            try:
                self.out.write(record_text(self.name, key, value, self.utc)
                               .decode("utf-8", "replace"))
            except Corrupted:
                self.out.write(f"**** Data for {key} corrupted\n")

    def modify(self, key: str, field: int, text: str) -> None:
        """Change one field of the retry record ``key`` (and show it again)."""
        value = inventory.get(self.spool, self.name, key)
        rec = RetryRecord.decode(value) if value is not None else None
        if rec is None:
            self.out.write(f"record {key} not found\n")
            return
        new: RetryRecord | None = None
        if field == 0:
            new = replace(rec, basic_errno=_leading_int(text))
        elif field == 1:
            new = replace(rec, more_errno=_leading_int(text))
        elif field in (2, 3, 4):
            stamp = parse_fix_time(text.strip())
            if stamp is None:
                self.out.write("bad time value\n")
            else:
                new = (replace(rec, first_failed=stamp) if field == 2 else
                       replace(rec, last_try=stamp) if field == 3 else
                       replace(rec, next_try=stamp))
        elif field == 5:
            word = text.strip().lower()
            if word in ("yes", "no"):
                new = replace(rec, expired=word == "yes")
            else:
                self.out.write("value must be yes or no\n")
        else:
            self.out.write("unknown field number\n")
        if new is not None:
            inventory.put(self.spool, self.name, key, new.encode())
            value = new.encode()
        self.show(key, value if value is not None else b"")

    def run(self, lines: TextIO) -> None:
        path = inventory.db_path(self.spool, self.name)
        self.out.write(f"Modifying Exim hints database {path}\n")
        current: str | None = None
        while True:
            self.out.write("> ")
            self.out.flush()
            line = lines.readline()
            if not line:
                self.out.write("\n")
                return
            line = line.rstrip("\r\n")
            field = _FIELD.match(line)
            if current is not None and line.strip() == "d":
                inventory.delete(self.spool, self.name, current)
                self.out.write("deleted\n")
                current = None
            elif current is not None and field and self.kind == "retry":
                self.modify(current, int(field.group(1)), field.group(2))
            else:
                value = inventory.get(self.spool, self.name, line)
                if value is None:
                    self.out.write(f"record {line} not found\n")
                    current = None
                else:
                    self.show(line, value)
                    current = line


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-z", "utc", is_flag=True, help="show times in UTC")
@click.argument("args", nargs=-1)
def command(utc: bool, args: tuple[str, ...]) -> None:
    """Examine and change records of a pymta hints database."""
    if len(args) != 2 or inventory.db_type(args[1]) is None:
        sys.stdout.write(hints_usage("fixdb", USAGE_FLAGS))
        raise SystemExit(1)
    spool, name = args
    writable_db_or_exit(spool, name)
    Fixer(spool, name, utc, sys.stdout).run(sys.stdin)


def main() -> None:
    """Console entry point: click's usage errors become exim_fixdb's usage text."""
    try:
        command.main(standalone_mode=False)
    except click.UsageError:
        sys.stdout.write(hints_usage("fixdb", USAGE_FLAGS))
        raise SystemExit(1) from None
