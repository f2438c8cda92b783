"""A locally submitted message with resent- header lines: the Message-Id, Date: and
From: pymta adds are the Resent- ones, placed as Exim 4.96 places them, and the -H
flags are Exim's.  The expected header blocks are those exim4 4.96 wrote to its spool
for the same messages (``exim4 -odq -t``), with the dates, ids and version masked."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.daemon import run_pymta

CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = {spool}
log_file_path = {spool}/log/%slog
begin routers
r:
  driver = redirect
  data = :blackhole:
"""

CASES = [
    # a resend of a message that has its own Date:, Message-Id: and From:
    (["-f", "s@x.example"],
     b"To: a@test.example\nResent-To: r@test.example\n"
     b"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-Id: <x@y>\nFrom: f@test.example\n"
     b"Subject: t\n\nbody\n",
     ["P Received:",
      "  Resent-Date: DATE",
      "I Resent-Message-Id: <ID@test.example>",
      "T To: a@test.example",
      "T Resent-To: r@test.example",
      "  Date: Mon, 1 Jan 2024 00:00:00 +0000",
      "  Message-Id: <x@y>",
      "F From: f@test.example",
      "  Subject: t",
      "F Resent-From: s@x.example"]),
    ([],
     b"Resent-From: rf@test.example\nResent-To: r@test.example\nSubject: t\n\nbody\n",
     ["P Received:",
      "  Resent-Date: DATE",
      "I Resent-Message-Id: <ID@test.example>",
      "F Resent-From: rf@test.example",
      "T Resent-To: r@test.example",
      "  Subject: t"]),
]


def _headers(spool: Path) -> list[str]:
    [h] = list(spool.glob("input/**/*-H"))
    text = h.read_text()
    block = text.split("\n\n", 1)[1] if "\nXX\n" in text else text
    out = []
    for m in re.finditer(r"^\d{3}(.) (.*?)\n(?=\d{3}. |\Z)", block, re.M | re.S):
        flag, header = m.groups()
        if header.startswith("Received:"):
            header = "Received:"
        header = re.sub(r"\w{3}, \d+ \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}(?<!2024 00:00:00 "
                        r"\+0000)", "DATE", header)
        header = re.sub(r"<E\w+-\w+-\w+@", "<ID@", header)
        out.append(f"{flag} {header}")
    return out


@pytest.mark.parametrize("case", range(len(CASES)))
def test_resent_headers_added_as_exim_adds_them(tmp_path, case):
    args, message, want = CASES[case]
    spool = tmp_path / "spool"
    (spool / "log").mkdir(parents=True)
    conf = tmp_path / "pymta.conf"
    conf.write_text(CONFIG.format(spool=spool))
    r = run_pymta(["-odq", "-t", *args], conf, input=message)
    assert r.returncode == 0, r.stderr
    assert _headers(spool) == want
    # Exim logs the id= of the Resent-Message-Id only (none here: it was created)
    assert " id=" not in (spool / "log" / "mainlog").read_text()
