"""The ratelimit ACL condition: argument parsing, Exim's smoothing arithmetic with a pinned
clock, the update modes, unique= event sets, and the per-connection/message/command cache.

tests/data/ratelimit/ holds what Exim 4.96 printed for the same conditions (its -bh debug
output and exim_dumpdb listings); the tests compare pymta's numbers and messages with it.
"""
from __future__ import annotations

import calendar
import math
import re
import textwrap
import time
from pathlib import Path

import pytest

from pymta.acl import run_acl
from pymta.acl.ratelimit import (
    RateFacts,
    RatelimitCache,
    RatelimitError,
    check_ratelimit,
    measure,
    parse_ratelimit,
    smoothed_rate,
)
from pymta.clock import FixedClock
from pymta.config import load_config
from pymta.expand.context import ExpandContext
from pymta.hints.ratelimit import RatelimitDB, RateRecord

DATA = Path(__file__).resolve().parent.parent / "data" / "ratelimit"
MAIL = RateFacts("mail", "192.0.2.1", message_size=1000)
T0 = 1_900_000_000.0


def test_key_and_defaults():
    spec = parse_ratelimit("100 / 1h", MAIL)
    assert (spec.limit, spec.period, spec.per, spec.mode, spec.count) == \
        (100.0, 3600, "per_mail", "leaky", 1.0)
    assert spec.key == "1h/per_mail/192.0.2.1"
    assert parse_ratelimit("2.5K/30m/per_byte", MAIL).key == "30m/per_mail/192.0.2.1"
    assert parse_ratelimit("2.5K/30m/per_byte", MAIL).count == 1000.0
    assert parse_ratelimit("2.5K/30m/per_byte", MAIL).limit == 2560.0
    assert parse_ratelimit("1.5m/1h", MAIL).limit == 1.5 * 1024 * 1024
    spec = parse_ratelimit("1/1h/foo/bar/per_conn", MAIL)
    assert spec.key == "1h/per_conn/foo/bar"
    rcpt = RateFacts("rcpt", "192.0.2.1", local_part="u", domain="d.example")
    spec = parse_ratelimit("2/10s/per_addr", rcpt)
    assert (spec.key, spec.unique, spec.count) == ("10s/per_rcpt/unique/192.0.2.1",
                                                   "u@d.example", 1.0)
    data = RateFacts("data", "192.0.2.1", recipients_count=3)
    assert parse_ratelimit("1/1h/per_rcpt", data).count == 3.0
    assert parse_ratelimit("1/1h/per_cmd/count=2.5", MAIL).count == 2.5


def test_readonly_where_an_update_makes_no_sense():
    spec = parse_ratelimit("1/1h/per_rcpt", MAIL)
    assert (spec.mode, spec.count) == ("readonly", 0.0)
    with pytest.raises(RatelimitError, match="cannot be used in EHLO or HELO ACL"):
        parse_ratelimit("1/1h/per_mail/strict", RateFacts("helo"))
    assert parse_ratelimit("1/1h/per_conn/strict", RateFacts("helo")).mode == "strict"
    assert parse_ratelimit("1/1h/noupdate/strict", MAIL).mode == "readonly"


def _exim_cases() -> list[tuple[str, str]]:
    lines = (DATA / "errors.exim.txt").read_text().splitlines()
    return [tuple(line.split("\t", 1)) for line in lines]  # type: ignore[misc]


def test_errors_and_variables_match_exim(tmp_path):
    """Each condition of errors.exim.txt run in a MAIL ACL, in order, against one
    database (as Exim ran them): the same error text, or the same $sender_rate,
    $sender_rate_limit and $sender_rate_period."""
    spool = tmp_path / "spool"
    for cond, exim in _exim_cases():
        path = tmp_path / "configure"
        path.write_text(f"primary_hostname = test.example\nspool_directory = {spool}\n"
                        f"begin acl\nacl_mail:\n  warn ratelimit = {cond}\n  accept\n")
        cfg = load_config(str(path))
        ctx = ExpandContext(config=cfg, variables={
            "sender_host_address": "1.2.3.4", "message_size": "-1",
            "sender_address": "a@b.c"})
        res = run_acl(cfg, "acl_mail", "mail", ctx)
        if "temporarily rejected" in exim:
            assert res.verdict == "defer", cond
            assert res.log_message == exim.split("MAIL <a@b.c>: ", 1)[1], cond
        else:
            assert res.verdict == "accept", (cond, res.log_message)
            v = ctx.variables
            got = (f"rate={v['sender_rate']} limit={v['sender_rate_limit']} "
                   f"period={v['sender_rate_period']}")
            assert got == exim, cond


def _smoothing_blocks() -> list[dict[str, tuple[float, float, float, float] | None]]:
    """Per session: key -> (stored time, time of the check, Exim's printed rate, stored
    rate), or None for a key whose record the session did not update (leaky, over)."""
    blocks = []
    last: dict[str, tuple[float, float]] = {}       # key -> (stored time, check time)
    for block in (DATA / "smoothing.exim.txt").read_text().split("---")[:-1]:
        printed = {}
        for key, rate in re.findall(r"condition count=\S+ \S+?/(\S+)\n(?:.*\n)*?"
                                    r">>> ratelimit computed rate (\S+)", block):
            printed[key.split("/", 2)[-1]] = float(rate)
        out: dict[str, tuple[float, float, float, float] | None] = {}
        for stamp, rate, key in re.findall(r"^(\S+ \S+) rate:\s+(\S+) key: (\S+)$", block,
                                           re.M):
            # exim_dumpdb's local time (the oracle ran in UTC); only differences matter
            whole, _, micro = stamp.partition(".")
            stored = calendar.timegm(time.strptime(whole, "%d-%b-%Y %H:%M:%S")) \
                + int(micro) / 1e6
            name = key.split("/", 2)[-1]
            if key in last and last[key][0] == stored:
                out[name] = None
                continue
            # Exim stores the whole seconds of time() (which can lag the precise clock by
            # a tick) with the microseconds of the precise clock, and computes with the
            # precise time: the check happened after the previous one.
            checked = stored + 1 if key in last and stored < last[key][1] else stored
            last[key] = (stored, checked)
            out[name] = (stored, checked, printed[name], float(rate))
        blocks.append(out | {"printed": printed})  # type: ignore[operator]
    return blocks


def test_smoothing_matches_exim_numbers(tmp_path):
    """Replay Exim's sessions (2 / 4s strict, and leaky with count=1.5) with the clock
    pinned to Exim's times: the same rates, the same leaky non-updates."""
    specs = {"strictkey": parse_ratelimit("2 / 4s / per_mail / strict / strictkey", MAIL),
             "leakykey": parse_ratelimit("2 / 4s / per_mail / leaky / count=1.5 / leakykey",
                                         MAIL)}
    stored: dict[str, RateRecord | None] = {"strictkey": None, "leakykey": None}
    for block in _smoothing_blocks():
        printed: dict[str, float] = block.pop("printed")  # type: ignore[assignment]
        strict = block["strictkey"]
        assert strict is not None              # strict always updates
        for name, entry in block.items():
            # a leaky check that did not update ran just after the strict one
            now = entry[1] if entry is not None else strict[1] + 0.001
            rate, new = measure(specs[name], stored[name], now)
            assert f"{rate:.1f}" == f"{printed[name]:.1f}", (name, block)
            assert (new is not None) == (entry is not None), (name, block)
            if new is not None and entry is not None:
                assert math.isclose(new.rate, entry[3], abs_tol=0.0006), (name, block)
                stored[name] = RateRecord(entry[0], new.rate)


def test_smoothing_formula_with_pinned_clock():
    rec = RateRecord(T0, 10.0)
    # one period later with no events in between: 10/e + (1 - 1/e) * 1
    assert smoothed_rate(rec, T0 + 3600, 3600, 1) == pytest.approx(10 / math.e + 1 - 1 / math.e)
    # long silence: an isolated event counts as "count per period"
    assert smoothed_rate(rec, T0 + 100 * 3600, 3600, 1) == 1.0
    # the clock going back is a tiny interval, not a division by zero
    assert smoothed_rate(rec, T0 - 5, 3600, 1) == pytest.approx(11.0)
    assert smoothed_rate(None, T0, 3600, 2.5) == 2.5


def test_modes_and_unique_sets():
    leaky = parse_ratelimit("2/1h/leaky", MAIL)
    rate, new = measure(leaky, RateRecord(T0, 1.5), T0 + 1)
    assert rate >= 2 and new is None                    # over the limit: not stored
    strict = parse_ratelimit("2/1h/strict", MAIL)
    rate, new = measure(strict, RateRecord(T0, 1.5), T0 + 1)
    assert new is not None and new.rate == rate
    ro = parse_ratelimit("2/1h/readonly", MAIL)
    rate, new = measure(ro, RateRecord(T0, 1.5), T0 + 1800)
    assert new is None and rate == pytest.approx(1.5 * math.exp(-0.5))
    u = parse_ratelimit("10/1h/unique=a", MAIL)
    rate, first = measure(u, None, T0)
    assert rate == 1.0 and first is not None and len(first.events) == 1
    rate, again = measure(u, first, T0 + 10)            # seen before: count 0
    assert rate < 1.0 and again is not None and again.events == first.events
    b = parse_ratelimit("10/1h/unique=b", MAIL)
    rate, second = measure(b, again, T0 + 20)
    assert rate > 1.0 and second is not None and len(second.events) == 2
    rate, late = measure(u, second, T0 + 3700)          # set older than p: thrown away
    assert late is not None and late.epoch == T0 + 3700 and len(late.events) == 1


def test_cache_per_connection_message_and_command(tmp_path):
    db = RatelimitDB(str(tmp_path))
    cache = RatelimitCache()
    mail = parse_ratelimit("100/1h/per_mail", MAIL)
    conn = parse_ratelimit("100/1h/per_conn", MAIL)
    cmd = parse_ratelimit("100/1h/per_cmd", MAIL)
    for spec in (mail, conn, cmd):
        assert check_ratelimit(spec, db, cache, "mail", T0) == 1.0
        assert check_ratelimit(spec, db, cache, "mail", T0 + 1) == 1.0     # cached
    cache.new_command()
    assert check_ratelimit(cmd, db, cache, "mail", T0 + 2) > 1.9
    assert check_ratelimit(mail, db, cache, "mail", T0 + 2) == 1.0
    cache.new_message()
    assert check_ratelimit(mail, db, cache, "mail", T0 + 2) > 1.9
    assert check_ratelimit(conn, db, cache, "mail", T0 + 2) == 1.0
    ro = parse_ratelimit("100/1h/per_conn/readonly", MAIL)
    assert check_ratelimit(ro, db, cache, "mail", T0 + 2) == pytest.approx(1.0, abs=0.001)
    assert db.get("1h/per_conn/192.0.2.1") is not None


def test_acl_sets_variables_with_the_context_clock(tmp_path):
    path = tmp_path / "configure"
    path.write_text(textwrap.dedent(f"""\
        primary_hostname = test.example
        spool_directory = {tmp_path}/spool
        begin acl
        check:
          deny ratelimit = 1.5 / 1h / strict
          accept
        """))
    cfg = load_config(str(path))
    verdicts = []
    for offset in (0, 1, 2, 7200 * 3):
        ctx = ExpandContext(config=cfg, variables={"sender_host_address": "192.0.2.9"},
                            clock=FixedClock(T0 + offset))
        verdicts.append((run_acl(cfg, "check", "mail", ctx).verdict,
                         ctx.variables["sender_rate"]))
    assert verdicts == [("accept", "1.0"), ("deny", "2.0"), ("deny", "3.0"),
                        ("accept", "1.0")]
