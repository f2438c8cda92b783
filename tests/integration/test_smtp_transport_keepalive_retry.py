"""The smtp transport's keepalive (SO_KEEPALIVE on its connections, on by default) and
address_retry_include_sender (whether a 4xx to RCPT delays the recipient only with this
sender, the default, or with every sender).

keepalive is seen from outside the process: while pymta waits for a slow sink's banner
its idle connection has the kernel's keepalive timer running (timer 2 in
/proc/net/tcp), and no timer at all without the option."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pymta.hints.retry import RetryDB
from tests.support.daemon import PymtaDaemon
from tests.support.relayconf import relay_config
from tests.support.sink import SmtpSink

CONFIG = relay_config("  OPTION")

PROC_TCP = Path("/proc/net/tcp")


def _client_timers(sink_port: int) -> set[int]:
    """The timer kinds of established loopback connections to the sink's port."""
    timers = set()
    for line in PROC_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, timer = fields[2], fields[3], fields[5]
        if state == "01" and int(remote.split(":")[1], 16) == sink_port:
            timers.add(int(timer.split(":")[0], 16))
    return timers


def _timers_while_waiting(tmp_path, option: str) -> set[int]:
    if not PROC_TCP.exists():
        pytest.skip("no /proc/net/tcp to read socket timers from")
    with SmtpSink(banner_delay=3.0) as sink:
        d = PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": str(sink.port),
                                                  "OPTION": option})
        d.prepare()
        result: list = []
        t = threading.Thread(target=lambda: result.append(d.run(
            "-odi", "-f", "a@test.example", "u@x.example", input=b"Subject: k\n\nb\n")))
        t.start()
        seen: set[int] = set()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            seen = _client_timers(sink.port)
            time.sleep(0.05)
        t.join(30)
        assert result and result[0].returncode == 0, result
        assert len(sink.messages) == 1
        return seen


def test_keepalive_on_by_default(tmp_path):
    assert _timers_while_waiting(tmp_path, "") == {2}


def test_no_keepalive(tmp_path):
    assert _timers_while_waiting(tmp_path, "keepalive = false") == {0}


def _rcpt_4xx(tmp_path, option: str) -> tuple[set[str], PymtaDaemon, SmtpSink]:
    sink = SmtpSink(rcpt_replies={"u@x.example": (451, "try later")}).start()
    d = PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": str(sink.port),
                                              "OPTION": option})
    d.prepare()
    r = d.run("-odi", "-f", "a@test.example", "u@x.example", input=b"Subject: r\n\nb\n")
    assert r.returncode == 0, r.stderr
    assert "== u@x.example R=remote T=remote_smtp defer (-44)" in d.log()
    keys = {k for k, _ in RetryDB(str(d.spool)).items() if k.startswith("R:")}
    return keys, d, sink


def _second_sender_tried(d: PymtaDaemon, sink: SmtpSink) -> bool:
    """Whether a queue run tries a second message for the same recipient from another
    sender (the first message's own retry time keeps it back in any case)."""
    r = d.run("-odq", "-f", "b@test.example", "u@x.example", input=b"Subject: 2\n\nb\n")
    assert r.returncode == 0, r.stderr
    before = sum(c.upper().startswith("RCPT TO:<U@X.EXAMPLE>") for c in sink.commands)
    assert d.run("-q").returncode == 0
    after = sum(c.upper().startswith("RCPT TO:<U@X.EXAMPLE>") for c in sink.commands)
    return after > before


def test_retry_key_includes_sender_by_default(tmp_path):
    keys, d, sink = _rcpt_4xx(tmp_path, "")
    try:
        assert keys == {"R:u@x.example:<a@test.example>"}
        assert _second_sender_tried(d, sink)
    finally:
        sink.stop()


def test_retry_key_without_sender(tmp_path):
    keys, d, sink = _rcpt_4xx(tmp_path, "address_retry_include_sender = false")
    try:
        assert keys == {"R:u@x.example"}
        assert not _second_sender_tried(d, sink)
        assert "== u@x.example routing defer (-52): retry time not reached" in d.log()
    finally:
        sink.stop()
