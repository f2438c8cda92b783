"""queue_only_load's latch, -od against queue_only_override, and queue_only_file's
checks at configuration time (the behaviour end to end is in
tests/integration/test_queue_policy.py)."""
from __future__ import annotations

import pytest

from pymta.config import ConfigError, load_config
from pymta.message.queue_policy import LoadQueueing, apply_delivery_mode, queue_only_file_exists
from pymta.osutil import LOAD_AVERAGE_ENV

BASE = "primary_hostname = test.example\n{options}\nbegin routers\nr:\n  driver = accept\n" \
       "  transport = t\nbegin transports\nt:\n  driver = appendfile\n  file = /tmp/x\n"


def config(tmp_path, options: str):
    path = tmp_path / "configure"
    path.write_text(BASE.format(options=options))
    return load_config(str(path))


@pytest.mark.parametrize("latch,second", [("true", "load average 3.50"), ("false", None)])
def test_load_latches_for_the_connection_unless_told_not_to(tmp_path, monkeypatch, latch,
                                                            second):
    q = LoadQueueing(config(tmp_path, f"queue_only_load = 3\nqueue_only_load_latch = {latch}"))
    monkeypatch.setenv(LOAD_AVERAGE_ENV, "3.5")
    assert q.reason() == "load average 3.50"
    monkeypatch.setenv(LOAD_AVERAGE_ENV, "1.25")     # the load falls during the connection
    assert q.reason() == second


def test_load_at_the_threshold_is_not_above_it(tmp_path, monkeypatch):
    monkeypatch.setenv(LOAD_AVERAGE_ENV, "3")
    assert LoadQueueing(config(tmp_path, "queue_only_load = 3")).reason() is None
    assert LoadQueueing(config(tmp_path, "")).reason() is None      # unset: never


@pytest.mark.parametrize("options,mode,queue_only", [
    ("queue_only", "i", False), ("queue_only", "b", False), ("", "q", True),
    ("queue_only\nqueue_only_override = false", "i", True),
    ("queue_only_override = false", "q", True),
    ("queue_only_override = false", "f", False),
    ("queue_only", None, True),
])
def test_od_overrides_queue_only(tmp_path, options, mode, queue_only):
    c = config(tmp_path, options)
    apply_delivery_mode(c, mode)
    assert bool(c.main.get("queue_only")) is queue_only


def test_queue_only_file_is_looked_at_each_time(tmp_path):
    flag = tmp_path / "flag"
    c = config(tmp_path, f"queue_only_file = /nonexistent : {flag}")
    assert not queue_only_file_exists(c)
    flag.write_text("")
    assert queue_only_file_exists(c)


def test_queue_only_file_smtp_paths_are_told_apart(tmp_path):
    """An "smtp"-prefixed path stands for queue_smtp_domains = *, not queue_only."""
    flag = tmp_path / "flag"
    c = config(tmp_path, f"queue_only_file = smtp{flag}")
    flag.write_text("")
    assert not queue_only_file_exists(c)
    assert queue_only_file_exists(c, smtp=True)
    flag.unlink()
    assert not queue_only_file_exists(c, smtp=True)


@pytest.mark.parametrize("value,message", [
    ("smtprelative/file", 'queue_only_file item "relative/file" is not an absolute path'),
    ("/a : relative/file", 'queue_only_file item "relative/file" is not an absolute path'),
])
def test_queue_only_file_refusals(tmp_path, value, message):
    with pytest.raises(ConfigError) as exc:
        config(tmp_path, f"queue_only_file = {value}")
    assert exc.value.message.startswith(message)
    assert exc.value.line == 2
