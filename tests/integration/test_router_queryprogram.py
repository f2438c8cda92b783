"""queryprogram router: every answer a command can give, with -bt output as Exim 4.96
prints it for the same configuration (recorded with exim4 -bt), and a timeout."""
from __future__ import annotations

import os

from tests.support.daemon import PymtaDaemon

ROUTERS = [
    ("q_accept", "acc", 'ACCEPT TRANSPORT=t2 HOSTS=127.0.0.2 DATA="rule 1"', "t1"),
    ("q_plain", "plain", "accept", "t1"),
    ("q_fail", "fl", "FAIL no such user here", None),
    ("q_defer", "df", "DEFER try later", None),
    ("q_redirect", "rd", "redirect plain@test.example, acc@test.example", None),
    ("q_decline", "dc", "DECLINE", None),
    ("q_bad", "bad", "WHATEVER x", None),
]

EXIM_BT = {
    "acc": (0, "acc@test.example\n  router = q_accept, transport = t2\n"
               "  host 127.0.0.2 [127.0.0.2]\n"),
    "plain": (0, "plain@test.example\n  router = q_plain, transport = t1\n"),
    "fl": (2, "fl@test.example is undeliverable: no such user here\n"),
    "df": (1, "df@test.example cannot be resolved at this time: try later\n"),
    "rd": (0, "plain@test.example\n    <-- rd@test.example\n  router = q_plain, transport = t1\n"
              "acc@test.example\n    <-- rd@test.example\n  router = q_accept, transport = t2\n"
              "  host 127.0.0.2 [127.0.0.2]\n"),
    "dc": (0, "dc@test.example\n  router = last, transport = t1\n"),
    "bad": (1, "bad@test.example cannot be resolved at this time: bad command yield: "
               "WHATEVER x\n"),
}


def _config(script: str) -> str:
    routers = "".join(
        f"{name}:\n  driver = queryprogram\n  local_parts = {lp}\n"
        f"  command = {script} {answer}\n  command_user = nobody\n"
        + (f"  transport = {t}\n" if t else "")
        for name, lp, answer, t in ROUTERS)
    return f"""
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
{routers}
q_slow:
  driver = queryprogram
  local_parts = slow
  command = /bin/sleep 30
  command_user = nobody
  timeout = 1s
last:
  driver = accept
  local_parts = dc
  transport = t1
begin transports
t1:
  driver = appendfile
  file = DIR/mbox
t2:
  driver = smtp
begin retry
*  *  F,1h,10m
"""


def _daemon(tmp_path) -> PymtaDaemon:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "qp.sh"
    script.write_text('#!/bin/sh\necho "$*"\n')
    script.chmod(0o755)
    os.chmod(tmp_path, 0o755)
    d = PymtaDaemon(_config(str(script)), tmp_path / "mta")
    d.prepare()
    return d


def test_every_answer_as_exim_reports_it(tmp_path):
    d = _daemon(tmp_path)
    for local_part, (status, output) in EXIM_BT.items():
        r = d.run("-bt", f"{local_part}@test.example")
        assert (r.returncode, r.stdout) == (status, output), local_part


def test_data_reaches_address_data_and_a_slow_command_defers(tmp_path):
    d = _daemon(tmp_path)
    r = d.run("-be", "x")        # the configuration loads
    assert r.returncode == 0
    d.submit_and_deliver("s@test.example", "plain@test.example", b"Subject: q\n\nhi\n")
    # exim4 4.96 logs the whole address here: log_as_local is the accept router's
    # default only (checked with exim4 -odi and a queryprogram router)
    assert "=> plain@test.example R=q_plain T=t1" in d.log()
    d.submit_and_deliver("s@test.example", "slow@test.example", b"Subject: q\n\nhi\n")
    log = d.log()
    # as exim4 4.96: deferred, not frozen
    assert "== slow@test.example R=q_slow defer (-1): q_slow router: command timed out" \
        in log, log
    assert "Frozen" not in log
