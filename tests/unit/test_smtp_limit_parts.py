"""The pieces of the SMTP limits: the smtp_ratelimit_* values, the header limits and
the daemon's shared connection table (across a real fork)."""
from __future__ import annotations

import os

import pytest

from pymta.config.model import ConfigError
from pymta.config.ratelimit import RateLimit
from pymta.daemon.conntable import TELL_ALWAYS, TELL_IDLE, ConnectionTable
from pymta.smtp.limits import header_refusal, header_section


def test_ratelimit_value():
    r = RateLimit.parse("2,0.5s,1.05,4m", "smtp_ratelimit_mail")
    assert r == RateLimit(2, 0.5, 1.05, 240.0)
    assert [r.pause(n) for n in (1, 2)] == [0.0, 0.0]
    assert r.pause(3) == 0.5 and r.pause(4) == pytest.approx(0.525)
    assert r.pause(1000) == 240.0
    for bad in ("2,0.5s,1.05", "x,1s,1,1s", "2,soon,1,1s", "2,1s,1,1s,9"):
        with pytest.raises(ConfigError):
            RateLimit.parse(bad, "smtp_ratelimit_rcpt")


class _Config:
    def __init__(self, **main):
        self.main = type("Main", (), main)()


def test_header_limits_count_joined_continuations():
    """Exim 4.96 counts the newlines too: with header_line_maxsize = 20 it takes
    "Subject: 1234567890\\n" and refuses "Subject: 1234\\n 56789\\n" (exim4 -bh)."""
    limit = _Config(header_maxsize=0, header_line_maxsize=20)
    assert header_refusal(limit, b"Subject: 1234567890\n\nb\n") is None
    assert header_refusal(limit, b"Subject: 1234\n 56789\n\nb\n") == ("line", 20)
    data = b"Subject: abc\n def\nX: y\n\nbody line that is very long indeed\n"
    assert header_refusal(_Config(header_maxsize=0, header_line_maxsize=0), data) is None
    assert header_refusal(_Config(header_maxsize=0, header_line_maxsize=18), data) is None
    assert header_refusal(_Config(header_maxsize=0, header_line_maxsize=17), data) == \
        ("line", 17)
    assert header_refusal(_Config(header_maxsize=23, header_line_maxsize=0), data) is None
    assert header_refusal(_Config(header_maxsize=22, header_line_maxsize=0), data) == \
        ("long", 22)


def test_connection_table_is_shared_with_children():
    table = ConnectionTable(4)
    table.claim(0, os.getpid(), "192.0.2.1")
    pid = os.fork()
    if pid == 0:
        table.claim(1, os.getpid(), "::ffff:192.0.2.1")     # the same host
        table.claim(2, os.getpid(), "2001:db8::1")
        os._exit(0)
    os.waitpid(pid, 0)
    assert table.counts("192.0.2.1") == (3, 2)
    assert table.counts("2001:db8::1") == (3, 1)
    table.release(1)
    assert table.counts("192.0.2.1") == (2, 1)
    assert table.free_slot({0, 2}) == 1 and table.free_slot({0, 1, 2, 3}) is None


def test_receivers_tell_the_master_only_what_it_asked_for():
    """The table replaces a notice to the master per session start and end: a receiver
    speaks up only when its claim leaves fewer idle receivers than the spare count,
    and at the end only while the master asks (saturation, -bw)."""
    table = ConnectionTable(8)
    assert table.tell_busy() and table.tell_idle()      # before the master publishes
    table.publish(4, 2, 0)                              # 4 receivers, keep 2 idle
    table.claim(0, 101, "192.0.2.1")
    assert not table.tell_busy()                        # 3 idle
    table.claim(1, 102, "192.0.2.2")
    assert not table.tell_busy()                        # 2 idle: still enough
    table.claim(2, 103, "192.0.2.3")
    assert table.tell_busy()                            # 1 idle: fork more
    assert set(table.busy_counts()) == {101, 102, 103}
    assert not table.tell_idle()
    table.publish(4, 2, TELL_IDLE)                      # saturated: wants the ends
    table.release(2)
    assert table.tell_idle() and table.busy_counts() == {101: 1, 102: 1}
    table.publish(4, 2, TELL_ALWAYS)                    # -bw: every start and end
    assert table.tell_busy() and table.tell_idle()


def test_header_section_ends_where_the_body_begins():
    assert header_section(b"A: 1\n b\nB: 2\n\nbody\n") == b"A: 1\n b\nB: 2\n"
    assert header_section(b"A: 1\nnot a header line\nB: 2\n") == b"A: 1\n"
    assert header_section(b"just a body, no header\n" * 10) == b""
    assert header_section(b"\nbody\n") == b""
