"""udpsend argument parsing (Exim 4.96's results for the same values), added-header
syntax and placement, and log target lists."""
from __future__ import annotations

import pytest

from pymta.acl.headers import checked_added_header, insert_position
from pymta.acl.logtargets import parse_targets
from pymta.acl.udpsend import UdpsendDefer, UdpsendError, parse_udpsend, udpsend
from pymta.config.model import ConfigError


@pytest.mark.parametrize("value,expected", [
    # what Exim 4.96 sent for these values (captured with a UDP listener)
    ("127.0.0.1 : 9 : hello world : two", ("127.0.0.1", 9, b" hello world : two")),
    ("<; 127.0.0.1 ; 9 ;  a:b ; c", ("127.0.0.1", 9, b"  a:b ; c")),
    ("127.0.0.1 : 9", ("127.0.0.1", 9, b"")),
    ("127.0.0.1 : 9 :", ("127.0.0.1", 9, b"")),
    ("<; ::1 ; 9 ; x", ("::1", 9, b" x")),
])
def test_parse_udpsend(value, expected):
    assert parse_udpsend(value) == expected


@pytest.mark.parametrize("value,message", [
    ("127.0.0.1", 'missing destination port in "udpsend" modifier'),
    ("127.0.0.1 : abc : x", 'bad destination port in "udpsend" modifier'),
    ("", 'missing destination host in "udpsend" modifier'),
])
def test_udpsend_errors(value, message):
    with pytest.raises(UdpsendError) as exc:
        parse_udpsend(value)
    assert str(exc.value) == message


def test_an_empty_host_name_fails_in_the_dns():
    assert parse_udpsend(" : 9 : x") == ("", 9, b" x")
    with pytest.raises(UdpsendDefer, match='DNS lookup failed in "udpsend" modifier'):
        udpsend(" : 9 : x")


def test_added_header_lines():
    assert checked_added_header("X-A: 1") == "X-A: 1"
    assert checked_added_header("not a header") == "X-ACL-Warn: not a header"
    assert checked_added_header(":at_start:X-A: 1") == ":at_start:X-A: 1"
    assert checked_added_header(":after_received:junk") == ":after_received:X-ACL-Warn: junk"
    names = ["Received", "Received", "Resent-From", "Subject"]
    assert [insert_position(names, p, str) for p in
            ("at_start", "after_received", "at_start_rfc", "at_end")] == [0, 2, 3, 4]
    assert insert_position(["Subject"], "after_received", str) == 0


def test_log_target_lists():
    assert parse_targets("reject : main", "x") == ("main", "reject")
    assert parse_targets("", "x") == ()
    assert parse_targets("main,panic", "x") == ("main", "panic")
    with pytest.raises(ConfigError, match='unknown log name "syslog"'):
        parse_targets("syslog", "log_reject_target")
