"""pymta.hints.inventory on real LMDB files: database kinds, record times, and the
compare-and-swap that lets pymta-tidydb run beside a daemon."""
from __future__ import annotations

import json

from pymta.hints import inventory
from pymta.hints.db import HintsDB
from pymta.hints.retry import RetryRecord
from pymta.hints.wait import WaitDB
from pymta.spool.ids import id_time


def test_kinds():
    assert inventory.db_type("retry") == "retry"
    assert inventory.db_type("wait-remote_smtp") == "wait"
    assert inventory.db_type("wait-") is None
    assert inventory.db_type("wait") is None
    assert inventory.db_type("../etc") is None
    assert inventory.db_type("wait-../x") is None


def test_replace_if_unchanged(tmp_path):
    spool = str(tmp_path)
    assert not inventory.replace_if_unchanged(spool, "retry", "k", b"x", None)
    assert not (tmp_path / "db" / "retry").exists()      # nothing is created
    HintsDB(spool, "retry").put("k", b"old")
    assert not inventory.replace_if_unchanged(spool, "retry", "k", b"other", None)
    assert inventory.get(spool, "retry", "k") == b"old"
    assert inventory.replace_if_unchanged(spool, "retry", "k", b"old", b"new")
    assert inventory.get(spool, "retry", "k") == b"new"
    assert inventory.replace_if_unchanged(spool, "retry", "k", b"new", None)
    assert inventory.records(spool, "retry") == []


def test_record_times(tmp_path):
    spool = str(tmp_path)
    rec = RetryRecord(first_failed=100, last_try=200, next_try=300)
    assert inventory.record_time("retry", "T:h:1.2.3.4", rec.encode()) == 200.0
    WaitDB(spool, "t").add("h", "1xZV4C-0005df-0H")
    WaitDB(spool, "t").add("h", "1xZV4D-0005df-0H")
    value = HintsDB(spool, "wait-t").get("h")
    assert value is not None
    # the newest message id's arrival time
    assert inventory.record_time("wait-t", "h", value) == float(id_time("1xZV4D-0005df-0H"))
    assert id_time("1xZV4D-0005df-0H") == id_time("1xZV4C-0005df-0H") + 1
    assert inventory.record_time("mtasts", "d", json.dumps({"fetched": 5}).encode()) == 5.0
    assert inventory.record_time("retry", "k", b"garbage") is None
    assert inventory.record_time("tls", "k", b"session") is None
