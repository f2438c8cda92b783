"""The SMTP answer after DATA follows the spool: 250 once -H is in place, else 451 with
nothing left behind, so a client that retries never creates a second copy."""
from __future__ import annotations

import os

from pymta.smtp import session as session_mod
from pymta.spool import files
from tests.unit.test_session import Client, make_config, spooled


def _send(c: Client) -> list[str]:
    c.cmd(b"MAIL FROM:<s@x.example>\r\n")
    c.cmd(b"RCPT TO:<joe@a.example>\r\n")
    c.cmd(b"DATA\r\n")
    return c.cmd(b"Subject: x\r\n\r\nbody\r\n.\r\n")


def test_failure_in_session_follow_up_still_answers_250(tmp_path, monkeypatch):
    cfg = make_config(tmp_path)

    def broken(self, *args):
        raise RuntimeError("queue_only check broke")
    # The step the session runs right after the message was spooled.
    monkeypatch.setattr(session_mod.SmtpSession, "_queue_only", broken)
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO client.example\r\n")
    reply = _send(c)
    assert reply[0].startswith("250 OK id=")
    msgid = reply[0].split("=", 1)[1]
    c.cmd(b"QUIT\r\n")
    c.close()
    assert spooled(cfg) == [msgid + "-H"]
    assert any(k == "panic" and "message was received" in t and "queue_only check broke" in t
               for k, t in c.log.lines)


def test_failure_before_commit_451_then_retry_gives_one_copy(tmp_path, monkeypatch):
    cfg = make_config(tmp_path)
    real = files._fsync_dir
    calls = []

    def fsync_once_fails(path):
        # The -H rename is not durable until input/ is synced: the message does not count.
        calls.append(path)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        real(path)
    monkeypatch.setattr(files, "_fsync_dir", fsync_once_fails)
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO client.example\r\n")
    assert _send(c) == ["451 Temporary local problem - please try later"]
    assert spooled(cfg) == []
    assert os.listdir(os.path.join(cfg.main.spool_directory, "input")) == []
    reply = _send(c)                      # the client tries again
    assert reply[0].startswith("250 OK id=")
    c.cmd(b"QUIT\r\n")
    c.close()
    assert spooled(cfg) == [reply[0].split("=", 1)[1] + "-H"]
