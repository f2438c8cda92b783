"""The seen ACL condition (Exim 4.96): parsing, before/since tests, create, update,
refresh, readonly and write, replayed against what Exim 4.96 did (tests/data/seen/)."""
from __future__ import annotations

import calendar
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pymta.acl import run_acl
from pymta.acl.seen import SeenError, SeenSpec, decide, parse_seen
from pymta.clock import FixedClock
from pymta.config import load_config
from pymta.expand.context import ExpandContext
from pymta.hints.seen import SeenDB
from tests.support.recording_log import RecordingLog

DATA = Path(__file__).resolve().parent.parent / "data" / "seen"


def test_parse():
    assert parse_seen("-5m / key=a_b", "192.0.2.1") == SeenSpec(True, 300, "a_b", "")
    assert parse_seen("1h", "192.0.2.1") == SeenSpec(False, 3600, "192.0.2.1", "")
    # later options override earlier ones
    assert parse_seen("5s/write/readonly", "h").mode == "readonly"
    assert parse_seen("5s/readonly/write/refresh=1d/key=", "h") == \
        SeenSpec(False, 5, "", "write", 86400)
    for bad, text in (("xx", "failed to parse 'xx'"), ("", "failed to parse ''"),
                      ("-5s/foo", "unrecognised option 'foo' in '-5s/foo'"),
                      ("5s/refresh=xx/key=r", "failed to parse '5s/refresh=xx/key=r'")):
        with pytest.raises(SeenError) as exc:
            parse_seen(bad, "h")
        assert str(exc.value) == text


def test_decide():
    grey = parse_seen("-5m/key=k", "h")
    assert decide(grey, None, 1000) == (False, 1000)               # created
    assert decide(grey, 1000, 1200) == (False, None)               # too soon
    assert decide(grey, 1000, 1300) == (True, None)                # long enough ago
    assert decide(grey, 1000, 1000 + 864000) == (True, 1000 + 864000)   # refreshed
    since = parse_seen("5m/key=k", "h")
    assert decide(since, 1000, 1299) == (True, 1299)               # and updated
    assert decide(since, 1000, 1300) == (False, 1300)
    assert decide(parse_seen("5m/key=k/readonly", "h"), None, 1000) == (False, None)
    assert decide(parse_seen("-5m/key=k/write", "h"), 1000, 1100) == (False, 1100)


def _stamp(text: str) -> int:
    # exim_dumpdb's local time (the oracle ran in UTC); only differences are used
    return calendar.timegm(time.strptime(text, "%d-%b-%Y %H:%M:%S"))


def _sessions() -> list[tuple[list[str], dict[str, int]]]:
    out = []
    for chunk in (DATA / "sequence.exim.txt").read_text().split("--- session at ")[1:]:
        run, db = chunk.split("--- db\n")
        logs = [ln[5:] for ln in run.splitlines() if ln.startswith("LOG: ")]
        stamps = {ln.split("\t")[0]: _stamp(ln.split("\t")[1]) for ln in db.splitlines()}
        out.append((logs, stamps))
    return out


def test_sequence_matches_exim(tmp_path):
    """Exim's five sessions (at +0, +0.5, +3.5, +3.7, +6.7 seconds), with the clock
    pinned to the second Exim wrote: the same conditions true, the same records."""
    conf = tmp_path / "configure"
    conf.write_text((DATA / "sequence.conf").read_text().replace("SPOOL",
                                                                 str(tmp_path / "spool")))
    cfg = load_config(str(conf))
    sessions = _sessions()
    base = sessions[0][1]["1.2.3.4"]
    db = SeenDB(str(tmp_path / "spool"))
    for logs, stamps in sessions:
        now = stamps["1.2.3.4"]          # "seen = 1s" updates it in every session
        log = RecordingLog()
        ctx = ExpandContext(config=cfg, variables={"sender_host_address": "1.2.3.4"},
                            clock=FixedClock(now + 0.25))
        assert run_acl(cfg, "acl_mail", "mail", ctx, SimpleNamespace(log=log)).verdict \
            == "accept"
        assert [t for _, t in log.lines] == logs
        ours = {k: db.get(k) for k in stamps}
        assert {k: v - base for k, v in ours.items() if v is not None} == \
            {k: v - base for k, v in stamps.items()}
        assert db.get("sro") is None and db.get("e2") is None


def test_bad_argument_is_an_acl_error(tmp_path):
    conf = tmp_path / "configure"
    conf.write_text(f"spool_directory = {tmp_path}\nbegin acl\nm:\n"
                    "  warn seen = ${if eq{1}{1}{-5s/nokey}}\n  accept\n")
    cfg = load_config(str(conf))
    res = run_acl(cfg, "m", "mail", ExpandContext(config=cfg, variables={}))
    assert (res.verdict, res.log_message) == ("defer",
                                              "unrecognised option 'nokey' in '-5s/nokey'")
