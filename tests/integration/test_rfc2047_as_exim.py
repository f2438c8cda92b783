"""Encoded-words in $h_, $bh_ and ${rfc2047d:}, with check_rfc2047_length on and off,
against exim4 4.96's -bem output for the same messages (tests/data/rfc2047)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.daemon import run_pymta

RECORDED = json.loads((Path(__file__).resolve().parent.parent / "data" / "rfc2047"
                       / "exim4_bem.json").read_text())


@pytest.mark.parametrize("key", sorted(RECORDED["results"]))
def test_bem_as_exim(tmp_path, key):
    check, name, index = key.split("/")
    conf = tmp_path / "configure"
    conf.write_text(f"primary_hostname = mx.test\ncheck_rfc2047_length = {check}\n"
                    f"spool_directory = {tmp_path}/spool\n")
    message = tmp_path / "msg.txt"
    message.write_text(RECORDED["messages"][name])
    out = run_pymta(["-bem", str(message), RECORDED["expressions"][int(index)]], conf)
    assert out.stdout + out.stderr == RECORDED["results"][key]
