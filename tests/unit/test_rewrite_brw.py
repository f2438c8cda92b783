"""pymta -brw against exim -brw: tests/data/rewrite/<name>.exim.out holds Exim 4.96's
answers for <name>.conf and every address in ``addresses`` (recorded by record.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pymta.cli.rewritetest import rewrite_test
from pymta.config import load_config

DATA = Path(__file__).resolve().parent.parent / "data" / "rewrite"
CONFIGS = sorted(p.stem for p in DATA.glob("*.conf"))


class _Log:
    """Collects what rewriting logs (exim -brw writes it to the logs, not stdout)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def main(self, text: str, msgid: str | None = None) -> None:
        self.lines.append(text)

    def panic(self, text: str, msgid: str | None = None) -> None:
        self.lines.append("panic: " + text)


def _expected(name: str) -> dict[str, str]:
    blocks: dict[str, str] = {}
    text = (DATA / f"{name}.exim.out").read_text()
    for block in text.split("== ")[1:]:
        address, _, output = block.partition("\n")
        blocks[address] = output
    return blocks


def _config(tmp_path: Path, name: str):
    path = tmp_path / f"{name}.conf"
    path.write_text((DATA / f"{name}.conf").read_text().replace("DATA", str(DATA)))
    return load_config(str(path))


@pytest.mark.parametrize("name", CONFIGS)
def test_brw_output_is_exims(tmp_path, name):
    config = _config(tmp_path, name)
    expected = _expected(name)
    addresses = (DATA / "addresses").read_text().split("\n")[:-1]
    assert len(expected) == len(addresses)
    for address in addresses:
        text, code = rewrite_test(config, [address], _Log())
        assert code == 0
        assert text == expected[address], address


def test_brw_logs_failed_and_unparseable_rewrites(tmp_path):
    log = _Log()
    rewrite_test(_config(tmp_path, "patterns"), ["F <fw@a>"], log)
    assert any(line.startswith("panic: Rewrite of fw@a yielded unparseable address")
               for line in log.lines)
    log = _Log()
    rewrite_test(_config(tmp_path, "smtp"), ["s3!u"], log)
    assert 'panic: Rewrite of s3!u yielded unqualified address "garbage"' in log.lines


def test_brw_needs_an_argument(tmp_path):
    assert rewrite_test(_config(tmp_path, "common"), [], _Log()) == (
        "-brw needs an address argument\n", 1)


def test_address_rewrite_log_lines(tmp_path):
    (tmp_path / "sel.conf").write_text(
        (DATA / "smtp.conf").read_text() + "")
    text = (DATA / "smtp.conf").read_text().replace(
        "begin rewrite", "log_selector = +address_rewrite\nbegin rewrite")
    (tmp_path / "sel.conf").write_text(text)
    config = load_config(str(tmp_path / "sel.conf"))
    log = _Log()
    rewrite_test(config, ["A <u@old.example>"], log)
    assert log.lines[0] == '"u@old.example" from sender: rewritten as "u@new.example" by rule 4'
    assert log.lines[6] == '"u@old.example" from env-from rewritten as "u@new.example" by rule 4'
    assert log.lines[7] == '"u@old.example" from env-to rewritten as "u@new.example" by rule 4'
    log = _Log()
    rewrite_test(config, ["s1!x"], log)
    assert log.lines == ['"s1!x" from smtp sender rewritten as "x@old.example" by rule 1']


def test_brw_logs_an_abandoned_rewrite_as_exim(tmp_path):
    log = _Log()
    rewrite_test(_config(tmp_path, "flags"), ["err@d.example"], log)
    assert log.lines[0] == (
        "panic: Expansion of ${if eq{a}{b}{x}{${substr{x}{y}}}}@x.example failed while "
        'rewriting: "x" is not a number (in "substr" expansion)')
