"""The originator of command-line submissions: unknown_login and unknown_username for a
caller without a passwd entry, and the gecos full name in the created From: line.

pymta runs as that caller (``-odq -t``); the results are Exim 4.96's
(tests/data/originator/exim4-unknown-uid.txt, recorded with Debian's exim4 run as uid
4242, which has no passwd entry here either).
"""
from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from tests.support.asuser import open_to_all, run_pymta_as

DATA = Path(__file__).resolve().parent.parent / "data" / "originator"
UNKNOWN_UID = 4242

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = {spool}
log_file_path = {spool}/log/%slog
{extra}
begin routers
r:
  driver = redirect
  data = :blackhole:
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change uid")


def _unknown_cases() -> list[tuple[str, str, int, str]]:
    rows = []
    for line in (DATA / "exim4-unknown-uid.txt").read_text().splitlines():
        if not line.startswith("#"):
            extra, name, rc, text = line.split("\t")
            rows.append((extra.replace(";", "\n") if extra != "-" else "", name, int(rc), text))
    return rows


def _setup(tmp_path: Path, extra: str) -> tuple[Path, Path]:
    spool = tmp_path / "spool"
    (spool / "log").mkdir(parents=True)
    conf = tmp_path / "pymta.conf"
    conf.write_text(CONFIG.format(spool=spool, extra=extra))
    open_to_all(conf)
    for d in (spool, spool / "log"):
        os.chmod(d, 0o777)          # no exim_user: the caller writes the spool itself
    return conf, spool


def _from_line(spool: Path) -> str:
    [header] = list(spool.glob("input/**/*-H"))
    m = re.search(r"^\d{3}F (From: .*)$", header.read_text(), re.M)
    assert m, header.read_text()
    return m.group(1)


@pytest.mark.skipif(any(p.pw_uid == UNKNOWN_UID for p in pwd.getpwall()),
                    reason=f"uid {UNKNOWN_UID} has a passwd entry here")
@pytest.mark.parametrize("extra,name,rc,text", _unknown_cases())
def test_unknown_caller_as_exim(tmp_path, extra, name, rc, text):
    conf, spool = _setup(tmp_path, extra)
    args = ["-odq", "-t"] + (["-F", name] if name != "-" else [])
    out = run_pymta_as(UNKNOWN_UID, UNKNOWN_UID, conf, args,
                       input="To: alice@test.example\nSubject: x\n\nbody\n")
    assert out.returncode == rc, out.stderr
    if rc:
        assert out.stderr == f"pymta: {text}\n"
        assert not list(spool.glob("input/**/*-H"))
    else:
        assert _from_line(spool) == text


def test_gecos_name_from_the_pattern(tmp_path):
    pw = pwd.getpwnam("nobody")
    extra = "gecos_pattern = ^(.)(.*)\ngecos_name = <$2 $1>"
    conf, spool = _setup(tmp_path, extra)
    out = run_pymta_as(pw.pw_uid, pw.pw_gid, conf, ["-odq", "-t"],
                       input="To: alice@test.example\nSubject: x\n\nbody\n")
    assert out.returncode == 0, out.stderr
    gecos = pw.pw_gecos.replace("&", "Nobody")
    assert _from_line(spool) == f'From: "<{gecos[1:]} {gecos[:1]}>" <nobody@test.example>'
