"""8-bit bytes that are not UTF-8 in SMTP commands (a Latin-1 local part from an old
client, without SMTPUTF8): Exim 4.96 takes them as they come, so pymta does too. The
bytes must reach the spool, the log, the next server and a bounce unchanged, never as
Python escapes or U+FFFD, and never make the session fail."""
from __future__ import annotations

from tests.support.daemon import PymtaDaemon
from tests.support.relayconf import relay_config
from tests.support.sink import SmtpSink
from tests.support.smtp import SmtpTestClient

SENDER = b"j\xe9r\xf4me@x.example"          # Latin-1, not UTF-8
RCPT = b"b\xfcro@relay.example"
REFUSED = b"m\xfcller@relay.example"


def _text(raw: bytes) -> str:
    """How the sink (and pymta) hold such bytes: surrogate escapes."""
    return raw.decode("utf-8", "surrogateescape")


def test_latin1_addresses_are_relayed_logged_and_bounced_byte_for_byte(tmp_path):
    refused = {_text(REFUSED): (550, "no such user")}
    with SmtpSink(rcpt_replies=refused) as sink:
        with PymtaDaemon(relay_config("", main="acl_smtp_rcpt = accept"), tmp_path,
                         macros={"SINK_PORT": str(sink.port)}) as d:
            c = SmtpTestClient(d.ports[0])
            c.banner()
            c.ehlo()
            c.send_raw(b"MAIL FROM:<" + SENDER + b">\r\n")
            assert c.read_reply()[0] == 250
            for rcpt in (RCPT, REFUSED):
                c.send_raw(b"RCPT TO:<" + rcpt + b">\r\n")
                assert c.read_reply()[0] == 250
            code, text = c.data(b"Subject: caf\xe9\r\n\r\nbody\r\n")
            assert code == 250, text
            c.quit()
            # the message, then the bounce for the refused recipient
            assert sink.wait_for(2, timeout=30), d.diagnostics()
            d.wait_for_log(r"Completed", count=2)
            log = (d.spool / "log" / "mainlog").read_bytes()
    first, bounce = sink.received()
    assert first.sender == _text(SENDER)
    assert first.recipients == [_text(RCPT)]
    assert b"Subject: caf\xe9\r\n" in first.data
    assert bounce.sender == ""
    assert bounce.recipients == [_text(SENDER)]
    assert b"\n  " + REFUSED + b"\r\n" in bounce.data
    assert b" <= " + SENDER + b" " in log
    assert b" => " + RCPT + b" " in log
    assert b" ** " + REFUSED + b" " in log
    assert b"\\udc" not in log and "\ufffd".encode() not in log
