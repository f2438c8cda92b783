"""A damaged retry hints file (truncated or garbled, with its lock file) is recreated
with a paniclog line; the daemon keeps running and delivery goes on."""
from __future__ import annotations

import os

import pytest

from pymta.hints.db import HintsDB, data_file_damage
from tests.integration.conftest import wait_for
from tests.integration.test_daemon_e2e import MESSAGE, send
from tests.support.sink import SmtpSink


def _truncate(path: str) -> None:
    os.truncate(path, 8192)                 # the two meta pages survive, the data not
    os.truncate(path + "-lock", 100)


def _garble(path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.write(os.urandom(size))
    with open(path + "-lock", "r+b") as f:
        f.write(os.urandom(4096))


@pytest.mark.parametrize("damage", [_truncate, _garble], ids=["truncated", "garbled"])
def test_damaged_retry_hints_are_recreated(pymta_daemon, sink_port, damage):
    replies = {"later@remote.example": (451, "try later")}
    with SmtpSink(port=sink_port, rcpt_replies=replies) as sink:
        d = pymta_daemon()
        # a deferral writes retry records, so the file has data pages
        assert send(d, "alice@test.example", ["later@remote.example"], MESSAGE)[0] == 250
        d.wait_for_log(r" == later@remote\.example ")
        path = str(d.spool / "db" / "retry")
        assert os.path.getsize(path) > 8192
        damage(path)
        assert send(d, "alice@test.example", ["now@remote.example"], MESSAGE)[0] == 250
        got = wait_for(lambda: [m for m in sink.messages if "now@remote.example" in m.recipients])
        assert got, d.diagnostics()
        assert "hints database" in d.log("panic") and "damaged" in d.log("panic")
        assert d.proc is not None and d.proc.poll() is None        # still running
        assert send(d, "alice@test.example", ["again@remote.example"], MESSAGE)[0] == 250
        assert wait_for(lambda: len(sink.messages) >= 2), d.diagnostics()
    assert data_file_damage(path) is None
    db = HintsDB(str(d.spool), "retry")
    db.put("k", b"v")                                              # usable again
    assert db.get("k") == b"v"
    db.close()
