"""The daemon master's warm-up session (pymta.daemon.warmup) is invisible: no log line,
no spooled message, no run of the configured ACLs; the daemon then serves as before."""
from __future__ import annotations

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for

# Every RCPT the configured ACL sees is logged: the warm-up's RCPT must not be.
CONFIG = BASE_CONFIG.replace(
    "acl_check_rcpt:\n",
    "acl_check_rcpt:\n  warn    logwrite = RCPT <$local_part@$domain> HELO $sender_helo_name\n")
MESSAGE = (b"From: sender@outside.example\r\nTo: alice@test.example\r\n"
           b"Subject: after the warm-up\r\n\r\nHello.\r\n")


def test_warm_up_leaves_no_trace_and_the_daemon_serves(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    assert "warmup" not in d.log()
    assert " RCPT " not in d.log() and " <= " not in d.log()
    assert d.log("panic") == ""
    assert d.queue() == []
    c = d.client()
    c.banner()
    c.ehlo("client.test")
    assert c.cmd("MAIL FROM:<sender@outside.example>")[0] == 250
    assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send_raw(MESSAGE + b".\r\n")
    assert c.read_reply()[0] == 250
    c.cmd("QUIT")
    assert len(wait_for(lambda: maildir_messages(tmp_path, "alice"))) == 1
    rcpts = d.wait_for_log(r" RCPT <")
    assert rcpts == [ln for ln in d.log().splitlines() if " RCPT <" in ln]
    assert rcpts[0].endswith("RCPT <alice@test.example> HELO client.test")
    assert "warmup" not in d.log()
