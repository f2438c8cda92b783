"""Files left by killed processes and corrupt -H files (issue 7, item 10, spool part).

Queue runs (``pymta -q``) and the daemon's start move orphaned -D files and messages
with a corrupt -H to spool/corrupt/, remove stale temporaries, journals and msglogs,
and name each in the paniclog; files younger than ORPHAN_AGE are left alone.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from pymta.spool.tidy import ORPHAN_AGE, filesystem_now
from tests.integration.conftest import BASE_CONFIG, _write_users, maildir_messages, wait_for
from tests.integration.test_daemon_e2e import MESSAGE, send
from tests.support.daemon import PymtaDaemon

# valid message ids for files that no message owns
ORPHAN_D, FRESH_D, ORPHAN_J, ORPHAN_LOG, TEMP = (
    "1xZ1aa-0002aa-0a", "1xZ1aa-0002aa-0b", "1xZ1aa-0002aa-0c", "1xZ1aa-0002aa-0d",
    "1xZ1aa-0002aa-0e")


def _prepared(tmp_path: Path) -> PymtaDaemon:
    """A daemon object whose configuration is written but which is not started."""
    _write_users(tmp_path)
    d = PymtaDaemon(BASE_CONFIG, tmp_path, macros={"SINK_PORT": "9"})
    d.prepare()
    (d.spool / "log").mkdir(parents=True)
    return d


def _queue_message(d: PymtaDaemon, rcpt: str) -> str:
    before = set(d.queue())
    r = d.run("-odq", rcpt, input=b"Subject: queued\n\nbody\n")
    assert r.returncode == 0, r.stderr
    (msgid,) = set(d.queue()) - before
    return msgid


def _make(path: Path, text: str, old: bool) -> Path:
    path.write_text(text)
    # left by a killed pymta process: owned like the spool (exim_user when run as root)
    st = path.parent.stat()
    os.chown(path, st.st_uid, st.st_gid)
    if old:
        # ages are measured on the filesystem's clock (pymta's may be moved by
        # PYMTA_TEST_CLOCK_OFFSET in tests/run_elsewhen.py)
        stamp = filesystem_now(str(path.parent)) - ORPHAN_AGE - 600
        os.utime(path, (stamp, stamp))
    return path


def _debris(spool: Path) -> dict[str, Path]:
    inp, msglog = spool / "input", spool / "msglog"
    inp.mkdir(exist_ok=True)
    msglog.mkdir(exist_ok=True)
    return {
        "orphan_d": _make(inp / f"{ORPHAN_D}-D", f"{ORPHAN_D}-D\nbody\n", True),
        "fresh_d": _make(inp / f"{FRESH_D}-D", f"{FRESH_D}-D\nbody\n", False),
        "old_j": _make(inp / f"{ORPHAN_J}-J", "x@y.example\n", True),
        "old_log": _make(msglog / ORPHAN_LOG, "2026-01-01 00:00:00 something\n", True),
        "old_tmp": _make(inp / f"hdr.{TEMP}.4242", "partial", True),
        "fresh_tmp": _make(inp / f"hdr.{TEMP}.4243", "partial", False),
    }


def _corrupt(spool: Path, msgid: str) -> int:
    h = spool / "input" / f"{msgid}-H"
    h.write_bytes(h.read_bytes()[:60])
    return 60


def test_queue_run_tidies_debris_and_sets_corrupt_message_aside(tmp_path):
    d = _prepared(tmp_path)
    good = _queue_message(d, "alice@test.example")
    bad = _queue_message(d, "bob@test.example")
    size = _corrupt(d.spool, bad)
    files = _debris(d.spool)

    r = d.run("-q")
    assert r.returncode == 0, r.stderr
    assert len(maildir_messages(tmp_path, "alice")) == 1      # the good one is delivered
    corrupt = d.spool / "corrupt"
    assert sorted(p.name for p in corrupt.iterdir()) == sorted(
        [f"{bad}-H", f"{bad}-D", f"{bad}-msglog", f"{ORPHAN_D}-D"])
    assert not (d.spool / "input" / f"{bad}-H").exists()
    for gone in ("orphan_d", "old_j", "old_log", "old_tmp"):
        assert not files[gone].exists(), gone
    for kept in ("fresh_d", "fresh_tmp"):                      # may be in use right now
        assert files[kept].exists(), kept
    panic = d.log("panic")
    assert f"{bad} Format error in spool file {bad}-H: size={size} (" in panic
    assert f"{ORPHAN_D} spool file {ORPHAN_D}-D has no -H file" in panic
    for name in (f"{ORPHAN_J}-J", f"msglog/{ORPHAN_LOG}", f"hdr.{TEMP}.4242"):
        assert name in panic, name
    assert f"hdr.{TEMP}.4243" not in panic and FRESH_D not in panic
    assert good not in panic
    # nothing is left to report on the next run
    assert d.run("-q").returncode == 0
    assert d.log("panic") == panic
    assert d.queue() == []


def test_forced_delivery_of_corrupt_message_sets_it_aside(tmp_path):
    d = _prepared(tmp_path)
    bad = _queue_message(d, "bob@test.example")
    _corrupt(d.spool, bad)
    r = d.run("-M", bad)
    assert r.returncode == 1 and f"{bad}-H is corrupt" in r.stderr
    assert (d.spool / "corrupt" / f"{bad}-H").exists()
    assert f"Format error in spool file {bad}-H" in d.log("panic")
    assert d.queue() == []


def test_daemon_start_tidies_debris(tmp_path):
    d = _prepared(tmp_path)
    files = _debris(d.spool)
    d.start()
    try:
        assert (d.spool / "corrupt" / f"{ORPHAN_D}-D").exists(), d.diagnostics()
        assert not files["old_tmp"].exists() and not files["old_j"].exists()
        assert not files["old_log"].exists()
        assert files["fresh_d"].exists() and files["fresh_tmp"].exists()
        assert f"{ORPHAN_D}-D has no -H file" in d.log("panic")
        # and the daemon works as usual
        assert send(d, "a@outside.example", ["alice@test.example"], MESSAGE)[0] == 250
        assert wait_for(lambda: maildir_messages(tmp_path, "alice"), 15)
    finally:
        d.stop()


def test_daemon_queue_run_sets_corrupt_message_aside(tmp_path):
    d = _prepared(tmp_path)
    bad = _queue_message(d, "bob@test.example")
    _corrupt(d.spool, bad)
    d.args = ["-q1s"]
    d.start()
    try:
        assert wait_for(lambda: (d.spool / "corrupt" / f"{bad}-H").exists(), 15), \
            d.diagnostics()
        d.wait_for_log(f"Format error in spool file {bad}-H", 5, name="panic")
    finally:
        d.stop()


def test_an_exim_format_file_pymta_cannot_read_is_left_untouched(tmp_path):
    """A complete -H in Exim's format that pymta still cannot parse (written by another
    MTA, say): reported once in the paniclog, left where it is."""
    d = _prepared(tmp_path)
    msgid = _queue_message(d, "bob@test.example")
    h = d.spool / "input" / f"{msgid}-H"
    lines = h.read_text().split("\n")
    lines[2] = "not-a-sender-line"          # the sender line, in a form pymta rejects
    h.write_text("\n".join(lines))
    before = h.read_bytes()
    d.run("-q")
    d.run("-q")
    assert h.read_bytes() == before and (d.spool / "input" / f"{msgid}-D").exists()
    panic = d.log("panic")
    assert panic.count(f"spool file {msgid}-H cannot be read by pymta") == 1, panic
    assert "left untouched" in panic
    assert msgid in d.run("-bp").stdout


def test_a_wire_format_message_from_exim_is_left_for_exim(tmp_path):
    """Exim's spool_wireformat (tests/data/spool_wireformat): the -D lines end in CRLF.
    pymta would deliver them so, so it leaves the message alone: -M says so, a queue
    run reports it once in the paniclog and leaves the files as they were, -bp lists
    it."""
    d = _prepared(tmp_path)
    data = Path(__file__).resolve().parents[1] / "data" / "spool_wireformat"
    msgid = "1xZon7-0005or-0z"
    own = _queue_message(d, "bob@test.example")    # pymta's own file: its owner
    owner = os.stat(d.spool / "input" / f"{own}-D")
    for suffix in ("-H", "-D"):
        copy = d.spool / "input" / f"{msgid}{suffix}"
        shutil.copy(data / f"{msgid}{suffix}", copy)
        os.chmod(copy, 0o640)
        os.chown(copy, owner.st_uid, owner.st_gid)
    before = (d.spool / "input" / f"{msgid}-D").read_bytes()
    proc = d.run("-M", msgid)
    assert proc.returncode == 1
    assert "cannot be read by pymta; the message was left where it is" in proc.stderr
    d.run("-q")
    assert (d.spool / "input" / f"{msgid}-D").read_bytes() == before
    panic = d.log("panic")
    assert panic.count(f"spool file {msgid}-H cannot be read by pymta") == 1, panic
    assert "wire format (written with spool_wireformat)" in panic
    assert msgid in d.run("-bp").stdout
