"""extra_local_interfaces: an address no interface carries counts as this host's own
for the router's ``self`` check and for ``@[]``, as with Exim 4.96 (its ``-bt`` output
for the same configuration is in tests/data/extra_local/: with.txt and without.txt)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.daemon import PymtaDaemon

DATA = Path(__file__).resolve().parents[1] / "data" / "extra_local"


@pytest.mark.parametrize("extra,expected", [
    ("", "without.txt"),
    ("extra_local_interfaces = 192.0.2.77", "with.txt"),
    ("extra_local_interfaces = <; ::1 ; 192.0.2.77.2525", "with.txt"),   # port ignored
])
def test_bt_matches_exim(tmp_path, extra, expected):
    conf = (DATA / "config.conf").read_text().replace("EXTRA", extra)
    d = PymtaDaemon(conf, tmp_path)
    (tmp_path / "spool").mkdir()
    d.prepare()
    r = d.run("-bt", "u@remote.example", "u@[192.0.2.77]")
    assert r.stdout + r.stderr + f"rc={r.returncode}\n" == (DATA / expected).read_text()


def test_a_bad_address_is_a_configuration_error(tmp_path):
    conf = (DATA / "config.conf").read_text().replace(
        "EXTRA", "extra_local_interfaces = 192.0.2.300")
    d = PymtaDaemon(conf, tmp_path)
    (tmp_path / "spool").mkdir()
    d.prepare()
    r = d.run("-bV")
    assert r.returncode == 1
    assert re.search(r' line \d+: invalid IP address "192.0.2.300" in extra_local_interfaces$',
                     r.stderr.strip()), r.stderr
