"""Tests for ``pymta -be`` (pymta.expand.be.run_be)."""
from __future__ import annotations

import io
import types

from pymta.config.model import Config
from pymta.expand.be import run_be
from pymta.originator import caller_originator


def config():
    main = types.SimpleNamespace(primary_hostname="mx.corp.test", qualify_domain="corp.test")
    return Config(filename="/etc/pymta/configure", main=main, macros={"GREETING": "hello"})


def run(text: str) -> str:
    out = io.StringIO()
    assert run_be(config(), io.StringIO(text), out) == 0
    return out.getvalue()


def test_one_result_line_per_expression():
    assert run("${uc:abc}\n$primary_hostname\n") == "ABC\nmx.corp.test\n"


def test_failures_are_reported_and_processing_continues():
    assert run("${if eq{a}}\nok\n") == 'Failed: missing 2nd string in {} after "eq"\nok\n'
    assert run("${if eq{a}{b}{y}fail}\n") == 'Failed: "if" failed and "fail" requested\n'


def test_backslash_continuation_joins_lines():
    assert run("${if eq{a}{a}\\\n{yes}{no}}\n") == "yes\n"


def test_macros_are_replaced():
    assert run("GREETING world\n") == "hello world\n"


def test_sender_address_is_the_caller():
    assert run("${if def:sender_address{y}{n}}\n${domain:$sender_address}\n") == \
        "y\ncorp.test\n"


def test_command_line_arguments_are_expressions():
    out = io.StringIO()
    assert run_be(config(), ["${lc:AB}", "x\\"], out) == 0
    # no line continuation for arguments: exim4 -be 'x\' fails the same way
    assert out.getvalue() == "ab\nFailed: \\ at end of string\n"


def test_empty_args_read_stdin():
    out = io.StringIO()
    run_be(config(), [], stdin=io.StringIO("${uc:q}\n"), stdout=out)
    assert out.getvalue() == "Q\n"


def test_bem_message_file(tmp_path):
    msg = tmp_path / "m"
    msg.write_text("Subject: hi\n there\nTo: a@b.test\n\nbody line\n")
    out = io.StringIO()
    run_be(config(), ["$h_subject:", "${if def:h_to:{y}{n}}", "$message_body"], out,
           message_file=str(msg))
    assert out.getvalue() == "hi\n there\ny\nbody line \n"


def test_bem_message_variables_like_exim(tmp_path):
    # exim4 -bem on this file printed: "81 body  6 1 5" and the header values below
    msg = tmp_path / "msg"
    msg.write_text("From: a@b.c\nSubject: /etc/hostname\nX-Cmd: /bin/echo\n"
                   "X-Sock: /tmp/i3be/sock\n\nbody\n")
    out = io.StringIO()
    run_be(config(), io.StringIO(
        "$message_size $message_body $message_linecount $body_linecount $message_body_size\n"
        "$h_from: $rh_subject: $bh_subject: $header_x-cmd:\n"
        "${if match{$message_id}{\\N^\\w{6}-\\w{6}-\\w{2}$\\N}{id}{noid}}\n"),
        out, message_file=str(msg))
    assert out.getvalue() == ("81 body  6 1 5\n"
                              "a@b.c  /etc/hostname\n /etc/hostname /bin/echo\n"
                              "id\n")


def test_bem_missing_file():
    out = io.StringIO()
    assert run_be(config(), io.StringIO("x\n"), out, message_file="/nonexistent/m") == 1
    assert "failed to open" in out.getvalue()


def test_prompt_like_exim():
    out = io.StringIO()
    assert run_be(config(), io.StringIO("${uc:a}\nb\n"), out, prompt=True) == 0
    assert out.getvalue() == "> A\n> b\n> \n"


def test_bem_message_headers_get_message_id_and_date(tmp_path):
    """exim4 -bem adds Message-Id: and Date: and shows them in $message_headers."""
    msg = tmp_path / "msg"
    msg.write_text("From: A <a@b.test>\nSubject: =?utf-8?q?caf=C3=A9?=\n  two\n\nbody\n")
    out = io.StringIO()
    run_be(config(), io.StringIO("$message_headers\n"), out, message_file=str(msg))
    lines = out.getvalue().split("\n")
    assert lines[0] == "From: A <a@b.test>"
    assert lines[1] == "Subject: café"
    assert lines[2] == "  two"
    assert lines[3].startswith("Message-Id: <E") and lines[3].endswith("@mx.corp.test>")
    assert lines[4].startswith("Date: ")
    out = io.StringIO()
    run_be(config(), io.StringIO("$h_subject:\n"), out, message_file=str(msg))
    assert out.getvalue() == "café\n  two\n"          # folding kept, as exim4 -bem
    out = io.StringIO()
    msg.write_text("Message-Id: <x@y>\nDate: then\n\nbody\n")
    run_be(config(), io.StringIO("$message_headers_raw\n"), out, message_file=str(msg))
    # and From: for the calling user when there is none (as exim4 -bem: "root <root@...>")
    caller = caller_originator(config())
    login, name = caller.login, caller.name
    assert out.getvalue() == ("Message-Id: <x@y>\nDate: then\n"
                              f"From: {name} <{login}@corp.test>\n")


def _bem(tmp_path, message: str, expr: str) -> str:
    msg = tmp_path / "msg"
    msg.write_bytes(message.encode("utf-8", "surrogateescape"))
    out = io.StringIO()
    run_be(config(), io.StringIO(expr + "\n"), out, message_file=str(msg))
    return out.getvalue()[:-1]


def test_bem_line_counts_like_exim(tmp_path):
    """Values recorded from exim4 -bem (4.96): only non-empty body lines are counted."""
    fmt = "$body_linecount|$message_linecount|$body_zerocount|$message_body_size|$message_size"
    for body, want in [("line1\n\nline3\n", "2|4|0|13|25"), ("line1\nline3", "2|4|0|11|23"),
                       ("a\x00b\nc\n", "2|4|1|6|18"), ("\n\n\n", "0|2|0|3|15"),
                       ("a\nb\nc\n", "3|5|0|6|18"), ("", "0|2|0|0|12")]:
        assert _bem(tmp_path, "Subject: x\n\n" + body, fmt) == want, body


def test_bem_message_body_zeros_and_newlines_become_spaces(tmp_path):
    assert _bem(tmp_path, "Subject: x\n\nline1\n\nline3 \x00zero\n", "[$message_body]") == \
        "[line1  line3  zero ]"


def test_bem_basic_headers_decode_without_charset_translation(tmp_path):
    msg = "Subject: =?iso-8859-1?q?caf=E9?= and =?utf-8?b?w6k=?=\n\nbody\n"
    assert _bem(tmp_path, msg, "$bh_subject:") == "caf\udce9 and é"
    assert _bem(tmp_path, msg, "$h_subject:") == "café and é"
    assert _bem(tmp_path, "Subject: =?utf-8?q?a?= =?utf-8?q?b?=\n\nx\n", "$bh_subject:") == "ab"


def test_log_space_is_measured_where_the_log_files_go(tmp_path):
    """The first log_file_path item that is not syslog; syslog only gives -1 (Exim's
    receive_statvfs)."""
    def space(lfp: str) -> str:
        main = types.SimpleNamespace(log_file_path=lfp, spool_directory=str(tmp_path))
        out = io.StringIO()
        run_be(Config(filename="x", main=main, macros={}), io.StringIO("$log_space $log_inodes\n"),
               out)
        return out.getvalue().strip()
    assert space("syslog") == "-1 -1"
    for lfp in (f"syslog : {tmp_path}/%slog", f"{tmp_path}/%slog", ""):
        kib, inodes = space(lfp).split()
        assert int(kib) > 0 and int(inodes) != -1, lfp
