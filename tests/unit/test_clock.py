"""pymta.clock: the expansion evaluator reads the time from its context's clock, and the
test-only PYMTA_TEST_CLOCK_OFFSET moves a whole pymta process's clock."""
from __future__ import annotations

import calendar
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pymta.clock import SYSTEM, FixedClock, SystemClock, day_number, parse_offset
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext

REPO = Path(__file__).resolve().parents[2]
# 2026-11-21 12:00:00 UTC: day 20778 since the epoch
NOON = calendar.timegm((2026, 11, 21, 12, 0, 0, 0, 0, 0))
DAY = 86400


def _x(text: str, at: float, **variables: str) -> str:
    return str(expand_string(text, ExpandContext(variables=variables, clock=FixedClock(at))))


def test_parse_offset():
    assert parse_offset("90") == 90
    assert parse_offset("400d") == 400 * DAY
    assert parse_offset("-3h") == -3 * 3600
    assert parse_offset("+1.5m") == 90
    with pytest.raises(ValueError):
        parse_offset("tomorrow")


def test_day_number_and_system_clock():
    assert day_number(FixedClock(NOON)) == 20778
    assert day_number(FixedClock(NOON - 12 * 3600 - 1)) == 20777     # UTC day boundary
    assert abs(SystemClock(DAY).time() - SYSTEM.time() - DAY + SYSTEM.offset) < 5


def test_prvs_and_srs_use_the_context_clock():
    # the values Exim 4.96 printed on 2026-11-21 (tests/data/expand/extra_cases.jsonl)
    assert _x("${prvs{a@b}{}}", NOON) == "prvs=0785d3dcae=a@b"
    assert _x("${srs_encode{}{a@b}{x}}", NOON) == "SRS0=9234=jk=b=a@x"
    assert _x("${prvs{a@b}{}}", NOON + DAY) != "prvs=0785d3dcae=a@b"
    assert _x("${srs_encode{}{a@b}{x}}", NOON + DAY).split("=")[2] == "jl"


@pytest.mark.parametrize("days_later,valid", [(0, "1"), (7, "1"), (8, ""), (-1, "")])
def test_prvscheck_expiry_by_clock(days_later, valid):
    signed = _x("${prvs{user@example.com}{secret}}", NOON)
    got = _x("${prvscheck{$a}{secret}{[$prvscheck_result]}}", NOON + days_later * DAY,
             a=signed)
    assert got == f"[{valid}]"


@pytest.mark.parametrize("days_later,valid", [(0, "y"), (31, "y"), (32, "n")])
def test_inbound_srs_age_by_clock(days_later, valid):
    encoded = _x("${srs_encode{secret}{user@example.com}{fwd.test}}", NOON)
    local = encoded.rpartition("@")[0]
    got = _x("${if inbound_srs{$a}{secret}{y}{n}}", NOON + days_later * DAY, a=local)
    assert got == valid


def test_child_context_keeps_the_clock():
    ctx = ExpandContext(clock=FixedClock(NOON))
    assert ctx.child(x="1").clock == ctx.clock


@pytest.fixture
def chatham():
    """Local time in Pacific/Chatham (UTC+13:45 in November) for the test's duration."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Chatham"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_tod_variables_use_the_clock_and_local_zone(chatham):
    assert _x("$tod_epoch", NOON) == str(NOON)
    assert _x("$tod_epoch_l", NOON) == str(NOON * 1_000_000)
    assert _x("$tod_zulu", NOON) == "20261121120000Z"
    assert _x("$tod_zone", NOON) == "+1345"
    assert _x("$tod_log", NOON) == "2026-11-22 01:45:00"
    assert _x("$tod_logfile", NOON) == "20261122"
    assert _x("$tod_full", NOON) == "Sun, 22 Nov 2026 01:45:00 +1345"
    assert _x("$tod_bsdinbox", NOON) == "Sun Nov 22 01:45:00 2026"


def test_offset_environment_moves_a_pymta_process():
    code = ("import time; real = time.time(); import pymta.clock as c; "
            "print(round((time.time() - real) / 86400), round((c.now() - real) / 86400))")
    env = dict(os.environ, PYTHONPATH=str(REPO), PYMTA_TEST_CLOCK_OFFSET="-400d")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["-400", "-400"]
