#!/usr/bin/env python3
"""Refresh the generated lists in man/pymta.conf.5 (options with an effect, drivers)
and the "Not supported yet" list and the table of options accepted with any value in
docs/OPERATIONS.md.

A main option has an effect unless pymta.config.unsupported refuses it (not
supported) or ignores it (a documented no-op).

    python man/update_conf_options.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "man" / "pymta.conf.5"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
OBEGIN = "<!-- BEGIN GENERATED UNSUPPORTED LIST -->"
OEND = "<!-- END GENERATED UNSUPPORTED LIST -->"
IBEGIN = "<!-- BEGIN GENERATED IGNORED TABLE -->"
IEND = "<!-- END GENERATED IGNORED TABLE -->"
BEGIN, END = ".\\\" BEGIN GENERATED OPTION LIST", ".\\\" END GENERATED OPTION LIST"
DBEGIN, DEND = ".\\\" BEGIN GENERATED DRIVER LIST", ".\\\" END GENERATED DRIVER LIST"
# Modules that only read driver options or only define tables/variables.
SKIP_DIRS = ("transports", "routing")
SKIP_FILES = ("option_tables.py", "main_options.py", "show.py", "variables.py", "files.py")


def used_main_options() -> list[str]:
    """Main options pymta acts on: every Exim option that the tables of
    :mod:`pymta.config.unsupported` neither refuse nor ignore."""
    sys.path.insert(0, str(ROOT))
    from pymta.config.option_tables import MAIN_TABLE
    from pymta.config.unsupported import IGNORED_MAIN, UNSUPPORTED_MAIN
    return sorted(set(MAIN_TABLE) - set(UNSUPPORTED_MAIN) - set(IGNORED_MAIN))


def roff_list(names: list[str]) -> str:
    """The names as roff: one bold name per line, separated by commas."""
    lines = [".PP", ".nh"]
    for i, name in enumerate(names):
        sep = "," if i < len(names) - 1 else "."
        lines.append(f".BR {name} {sep}")
    lines.append(".hy")
    return "\n".join(lines)


def driver_lists() -> str:
    """Roff tagged paragraphs with the driver kinds and names that ``-bV`` reports."""
    sys.path.insert(0, str(ROOT))
    from pymta.config.show import version_text
    from pymta.features import support_words
    out = []
    for line in version_text(None, support_words()).splitlines():
        kind, sep, names = line.partition(":")
        if not sep or kind.startswith("Configuration"):
            continue
        out += [".TP", f".B {kind}", names.strip() or "(none yet)"]
    return "\n".join(out)


def _codes(names) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names))


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return " or ".join(_shown(v) for v in value)
    if value is False:
        return "`false`"
    if value is True:
        return "`true`"
    return "empty" if value in ("", None) else f"`{value}`"


def operations_list() -> str:
    """Markdown bullets: what ``-bV`` reports as not supported, the log_selector items
    and the main options refused or accepted only with one value."""
    sys.path.insert(0, str(ROOT))
    from pymta.config.show import version_text
    from pymta.config.unsupported import REJECT, UNSUPPORTED_MAIN
    from pymta.log import LOG_SELECTORS_ALWAYS, LOG_SELECTORS_SUPPORTED
    out = []
    for line in version_text(None).splitlines():
        kind, sep, names = line.partition(":")
        if sep and "not supported" in kind:
            out.append(f"* {kind}: {_codes(names.split())}.")
    always = (f"{_codes('+' + n for n in LOG_SELECTORS_ALWAYS)} are accepted because "
              "pymta always logs them (their `-` form is an error); "
              if LOG_SELECTORS_ALWAYS else "")
    out.append(f"* `log_selector`: the items pymta acts on are "
               f"{_codes(LOG_SELECTORS_SUPPORTED)} (and `+all`/`-all`); "
               f"{always}every other item is an error.")
    refused = [n for n, v in UNSUPPORTED_MAIN.items() if v is REJECT]
    fixed = sorted((n, v) for n, v in UNSUPPORTED_MAIN.items() if v is not REJECT)
    out.append(f"* Main options not supported: {_codes(refused)}.")
    out.append("* Main options accepted only with the value that says what pymta does "
               "(anything else is an error): "
               + ", ".join(f"`{n}` = {_shown(v)}" for n, v in fixed) + ".")
    return "\n".join(out)


def ignored_table() -> str:
    """A Markdown table of the options and ACL controls accepted with any value because
    they change nothing in pymta, with the reason for each."""
    sys.path.insert(0, str(ROOT))
    from pymta.acl.parse import ACL_CONTROLS_IGNORED
    from pymta.config.unsupported import IGNORED_GENERIC, IGNORED_MAIN, IGNORED_PRIVATE
    rows = ["| Option | Why it has no effect |", "|---|---|"]
    rows += [f"| `{n}` | {why} |" for n, why in sorted(IGNORED_MAIN.items())]
    for kind, table in sorted(IGNORED_GENERIC.items()):
        rows += [f"| `{n}` ({kind}s) | {why} |" for n, why in sorted(table.items())]
    for (kind, driver), table in sorted(IGNORED_PRIVATE.items()):
        rows += [f"| `{n}` ({driver} {kind}) | {why} |" for n, why in sorted(table.items())]
    rows += [f"| `control = {n}` (ACL) | {why} |"
             for n, why in sorted(ACL_CONTROLS_IGNORED.items())]
    return "\n".join(rows)


def _replace(text: str, begin: str, end: str, body: str) -> str:
    start, stop = text.index(begin) + len(begin), text.index(end)
    return text[:start] + "\n" + body + "\n" + text[stop:]


def main() -> int:
    """Rewrite the generated blocks of pymta.conf.5 and OPERATIONS.md in place."""
    text = PAGE.read_text()
    names = used_main_options()
    text = _replace(text, BEGIN, END, roff_list(names))
    text = _replace(text, DBEGIN, DEND, driver_lists())
    PAGE.write_text(text)
    ops = OPERATIONS.read_text()
    ops = _replace(ops, OBEGIN, OEND, operations_list())
    OPERATIONS.write_text(_replace(ops, IBEGIN, IEND, ignored_table()))
    print(f"{len(names)} options listed in {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
