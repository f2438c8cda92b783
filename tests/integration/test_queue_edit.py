"""Queue administration: -Mar, -Mmd, -Mmad, -Mes and -Mg on a queued message.

Outputs and log lines are the ones Exim 4.96 gives for the same commands (recorded with
exim4 on Debian's package); Exim itself lists the edited queue.
"""
from __future__ import annotations

import re
import subprocess

from tests.support.daemon import PymtaDaemon
from tests.support.exim import EXIM, exim_or_skip

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
queue_only
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/mbox
"""


def queued(d: PymtaDaemon, *recipients: str) -> str:
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    r = d.run("-odq", "-f", "s@test.example", *recipients, input=b"Subject: t\n\nbody\n")
    assert r.returncode == 0, r.stderr
    ids = re.findall(r"\w{6}-\w{6}-\w{2}", d.run("-bp").stdout)
    return ids[-1]


def log_tail(d: PymtaDaemon, msgid: str) -> list[str]:
    return [line.split(" ", 3)[3] for line in d.log().splitlines() if f" {msgid} " in line]


def test_add_mark_and_change_sender(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path)
    msgid = queued(d, "a@test.example", "b@test.example")
    r = d.run("-Mar", msgid, "c@test.example", "d@test.example")
    assert (r.returncode, r.stdout) == (0, f"Message {msgid} has been modified\n")
    r = d.run("-Mmd", msgid, "a@test.example")
    assert (r.returncode, r.stdout) == (0, f"Message {msgid} has been modified\n")
    r = d.run("-Mmd", msgid, "zz@test.example")
    assert (r.returncode, r.stdout) == (1, f"Message {msgid} - error while marking as "
                                           "delivered:\n  zz@test.example is not a "
                                           "recipient: message not updated\n")
    r = d.run("-Mes", msgid, "new@sender.example")
    assert r.returncode == 0
    r = d.run("-Mar", msgid, "unq")
    assert (r.returncode, r.stdout) == (1, f"Message {msgid} - error while adding recipient:"
                                           "\n  bad address unq: domain missing\n")
    listing = d.run("-bp").stdout
    assert f"{msgid} <new@sender.example>\n        D a@test.example\n          b@test.example\n" \
           "          c@test.example\n          d@test.example\n" in listing
    assert log_tail(d, msgid)[1:] == [
        "recipient <c@test.example> added by root", "recipient <d@test.example> added by root",
        "address <a@test.example> marked delivered by root",
        "sender address changed to <new@sender.example> by root"]
    # a queue run delivers the added recipients, not the one marked delivered
    d.run("-qf")
    mbox = (tmp_path / "mbox").read_text()
    assert mbox.count("\nSubject: t\n") == 3 and "Return-path" not in mbox
    assert not any("=> a@test.example" in ln for ln in log_tail(d, msgid))


def test_mark_all_delivered_and_exim_reads_the_edited_queue(tmp_path):
    exim_or_skip()
    d = PymtaDaemon(CONFIG, tmp_path)
    msgid = queued(d, "a@test.example", "b@test.example")
    assert d.run("-Mar", msgid, "c@test.example").returncode == 0
    r = d.run("-Mmad", msgid)
    assert (r.returncode, r.stdout) == (0, f"Message {msgid} has been modified\n\n")
    assert log_tail(d, msgid)[-3:] == [f"address <{a}@test.example> marked delivered by root"
                                       for a in "abc"]
    exim_conf = tmp_path / "exim.conf"
    # Exim runs as the user that owns pymta's spool here (the tests' exim_user)
    exim_conf.write_text(f"spool_directory = {d.spool}\nexim_user = {d.exim_user or 'root'}\n"
                         "keep_environment =\n")
    exim_conf.chmod(0o644)
    out = subprocess.run([EXIM, "-C", str(exim_conf), "-bp"], capture_output=True,
                         text=True, timeout=30).stdout
    assert f"{msgid} <s@test.example>\n        D a@test.example\n        D b@test.example\n" \
           "        D c@test.example\n" in out


def test_give_up_bounces_without_trying(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path)
    msgid = queued(d, "a@test.example", "b@test.example")
    d.run("-Mmd", msgid, "a@test.example")
    r = d.run("-Mg", msgid)
    assert (r.returncode, r.stdout) == (0, "")
    lines = log_tail(d, msgid)
    assert lines[-2:] == ["cancelled by root", "Completed"]
    assert not any(ln.startswith(("=>", "**")) for ln in lines)
    # the mbox holds only the bounce (to s@test.example), which lists b with no reason
    bounce = (tmp_path / "mbox").read_text()
    assert bounce.count("\nFrom ") == 0 and bounce.startswith("From MAILER-DAEMON ")
    assert "Subject: Mail delivery failed" in bounce
    assert re.search(r"failed:\n\n  b@test\.example\n\n--", bounce), bounce
