"""Exim 4.96 main options implemented late, each against a recording of real Exim
(tests/data/misc_opts/, see its README):

- acl_smtp_mailauth: the ACL run for AUTH= on MAIL, with $authenticated_sender set and
  $sender_address not yet; its deny ignores the value, its defer answers 451, drop and
  discard are errors; then server_mail_auth_condition.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.wait import wait_until

DATA = Path(__file__).resolve().parents[1] / "data" / "misc_opts"
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:\[\d+\] )?")


def _transcript(name: str) -> list[tuple[str, str]]:
    return [(line[:1], line[3:]) for line in (DATA / f"{name}.txt").read_text().splitlines()]


def _log_lines(d: PymtaDaemon, name: str = "main") -> list[str]:
    return [_STAMP.sub("", line) for line in d.log(name).splitlines()]


def _replay(d: PymtaDaemon, name: str) -> list[str]:
    """Send the client lines of a recording; check every reply except EHLO's (whose
    extension list is pymta's own); return the log lines Exim wrote, in order."""
    steps = _transcript(name)
    expected_logs = [text for kind, text in steps if kind == "L"]
    with d.client() as c:
        c.banner()
        i = 0
        while i < len(steps):
            kind, text = steps[i]
            i += 1
            if kind != "C":
                continue
            code, reply = c.cmd(text)
            want = []
            while i < len(steps) and steps[i][0] != "C":
                if steps[i][0] == "S":
                    want.append(steps[i][1])
                i += 1
            if text.startswith("EHLO"):
                assert code == 250
                continue
            assert f"{code} {reply}" == want[0], (text, want)
        c.quit()
    return expected_logs


def _in_order(expected: list[str], got: list[str]) -> None:
    pos = 0
    for line in expected:
        assert line in got[pos:], (line, got)
        pos = got.index(line, pos) + 1


@pytest.mark.parametrize("name", ["mailauth_unauthenticated", "mailauth_authenticated"])
def test_acl_smtp_mailauth_as_exim(pymta_daemon, name):
    d = pymta_daemon(config=(DATA / "mailauth.conf").read_text())
    expected = _replay(d, name)
    wait_until(lambda: expected[-1] in d.log(), timeout=10)
    _in_order(expected, _log_lines(d))
    if name == "mailauth_unauthenticated":
        panic = _log_lines(d, "panic")
        assert panic == ['"discard" verb not allowed in MAILAUTH ACL',
                         '"drop" verb not allowed in MAILAUTH ACL']
        # the 451s are rejections: the reject log has them too
        assert any("temporarily rejected MAILAUTH <a@b.example> SIZE=10 "
                   "AUTH=later@b.example: try later please" in line
                   for line in _log_lines(d, "reject"))


def test_acl_smtp_mailauth_sender_reaches_the_spool(pymta_daemon):
    """An AUTH= value the ACL accepted from an unauthenticated client is the message's
    authenticated sender (the -auth_sender line of -H, as Exim writes it)."""
    d = pymta_daemon(config="queue_only\n" + (DATA / "mailauth.conf").read_text())
    with d.client() as c:
        c.banner()
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<a@b.example> AUTH=good+40b.example") == (250, "OK")
        assert c.cmd("RCPT TO:<r@mx.example.test>")[0] == 250
        assert c.data(b"Subject: x\r\n\r\nbody\r\n")[0] == 250
        c.quit()
    [msgid] = d.queue()
    header = (d.spool / "input" / f"{msgid}-H").read_text()
    assert "-auth_sender good@b.example\n" in header
