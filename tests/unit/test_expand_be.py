"""Tests for ``pymta -be`` (pymta.expand.be.run_be)."""
from __future__ import annotations

import io
import types

from pymta.config.model import Config
from pymta.expand.be import run_be


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
    assert out.getvalue() == "ab\nx\n"


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
