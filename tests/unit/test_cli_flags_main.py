"""Command-line flags through main(): Exim's error shapes, -d notes, -z, -R / -S runs."""
import io
import os
import sys

import pytest

from pymta.cli.main import main


@pytest.fixture
def conf(cli_conf):
    return cli_conf


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


@pytest.mark.parametrize("argv, err", [
    (["-O"], "pymta: string expected after -O\n"),
    (["-oMa"], "pymta: data expected after -oMa\n"),
    (["-oBx"], "pymta: number expected after -oB\n"),
    (["-V"], "pymta abandoned: unknown, malformed, or incomplete option -V\n"),
    (["-oifalse"], "pymta abandoned: unknown, malformed, or incomplete option -oifalse\n"),
])
def test_refusals_have_exims_shape_and_status(argv, err, capsys):
    assert main(argv) == 1
    assert capsys.readouterr().err == err


def test_ignored_flags_are_silent_but_shown_with_debug(conf, tmp_path, monkeypatch, capsys):
    argv = ["-C", conf, "-odq", "-B8BITMIME", "-h", "5", "alice"]
    _stdin(monkeypatch, b"Subject: a\n\nb\n")
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    _stdin(monkeypatch, b"Subject: a\n\nb\n")
    assert main(["-d"] + argv) == 0
    err = capsys.readouterr().err
    assert "option -B8BITMIME ignored" in err and "option -h 5 ignored" in err
    # Like Exim, nothing about them in the main log.
    assert "8BITMIME" not in (tmp_path / "spool" / "log" / "mainlog").read_text()


def test_z_writes_a_main_log_line(conf, tmp_path):
    assert main(["-C", conf, "-z", "maintenance starts"]) == 0
    assert (tmp_path / "spool" / "log" / "mainlog").read_text().rstrip().endswith(
        " maintenance starts")


def _queue(conf, monkeypatch, argv) -> None:
    _stdin(monkeypatch, b"Subject: q\n\nbody\n")
    assert main(["-C", conf, "-odq"] + argv) == 0


def _queued(tmp_path) -> int:
    return sum(1 for n in os.listdir(tmp_path / "spool" / "input") if n.endswith("-H"))


def test_R_delivers_only_messages_for_matching_recipients(conf, tmp_path, monkeypatch):
    _queue(conf, monkeypatch, ["alice"])
    _queue(conf, monkeypatch, ["bob"])
    assert main(["-C", conf, "-R", "ALICE@test"]) == 0      # case-independent substring
    mbox = (tmp_path / "mbox").read_text()
    assert mbox.count("Subject: q") == 1 and _queued(tmp_path) == 1
    assert main(["-C", conf, "-qRr", "^b.b@"]) == 0         # r: regular expression
    assert (tmp_path / "mbox").read_text().count("Subject: q") == 2 and _queued(tmp_path) == 0


def test_S_selects_by_sender(conf, tmp_path, monkeypatch):
    _queue(conf, monkeypatch, ["-f", "list@lists.example", "alice"])
    _queue(conf, monkeypatch, ["bob"])
    assert main(["-C", conf, "-S", "lists.example"]) == 0
    assert _queued(tmp_path) == 1
    assert "list@lists.example" in (tmp_path / "mbox").read_text()
