"""``pymta-what``: what every pymta process is doing (Exim's exiwhat).

exiwhat signals every Exim process to write its "process info" line to a file, then
prints the lines sorted by process id.  pymta processes keep that line in their process
title (:mod:`pymta.proctitle`), so reading the titles is enough: no signal, no file, and
a process busy in a long operation still answers.  The output is exiwhat's: the process
id in five columns, a space, the line.
"""
from __future__ import annotations

import sys

import click
import psutil  # type: ignore[import-untyped]  # no stubs installed

from pymta.proctitle import MARKER


def pymta_processes() -> list[tuple[int, str]]:
    """(pid, title without the marker) of every process whose title pymta set, by pid."""
    found: list[tuple[int, str]] = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        # psutil splits a rewritten title on NULs or, when it has none, on spaces:
        # joining with spaces gives the title back either way.
        title = " ".join(proc.info.get("cmdline") or []).rstrip()
        if title.startswith(MARKER):
            found.append((proc.info["pid"], title[len(MARKER):]))
    return sorted(found)


def format_lines(processes: list[tuple[int, str]]) -> str:
    """exiwhat's layout: ``%5d %s`` per process; its message when there are none."""
    if not processes:
        return "No pymta process data\n"
    return "".join(f"{pid:5d} {title}\n" for pid, title in processes)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """List every running pymta process (daemon, SMTP receivers, delivery workers,
    queue runners, -bs and -bh sessions) with what it is doing, as exiwhat does."""
    sys.stdout.write(format_lines(pymta_processes()))


if __name__ == "__main__":
    main()
