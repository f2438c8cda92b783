"""apply_timezone: the ``timezone`` option sets or removes TZ for the whole process."""
from __future__ import annotations

import os
import time

import pytest

from pymta.config import load_config
from pymta.timezone import apply_timezone


@pytest.fixture(autouse=True)
def _restore_tz(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def _config(tmp_path):
    def write(line: str):
        path = tmp_path / "pymta.conf"
        path.write_text(f"primary_hostname = x.example\n{line}\n")
        return load_config(str(path))
    return write


def test_set_timezone_changes_local_time(_config):
    apply_timezone(_config("timezone = PYM-05:30"))
    assert os.environ["TZ"] == "PYM-05:30"
    assert time.strftime("%z", time.localtime(0)) == "+0530"


def test_unset_leaves_the_inherited_zone(_config):
    apply_timezone(_config(""))
    assert os.environ["TZ"] == "UTC"


def test_empty_value_removes_tz(_config):
    apply_timezone(_config("timezone ="))
    assert "TZ" not in os.environ
