"""$message_body, $message_body_end and $message_body_size in the DATA ACL (-bh) and
for -bem, with message_body_visible and message_body_newlines, against what exim4
4.96 printed for the same configuration (tests/data/message_body)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parent.parent / "data" / "message_body"

CONFIG = """\
primary_hostname = mx.test
spool_directory = {spool}
log_file_path = {spool}/log/%slog
{options}
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data
begin acl
acl_rcpt:
  accept
acl_data:
  warn logwrite = BODY:<${{escape:$message_body}}> END:<${{escape:$message_body_end}}> \\
                  SIZE:$message_body_size
  accept
"""
OPTIONS = ["message_body_visible = 12\nmessage_body_newlines = true", ""]
SESSION = ("EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@mx.test>\r\nDATA\r\nSubject: t\r\n\r\n"
           "line one\r\nline two is longer\r\nlast line here\r\n.\r\nQUIT\r\n")
EXPANSION = "${escape:$message_body}|${escape:$message_body_end}|$message_body_size"


def _conf(tmp_path: Path, options: str) -> Path:
    path = tmp_path / "configure"
    path.write_text(CONFIG.format(spool=tmp_path / "spool", options=options))
    return path


@pytest.mark.parametrize("case", [0, 1])
def test_data_acl_sees_the_body_as_exim_does(tmp_path, case):
    want = (DATA / "exim4_bh.txt").read_text().splitlines()[case]
    out = run_pymta(["-bh", "192.0.2.1"], _conf(tmp_path, OPTIONS[case]), input=SESSION)
    logged = [line.split(" ", 2)[2] for line in (out.stdout + out.stderr).splitlines()
              if line.startswith("LOG: ") and " BODY:" in line]
    assert logged == [want], out.stdout


@pytest.mark.parametrize("case", [0, 1])
def test_bem_body_variables_as_exim(tmp_path, case):
    want = (DATA / "exim4_bem.txt").read_text().splitlines()[case]
    message = tmp_path / "msg.txt"
    message.write_text("Subject: t\n\nline one\nline two is longer\nlast line here\n")
    out = run_pymta(["-bem", str(message), EXPANSION], _conf(tmp_path, OPTIONS[case]))
    assert out.stdout.rstrip("\n") == want, out.stderr
