"""ACL modifiers over SMTP: udpsend (a real UDP socket), log_reject_target, logwrite to
:main:, :reject: and :panic:, add_header placement (:at_start:, :after_received:,
:at_start_rfc:, :at_end:) with Exim's X-ACL-Warn, continuation and duplicate rules, and
remove_header."""
from __future__ import annotations

import socket

import pytest

from tests.integration.conftest import BASE_CONFIG

ACLS = r"""
acl_mail:
  warn    udpsend = 127.0.0.1 : UDP_PORT : from $sender_address : to all
  deny    senders = badport@remote.example
          udpsend = 127.0.0.1 : notaport : x
  warn    add_header = :at_start:X-Start-1: a\n:at_start:X-Start-2: b
  accept

acl_rcpt:
  deny    local_parts = quiet
          log_reject_target =
          message = refused quietly
  deny    local_parts = rejectonly
          log_reject_target = reject
          message = refused in the reject log only
  warn    add_header = :after_received:X-AR-1: c\n:after_received:X-AR-2: d
  warn    add_header = X-End: e
  warn    add_header = X-End: e
  warn    remove_header = x-remove-me : X-Remove-Too
  accept  domains = +local_domains

acl_data:
  warn    add_header = not a header line\nX-Multi: one\n\ttwo
  warn    add_header = :at_start_rfc:X-Rfc: f
  warn    logwrite = :main,reject: LW both
  warn    logwrite = :reject: LW reject only
  warn    logwrite = :panic: LW panic only
  warn    logwrite = LW main only
  accept
"""


def _config(udp_port: int) -> str:
    return (BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt\n",
                                "acl_smtp_rcpt = acl_rcpt\nacl_smtp_mail = acl_mail\n"
                                "acl_smtp_data = acl_data\n")
            .replace("begin acl\n", "begin acl\n" + ACLS.replace("UDP_PORT", str(udp_port))))


@pytest.fixture
def udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def test_udpsend(pymta_daemon, udp):
    d = pymta_daemon(config=_config(udp.getsockname()[1]))
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
        assert c.cmd("RSET")[0] == 250
        assert c.cmd("MAIL FROM:<badport@remote.example>") == \
            (451, "Temporary local problem - please try later")
        c.quit()
    # the rest of the list after the port, exactly as it stands
    assert udp.recvfrom(1000)[0] == b" from a@remote.example : to all"
    assert udp.recvfrom(1000)[0] == b" from badport@remote.example : to all"
    d.wait_for_log(r'temporarily rejected MAIL <badport@remote\.example>: '
                   r'bad destination port in "udpsend" modifier')


def test_log_targets(pymta_daemon, udp):
    d = pymta_daemon(config=_config(udp.getsockname()[1]))
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<quiet@test.example>") == (550, "refused quietly")
        assert c.cmd("RCPT TO:<rejectonly@test.example>") == \
            (550, "refused in the reject log only")
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        assert c.data(b"Subject: x\r\n\r\nbody\r\n")[0] == 250
        c.quit()
    d.wait_for_log(r"LW main only")
    main, reject, panic = d.log("main"), d.log("reject"), d.log("panic")
    assert "quiet@" not in main + reject
    assert "refused in the reject log only" in reject
    assert "rejectonly@" not in main
    assert "LW both" in main and "LW both" in reject
    assert "LW reject only" in reject and "LW reject only" not in main
    assert "LW panic only" in panic and "LW panic only" not in main + reject
    assert "LW main only" in main and "LW main only" not in reject
    # a logwrite to the reject log during DATA lists the message's headers, as Exim's
    entry = reject.split("LW reject only", 1)[1]
    assert "Subject: x" in entry.split("LW panic", 1)[0]


def test_add_header_placement_and_remove_header(pymta_daemon, udp):
    d = pymta_daemon(config="queue_only\n" + _config(udp.getsockname()[1]))
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        assert c.data(b"Resent-From: r@remote.example\r\nReceived: from a by b\r\n"
                      b"X-Remove-Me: 1\r\nx-remove-too: 2\r\nSubject: s\r\n\r\nbody\r\n")[0] \
            == 250
        c.quit()
    d.stop()
    [header_file] = list((d.spool / "input").rglob("*-H"))
    text = header_file.read_text()
    # -H header lines: 3 digits (length), a flag ("*": deleted) and a space
    lines = [(ln[3], ln[5:].split(":")[0]) for ln in text.split("\n")
             if len(ln) > 5 and ln[:3].isdigit() and ln[4] == " "]
    live = [name for flag, name in lines if flag != "*"]
    # at_start lines in reverse order; after_received ones after pymta's own Received:
    # (the first block), also reversed; at_start_rfc before the first header that is
    # neither Received: nor Resent-*; X-End added twice but identical: once
    assert live == ["X-Rfc", "X-Start-2", "X-Start-1", "Received", "X-AR-2", "X-AR-1",
                    "Resent-From", "Received", "Subject", "X-End", "X-ACL-Warn", "X-Multi"]
    assert "X-Remove-Me" not in live and "x-remove-too" not in live
    assert ("*", "X-Remove-Me") in lines and ("*", "x-remove-too") in lines
    assert "X-ACL-Warn: not a header line\n" in text
    assert "X-Multi: one\n\ttwo\n" in text
