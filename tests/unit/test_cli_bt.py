"""-bt output compared with what Debian's exim4 4.96 printed for the same configuration
and addresses (tests/data/bt/NAME.conf, NAME.args, NAME.exim.out)."""
from __future__ import annotations

from pathlib import Path

from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parent.parent / "data" / "bt"


def _matches_exim(tmp_path: Path, name: str) -> None:
    """Lines 1 and 2 of the configuration held keep_environment and exim_user when
    Exim recorded it."""
    text = (DATA / f"{name}.conf").read_text().split("\n", 2)[2]
    conf = tmp_path / f"{name}.conf"
    conf.write_text(text.replace("SPOOL", str(tmp_path)))
    proc = run_pymta(["-bt", *(DATA / f"{name}.args").read_text().split()], conf)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (DATA / f"{name}.exim.out").read_text()


def test_unseen_redirections_and_repeats_as_exim(tmp_path):
    """The last address routed is listed first (local ones, then remote ones); a copy
    made by an unseen router shows the original as its parent; an address shown
    already in this run (the same address to the same router, even from another
    argument) is marked "[duplicate, would not be delivered]"."""
    _matches_exim(tmp_path, "unseen")
