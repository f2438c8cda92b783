"""Log lines to syslog: datagrams a real Unix-socket receiver gets from the Logger, with
Exim's priorities, facility, tag, pid and time stamp options, and the [n/m] splitting."""
from __future__ import annotations

import os
import re
import socket
import types

import pytest

from pymta.config import ConfigError, load_config
from pymta.log import Logger, log_files, split_log_file_path
from pymta.syslogger import MAX_SYSLOG_LEN, SOCKET_ENV, split_entry

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
HEADER = r"<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+)\[(\d+)\]: "


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    """A Unix datagram socket standing in for /dev/log; the Logger finds it through the
    test-only environment variable."""
    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    monkeypatch.setenv(SOCKET_ENV, path)
    yield sock
    sock.close()


def received(sock) -> list[tuple[int, str, int, str]]:
    """(priority number, tag, pid, text) of each datagram waiting on ``sock``."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(4096).decode()
            m = re.match(HEADER, data)
            assert m, data
            out.append((int(m.group(1)), m.group(2), int(m.group(3)), data[m.end():]))
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    return out


def make_logger(tmp_path, **opts) -> Logger:
    main = types.SimpleNamespace(spool_directory=str(tmp_path / "spool"), **opts)
    return Logger(types.SimpleNamespace(main=main))


def test_log_file_path_items():
    assert split_log_file_path("") == ("", False)
    assert split_log_file_path("syslog") == (None, True)
    assert split_log_file_path(":syslog") == ("", True)
    assert split_log_file_path("syslog : /var/log/pymta/%slog") == (
        "/var/log/pymta/%slog", True)
    assert split_log_file_path("/var/log/pymta/%slog") == ("/var/log/pymta/%slog", False)


def test_syslog_only_writes_no_files_and_uses_exim_priorities(tmp_path, receiver):
    lg = make_logger(tmp_path, log_file_path="syslog")
    assert log_files(lg.config) == []
    lg.main("<= a@b.example H=[127.0.0.1] P=esmtp S=300", "1xUsgF-0001Z2-1I")
    lg.reject("H=[127.0.0.1] F=<a@b.example> rejected RCPT <x@y>: relay not permitted")
    lg.panic("something broke")
    got = received(receiver)
    # facility mail (2): main LOG_INFO, reject LOG_NOTICE, panic LOG_ALERT; every line
    # that goes to two logs goes twice (syslog_duplication's default)
    assert [pri for pri, *_ in got] == [2 * 8 + 6, 2 * 8 + 6, 2 * 8 + 5, 2 * 8 + 1, 2 * 8 + 6]
    assert {(tag, pid) for _, tag, pid, _ in got} == {("exim", os.getpid())}
    assert re.fullmatch(STAMP + " 1xUsgF-0001Z2-1I <= a@b.example H=.127.0.0.1. P=esmtp "
                        "S=300", got[0][3])
    assert got[1][3] == got[2][3] and got[1][3].endswith(": relay not permitted")
    assert got[3][3].endswith(" something broke")
    assert not (tmp_path / "spool" / "log").exists()


def test_syslog_and_files_get_the_same_lines(tmp_path, receiver):
    lg = make_logger(tmp_path, log_file_path="syslog : " + str(tmp_path / "log" / "%slog"))
    lg.main("Start queue run: pid=1")
    text = (tmp_path / "log" / "mainlog").read_text()
    assert [t + "\n" for *_, t in received(receiver)] == [text]


def test_facility_name_timestamp_and_pid_options(tmp_path, receiver):
    lg = make_logger(tmp_path, log_file_path="syslog", syslog_facility="local3",
                     syslog_processname="pymta", syslog_timestamp=False,
                     log_selector="+pid", syslog_pid=False)
    lg.main("Completed", "1xUsgF-0001Z2-1I")
    [(pri, tag, pid, text)] = received(receiver)
    assert (pri, tag, pid, text) == (19 * 8 + 6, "pymta", os.getpid(), "1xUsgF-0001Z2-1I Completed")
    # with the defaults the +pid field and the time stamp stay in the text
    lg = make_logger(tmp_path, log_file_path="syslog", log_selector="+pid")
    lg.main("Completed", "1xUsgF-0001Z2-1I")
    [(_, _, _, text)] = received(receiver)
    assert re.fullmatch(STAMP + rf" \[{os.getpid()}\] 1xUsgF-0001Z2-1I Completed", text)


def test_no_duplication_sends_the_reject_and_panic_copies_only(tmp_path, receiver):
    lg = make_logger(tmp_path, log_file_path="syslog", syslog_duplication=False)
    lg.reject("rejected after DATA", headers=["Subject: hi"])
    lg.panic("broken")
    lg.to_logs(["main", "reject"], "logwrite line")
    lg.main("only main")
    got = [(pri & 7, re.sub(STAMP + " ", "", text)) for pri, _, _, text in received(receiver)]
    # the marker comes first, before the time stamp (as in the manual's example)
    assert got == [(5, "[1\\2] rejected after DATA"), (5, "[2/2]   Subject: hi"),
                   (1, "broken"), (5, "logwrite line"), (6, "only main")]


def test_split_long_and_multi_line_entries():
    assert split_entry("short") == ["short"]
    long_line = "x" * (MAX_SYSLOG_LEN + 10)
    assert split_entry(long_line) == ["[1/2] " + "x" * MAX_SYSLOG_LEN, "[2/2] " + "x" * 10]
    # the manual's example with a limit of 50: cut for length "/", at a line break "\"
    pieces = split_entry("a" * 60 + "\nRecipients: r@x\nP Received: y", limit=50)
    assert pieces == ["[1/4] " + "a" * 50, "[2\\4] " + "a" * 10,
                      "[3\\4] Recipients: r@x", "[4/4] P Received: y"]


def test_no_receiver_loses_the_syslog_copy_only(tmp_path, monkeypatch):
    monkeypatch.setenv(SOCKET_ENV, str(tmp_path / "nobody-listens"))
    lg = make_logger(tmp_path, log_file_path=":syslog")
    lg.main("still logged")
    assert "still logged" in (tmp_path / "spool" / "log" / "mainlog").read_text()


@pytest.mark.parametrize("line,message", [
    ("syslog_facility = kern", 'failed to interpret syslog_facility "kern"'),
    ("syslog_processname = " + "p" * 33, "is longer than 32 characters"),
    ("log_file_path = syslog : /a/%slog : /b/%slog", "has more than two items"),
])
def test_bad_syslog_settings_are_errors(tmp_path, line, message):
    path = tmp_path / "configure"
    path.write_text(f"primary_hostname = test.example\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))


def test_good_syslog_settings_load(tmp_path):
    path = tmp_path / "configure"
    path.write_text("primary_hostname = test.example\n"
                    "log_file_path = syslog : /var/log/pymta/%slog\n"
                    "syslog_facility = local7\nsyslog_processname = pymta\n"
                    "syslog_duplication = false\nsyslog_timestamp = false\n"
                    "syslog_pid = false\n")
    config = load_config(str(path))
    assert config.main.syslog_facility == "local7"
