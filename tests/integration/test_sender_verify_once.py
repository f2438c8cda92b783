"""A failed `verify = sender` is reused for the message's later recipients: the client
and the log get its details once, as exim4 4.96 does (tests/data/sender_verify_once)."""
from __future__ import annotations

from pathlib import Path

from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parents[1] / "data" / "sender_verify_once"


def test_details_told_once_per_message(tmp_path):
    (tmp_path / "spool").mkdir()
    conf = tmp_path / "conf"
    conf.write_text(f"spool_directory = {tmp_path}/spool\ntls_advertise_hosts =\n"
                    + (DATA / "conf").read_text())
    out = run_pymta(["-bh", "192.0.2.1"], conf, input=(DATA / "session.txt").read_text())
    replies = [line for line in out.stdout.splitlines()
               if line[:3].isdigit() and not line.startswith(("220", "250-"))]
    assert replies == (DATA / "exim4_replies.txt").read_text().splitlines()
    logged = [line for line in (out.stdout + out.stderr).splitlines()
              if line.startswith("LOG:")]
    assert logged == (DATA / "exim4_log.txt").read_text().splitlines()
