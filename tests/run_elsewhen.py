#!/usr/bin/env python3
"""Run the test suite on another date, in another time zone, in another file order.

The suite must pass on any date, in any time zone and in any order.  This runs pytest
with ``TZ`` set, with pymta's clock moved by ``PYMTA_TEST_CLOCK_OFFSET`` (test-only,
see pymta/clock.py: it moves the wall clock of every pymta process and of the test
process, not file times or datetime), and with the test files in reverse order.

Usage (from the repository root)::

    python tests/run_elsewhen.py [--tz ZONE] [--days N] [--before-midnight S]
                                 [--forward] [pytest options (--name=value) or test paths]

Defaults: TZ=Pacific/Chatham (UTC+12:45/+13:45), 400 days ahead, started 20 seconds
before the local midnight of that day (so the run crosses a day boundary), files in
reverse order.  ``--before-midnight -1`` keeps the time of day.  Exits with pytest's
status.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def offset_seconds(tz: str, days: int, before_midnight: float) -> int:
    """Seconds to add to the real clock: ``days`` on, then (unless ``before_midnight``
    is negative) to ``before_midnight`` seconds before the next local midnight in ``tz``."""
    os.environ["TZ"] = tz
    time.tzset()
    target = time.time() + days * 86400
    if before_midnight >= 0:
        t = time.localtime(target)
        midnight = time.mktime((t.tm_year, t.tm_mon, t.tm_mday + 1, 0, 0, 0, 0, 0, -1))
        target = midnight - before_midnight
    return int(target - time.time())


def test_files(forward: bool) -> list[str]:
    """Every test file under tests/, unit before integration, reversed unless forward."""
    files = sorted(str(p.relative_to(REPO)) for p in REPO.glob("tests/*/test_*.py"))
    return files if forward else files[::-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tz", default="Pacific/Chatham")
    ap.add_argument("--days", type=int, default=400)
    ap.add_argument("--before-midnight", type=float, default=20.0)
    ap.add_argument("--forward", action="store_true", help="keep the usual file order")
    args, rest = ap.parse_known_args(argv)
    offset = offset_seconds(args.tz, args.days, args.before_midnight)
    env = dict(os.environ, TZ=args.tz, PYMTA_TEST_CLOCK_OFFSET=str(offset))
    paths = [a for a in rest if not a.startswith("-")]
    options = [a for a in rest if a.startswith("-")]
    start = time.localtime(time.time() + offset)
    print(f"run_elsewhen: TZ={args.tz} PYMTA_TEST_CLOCK_OFFSET={offset} "
          f"(clock starts at {time.strftime('%Y-%m-%d %H:%M:%S %z', start)}), "
          f"{'usual' if args.forward else 'reverse'} file order", flush=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options,
           *(paths or test_files(args.forward))]
    return subprocess.call(cmd, cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main())
