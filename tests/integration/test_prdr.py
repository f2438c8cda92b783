"""PRDR (per-recipient data responses) as server and client (issue 10).

The server side's dialogue and log lines are compared with Exim 4.96's in
tests/unit/test_cli_bh.py; here the daemon is driven over a socket, and one pymta
relays to another that refuses one recipient of two after the data.
"""
from __future__ import annotations

from tests.integration.conftest import BASE_CONFIG
from tests.support.daemon import PymtaDaemon

MESSAGE = b"Subject: prdr\r\n\r\nhello\r\n"

PRDR_ACL = """\
acl_prdr:
  deny  local_parts = bad
        message = no thanks for $local_part
  defer local_parts = later
        message = try later
  accept
"""


def _receiver_config(prdr: bool = True) -> str:
    main = "prdr_enable = true\nacl_smtp_data_prdr = acl_prdr\nqueue_only\n" if prdr \
        else "queue_only\n"
    config = BASE_CONFIG.replace("  accept  domains = remote.example\n",
                                 "  accept  domains = remote.example : next.example\n")
    return main + config.replace("begin acl\n\n", "begin acl\n\n" + PRDR_ACL)


def _recipients_on_spool(d: PymtaDaemon, msgid: str) -> list[str]:
    text = next(d.spool.glob(f"input/**/{msgid}-H")).read_text()
    lines = text.split("\n")
    count_at = next(i for i, ln in enumerate(lines) if ln.isdigit() and i > 3)
    return lines[count_at + 1:count_at + 1 + int(lines[count_at])]


def test_server_per_recipient_replies(pymta_daemon):
    d = pymta_daemon(config=_receiver_config())
    with d.client() as c:
        c.ehlo()
        assert "PRDR" in c.extensions()
        assert c.cmd("MAIL FROM:<a@outside.example> PRDR") == (250, "OK, PRDR Requested")
        for r in ("good@remote.example", "bad@remote.example", "later@remote.example"):
            assert c.cmd(f"RCPT TO:<{r}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send_raw(MESSAGE + b".\r\n")
        replies = [c.read_reply() for _ in range(5)]
    assert replies[:4] == [(353, "PRDR content analysis beginning"),
                           (250, "PRDR R=<good@remote.example> acceptance"),
                           (550, "no thanks for bad"), (450, "try later")]
    code, text = replies[4]
    assert code == 250 and text.endswith(" message accepted for some recipients")
    msgid = text.split()[0][3:]
    assert _recipients_on_spool(d, msgid) == ["good@remote.example"]
    d.wait_for_log(rf"{msgid} <= a@outside\.example .* P=esmtp PRDR S=", 5)
    d.wait_for_log(rf"{msgid} PRDR bad@remote\.example no thanks for bad", 5)


def test_server_without_prdr_enable_refuses_the_parameter(pymta_daemon):
    d = pymta_daemon(config=_receiver_config(prdr=False))
    with d.client() as c:
        c.ehlo()
        assert "PRDR" not in c.extensions()
        code, text = c.cmd("MAIL FROM:<a@outside.example> PRDR")
        assert code == 501 and "PRDR may not follow" in text


def test_client_uses_prdr_and_handles_each_recipient(pymta_daemon, tmp_path):
    receiver = PymtaDaemon(_receiver_config(), tmp_path / "next",
                           macros={"SINK_PORT": "1"})
    with receiver:
        config = BASE_CONFIG.replace(
            "  accept  domains = remote.example\n",
            "  accept  domains = remote.example : next.example\n").replace(
            "begin routers\n\n", "begin routers\n\nnext:\n  driver = manualroute\n"
            "  domains = next.example\n  route_list = * 127.0.0.1::NEXT_PORT\n"
            "  self = send\n  transport = remote_smtp\n\n")
        d = pymta_daemon(config=config, macros={"NEXT_PORT": str(receiver.port)})
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<a@outside.example>")[0] == 250
            for r in ("good@next.example", "bad@next.example", "later@next.example"):
                assert c.cmd(f"RCPT TO:<{r}>")[0] == 250
            assert c.data(MESSAGE)[0] == 250
        d.wait_for_log(r"=> good@next\.example R=next T=remote_smtp .*"
                       r'C="250 PRDR R=<good@next\.example> acceptance"', 15)
        d.wait_for_log(r"\*\* bad@next\.example R=next T=remote_smtp .*SMTP error from "
                       r"remote mail server after end of data: 550 no thanks for bad", 15)
        d.wait_for_log(r"== later@next\.example R=next T=remote_smtp .*SMTP error from "
                       r"remote mail server after end of data: 450 try later", 15)
        line = receiver.wait_for_log(r"<= a@outside\.example .*PRDR", 10)[0]
        msgid = line.split()[2]
        assert _recipients_on_spool(receiver, msgid) == ["good@next.example"]
        # "later" waits for a retry (the bounce for "bad" is another message)
        original = d.wait_for_log(r"<= a@outside\.example ", 5)[0].split()[2]
        assert original in d.queue()


def test_mime_acl_runs_before_the_prdr_acl(pymta_daemon):
    """Exim's order after the data: DKIM, MIME, the per-recipient PRDR ACL, DATA; a
    MIME ACL refusal ends the message before any per-recipient reply."""
    config = _receiver_config().replace(
        "acl_smtp_data_prdr = acl_prdr\n",
        "acl_smtp_data_prdr = acl_prdr\nacl_smtp_mime = acl_mime\n").replace(
        "acl_prdr:\n", "acl_mime:\n  deny  condition = ${if eq{$h_subject:}{refuse}}\n"
        "        message = mime says no\n  accept logwrite = MIME part $mime_part_count\n\n"
        "acl_prdr:\n  warn  logwrite = PRDR ACL for $local_part\n")
    d = pymta_daemon(config=config)
    for subject, code in (("fine", 250), ("refuse", 550)):
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<a@outside.example> PRDR")[0] == 250
            for r in ("good@remote.example", "other@remote.example"):
                assert c.cmd(f"RCPT TO:<{r}>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            c.send_raw(b"Subject: " + subject.encode() + b"\r\nMIME-Version: 1.0\r\n"
                       b"Content-Type: text/plain\r\n\r\nhi\r\n.\r\n")
            assert c.read_reply()[0] == (353 if code == 250 else 550)
    log = d.log()
    assert log.index("MIME part") < log.index("PRDR ACL for good")
    assert log.count("PRDR ACL for good") == 1      # not run for the refused message
