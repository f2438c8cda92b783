"""``pymta-qsumm``: a per-domain summary of a ``mailq`` listing (Exim's exiqsumm).

It reads ``pymta -bp`` (or ``exim -bp``) output on standard input, or from the files
named, and prints exiqsumm's table: for each recipient domain the number of undelivered
recipients, their volume (each counts its message's size), the oldest and the newest age,
then a TOTAL line.  The parsing follows exiqsumm's, quirks included (sizes are read back
from -bp's rounded column; a recipient line counts whatever the message's first line
said), so that the two give the same table for the same listing.
"""
from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from typing import BinaryIO, Iterable

import click

# a message's first line: age, size, id, <sender> (maybe followed by *** frozen ***)
_FIRST = re.compile(rb"^([\d\s]{2,3}\w)\s+(\S+)\s(\S+)\s<(\S*)>", re.A)
# a recipient line: the first domain after an @ (a domain literal too)
_RCPT = re.compile(rb"^\s+[^@]*@([\w.\-]+|\[(?:\d+\.){3}\d+\])", re.A)
_DELIVERED = re.compile(rb"^\s*D\s\S+", re.A)
_SIZE = re.compile(r"([\d.]+)([A-Z]|)")
_AGE = re.compile(r"(\d+)(\w)", re.A)


def size_bytes(text: str) -> float:
    """-bp's size column back in bytes (``2.9K`` is 2969.6)."""
    m = _SIZE.search(text)
    if not m:
        return 0.0
    value = float(m.group(1)) if m.group(1).count(".") <= 1 else 0.0
    return value * {"K": 1024, "M": 1024 * 1024}.get(m.group(2), 1)


def older(a: str, b: str) -> int:
    """Compare two -bp ages as exiqsumm does: 1 when ``a`` is older, -1 when younger,
    0 when equal (units m < h < d < w; the number decides within one unit)."""
    ma, mb = _AGE.search(a), _AGE.search(b)
    va, ua = (int(ma.group(1)), ma.group(2)) if ma else (0, "")
    vb, ub = (int(mb.group(1)), mb.group(2)) if mb else (0, "")
    if ua == ub:
        return (va > vb) - (va < vb)
    return 1 if (ub == "m" or (ub == "h" and ua == "d") or (ub == "d" and ua == "w")) else -1


def volume(x: float) -> str:
    """exiqsumm's volume column: bytes, else KB, else MB."""
    if x < 10000:
        return f"{int(x):6d}"
    if x < 10000000:
        return f"{int((x + 512) / 1024):4d}KB"
    return f"{int((x + 512 * 1024) / (1024 * 1024)):4d}MB"


@dataclass
class DomainLine:
    """The queue's recipients for one domain (or one source > domain pair)."""

    count: int = 0
    size: float = 0.0
    oldest: str = ""
    newest: str = ""


@dataclass
class Options:
    """exiqsumm's flags."""

    by_age: bool = False          # -a
    by_count: bool = False        # -c
    bounces: bool = False         # -b
    frozen: bool = False          # -f
    source: bool = False          # -s


def summarise(lines: Iterable[bytes], opts: Options) -> dict[str, DomainLine]:
    """The per-domain table of a -bp listing."""
    table: dict[str, DomainLine] = {}
    age, size, src, frozen, bounce = "0d", "0", "", False, False
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line or _DELIVERED.match(line):
            continue
        first = _FIRST.match(line)
        if first:
            age, size = first.group(1).decode("latin-1"), first.group(2).decode("latin-1")
            sender = first.group(4).decode("latin-1")
            src = sender.partition("@")[2] if "@" in sender else sender
            frozen = b"*** frozen ***" in line
            bounce = src == ""
            src = src or "<>"
            continue
        rcpt = _RCPT.match(line)
        if not rcpt:
            continue
        domain = rcpt.group(1).decode("latin-1")
        key = (f"{src} > {domain}" if opts.source else domain).lower()
        if bounce and opts.bounces:
            key += " (b)"
        if frozen and opts.frozen:
            key += " (f)"
        entry = table.setdefault(key, DomainLine(oldest=age, newest=age))
        entry.count += 1
        entry.size += size_bytes(size)
        if older(age, entry.oldest) > 0:
            entry.oldest = age
        if older(entry.newest, age) > 0:
            entry.newest = age
    return table


def _row(count: int, size: float, oldest: str, newest: str, name: str) -> str:
    return f"{count:5d}  {volume(size)[:6]}  {oldest:>6}  {newest:>6}  {name[:80]}\n"


def render(table: dict[str, DomainLine], opts: Options) -> str:
    """exiqsumm's output: heading, one row per domain, a rule, the TOTAL row."""
    out = ["\nCount  Volume  Oldest  Newest  Domain\n-----  ------  ------  ------  ------\n\n"]
    if opts.by_age:
        def by_age(a: str, b: str) -> int:
            return older(table[b].oldest, table[a].oldest)
        keys = sorted(table, key=functools.cmp_to_key(by_age))
    elif opts.by_count:
        keys = sorted(table, key=lambda k: -table[k].count)
    else:
        keys = sorted(table, key=lambda k: k.encode("latin-1"))
    count, size, max_age, min_age = 0, 0.0, "0m", ""
    for k in keys:
        e = table[k]
        out.append(_row(e.count, e.size, e.oldest, e.newest, k))
        if older(e.oldest, max_age) > 0:
            max_age = e.oldest
        if not min_age or older(min_age, e.newest) > 0:
            min_age = e.newest
        size += e.size
        count += e.count
    out.append("-" * 63 + "\n")
    out.append(_row(count, size, max_age, min_age or "0000d", "TOTAL"))
    out.append("\n")
    return "".join(out)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-a", "by_age", is_flag=True, help="Sort by the age of the oldest message.")
@click.option("-c", "by_count", is_flag=True, help="Sort by the number of recipients.")
@click.option("-b", "bounces", is_flag=True, help="Count bounce messages apart: '(b)'.")
@click.option("-f", "frozen", is_flag=True, help="Count frozen messages apart: '(f)'.")
@click.option("-s", "source", is_flag=True,
              help="One row per sender domain > recipient domain pair.")
@click.argument("listing", nargs=-1, type=click.File("rb"))
def main(by_age: bool, by_count: bool, bounces: bool, frozen: bool, source: bool,
         listing: tuple[BinaryIO, ...]) -> None:
    """Summarise a mailq (pymta -bp) listing by recipient domain, as Exim's exiqsumm
    does: mailq | pymta-qsumm.  Reads the files named, else standard input."""
    opts = Options(by_age, by_count, bounces, frozen, source)
    inputs: Iterable[BinaryIO] = listing or (sys.stdin.buffer,)
    table = summarise((line for f in inputs for line in f), opts)
    sys.stdout.write(render(table, opts))


if __name__ == "__main__":
    main()
