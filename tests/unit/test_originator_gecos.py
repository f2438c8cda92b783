"""gecos_name / gecos_pattern: the full name of a local sender from the gecos field, as
Exim 4.96 derives it (tests/data/originator/exim4-gecos.txt, recorded with Debian's
exim4 -bf for a user whose gecos field is "Lo &Test,Room 1,555")."""
from __future__ import annotations

import email.utils
from pathlib import Path

import pytest

from pymta.config import load_config
from pymta.originator import gecos_full_name

DATA = Path(__file__).resolve().parent.parent / "data" / "originator" / "exim4-gecos.txt"
GECOS, LOGIN = "Lo &Test,Room 1,555", "lotest"


def _cases() -> list[tuple[str, str, str]]:
    rows = []
    for line in DATA.read_text().splitlines():
        if not line.startswith("#"):
            pattern, name, from_line = line.split("\t")
            rows.append((pattern, name, email.utils.parseaddr(from_line[6:])[0]))
    return rows


@pytest.mark.parametrize("pattern,name,expected", _cases())
def test_full_name_as_exim(tmp_path, pattern, name, expected):
    conf = tmp_path / "pymta.conf"
    lines = ["primary_hostname = x.example"]
    if pattern != "-":
        lines += [f"gecos_pattern = {pattern}", f"gecos_name = {name}"]
    conf.write_text("\n".join(lines) + "\n")
    assert gecos_full_name(load_config(str(conf)), GECOS, LOGIN) == expected


def test_one_option_alone_is_ignored(tmp_path):
    conf = tmp_path / "pymta.conf"
    conf.write_text("primary_hostname = x.example\ngecos_pattern = ([^,]*)\n")
    assert gecos_full_name(load_config(str(conf)), GECOS, LOGIN) == "Lo LotestTest,Room 1,555"
