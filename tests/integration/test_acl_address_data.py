"""$address_data / $sender_address_data after address verification, compared with Exim
4.96 (-bh) running the same configuration and session (tests/data/verify_address_data)."""
from __future__ import annotations

from pathlib import Path

from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parents[1] / "data" / "verify_address_data"


def test_address_data_after_verify_matches_exim(tmp_path):
    conf = tmp_path / "pymta.conf"
    spool = tmp_path / "spool"
    spool.mkdir()
    conf.write_text(f"spool_directory = {spool}\ntls_advertise_hosts =\n"
                    + (DATA / "configure").read_text())
    proc = run_pymta(["-bh", "192.0.2.1"], conf, input=(DATA / "session").read_bytes())
    got = [line for line in proc.stderr.splitlines() if line.startswith("LOG: ")]
    assert got == (DATA / "exim-4.96-bh.txt").read_text().splitlines()
