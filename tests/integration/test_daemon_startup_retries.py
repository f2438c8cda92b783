"""daemon_startup_retries and daemon_startup_sleep against a port another process holds:
the daemon logs Exim's "waiting ..." lines, starts once the port is free, and gives up
with "daemon abandoned" after its last try (Exim 4.96's lines are recorded in
tests/data/daemon_startup/exim-4.96.log)."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from tests.support.daemon import PymtaDaemon

DATA = Path(__file__).resolve().parents[1] / "data" / "daemon_startup" / "exim-4.96.log"

CONFIG = """\
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
local_interfaces = 127.0.0.1
{options}
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/box
"""


def holder(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def exims_lines(port: int) -> list[str]:
    return [line.replace("PORT", str(port)) for line in DATA.read_text().splitlines()
            if not line.startswith("#")]


def log_texts(d: PymtaDaemon, name: str = "main") -> list[str]:
    """The log lines without their time stamps."""
    return [line.split(" ", 2)[2] for line in d.log(name).splitlines()]


def test_gives_up_after_the_retries_with_exims_lines(tmp_path):
    d = PymtaDaemon(CONFIG.format(options="daemon_startup_retries = 2\n"
                                  "daemon_startup_sleep = 1s"), tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True)
    busy = holder(d.port)
    try:
        started = time.monotonic()
        r = d.run("-bdf", "-oX", str(d.port), timeout=30)
        took = time.monotonic() - started
    finally:
        busy.close()
    assert r.returncode == 1
    assert took >= 2                  # two pauses of one second
    assert log_texts(d) == exims_lines(d.port)
    assert log_texts(d, "panic") == exims_lines(d.port)[-1:]


def test_starts_when_the_port_becomes_free(tmp_path):
    d = PymtaDaemon(CONFIG.format(options="daemon_startup_retries = 5\n"
                                  "daemon_startup_sleep = 1s"), tmp_path)
    busy = holder(d.port)
    threading.Timer(1.5, busy.close).start()
    d.start()
    with d.client() as c:
        assert c.ehlo("x.test")[0] == 250
    waits = [t for t in log_texts(d) if "waiting 1s before trying again" in t]
    assert waits and waits[0].endswith("(5 more tries)")
    assert "daemon abandoned" not in d.log()


def test_no_retries_gives_up_at_once(tmp_path):
    d = PymtaDaemon(CONFIG.format(options="daemon_startup_retries = 0"), tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True)
    busy = holder(d.port)
    try:
        r = d.run("-bdf", "-oX", str(d.port), timeout=30)
    finally:
        busy.close()
    assert r.returncode == 1
    assert log_texts(d) == exims_lines(d.port)[-1:]
