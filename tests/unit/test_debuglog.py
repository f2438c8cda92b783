"""The debug trace (pymta.debuglog) and control = debug (pymta.acl.debugcontrol): Exim's
selector bits, the output prefixes, the pretrigger ring buffer and its triggers."""
from __future__ import annotations

import os
import re

import pytest

from pymta.acl import run_acl
from pymta.acl.debugcontrol import apply_debug_control, parse_debug_control, tag_problem
from pymta.config import load_config
from pymta.config.model import ConfigError
from pymta.debuglog import (
    D_DEFAULT,
    DebugTrace,
    RingBuffer,
    SelectorError,
    debug,
    parse_selector,
)
from pymta.expand.context import ExpandContext
from pymta.taint import Tainted


@pytest.fixture(autouse=True)
def _no_trace_left():
    debug.reset()
    yield
    debug.reset()


# The values Exim 4.96 prints as "D=..." on its first -d line for the same options.
@pytest.mark.parametrize("text, bits", [
    ("", 0xF7715CFD),
    ("+all", 0xFFF9FFFF),
    ("-all", 0),
    ("-all+pid+timestamp", 0x08080000),
    ("+noutf8", 0xF7755CFD),
    ("-all+expand", 0x100),
    ("+acl", 0xF7715CFD),
])
def test_selector_bits_are_exims(text, bits):
    assert parse_selector(text) == bits
    assert D_DEFAULT == 0xF7715CFD


@pytest.mark.parametrize("text, error", [
    ("+bogus", "unknown debug_selector setting: +bogus"),
    ("x", 'malformed debug_selector setting: + or - expected but found "x"'),
    ("+acl,expand", 'malformed debug_selector setting: + or - expected but found ",expand"'),
])
def test_bad_selectors(text, error):
    with pytest.raises(SelectorError, match=re.escape(error)):
        parse_selector(text)


def test_off_means_every_selector_attribute_false():
    t = DebugTrace()
    assert not t.any and not t.acl and not t.expand and not t.on("route")


def test_attributes_follow_the_selector(tmp_path):
    t = DebugTrace()
    t.start_file(str(tmp_path / "d"), parse_selector("-all+acl"))
    assert t.any and t.acl and t.on("acl")
    assert not t.expand and not t.route
    t.stop()
    assert not t.any and not t.acl


def test_file_output_with_pid_and_timestamp_prefixes(tmp_path):
    t = DebugTrace()
    path = tmp_path / "debuglog"
    t.start_file(str(path), parse_selector("-all+acl"))
    t.printf("one\ntwo")
    t.start_file(str(path), parse_selector("-all+acl+pid+timestamp"))
    t.printf("three")
    t.stop()
    lines = path.read_text().splitlines()
    assert lines[:2] == ["one", "two"]
    assert re.fullmatch(rf"\d\d:\d\d:\d\d +{os.getpid()} three", lines[2])


def test_ring_buffer_keeps_the_newest_bytes():
    rb = RingBuffer(10)
    for chunk in (b"aaaa\n", b"bbbb\n", b"cccc\n"):
        rb.add(chunk)
    assert rb.take() == b"bbbb\ncccc\n"
    assert rb.take() == b""
    rb.add(b"0123456789abcdef\n")       # longer than the buffer: its tail
    assert rb.take() == b"789abcdef\n"


def test_pretrigger_holds_lines_until_triggered(tmp_path):
    t = DebugTrace()
    path = tmp_path / "debuglog"
    t.start_file(str(path), D_DEFAULT, pretrigger=12)
    for n in range(5):
        t.printf(f"line{n}")
    assert path.read_text() == ""
    t.trigger()
    assert path.read_text() == "line3\nline4\n"     # the newest 12 bytes (whole lines)
    t.printf("after")
    assert path.read_text().endswith("after\n")


def test_paniclog_trigger_fires_only_when_armed(tmp_path):
    t = DebugTrace()
    path = tmp_path / "debuglog"
    t.start_file(str(path), D_DEFAULT, pretrigger=1000)
    t.printf("before")
    t.paniclog_written()
    assert path.read_text() == ""
    t.trigger_paniclog = True
    t.paniclog_written()
    assert path.read_text() == "before\n"


def test_kill_removes_the_file_and_end_control_restores_stderr(tmp_path):
    t = DebugTrace()
    err = open(tmp_path / "stderr", "w+")
    t.start_stderr(parse_selector("-all+route"), err)
    t.start_file(str(tmp_path / "debuglog.x"), parse_selector("-all+acl"))
    assert t.acl and not t.route
    t.end_control(kill=True)
    assert not (tmp_path / "debuglog.x").exists()
    assert t.route and not t.acl
    t.printf("back on stderr")
    err.seek(0)
    assert err.read() == "back on stderr\n"
    err.close()


def test_control_options_parse():
    c = parse_debug_control("debug/tag=.1.2.3.4/opts=+expand-acl/pretrigger=2k/"
                            "trigger=paniclog")
    assert (c.tag, c.pretrigger, c.trigger) == (".1.2.3.4", 2048, "paniclog")
    assert c.selector == parse_selector("+expand-acl")
    assert parse_debug_control("debug").selector == D_DEFAULT
    assert parse_debug_control("debug/kill").kill
    assert parse_debug_control("debug/stop").stop
    for bad in ("debug/opts=+nonsense", "debug/trigger=later", "debug/pretrigger=x",
                "debug/frobnicate"):
        with pytest.raises(ConfigError):
            parse_debug_control(bad)


def test_tainted_tag_limited_to_file_name_characters():
    assert tag_problem(parse_debug_control(Tainted("debug/tag=.1.2.3.4"))) is None
    assert tag_problem(parse_debug_control(Tainted("debug/tag=.a b"))) is not None
    assert tag_problem(parse_debug_control("debug/tag=.a b")) is None
    assert tag_problem(parse_debug_control("debug/tag=.a\nb")) is not None


def test_apply_control_starts_triggers_and_kills(tmp_path):
    base = str(tmp_path / "debuglog")
    panics: list[str] = []
    apply_debug_control("debug/tag=.t/opts=-all+acl/pretrigger=100", lambda: base,
                        panics.append)
    assert debug.acl and debug.file_path == base + ".t"
    debug.printf("held")
    assert (tmp_path / "debuglog.t").read_text() == ""
    apply_debug_control("debug/trigger=now", lambda: base, panics.append)
    assert (tmp_path / "debuglog.t").read_text().startswith("held\n")
    apply_debug_control("debug/kill", lambda: base, panics.append)
    assert not debug.any and not (tmp_path / "debuglog.t").exists()
    apply_debug_control(Tainted("debug/tag=.x y"), lambda: base, panics.append)
    assert not debug.any and panics and "tainted debug tag" in panics[0]


ACL_CONFIG = """\
primary_hostname = test.example
begin acl
check:
  warn    condition = yes
          set acl_m_x = 1
  require condition = ${if eq{$local_part}{alice}}
  deny    !condition = ${if eq{$acl_m_x}{1}}
  accept
"""


def _acl_trace(tmp_path, local_part: str) -> tuple[str, list[str]]:
    conf = tmp_path / "configure"
    conf.write_text(ACL_CONFIG)
    cfg = load_config(str(conf))
    out = tmp_path / f"trace.{local_part}"
    debug.start_file(str(out), parse_selector("-all+acl"))
    result = run_acl(cfg, "check", "rcpt", ExpandContext(cfg, {"local_part": local_part}))
    debug.reset()
    return result.verdict, out.read_text().splitlines()


def test_acl_trace_names_statements_conditions_and_verdicts(tmp_path):
    verdict, lines = _acl_trace(tmp_path, "alice")
    assert verdict == "accept"
    conf = tmp_path / "configure"
    assert lines == [
        'using ACL "check"',
        f'processing "warn" ({conf} 4)',
        "check condition = yes",
        "                = yes",          # Exim: the expanded value under the "="
        "check set acl_m_x = 1",
        'warn: condition test succeeded in ACL "check"',
        f'processing "require" ({conf} 6)',
        "check condition = ${if eq{$local_part}{alice}}",
        "                = true",
        'require: condition test succeeded in ACL "check"',
        f'processing "deny" ({conf} 7)',
        "check !condition = ${if eq{$acl_m_x}{1}}",
        "                 = true",
        'deny: condition test failed in ACL "check"',
        f'processing "accept" ({conf} 8)',
        'accept: condition test succeeded in ACL "check"',
        'end of ACL "check": ACCEPT',
    ]
    verdict, lines = _acl_trace(tmp_path, "bob")
    assert verdict == "deny"
    assert lines[-2:] == ['require: condition test failed in ACL "check"',
                          'end of ACL "check": not OK']     # Exim's words for a require
