"""queue_only_override, queue_only_file and queue_only_load (with its latch): whether a
message is delivered at reception or left for a queue run, for messages on stdin
(-bm), in a local SMTP session (-bs) and through the daemon.  Exim 4.96's behaviour and
log lines are recorded in tests/data/queue_policy/exim-4.96.txt.  The load average is
pinned with the test-only PYMTA_TEST_LOAD_AVERAGE where an exact figure matters; the
real os.getloadavg() is used with thresholds no load can cross."""
from __future__ import annotations

import os
import time

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.wait import wait_until

CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
daemon_smtp_ports = SMTP_PORT
log_selector = +delay_delivery
acl_smtp_rcpt = accept
domainlist local_domains = test.example
{options}
begin routers
local:
  driver = accept
  domains = +local_domains
  transport = box
begin transports
box:
  driver = appendfile
  file = DIR/mail/box
"""

MESSAGE = b"Subject: queue policy\n\nbody\n"


def site(tmp_path, options: str, env: dict[str, str] | None = None) -> PymtaDaemon:
    d = PymtaDaemon(CONFIG.format(options=options), tmp_path, env=env)
    (tmp_path / "mail").mkdir()
    os.chmod(tmp_path / "mail", 0o777)
    (tmp_path / "spool" / "log").mkdir(parents=True)
    d.prepare()
    return d


def submit(d: PymtaDaemon, *od: str) -> None:
    r = d.run(*od, "-f", "a@test.example", "bob@test.example", input=MESSAGE)
    assert r.returncode == 0, r.stderr


def delivered(d: PymtaDaemon) -> bool:
    return (d.dir / "mail" / "box").exists()


def stays_queued(d: PymtaDaemon, count: int = 1) -> None:
    """Nothing is delivered: the message stays on the queue (a background delivery,
    had one been started, would have written the mailbox long before)."""
    time.sleep(1.5)
    assert not delivered(d)
    assert len(d.queue()) == count
    assert "=>" not in d.log()


@pytest.mark.parametrize("options,queued", [
    ("queue_only = true", False),                     # -odi overrides queue_only
    ("queue_only = true\nqueue_only_override = false", True),
    ("queue_only = false\nqueue_only_override = false", False),
])
def test_odi_and_queue_only_override(tmp_path, options, queued):
    d = site(tmp_path, options)
    submit(d, "-odi")
    if queued:
        stays_queued(d)
    else:
        assert delivered(d) and d.queue() == []


def test_odq_queues_even_without_override(tmp_path):
    d = site(tmp_path, "queue_only_override = false")
    submit(d, "-odq")
    stays_queued(d)


@pytest.mark.parametrize("od", ["-odi", "-odb"])
def test_queue_only_file_is_not_overridden_by_od(tmp_path, od):
    flag = tmp_path / "queue-now"
    d = site(tmp_path, f"queue_only_file = /nonexistent/file : {flag}")
    flag.write_text("")
    submit(d, od)
    stays_queued(d)
    assert "no immediate delivery" not in d.log()     # Exim logs nothing for the file
    flag.unlink()
    submit(d, "-odi")
    assert delivered(d) and len(d.queue()) == 1       # only the new message went


@pytest.mark.parametrize("load,queued", [("3.5", True), ("2.5", False)])
def test_queue_only_load_for_a_message_on_stdin(tmp_path, load, queued):
    d = site(tmp_path, "queue_only_load = 3", env={"PYMTA_TEST_LOAD_AVERAGE": load})
    submit(d, "-odi")
    if queued:
        stays_queued(d)
        assert "no immediate delivery: load average 3.50" in d.log()
    else:
        assert delivered(d)
        assert "no immediate delivery" not in d.log()


@pytest.mark.parametrize("threshold,queued", [("0", True), ("100000", False)])
def test_queue_only_load_with_the_real_load_average(tmp_path, threshold, queued):
    if queued and os.getloadavg()[0] == 0:
        pytest.skip("the load average is exactly 0 here: no load is above 0")
    d = site(tmp_path, f"queue_only_load = {threshold}")
    submit(d, "-odi")
    if queued:
        stays_queued(d)
        assert "no immediate delivery: load average " in d.log()
    else:
        assert delivered(d)


def test_queue_only_load_in_a_local_smtp_session(tmp_path):
    d = site(tmp_path, "queue_only_load = 3", env={"PYMTA_TEST_LOAD_AVERAGE": "3.5"})
    one = (b"MAIL FROM:<a@test.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"
           b"Subject: x\r\n\r\nbody\r\n.\r\n")
    r = d.run("-bs", "-odi", input=b"EHLO x\r\n" + one + one + b"QUIT\r\n")
    assert r.stdout.count("250 OK id=") == 2, r.stdout
    stays_queued(d, 2)
    assert d.log().count("no immediate delivery: load average 3.50") == 2


def test_daemon_queue_only_file_and_load(tmp_path):
    flag = tmp_path / "queue-now"
    d = site(tmp_path, f"queue_only_file = {flag}")
    flag.write_text("")
    d.start()
    with d.client() as c:
        c.ehlo("x.test")
        c.send_message("a@test.example", ["bob@test.example"], MESSAGE)
    stays_queued(d)
    flag.unlink()
    with d.client() as c:
        c.ehlo("x.test")
        c.send_message("a@test.example", ["bob@test.example"], MESSAGE)
    wait_until(lambda: delivered(d), 10, 0.1)
    assert len(d.queue()) == 1


def test_daemon_queue_only_load(tmp_path):
    d = site(tmp_path, "queue_only_load = 3", env={"PYMTA_TEST_LOAD_AVERAGE": "3.5"})
    d.start()
    with d.client() as c:
        c.ehlo("x.test")
        c.send_message("a@test.example", ["bob@test.example"], MESSAGE)
    d.wait_for_log("no immediate delivery: load average 3.50")
    stays_queued(d)
