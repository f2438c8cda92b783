"""pymta.spool.tidy: what is never touched (files in use), and what is set aside."""
from __future__ import annotations

import os

from pymta.spool import files
from pymta.spool.lock import lock_message
from pymta.spool.model import SpoolMessage, SpoolRecipient
from pymta.spool.tidy import ORPHAN_AGE, corrupt_dir, set_aside_corrupt, tidy_spool
from tests.support.recording_log import RecordingLog

MID = "1xZ1aa-0002aa-0a"


def _orphan_d(spool: str, now: float) -> str:
    files.ensure_spool_dirs(spool)
    path = files.data_path(spool, MID)
    with open(path, "w") as f:
        f.write(f"{MID}-D\nbody\n")
    os.utime(path, (now - ORPHAN_AGE - 1, now - ORPHAN_AGE - 1))
    return path


def test_old_orphan_data_moved_aside_and_logged(tmp_path):
    spool, log, now = str(tmp_path), RecordingLog(), 2_000_000_000.0
    _orphan_d(spool, now)
    tidy_spool(spool, log, now=now)
    assert os.listdir(corrupt_dir(spool)) == [f"{MID}-D"]
    assert log.lines[0][0] == "panic" and f"{MID}-D has no -H file" in log.lines[0][1]


def test_orphan_data_younger_than_threshold_is_left(tmp_path):
    spool, log = str(tmp_path), RecordingLog()
    path = _orphan_d(spool, 2_000_000_000.0)
    tidy_spool(spool, log, now=2_000_000_000.0 - 2)          # one second too young
    assert os.path.exists(path) and log.lines == []


def test_locked_orphan_data_is_left(tmp_path):
    spool, log, now = str(tmp_path), RecordingLog(), 2_000_000_000.0
    path = _orphan_d(spool, now)
    with lock_message(spool, MID):
        tidy_spool(spool, log, now=now)
    assert os.path.exists(path) and log.lines == []


def _spool_message(spool: str) -> None:
    files.ensure_spool_dirs(spool)
    msg = SpoolMessage(MID, "u", 1, 1, "s@example.org", 1_700_000_000,
                       recipients=[SpoolRecipient("r@example.org")])
    files.write_spool(spool, msg, b"body\n")


def test_corrupt_header_left_while_locked(tmp_path):
    spool, log = str(tmp_path), RecordingLog()
    _spool_message(spool)
    with open(files.header_path(spool, MID), "r+b") as f:
        f.truncate(20)
    with lock_message(spool, MID):
        assert not set_aside_corrupt(spool, MID, "bad", log)
    assert os.path.exists(files.header_path(spool, MID)) and log.lines == []
    assert set_aside_corrupt(spool, MID, "bad", log)
    assert sorted(os.listdir(corrupt_dir(spool))) == [f"{MID}-D", f"{MID}-H"]
    assert "Format error in spool file" in log.text()


def test_header_replaced_by_a_good_one_is_not_moved(tmp_path):
    spool, log = str(tmp_path), RecordingLog()
    _spool_message(spool)
    assert not set_aside_corrupt(spool, MID, "was bad when listed", log)
    assert os.path.exists(files.header_path(spool, MID)) and log.lines == []


def test_message_being_spooled_is_locked_until_its_header_is_in_place(tmp_path, monkeypatch):
    # Even with a clock that makes the new -D look ancient, a tidy running while -H is
    # being written must leave the message alone: the writer holds the message lock.
    spool, log = str(tmp_path), RecordingLog()
    files.ensure_spool_dirs(spool)
    seen = {}
    write_header = files._write_header_file

    def tidy_then_write(spool_dir, msg):
        seen["lock"] = lock_message(spool_dir, msg.id)
        tidy_spool(spool_dir, log, now=4_000_000_000.0)
        write_header(spool_dir, msg)

    monkeypatch.setattr(files, "_write_header_file", tidy_then_write)
    msg = SpoolMessage(id=MID, originator_login="u", originator_uid=1, originator_gid=1,
                       sender="a@b.example", received_time=1_700_000_000,
                       recipients=[SpoolRecipient("c@d.example")])
    files.write_spool(spool, msg, b"Subject: x\n\nbody\n")
    assert seen["lock"] is None                       # somebody (the writer) held it
    assert log.lines == [] and not os.path.exists(corrupt_dir(spool))
    assert os.path.exists(files.data_path(spool, MID))
    assert lock_message(spool, MID) is not None       # released once -H was in place
