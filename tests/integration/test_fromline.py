"""ignore_fromline_hosts in the daemon: a UUCP "From " line that a broken client sends
before the headers is taken off, and the sender it names becomes the envelope sender
(the daemon is a trusted caller, as Exim's is), whether the message came by DATA (held
in memory) or by BDAT (streamed to a file in the spool)."""
from __future__ import annotations

from tests.integration.conftest import maildir_messages, wait_for

FROM_LINE = b"From someone@x.example Sat Dec  5 10:00:00 2026\r\n"
MESSAGE = b"Subject: with a From line\r\n\r\nbody\r\n"
TX = b"MAIL FROM:<bob@test.example>\r\nRCPT TO:<alice@test.example>\r\n"


def _delivered(tmp_path, count):
    return wait_for(lambda: (m if len(m := maildir_messages(tmp_path, "alice")) >= count
                             else None))


def _send_by_data(c) -> None:
    """EHLO, then a message that starts with the From line, by DATA."""
    c.banner()
    assert c.ehlo()[0] == 250
    c.send_raw(TX + b"DATA\r\n")
    assert [c.read_reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send_raw(FROM_LINE + MESSAGE + b".\r\n")
    assert c.read_reply()[0] == 250


def test_from_line_sets_the_sender_for_listed_hosts_only(pymta_daemon, tmp_path):
    d = pymta_daemon(macros={"EXTRA_MAIN": "ignore_fromline_hosts = 127.0.0.1"})
    with d.client() as c:
        _send_by_data(c)
        whole = FROM_LINE + MESSAGE
        c.send_raw(TX + b"BDAT %d LAST\r\n" % len(whole) + whole)
        assert [c.read_reply()[0] for _ in range(3)] == [250, 250, 250]
        c.quit()
    lines = d.wait_for_log(r"<= someone@x\.example H=", count=2)
    assert len(lines) == 2 and " K " in lines[1]
    for msg in _delivered(tmp_path, 2):
        assert b"\nSubject: with a From line\n\nbody\n" in msg
        assert b"From someone" not in msg


def test_from_line_of_other_hosts_starts_the_body(pymta_daemon, tmp_path):
    d = pymta_daemon(macros={"EXTRA_MAIN": "ignore_fromline_hosts = 192.0.2.1"})
    with d.client() as c:
        _send_by_data(c)
        c.quit()
    d.wait_for_log(r"<= bob@test\.example H=")
    [msg] = _delivered(tmp_path, 1)
    # no headers of the client's: the From line began the body
    assert msg.endswith(b"\n\nFrom someone@x.example Sat Dec  5 10:00:00 2026\n"
                        b"Subject: with a From line\n\nbody\n")
