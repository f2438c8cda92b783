"""The generated lists in man/pymta.conf.5 and docs/OPERATIONS.md match the code.

Run ``python man/update_conf_options.py`` after changing what is supported.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("update_conf_options",
                                                  ROOT / "man" / "update_conf_options.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block(text: str, begin: str, end: str) -> str:
    return text[text.index(begin) + len(begin):text.index(end)].strip("\n")


def test_man_page_lists_are_current():
    g = _generator()
    page = (ROOT / "man" / "pymta.conf.5").read_text()
    assert _block(page, g.BEGIN, g.END) == g.roff_list(g.used_main_options())
    assert _block(page, g.DBEGIN, g.DEND) == g.driver_lists()


def test_operations_unsupported_list_is_current():
    g = _generator()
    ops = (ROOT / "docs" / "OPERATIONS.md").read_text()
    assert _block(ops, g.OBEGIN, g.OEND) == g.operations_list()


def test_operations_ignored_table_is_current():
    g = _generator()
    ops = (ROOT / "docs" / "OPERATIONS.md").read_text()
    assert _block(ops, g.IBEGIN, g.IEND) == g.ignored_table()
