"""The SMTP server's limits over real sockets against the daemon, with Exim 4.96's
replies and log lines (recorded with exim4 -bh in tests/data/smtp_limits/).

Connection counting (smtp_accept_max_per_host, smtp_accept_reserve, smtp_accept_queue)
is done by the daemon across its receivers; the load average is pinned with the
test-only PYMTA_TEST_LOAD_AVERAGE, since a test cannot make a shared machine busy."""
from __future__ import annotations

import os
import pwd
import re
import time

import pytest

from tests.support.smtp_replay import (
    CONFIG,
    DATA_DIR,
    RawClient,
    connect_when_free,
    exim_daemon,
    exim_log,
    exim_replies,
    limits_daemon,
    replay,
    same_dialogue,
    wait_for_log,
)


@pytest.mark.parametrize("name,options", [
    ("max_per_connection", "smtp_accept_max_per_connection = 2"),
    ("max_per_connection_counts", "smtp_accept_max_per_connection = 2"),
    ("header_maxsize", "header_maxsize = 100"),
    ("header_line_maxsize", "header_line_maxsize = 50"),
    ("max_synprot_errors", "smtp_max_synprot_errors = 2"),
    ("max_unknown_commands", "smtp_max_unknown_commands = 2"),
    ("max_nonmail", "smtp_accept_max_nonmail = 2"),
    ("recipients_max_reject", "recipients_max = 2\nrecipients_max_reject = true"),
    ("helo_allow_chars", "helo_allow_chars = _"),
    ("host_reject_connection", "host_reject_connection = 127.0.0.1"),
])
def test_replies_and_log_lines_are_exims(tmp_path, name, options):
    d = limits_daemon(tmp_path, options)
    ours = replay(d.port, name)
    same_dialogue(ours, exim_replies(name))
    for line in exim_log(name):
        assert line in wait_for_log(d, line), (line, d.log())
    assert d.queue() == []


def test_host_reject_connection_goes_to_the_rejectlog_too(tmp_path):
    d = limits_daemon(tmp_path, "host_reject_connection = 127.0.0.2")
    with RawClient(d.port, "127.0.0.2") as c:
        assert c.reply() == "554 SMTP service not available"
        assert c.closed()
    with RawClient(d.port) as c:
        assert c.reply().startswith("220 ")
    line = "refused connection from [127.0.0.2] (host_reject_connection)"
    assert line in wait_for_log(d, line, log="reject")


def test_max_per_connection_is_expanded(tmp_path):
    d = limits_daemon(tmp_path, "smtp_accept_max_per_connection = "
                                "${if eq{$sender_helo_name}{few.test}{1}{0}}")
    with RawClient(d.port) as c:
        c.reply()
        c.cmd("EHLO few.test")
        assert c.cmd("MAIL FROM:<a@b.c>") == "250 OK"
        assert c.cmd("RSET") == "250 Reset OK"
        assert c.cmd("MAIL FROM:<a@b.c>") == "421 too many messages in this connection"
    with RawClient(d.port) as c:
        c.reply()
        c.cmd("EHLO many.test")
        for _ in range(3):
            assert c.cmd("MAIL FROM:<a@b.c>") == "250 OK"
            assert c.cmd("RSET") == "250 Reset OK"


def test_accept_max_per_host(tmp_path):
    d = limits_daemon(tmp_path, "smtp_accept_max = 10\nsmtp_accept_max_per_host = "
                                "${if eq{$sender_host_address}{127.0.0.1}{1}{2}}")
    exims, [line] = exim_daemon("max_per_host")
    first = connect_when_free(d.port)
    with RawClient(d.port) as second:
        assert second.reply() == exims["127.0.0.1"][1]
        assert second.closed()
    assert line in wait_for_log(d, line)
    # another host has its own count (and a limit of 2)
    others = [RawClient(d.port, "127.0.0.2") for _ in range(2)]
    assert [o.reply()[:4] for o in others] == ["220 ", "220 "]
    with RawClient(d.port, "127.0.0.2") as third:
        assert third.reply().startswith("421 Too many concurrent SMTP connections from this")
    for o in others:
        o.close()
    first.cmd("QUIT")
    first.close()
    # the slot is free again once the session is over
    connect_when_free(d.port).close()


def test_accept_reserve_keeps_slots_for_reserve_hosts(tmp_path):
    d = limits_daemon(tmp_path, "smtp_accept_max = 3\nsmtp_accept_reserve = 2\n"
                                "smtp_reserve_hosts = 127.0.0.3")
    exims, [line] = exim_daemon("reserve")
    first = connect_when_free(d.port, "127.0.0.2")
    with RawClient(d.port) as c:
        assert c.reply() == exims["127.0.0.1"][0]
        assert c.closed()
    assert line in wait_for_log(d, line)
    with RawClient(d.port, "127.0.0.3") as reserved:
        assert reserved.reply().startswith("220 ")
        assert reserved.cmd("EHLO x.test").startswith("250-")
    first.close()


def test_accept_max_saturation_ends_when_a_session_does(tmp_path):
    """With every receiver busy at smtp_accept_max the master answers new connections
    with 421 itself; when a session ends, the next connection gets a receiver again
    at once (the receiver tells the master through the connection table)."""
    d = limits_daemon(tmp_path, "smtp_accept_max = 2")
    first = connect_when_free(d.port)
    second = connect_when_free(d.port)
    deadline = time.monotonic() + 10
    while True:          # the master notices the saturation at its next look
        with RawClient(d.port) as third:
            reply = third.reply()
        if reply.startswith("421 ") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert reply.startswith("421 ") and "Too many concurrent SMTP connections" in reply
    assert first.cmd("QUIT").startswith("221 ")
    first.close()
    time.sleep(0.3)      # well under the master's 1 s look when nobody tells it
    with RawClient(d.port) as fourth:
        assert fourth.reply().startswith("220 ")
    second.close()


@pytest.mark.parametrize("load,accepted", [("3.5", False), ("1.5", True)])
def test_load_reserve_without_reserve_hosts(tmp_path, load, accepted):
    d = limits_daemon(tmp_path, "smtp_load_reserve = 2",
                      env={"PYMTA_TEST_LOAD_AVERAGE": load})
    with RawClient(d.port) as c:
        reply = c.reply()
    if accepted:
        assert reply.startswith("220 ")
    else:
        exims, [line] = exim_daemon("load")
        assert reply == exims["127.0.0.1"][0]
        assert line + "3.50" in wait_for_log(d, line + "3.50")


def test_load_reserve_lets_reserve_hosts_in(tmp_path):
    d = limits_daemon(tmp_path, "smtp_load_reserve = 2\nsmtp_reserve_hosts = 127.0.0.2",
                      env={"PYMTA_TEST_LOAD_AVERAGE": "2.25"})
    exims, [line] = exim_daemon("load_reserve_hosts")
    with RawClient(d.port) as c:
        assert c.reply() == exims["127.0.0.1"][0]
    assert line + "2.25" in wait_for_log(d, line + "2.25")
    with RawClient(d.port, "127.0.0.2") as c:
        assert c.reply().startswith("220 ")


DELIVERING = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = acl_rcpt
OPTIONS
begin acl
acl_rcpt:
  accept
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/mbox
  user = EXIMUSER
"""


def _delivering(tmp_path, options: str, env: dict[str, str] | None = None, start=True):
    text = DELIVERING.replace("EXIMUSER", "nobody" if os.geteuid() == 0 else str(os.getuid()))
    return limits_daemon(tmp_path, options, env=env, config=text, start=start)


def _send(c: RawClient, n: int) -> str:
    assert c.cmd("MAIL FROM:<a@b.c>") == "250 OK"
    assert c.cmd(f"RCPT TO:<r{n}@b.c>") == "250 Accepted"
    assert c.cmd("DATA").startswith("354")
    reply = c.cmd(b"Subject: t\r\n\r\nbody\r\n.")
    assert reply.startswith("250 OK id=")
    return reply.split("id=")[1]


def test_accept_queue_queues_when_many_are_connected(tmp_path):
    # 2, not 1: the daemon's start-up probe may still count for a moment
    d = _delivering(tmp_path, "smtp_accept_queue = 2")
    with RawClient(d.port) as alone:
        alone.reply()
        alone.cmd("EHLO x.test")
        delivered = _send(alone, 1)
    assert f"{delivered} Completed" in wait_for_log(d, f"{delivered} Completed")
    others = [RawClient(d.port, "127.0.0.2") for _ in range(2)]
    assert all(o.reply().startswith("220 ") for o in others)
    with RawClient(d.port) as busy:
        busy.reply()
        busy.cmd("EHLO x.test")
        queued = _send(busy, 2)
        busy.cmd("QUIT")
    for o in others:
        o.close()
    time.sleep(1.5)
    assert d.queue() == [queued]
    assert f"{queued} =>" not in d.log()


def test_deliver_queue_load_max_abandons_the_queue_run(tmp_path):
    d = _delivering(tmp_path, "deliver_queue_load_max = 2",
                    env={"PYMTA_TEST_LOAD_AVERAGE": "2.5"}, start=False)
    proc = d.run("-odq", "-f", "a@b.c", "r@b.c", input=b"Subject: t\n\nbody\n")
    assert proc.returncode == 0, proc.stderr
    [msgid] = d.queue()
    assert d.run("-q").returncode == 0
    log = d.log()
    assert "Start queue run: pid=" in log
    assert " (load 2.50, max 2.00)" in log and "Abandon queue run: pid=" in log
    assert d.queue() == [msgid]
    d.env["PYMTA_TEST_LOAD_AVERAGE"] = "1.75"
    assert d.run("-q").returncode == 0
    assert d.queue() == []
    assert f"{msgid} Completed" in d.log()


def test_ratelimit_delays_mail_and_rcpt(tmp_path):
    d = limits_daemon(tmp_path, "smtp_ratelimit_hosts = 127.0.0.1\n"
                                "smtp_ratelimit_mail = 1,2s,2,3s\n"
                                "smtp_ratelimit_rcpt = 2,1.5s,1,4m")

    def timed(c: RawClient, line: str) -> float:
        t = time.monotonic()
        reply = c.cmd(line)
        assert reply[0] == "2", reply
        return time.monotonic() - t

    with connect_when_free(d.port) as c:
        c.cmd("EHLO x.test")
        assert timed(c, "MAIL FROM:<a@b.c>") < 1.5                # within the threshold
        assert timed(c, "RCPT TO:<r1@b.c>") < 1.2
        assert timed(c, "RCPT TO:<r2@b.c>") < 1.2
        assert timed(c, "RCPT TO:<r3@b.c>") >= 1.5
        c.cmd("RSET")
        assert 2.0 <= timed(c, "MAIL FROM:<a@b.c>") < 2.9
        c.cmd("RSET")
        assert 3.0 <= timed(c, "MAIL FROM:<a@b.c>") < 3.9         # 4s, cut to the limit
    with connect_when_free(d.port, "127.0.0.2") as c:          # not a rate-limited host
        c.cmd("EHLO x.test")
        for _ in range(3):
            assert timed(c, "MAIL FROM:<a@b.c>") < 1.5
            c.cmd("RSET")


def test_ratelimit_delays_are_exims(tmp_path):
    """The same commands as tests/data/smtp_limits/record_ratelimit.py sent to Exim
    4.96: each reply comes after the delay Exim's did (at least that long)."""
    recorded = [re.match(r"(.*?) (\d+\.\d) (\d{3}) ", line).groups()  # type: ignore
                for line in (DATA_DIR / "ratelimit.exim.out").read_text().splitlines()]
    d = limits_daemon(tmp_path, "smtp_ratelimit_hosts = *\n"
                                "smtp_ratelimit_mail = 1,1s,2,10s\n"
                                "smtp_ratelimit_rcpt = 1,0.5s,3,10s")
    commands = ["EHLO client.test"]
    for i in range(3):
        commands.append("MAIL FROM:<a@b.c>")
        if i == 0:
            commands += [f"RCPT TO:<r{n}@b.c>" for n in range(3)]
        commands.append("RSET")
    with connect_when_free(d.port) as c:
        for command, (verb, took, code) in zip(commands, recorded):
            start = time.monotonic()
            reply = c.cmd(command)
            elapsed = time.monotonic() - start
            assert command.startswith(verb) and reply.split("\n")[-1][:3] == code
            # the upper bound allows for a loaded machine; the lower one is the delay
            assert float(took) - 0.1 <= elapsed <= float(took) + 1.0, (command, elapsed)


def test_a_malformed_ratelimit_is_a_configuration_error(tmp_path):
    d = limits_daemon(tmp_path, "smtp_ratelimit_mail = 2,0.5s,fast", start=False)
    proc = d.run("-bV")
    assert proc.returncode != 0
    assert "smtp_ratelimit_mail must be four comma-separated values" in proc.stderr


def test_receive_timeout_is_per_line_not_per_byte(tmp_path):
    """A client trickling a command one byte at a time is timed out like a silent one."""
    d = limits_daemon(tmp_path, "smtp_receive_timeout = 2s")
    with RawClient(d.port) as c:
        c.reply()
        start = time.monotonic()
        reply = ""
        for byte in b"NOOP NOOP NOOP NOOP NOOP":
            try:
                c.send(bytes([byte]))
            except OSError:
                break
            reply = c.reply(timeout=0.3)
            if reply:
                break
        reply = reply or c.reply()
        assert reply == "421 mx.test.example SMTP command timeout - closing connection"
        assert time.monotonic() - start < 4
    assert "SMTP command timeout on connection from [127.0.0.1]" in wait_for_log(
        d, "SMTP command timeout")


def test_data_deadline_ends_a_slow_data_phase(tmp_path):
    """smtp_data_deadline (pymta's own): one line every half second keeps
    smtp_receive_timeout happy, but not the deadline of the whole DATA."""
    d = limits_daemon(tmp_path, "smtp_receive_timeout = 2s\nsmtp_data_deadline = 3s")
    with RawClient(d.port) as c:
        c.reply()
        c.cmd("EHLO x.test")
        c.cmd("MAIL FROM:<a@b.c>")
        c.cmd("RCPT TO:<r@b.c>")
        assert c.cmd("DATA").startswith("354")
        start = time.monotonic()
        reply = ""
        while time.monotonic() - start < 8 and not reply:
            try:
                c.send(b"x-line: slow\r\n")
            except OSError:
                break
            reply = c.reply(timeout=0.5)
        reply = reply or c.reply()
        assert reply == "421 mx.test.example SMTP data deadline passed - closing connection"
        assert 2.8 < time.monotonic() - start < 5
    line = ("SMTP data deadline (smtp_data_deadline = 3s) passed (message abandoned) on "
            "connection from (x.test) [127.0.0.1] F=<a@b.c> D=")
    assert line in wait_for_log(d, line)
    assert d.queue() == []


def test_data_deadline_covers_all_the_bdat_chunks_of_a_message(tmp_path):
    """The deadline runs from a message's first BDAT chunk to its last, so a client
    cannot stretch one message over many small chunks."""
    d = limits_daemon(tmp_path, "smtp_receive_timeout = 2s\nsmtp_data_deadline = 3s")
    with RawClient(d.port) as c:
        c.reply()
        c.cmd("EHLO x.test")
        c.cmd("MAIL FROM:<a@b.c>")
        c.cmd("RCPT TO:<r@b.c>")
        start = time.monotonic()
        reply = ""
        while time.monotonic() - start < 8 and not reply.startswith("421"):
            try:
                c.send(b"BDAT 14\r\nx-line: slow\r\n")
            except OSError:
                break
            reply = c.reply(timeout=0.5) or ""
        assert reply == "421 mx.test.example SMTP data deadline passed - closing connection"
        assert 2.8 < time.monotonic() - start < 5
    assert d.queue() == []


@pytest.mark.parametrize("option,error,logged", [
    ("header_maxsize = 100",
     "message header longer than 100 characters received: message not accepted",
     "ridiculously long message header received from USER (more than 100 characters): "
     "message abandoned"),
    ("header_line_maxsize = 50",
     "message header line longer than 50 characters received: message not accepted",
     "overlong message header line received from USER (more than 50 characters): "
     "message abandoned"),
])
def test_header_limits_apply_to_command_line_messages(tmp_path, option, error, logged):
    """Exim 4.96's texts (exim4 -odq -oep with the same message)."""
    d = limits_daemon(tmp_path, option, start=False)
    message = b"Subject: " + b"a" * 60 + b"\nX-A: " + b"b" * 45 + b"\n\nbody\n"
    proc = d.run("-odq", "-f", "a@b.c", "r@b.c", input=message)
    assert proc.returncode == 1
    assert f"pymta: {error}" in proc.stderr
    user = pwd.getpwuid(os.getuid()).pw_name
    assert logged.replace("USER", user) in d.log()
    assert d.queue() == []
    fits = d.run("-odq", "-f", "a@b.c", "r@b.c", input=b"Subject: short\n\nbody\n")
    assert fits.returncode == 0 and len(d.queue()) == 1


def test_enforce_sync_over_a_socket(tmp_path):
    """smtp_enforce_sync (on by default): input before the banner, or pipelined where
    PIPELINING was not offered, ends the session with Exim's 554 and log line."""
    # The connect ACL's delay gives the early input time to arrive before the check,
    # as a site that looks for early talkers would set it.
    config = CONFIG.replace("begin acl\n", "acl_smtp_connect = acl_conn\nbegin acl\n"
                            "acl_conn:\n  accept delay = 1s\n")
    d = limits_daemon(tmp_path, "pipelining_advertise_hosts = 127.0.0.2", config=config)
    with RawClient(d.port) as c:
        c.send(b"EHLO early.test\r\n")
        assert c.reply() == "554 SMTP synchronization error"
    with connect_when_free(d.port) as c:
        assert c.cmd("EHLO x.test").startswith("250-")
        c.send(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<r@b.c>\r\n")
        assert c.reply() == "554 SMTP synchronization error"
        assert c.closed()
    log = wait_for_log(d, "SMTP protocol synchronization error")
    assert ("SMTP protocol synchronization error (input sent without waiting for "
            "greeting): rejected connection from H=[127.0.0.1] input=\"EHLO early.test\\r\\n\""
            ) in log
    assert ("SMTP protocol synchronization error (next input sent too soon: pipelining was "
            "not advertised): rejected \"MAIL FROM:<a@b.c>\" H=(x.test) [127.0.0.1] "
            "next input=\"RCPT TO:<r@b.c>\\r\\n\"") in log
    d2 = limits_daemon(tmp_path / "off", "smtp_enforce_sync = false\n"
                                         "pipelining_advertise_hosts =")
    with RawClient(d2.port) as c:
        c.send(b"EHLO early.test\r\nMAIL FROM:<a@b.c>\r\n")
        assert c.reply().startswith("220 ")
        assert c.reply().startswith("250-")
        assert c.reply() == "250 OK"


def test_max_nonmail_hosts(tmp_path):
    d = limits_daemon(tmp_path, "smtp_accept_max_nonmail = 1\n"
                                "smtp_accept_max_nonmail_hosts = 127.0.0.2")
    with connect_when_free(d.port) as c:                # not limited
        c.cmd("EHLO x.test")
        assert [c.cmd("NOOP") for _ in range(3)] == ["250 OK"] * 3
    with connect_when_free(d.port, "127.0.0.2") as c:
        c.cmd("EHLO x.test")
        assert c.cmd("NOOP") == "250 OK"
        assert c.cmd("NOOP") == "554 Too many nonmail commands"
        assert c.closed()
    line = ('SMTP call from (x.test) [127.0.0.2] dropped: too many nonmail commands '
            '(last was "NOOP")')
    assert line in wait_for_log(d, line)


def test_receive_timeout_may_be_expanded(tmp_path):
    setting = "${if eq{$sender_host_address}{127.0.0.2}{1s}{5m}}"
    d = limits_daemon(tmp_path, f"smtp_receive_timeout = {setting}")
    assert d.run("-bP", "smtp_receive_timeout").stdout.strip() == \
        f"smtp_receive_timeout = {setting}"
    with connect_when_free(d.port, "127.0.0.2") as quick, connect_when_free(d.port) as slow:
        start = time.monotonic()
        assert quick.reply(timeout=5) == \
            "421 mx.test.example SMTP command timeout - closing connection"
        assert time.monotonic() - start < 3
        assert slow.reply(timeout=1.5) == ""              # still waiting for a command
        assert slow.cmd("NOOP") == "250 OK"


def test_deliver_queue_load_max_stops_the_daemons_queue_runs(tmp_path):
    d = _delivering(tmp_path, "deliver_queue_load_max = 2", start=False,
                    env={"PYMTA_TEST_LOAD_AVERAGE": "2.5"})
    d.args = ["-q1s"]
    proc = d.run("-odq", "-f", "a@b.c", "r@b.c", input=b"Subject: t\n\nbody\n")
    assert proc.returncode == 0, proc.stderr
    [msgid] = d.queue()
    d.start()
    assert " (load 2.50, max 2.00)" in wait_for_log(d, " (load 2.50, max 2.00)")
    time.sleep(1.5)
    assert d.queue() == [msgid]
    assert f"{msgid} =>" not in d.log()


def test_os_overrides_smtp_receive_timeout(tmp_path):
    d = limits_daemon(tmp_path, "smtp_receive_timeout = 5m", start=False)
    d.args = ["-os", "1s"]
    d.start()
    with connect_when_free(d.port) as c:
        start = time.monotonic()
        assert c.reply(timeout=5) == \
            "421 mx.test.example SMTP command timeout - closing connection"
        assert time.monotonic() - start < 3
    assert d.run("-os1s", "-bP", "smtp_receive_timeout").stdout.strip() == \
        "smtp_receive_timeout = 1s"


def test_per_host_refusal_is_not_logged_without_connection_reject(tmp_path):
    # Exim 4.96 with log_selector = -connection_reject writes no "refused: too many
    # connections" line (the refusal itself is the same)
    d = limits_daemon(tmp_path, "smtp_accept_max = 10\nsmtp_accept_max_per_host = 1\n"
                                "log_selector = -connection_reject")
    first = connect_when_free(d.port)
    with RawClient(d.port) as second:
        assert second.reply().startswith("421 Too many concurrent SMTP connections from this")
        assert second.closed()
    first.cmd("QUIT")
    first.close()
    assert "refused" not in d.log()
