"""Once the -H file is in place the message exists: later failures must not refuse it.

A failure after the commit (here a msglog that cannot be written) is written
to the paniclog, and the client gets 250 (SMTP) or exit status 0 (command line), so it
never sends the message again and the spool holds exactly one copy.
"""
from __future__ import annotations

import shutil

import pytest

from tests.integration.conftest import BASE_CONFIG, wait_for
from tests.support.daemon import PymtaDaemon

MESSAGE = b"Subject: commit test\r\n\r\nbody\r\n"


def _break_msglog(spool) -> None:
    """Make spool/msglog a plain file: writing a message's msglog then fails (ENOTDIR)."""
    (spool / "input").mkdir(exist_ok=True)
    msglog = spool / "msglog"
    if msglog.is_dir():
        shutil.rmtree(msglog)
    msglog.write_text("not a directory\n")


def test_smtp_failure_after_commit_answers_250_and_keeps_one_copy(pymta_daemon):
    d = pymta_daemon(macros={"EXTRA_MAIN": "queue_only"})
    _break_msglog(d.spool)
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@elsewhere.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        code, text = c.data(MESSAGE)
        assert code == 250, text
        assert text.startswith("OK id=")
        msgid = text.split("=", 1)[1]
        c.quit()
    assert d.queue() == [msgid]
    assert wait_for(lambda: msgid in d.log("panic"))
    panic = d.log("panic")
    assert "message was received" in panic and "msglog" in panic


@pytest.mark.parametrize("mode", ["-odq", "-odi"])
def test_submission_failure_after_commit_exits_0(tmp_path, mode):
    # Only the configuration of this (never started) daemon is used, by the command line.
    d = PymtaDaemon(BASE_CONFIG, tmp_path, macros={"SINK_PORT": "1"})
    d.config_path.write_text(BASE_CONFIG)
    (tmp_path / "users").write_text("alice: alice\n")
    (d.spool / "log").mkdir(parents=True)
    _break_msglog(d.spool)
    proc = d.run(mode, "-i", "alice@test.example", input=b"Subject: cli\n\nbody\n")
    assert proc.returncode == 0, proc.stderr
    assert "message was received" in d.log("panic")
    if mode == "-odq":
        assert len(d.queue()) == 1
