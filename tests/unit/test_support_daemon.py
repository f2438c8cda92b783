"""Tests for tests/support/wait.py and tests/support/daemon.py (the daemon/CLI runners)."""

import os
import socket
import threading
import time

import pytest

from tests.support import PymtaDaemon, count_files, run_pymta, wait_for_files, wait_until

MINIMAL = """
primary_hostname = support.test
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
local_interfaces = 127.0.0.1
host_lookup =
acl_smtp_rcpt = accept
queue_only
begin routers
begin transports
"""


def test_wait_until_returns_value_and_times_out():
    box = []
    threading.Timer(0.05, box.append, args=("x",)).start()
    assert wait_until(lambda: box, timeout=2) == ["x"]
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        wait_until(lambda: False, timeout=0.1)
    assert time.monotonic() - t0 < 1


def test_wait_for_files_and_count(tmp_path):
    new = tmp_path / "new"
    assert count_files(new) == 0
    new.mkdir()
    (new / "sub").mkdir()  # directories are not counted
    threading.Timer(0.05, (new / "1.host").write_text, args=("m",)).start()
    files = wait_for_files(new, 1, timeout=2)
    assert files == [str(new / "1.host")]
    assert count_files(new, ".host") == 1
    with pytest.raises(TimeoutError):
        wait_for_files(new, 2, timeout=0.1)


def test_run_pymta_passes_config_and_macros(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("primary_hostname = PRIMARY\nspool_directory = /nonexistent\n")
    out = run_pymta(["-bP", "primary_hostname"], conf, macros={"PRIMARY": "from.macro"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "primary_hostname = from.macro"


def test_run_pymta_reports_config_errors(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("no_such_option_anywhere = 1\n")
    out = run_pymta(["-bV"], conf)
    assert out.returncode == 1
    assert "bad.conf" in out.stderr and "line 1" in out.stderr


def test_daemon_starts_answers_and_stops(tmp_path):
    d = PymtaDaemon(MINIMAL, tmp_path, ports=2)
    assert d.macros["PORT2"] == str(d.ports[1])
    with d:
        with d.client() as c:
            assert c.banner()[0] == 220
            assert c.ehlo()[0] == 250
        with d.client(d.ports[1]) as c2:  # -oX gives it both ports
            assert c2.banner()[0] == 220
        # as root, an exim_user is put in front (the daemon refuses to run without one)
        written = (tmp_path / "pymta.conf").read_text()
        assert written == d.config_text and written.endswith(MINIMAL)
        assert (written == MINIMAL) == (os.geteuid() != 0)
        assert d.wait_for_log(r"daemon started", timeout=5)
    assert d.proc.poll() is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", d.port), timeout=1).close()


def test_daemon_with_broken_config_raises_with_diagnostics(tmp_path):
    d = PymtaDaemon("spool_directory = SPOOL\nthis_is_not_an_option = 1\n", tmp_path,
                    start_timeout=10)
    with pytest.raises(RuntimeError, match="this_is_not_an_option|line 2"):
        d.start()
    assert d.proc.poll() is not None
