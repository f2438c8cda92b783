"""smtp_receiver_threads: receivers that serve several SMTP sessions at once, one thread
each, against the real daemon over loopback sockets.

What must hold whatever the number of threads: every message gets an id of its own, the
connection limits count sessions (not processes), a stopping daemon answers 421 to a
session in progress, and a bad value is refused at -bV."""
from __future__ import annotations

import re
import signal
import threading
import time

import psutil

from tests.support.daemon import PymtaDaemon, run_pymta
from tests.support.smtp_replay import CONFIG, RawClient, connect_when_free, limits_daemon

MESSAGE = "Subject: threads\r\n\r\nbody\r\n."


def _send_one(port: int, n: int, replies: list[str], start: threading.Barrier) -> None:
    with RawClient(port) as c:
        assert c.reply().startswith("220 ")
        start.wait(10)          # every session open before any message is sent
        c.cmd(f"EHLO client{n}.test")
        assert c.cmd(f"MAIL FROM:<s{n}@test.example>") == "250 OK"
        assert c.cmd(f"RCPT TO:<r{n}@test.example>").startswith("250 ")
        assert c.cmd("DATA").startswith("354 ")
        replies.append(c.cmd(MESSAGE))
        c.cmd("QUIT")


def _receivers(d: PymtaDaemon) -> list[psutil.Process]:
    """The daemon's receiver processes (by their titles: waiting or handling)."""
    assert d.proc is not None
    titles = ("pymta: receiver", "pymta: handling incoming")
    return [p for p in psutil.Process(d.proc.pid).children()
            if " ".join(p.cmdline()).startswith(titles)]


def test_concurrent_sessions_share_receiver_processes(tmp_path):
    d = limits_daemon(tmp_path, "smtp_receiver_threads = 4\nlog_selector = +pid")
    sessions = 12
    replies: list[str] = []
    start = threading.Barrier(sessions)
    clients = [threading.Thread(target=_send_one, args=(d.port, n, replies, start))
               for n in range(sessions)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(30)
    assert len(replies) == sessions and all(r.startswith("250 OK id=") for r in replies)
    ids = {r.split("id=")[1] for r in replies}
    assert len(ids) == sessions                         # no id given twice
    assert sorted(ids) == d.queue()
    arrivals = [line for line in d.log().splitlines() if " <= " in line]
    pids = {re.search(r"\[(\d+)\]", line).group(1) for line in arrivals}  # type: ignore[union-attr]
    # 12 sessions at once need at least 3 receivers of 4 threads, and got no more
    # processes than the pool's spare threads allow
    assert 3 <= len(pids) < sessions
    assert 3 <= len(_receivers(d)) <= 5
    d.stop()


def test_limits_count_sessions_not_processes(tmp_path):
    """smtp_accept_max = 4 with 2 threads per receiver: two receivers; the fifth
    connection is refused by the master, and the per-host limit counts the sessions of
    all threads."""
    d = limits_daemon(tmp_path, "smtp_receiver_threads = 2\nsmtp_accept_max = 4\n"
                                "smtp_accept_max_per_host = 3")
    held = [connect_when_free(d.port) for _ in range(3)]
    with RawClient(d.port) as fourth:           # the same host's fourth session
        assert fourth.reply().startswith("421 Too many concurrent SMTP connections from")
    held.append(connect_when_free(d.port, "127.0.0.2"))
    assert len(_receivers(d)) == 2
    deadline = time.monotonic() + 10
    while True:          # the master notices the saturation at its next look
        with RawClient(d.port, "127.0.0.3") as fifth:
            reply = fifth.reply()
        if reply.startswith("421 ") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert reply.startswith("421 ") and "Too many concurrent SMTP connections" in reply
    held.pop().close()
    time.sleep(0.3)
    with RawClient(d.port, "127.0.0.3") as sixth:
        assert sixth.reply().startswith("220 ")
    for c in held:
        c.close()
    d.stop()


def test_stopping_daemon_answers_421_in_every_thread(tmp_path):
    d = limits_daemon(tmp_path, "smtp_receiver_threads = 3")
    held = [connect_when_free(d.port) for _ in range(3)]
    for c in held:
        assert c.cmd("EHLO x.test").startswith("250-")
    # each receiver's title lists the sessions of all its threads
    titles = " ".join(" ".join(p.cmdline()) for p in _receivers(d))
    assert titles.count("handling incoming connection from (x.test) [127.0.0.1]") == 3
    d.signal(signal.SIGTERM)
    time.sleep(0.5)
    for c in held:
        assert c.cmd("NOOP").startswith("421 ")
    assert d.stop() == 0


def test_bad_thread_counts_are_refused(tmp_path):
    for value in ("0", "65"):
        conf = tmp_path / f"t{value}.conf"
        conf.write_text(CONFIG.replace("SPOOL", str(tmp_path)).replace(
            "OPTIONS", f"smtp_receiver_threads = {value}"))
        r = run_pymta(["-bV"], conf)
        assert r.returncode != 0
        assert "smtp_receiver_threads must be between 1 and 64" in r.stdout + r.stderr


def test_control_debug_needs_one_session_per_process(tmp_path):
    """A session's debug file would collect the other sessions of its process."""
    conf = tmp_path / "debug.conf"
    conf.write_text(CONFIG.replace("SPOOL", str(tmp_path)).replace(
        "OPTIONS", "smtp_receiver_threads = 2").replace(
        "acl_rcpt:\n  accept", "acl_rcpt:\n  accept control = debug"))
    r = run_pymta(["-bV"], conf)
    assert r.returncode != 0
    assert "debug.conf line 9: control = debug is not supported with " \
           "smtp_receiver_threads greater than 1" in r.stdout + r.stderr
