#!/usr/bin/env python3
"""Expansions per second: compiled once (the cached path) vs parsed on every use.

Usage: python bench/expand_bench.py [--seconds S] [--json]

Two strings are measured: a typical ACL condition and a lookup-heavy string (several
lsearch lookups in a 500-line file).  "compiled" evaluates a tree built once with
``compile_expansion`` (what the daemon does: the tree cache is keyed by source text);
"reparsed" calls the parser itself (bypassing its cache) before every evaluation, so the
tree and its closures are rebuilt every time; "no lookup cache" is the compiled path
with the per-context lookup cache emptied before every evaluation.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pymta.expand import ExpandContext, evaluate  # noqa: E402
from pymta.expand.parser import compile_expansion  # noqa: E402

ACL = (r"${if and{{eq{$sender_host_address}{127.0.0.1}}{match{$local_part}{^[a-z]+\$}}}"
       r"{yes}{no}}")
LOOKUPS = ("${lookup{$local_part}lsearch{@F@}{$value}{none}}:"
           "${lookup{$domain}lsearch{@F@}{$value}{none}}:"
           "${lookup{user250}lsearch{@F@}{${uc:$value}}{none}}:"
           "${lookup{nosuch}lsearch*{@F@}{$value}{none}}")


def _rate(fn, seconds: float) -> float:
    """Calls of ``fn`` per second over about ``seconds``."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            fn()
        n += 200
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def measure(text: str, ctx: ExpandContext, seconds: float) -> dict[str, float]:
    """Rates for one string: compiled once vs reparsed every time."""
    parse = compile_expansion.__wrapped__        # the parser without its cache
    tree = compile_expansion(text)
    first = evaluate(tree, ctx)
    assert evaluate(parse(text), ctx) == first
    compiled = _rate(lambda: evaluate(tree, ctx), seconds)
    reparsed = _rate(lambda: evaluate(parse(text), ctx), seconds)

    def fresh_lookups() -> None:
        ctx.lookup_cache.clear()            # as after each message
        evaluate(tree, ctx)
    no_lookup_cache = _rate(fresh_lookups, seconds)
    return {"result": first, "compiled_per_s": compiled, "reparsed_per_s": reparsed,
            "ratio": compiled / reparsed, "compiled_empty_lookup_cache_per_s": no_lookup_cache}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "table")
        with open(f, "w") as fh:
            for i in range(500):
                fh.write(f"user{i}: value{i}@example.test\n")
            fh.write("corp.test: local\n*: default\n")
        ctx = ExpandContext(variables={"sender_host_address": "127.0.0.1",
                                       "local_part": "user42", "domain": "corp.test"})
        results = {"acl_condition": measure(ACL, ctx, a.seconds),
                   "lookup_heavy": measure(LOOKUPS.replace("@F@", f), ctx, a.seconds)}
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{platform.machine()} {os.cpu_count()} cpu, "
                       f"{platform.processor() or platform.platform()}",
            "python": platform.python_version()}
    if a.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(f"# {meta['date']}  {meta['machine']}  Python {meta['python']}")
    print(f"{'string':<15} {'compiled/s':>12} {'reparsed/s':>12} {'ratio':>7} "
          f"{'no lookup cache/s':>18}")
    for name, r in results.items():
        print(f"{name:<15} {r['compiled_per_s']:>12.0f} {r['reparsed_per_s']:>12.0f} "
              f"{r['ratio']:>7.1f} {r['compiled_empty_lookup_cache_per_s']:>18.0f}")


if __name__ == "__main__":
    main()
