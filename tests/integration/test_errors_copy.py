"""errors_copy: a bounce pymta generates also goes to the addresses of the first item
whose pattern matches its recipient, expanded with that recipient's $local_part and
$domain; the recipients as exim4 4.96 listed them for the same message and
configuration (tests/data/errors_copy)."""
from __future__ import annotations

import re
from pathlib import Path

from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parent.parent / "data" / "errors_copy"


def test_bounce_gets_the_copies_exim_gives_it(tmp_path):
    spool = tmp_path / "spool"
    lines = [line for line in (DATA / "exim.conf").read_text().splitlines()
             if not line.startswith(("exim_user", "spool_directory", "log_file_path"))]
    conf = tmp_path / "configure"
    conf.write_text(f"spool_directory = {spool}\nlog_file_path = {spool}/log/%slog\n"
                    + "\n".join(lines) + "\n")
    out = run_pymta(["-f", "a@sender.test", "bad@nowhere.test"], conf,
                    input="Subject: x\n\nhi\n")
    assert out.returncode == 0, out.stderr
    run_pymta(["-qf"], conf, check=True)
    mainlog = (spool / "log" / "mainlog").read_text()
    bounce = [line for line in mainlog.splitlines() if " <= <> " in line]
    assert len(bounce) == 1, mainlog
    want = (DATA / "exim4_bounce_recipients.txt").read_text().strip()
    assert re.sub(r".* for ", "for ", bounce[0]) == want


def test_no_match_no_copy(tmp_path):
    spool = tmp_path / "spool"
    lines = [line for line in (DATA / "exim.conf").read_text().splitlines()
             if not line.startswith(("exim_user", "spool_directory", "log_file_path"))]
    conf = tmp_path / "configure"
    conf.write_text(f"spool_directory = {spool}\nlog_file_path = {spool}/log/%slog\n"
                    + "\n".join(lines) + "\n")
    run_pymta(["-f", "a@elsewhere.test", "bad@nowhere.test"], conf, input="Subject: x\n\nhi\n",
              check=True)
    run_pymta(["-qf"], conf, check=True)
    bounce = [line for line in (spool / "log" / "mainlog").read_text().splitlines()
              if " <= <> " in line]
    assert bounce and bounce[0].endswith(" for a@elsewhere.test")
