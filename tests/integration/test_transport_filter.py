"""transport_filter and transport_filter_timeout, end to end with the real daemon.

The message as the transport would write it goes through the command and its output is
what is delivered: into a maildir (appendfile) and over SMTP to a sink, where the output
still goes out with CRLF line ends, dot-stuffed, and with SIZE= computed from the spooled
message.  A failing, hanging or unstartable filter defers (the message stays queued), a
tainted argument fails the address; the log wording is Exim 4.96's
(tests/data/transport_filter/exim4_mainlog.txt, from exim4 with the same kind of
configuration)."""
from __future__ import annotations

import os
import pwd
import re
import time
from pathlib import Path

import pytest

from tests.integration.conftest import maildir_messages, wait_for
from tests.integration.test_daemon_e2e import send
from tests.support.daemon import run_pymta
from tests.support.sink import SmtpSink

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
log_selector = +delivery_size
domainlist local_domains = test.example
acl_smtp_rcpt = acl_check_rcpt
received_header_text = Received: from $sender_helo_name by $primary_hostname id $message_exim_id

begin acl

acl_check_rcpt:
  accept  domains = +local_domains : remote.example
  deny

begin routers

remote_fail:
  driver = manualroute
  domains = remote.example
  local_parts = fail
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = remote_fail

remote_hang:
  driver = manualroute
  domains = remote.example
  local_parts = hang
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = remote_hang

remote_id:
  driver = manualroute
  domains = remote.example
  local_parts = id
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = remote_id

remote_badexp:
  driver = manualroute
  domains = remote.example
  local_parts = badexp : taint
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = remote_${local_part_data}

remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = remote_smtp

local:
  driver = accept
  domains = +local_domains
  transport = t_${local_part}

begin transports

remote_smtp:
  driver = smtp
  allow_localhost
  transport_filter = /bin/sed -e s/^last/.last/ -e s/body/$host_address/

remote_id:
  driver = smtp
  allow_localhost
  transport_filter = /usr/bin/id

remote_badexp:
  driver = smtp
  allow_localhost
  transport_filter = '/bin/cat${if eq{$host_address}{10.9.9.9}{}fail}'

remote_taint:
  driver = smtp
  allow_localhost
  transport_filter = /bin/echo $local_part

remote_fail:
  driver = smtp
  allow_localhost
  transport_filter = /bin/false

remote_hang:
  driver = smtp
  allow_localhost
  transport_filter = /bin/sleep 30
  transport_filter_timeout = 1s

t_upper:
  driver = appendfile
  directory = DIR/maildir/upper
  maildir_format
  create_directory
  transport_filter = /usr/bin/tr a-z A-Z

t_pa:
  driver = appendfile
  directory = DIR/maildir/pa
  maildir_format
  create_directory
  transport_filter = /bin/echo "two words" $pipe_addresses

t_lmtp:
  driver = lmtp
  command = LMTPD DIR/lmtp-upper
  transport_filter = /usr/bin/tr a-z A-Z

t_lmtpfail:
  driver = lmtp
  command = LMTPD DIR/lmtp-fail
  transport_filter = /bin/false

t_lmtphang:
  driver = lmtp
  command = LMTPD DIR/lmtp-hang
  transport_filter = /bin/sleep 30
  transport_filter_timeout = 1s

t_pupper:
  driver = pipe
  user = nobody
  command = /bin/sh -c 'cat > DIR/pipe-upper'
  transport_filter = /usr/bin/tr a-z A-Z

t_pfail:
  driver = pipe
  user = nobody
  command = /bin/sh -c 'cat > DIR/pipe-fail'
  transport_filter = /bin/false

t_phang:
  driver = pipe
  user = nobody
  command = /bin/sh -c 'cat > DIR/pipe-hang'
  transport_filter = /bin/sleep 30
  transport_filter_timeout = 1s

t_phangdefer:
  driver = pipe
  user = nobody
  command = /bin/sh -c 'cat > DIR/pipe-hang'
  transport_filter = /bin/sleep 30
  transport_filter_timeout = 1s
  timeout_defer

t_box:
  driver = appendfile
  directory = DIR/maildir/box
  maildir_format
  create_directory

t_auto:
  driver = autoreply
  to = box@test.example
  subject = auto
  text = the reply text
  return_message
  transport_filter = /usr/bin/tr a-z A-Z

t_autofail:
  driver = autoreply
  to = box@test.example
  subject = auto fail
  text = the reply text
  return_message
  transport_filter = /bin/false

t_failing:
  driver = appendfile
  directory = DIR/maildir/failing
  maildir_format
  create_directory
  transport_filter = /bin/false

t_hanging:
  driver = appendfile
  directory = DIR/maildir/hanging
  maildir_format
  create_directory
  transport_filter = /bin/sleep 30
  transport_filter_timeout = 1s

t_relative:
  driver = appendfile
  directory = DIR/maildir/relative
  maildir_format
  create_directory
  transport_filter = no-such-filter-command

t_tainted:
  driver = appendfile
  directory = DIR/maildir/tainted
  maildir_format
  create_directory
  transport_filter = /bin/echo $local_part

begin retry

*  *  F,1h,10m
"""

LMTPD = str(Path(__file__).parents[1] / "data" / "transport_filter" / "lmtpd.py")
BODY = b"some body text\r\n..leading dot\r\nlast line\r\n"


def _message(to: str) -> bytes:
    return (f"From: s@outside.example\r\nTo: {to}\r\nSubject: hello\r\n\r\n".encode()
            + BODY)


def _submit(d, to: str) -> str:
    code, text = send(d, "s@outside.example", [to], _message(to))
    assert code == 250, text
    return re.search(r"id=(\S+)", text).group(1)


def test_appendfile_delivers_the_filters_output(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    msgid = _submit(d, "upper@test.example")
    [message] = wait_for(lambda: maildir_messages(tmp_path, "upper"))
    assert message.endswith(b"\n\nSOME BODY TEXT\n.LEADING DOT\nLAST LINE\n")
    assert b"\nSUBJECT: HELLO\n" in message
    assert f"ID {msgid.upper()}".encode() in message       # the Received: line too
    line = d.wait_for_log(rf"{msgid} => upper <upper@test\.example> R=local T=t_upper")
    assert line
    assert f"S={len(message)}" in line[0]      # the size written is the filter's output
    wait_for(lambda: not d.queue())
    assert not d.queue()


def test_pipe_addresses_and_quoted_arguments(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    _submit(d, "pa@test.example")
    [message] = wait_for(lambda: maildir_messages(tmp_path, "pa"))
    # the filter's output replaces the whole message; the address is exempt from the
    # taint rule as one argument of its own
    assert message == b"two words pa@test.example\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the daemon then runs as "
                    "the Exim user with a saved uid 0")
def test_smtp_filter_runs_as_the_exim_user_only(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=CONFIG)
        _submit(d, "id@remote.example")
        assert sink.wait_for(1, 15), d.diagnostics()
        out = sink.messages[0].data.decode()
        uid = pwd.getpwnam(d.exim_user).pw_uid
        # id(1) names an effective uid only when it differs from the real one
        assert out.startswith(f"uid={uid}("), out
        assert "euid=" not in out and "(root)" not in out, out


def test_failing_filter_defers_and_the_message_stays(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    msgid = _submit(d, "failing@test.example")
    [line] = d.wait_for_log(rf"{msgid} == failing@test\.example", 15)
    assert re.search(r"R=local T=t_failing defer \(-24\): transport filter process "
                     r"failed \(1\) while writing to tmp/\d+\.M\d+P\d+\.mx\.test\.example$",
                     line), line
    assert d.queue() == [msgid]
    assert not maildir_messages(tmp_path, "failing")
    # the half-written file is not left in the maildir's tmp either
    assert not list((tmp_path / "maildir" / "failing" / "tmp").iterdir())


def test_unstartable_filter_defers(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    msgid = _submit(d, "relative@test.example")
    [line] = d.wait_for_log(rf"{msgid} == relative@test\.example", 15)
    assert re.search(r"defer \(-24\): transport filter process failed \(127\) while "
                     r"writing to tmp/\S+: unable to execute command$", line), line
    assert d.queue() == [msgid]


def test_hanging_filter_is_killed_at_the_timeout(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    started = time.monotonic()
    msgid = _submit(d, "hanging@test.example")
    [line] = d.wait_for_log(rf"{msgid} == hanging@test\.example", 20)
    elapsed = time.monotonic() - started
    assert re.search(r"T=t_hanging defer \(110\): Connection timed out: error while "
                     r"writing to tmp/\S+$", line), line
    assert elapsed < 15           # 1s timeout, not the filter's 30s sleep
    assert d.queue() == [msgid]
    assert not maildir_messages(tmp_path, "hanging")


def test_tainted_argument_is_refused(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    msgid = _submit(d, "tainted@test.example")
    [line] = d.wait_for_log(rf"{msgid} \*\* tainted@test\.example", 15)
    assert line.endswith("R=local T=t_tainted: Tainted arg 1 for transport filter "
                         "command: 'tainted'"), line
    assert not maildir_messages(tmp_path, "tainted")


def test_smtp_sends_the_filters_output_crlf_dot_stuffed(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=CONFIG)
        msgid = _submit(d, "user@remote.example")
        assert sink.wait_for(1, 15), d.diagnostics()
        msg = sink.messages[0]
        # $host_address expanded, the new leading dot stuffed on the wire (the sink
        # unstuffs it), CRLF throughout
        assert msg.data.endswith(b"\r\n\r\nsome 127.0.0.1 text\r\n.leading dot\r\n"
                                 b".last line\r\n"), msg.data
        assert b"\n" not in msg.data.replace(b"\r\n", b"")
        # SIZE= is the spooled message's size (Exim cannot know the filter's): the
        # message's bytes plus a CR for each line plus size_addition (1024)
        [size] = [p for p in msg.mail_params if p.startswith("SIZE=")]
        spooled = int(re.search(r" S=(\d+)", d.wait_for_log(rf"{msgid} <= ")[0]).group(1))
        assert spooled < int(size[5:]) - 1024 < spooled + 20
        assert d.wait_for_log(rf"{msgid} => user@remote\.example R=remote T=remote_smtp "
                              r"S=\d+ H=127\.0\.0\.1 \[127\.0\.0\.1\]", 15)


def test_smtp_with_a_filter_uses_data_not_bdat(pymta_daemon, sink_port):
    # BDAT needs each chunk's size in advance, which a filter's output does not give
    with SmtpSink(port=sink_port, chunking=True) as sink:
        d = pymta_daemon(config=CONFIG)
        _submit(d, "user@remote.example")
        assert sink.wait_for(1, 15), d.diagnostics()
        assert sink.messages[0].bdat_chunks == []
        assert "DATA" in sink.commands
        assert not [c for c in sink.commands if c.startswith("BDAT")]
        assert sink.messages[0].data.endswith(b"\r\n.last line\r\n")


def test_smtp_failing_filter_defers_without_sending(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=CONFIG)
        msgid = _submit(d, "fail@remote.example")
        [line] = d.wait_for_log(rf"{msgid} == fail@remote\.example", 15)
        assert line.endswith("R=remote_fail T=remote_fail defer (-24) H=127.0.0.1 "
                             "[127.0.0.1]: transport filter process failed (1)"), line
        assert d.queue() == [msgid]
        assert not sink.messages


def test_smtp_command_problems_are_logged_without_a_host(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=CONFIG)
        badexp = _submit(d, "badexp@remote.example")
        taint = _submit(d, "taint@remote.example")
        [line] = d.wait_for_log(rf"{badexp} == badexp@remote\.example", 15)
        assert re.search(r"T=remote_badexp defer \(0\): Expansion of \"/bin/cat\$\{if .*\" "
                         r"from command .* in remote_badexp transport filter failed "
                         r"\(forced\)$", line), line
        [line] = d.wait_for_log(rf"{taint} \*\* taint@remote\.example", 15)
        assert line.endswith("R=remote_badexp T=remote_taint: Tainted arg 1 for transport "
                             "filter command: 'taint'"), line
        assert badexp in d.queue()
        assert not sink.messages and not sink.commands


def test_smtp_hanging_filter_times_out(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=CONFIG)
        msgid = _submit(d, "hang@remote.example")
        [line] = d.wait_for_log(rf"{msgid} == hang@remote\.example", 20)
        assert line.endswith("R=remote_hang T=remote_hang defer (110): Connection timed "
                             "out H=127.0.0.1 [127.0.0.1]: SMTP timeout after sending "
                             "data block"), line
        assert d.queue() == [msgid]
        assert not sink.messages


def test_lmtp_sends_the_filters_output(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG, macros={"LMTPD": LMTPD})
    msgid = _submit(d, "lmtp@test.example")
    assert d.wait_for_log(rf"{msgid} => lmtp <lmtp@test\.example> R=local T=t_lmtp "
                          r'.*C="250 delivered"', 15)
    data = (tmp_path / "lmtp-upper").read_bytes()
    assert data.endswith(b"\r\n\r\nSOME BODY TEXT\r\n.LEADING DOT\r\nLAST LINE\r\n")


def test_lmtp_failing_and_hanging_filters_defer(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG, macros={"LMTPD": LMTPD})
    failing = _submit(d, "lmtpfail@test.example")
    hanging = _submit(d, "lmtphang@test.example")
    [line] = d.wait_for_log(rf"{failing} == lmtpfail@test\.example", 15)
    assert line.endswith("R=local T=t_lmtpfail defer (-24): transport filter process "
                         "failed (1)"), line
    [line] = d.wait_for_log(rf"{hanging} == lmtphang@test\.example", 20)
    assert line.endswith("R=local T=t_lmtphang defer (-1): LMTP timeout after sending "
                         "data block"), line
    assert d.queue() == sorted([failing, hanging])
    # the server saw no end of data, so stored nothing
    assert not (tmp_path / "lmtp-fail").exists()
    assert not (tmp_path / "lmtp-hang").exists()


def test_pipe_gets_the_filters_output_after_its_prefix(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    msgid = _submit(d, "pupper@test.example")
    assert d.wait_for_log(rf"{msgid} => pupper <pupper@test\.example> R=local T=t_pupper",
                          15)
    data = (tmp_path / "pipe-upper").read_bytes()
    # message_prefix (the "From " line) is written around the filter, not through it
    assert data.startswith(b"From s@outside.example "), data
    assert b"\nRECEIVED: FROM " in data
    assert data.endswith(b"\n\nSOME BODY TEXT\n.LEADING DOT\nLAST LINE\n\n")


def test_pipe_filter_failure_and_timeout(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    failing = _submit(d, "pfail@test.example")
    hanging = _submit(d, "phang@test.example")
    deferring = _submit(d, "phangdefer@test.example")
    [line] = d.wait_for_log(rf"{failing} == pfail@test\.example", 15)
    # the command's own success does not matter: the filter failed (Exim's capital T)
    assert line.endswith("R=local T=t_pfail defer (-24): Transport filter process "
                         "failed (1)"), line
    # a filter timeout is a timeout of the command: a hard error, unless timeout_defer
    [line] = d.wait_for_log(rf"{hanging} \*\* phang@test\.example", 20)
    assert line.endswith("R=local T=t_phang: transport filter timeout while writing to "
                         "pipe"), line
    [line] = d.wait_for_log(rf"{deferring} == phangdefer@test\.example", 20)
    assert line.endswith("R=local T=t_phangdefer defer (0): transport filter timeout "
                         "while writing to pipe"), line
    assert failing in d.queue() and deferring in d.queue()


def test_autoreply_filters_the_returned_copy_only(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    _submit(d, "auto@test.example")
    [reply] = wait_for(lambda: maildir_messages(tmp_path, "box"))
    head, _, body = reply.partition(b"\n\n")
    assert b"\nSubject: auto\n" in head
    text, _, copy = body.partition(b"------ This is a copy of the message, including all "
                                   b"the headers.")
    assert text.startswith(b"the reply text\n")
    copy = copy.split(b"\n\n", 1)[1]       # after the separator line
    assert copy.startswith(b"RECEIVED: FROM CLIENT.TEST ")
    assert b"\nSUBJECT: HELLO\n" in copy
    assert copy.endswith(b"\n\nSOME BODY TEXT\n.LEADING DOT\nLAST LINE\n")


def test_autoreply_with_a_failing_filter_sends_an_empty_copy(pymta_daemon, tmp_path):
    # exim4 does the same (tests/data/transport_filter/exim4_autoreply_box.txt)
    d = pymta_daemon(config=CONFIG)
    msgid = _submit(d, "autofail@test.example")
    [reply] = wait_for(lambda: maildir_messages(tmp_path, "box"))
    # nothing after the separator line (pymta's own wording of that line differs
    # slightly from exim4's, which is another matter)
    assert re.search(rb"\n\nthe reply text\n+------ This is a copy of the message, "
                     rb"including all the headers\.[ -]*\n\n$", reply), reply
    assert d.wait_for_log(rf"{msgid} => autofail <autofail@test\.example> R=local "
                          r"T=t_autofail")


def test_refused_where_not_implemented(tmp_path):
    bad = CONFIG.replace("t_upper:\n  driver = appendfile\n",
                         "t_q:\n  driver = queuefile\n  directory = DIR/q\n"
                         "  transport_filter = /bin/cat\n\nt_upper:\n"
                         "  driver = appendfile\n")
    (tmp_path / "bad.conf").write_text(bad)
    proc = run_pymta(["-bV"], tmp_path / "bad.conf",
                     macros={"SPOOL": str(tmp_path / "spool"), "DIR": str(tmp_path),
                             "SINK_PORT": "25"})
    assert proc.returncode != 0
    assert 'option "transport_filter" is not supported' in proc.stderr + proc.stdout
