"""local_sender_retain for a message an untrusted local user submits, against exim4's
recorded answers (tests/data/recv_opts/sender_retain*.txt, see record.sh there)."""
from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from tests.support.asuser import open_to_all, run_pymta_as
from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parent.parent / "data" / "recv_opts"
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
MESSAGE = ("To: a@test.example\nFrom: x@else.example\nSender: fake@x.example\n"
           "Subject: s\n\nb\n")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change uid")


def _setup(tmp_path: Path, extra: str) -> tuple[Path, Path]:
    spool = tmp_path / "spool"
    (spool / "log").mkdir(parents=True)
    conf = tmp_path / "pymta.conf"
    conf.write_text(CONFIG.format(spool=spool, extra=extra))
    open_to_all(conf)
    for d in (spool, spool / "log"):
        os.chmod(d, 0o777)          # no exim_user: the caller writes the spool itself
    return conf, spool


def _live_headers(spool: Path) -> str:
    """Live header lines of the queued message but Received:, as $message_headers."""
    [path] = list(spool.glob("input/**/*-H"))
    lines = []
    for m in re.finditer(r"^\d{3}(.) ((?:.*\n)(?:[ \t].*\n)*)", path.read_text(), re.M):
        if m.group(1) in ("*", "P"):
            continue
        text = m.group(2).rstrip("\n")
        text = re.sub(r"^Message-Id: <[^>]*>", "Message-Id: <ID>", text)
        lines.append(re.sub(r"^Date: .*", "Date: DATE", text))
    return "\\n".join(lines)


CASES = [line.split("|", 1)
         for line in (DATA / "sender_retain.txt").read_text().splitlines()]


@pytest.mark.parametrize("options,expected", CASES)
def test_local_sender_retain_as_exim(tmp_path, options, expected):
    pw = pwd.getpwnam("nobody")
    conf, spool = _setup(tmp_path, options.replace(";", "\n"))
    out = run_pymta_as(pw.pw_uid, pw.pw_gid, conf, ["-odq", "-t"], input=MESSAGE)
    assert out.returncode == 0, out.stderr
    assert _live_headers(spool) == expected


def test_local_sender_retain_needs_local_from_check_false(tmp_path):
    conf, _spool = _setup(tmp_path, "local_sender_retain = true")
    out = run_pymta(["-bV"], conf)
    assert out.returncode != 0
    assert (DATA / "sender_retain_error.txt").read_text().strip() in out.stderr
