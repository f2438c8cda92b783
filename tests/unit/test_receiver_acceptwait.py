"""AcceptWait: how idle receivers wait for connections."""
from __future__ import annotations

import os
import select
import socket
import time

import pytest

from pymta.daemon.receiver import AcceptWait


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    s.setblocking(False)
    return s


def test_reports_the_ready_listener_and_the_wakeup_pipe():
    lst = _listener()
    r, w = os.pipe()
    waiter = AcceptWait([lst], r)
    try:
        assert waiter.wait(0.05) == []
        os.write(w, b"x")
        assert waiter.wait(1) == [None]
        os.read(r, 1)
        with socket.create_connection(lst.getsockname()):
            assert waiter.wait(1) == [lst]
    finally:
        waiter.close()
        lst.close()
        os.close(r)
        os.close(w)


@pytest.mark.skipif(not hasattr(select, "EPOLLEXCLUSIVE"), reason="no EPOLLEXCLUSIVE here")
def test_one_connection_wakes_one_idle_waiter_not_all():
    """Four processes wait on one listener; one connection must not wake all four (each
    woken one without a connection to accept is wasted CPU per connection)."""
    lst = _listener()
    report_r, report_w = os.pipe()
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            wake_r, _wake_w = os.pipe()
            waiter = AcceptWait([lst], wake_r)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if waiter.wait(0.2):
                    os.write(report_w, b"w")
                    time.sleep(1.0)        # do not accept: the others must stay asleep
                    break
            os._exit(0)
        children.append(pid)
    time.sleep(0.5)                        # all four are waiting
    with socket.create_connection(lst.getsockname()):
        time.sleep(0.6)
        os.set_blocking(report_r, False)
        try:
            woken = len(os.read(report_r, 16))
        except BlockingIOError:
            woken = 0
    for pid in children:
        os.waitpid(pid, 0)
    lst.close()
    assert 1 <= woken <= 2


def test_a_receiver_whose_session_thread_dies_retires(tmp_path):
    """smtp_receiver_threads: a session thread that dies of an error (outside a
    session, which has its own guard) makes the whole receiver retire, so the master
    replaces it instead of counting slots nobody serves."""
    from types import SimpleNamespace

    from pymta.daemon import receiver
    from pymta.daemon.conntable import ConnectionTable
    from pymta.daemon.ipc import Notifier, notify_pair

    lst = _listener()
    master_end, child_end = notify_pair()
    panics = tmp_path / "panic"
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            def broken_run(self, slot):
                if slot == 1:
                    raise RuntimeError("broken")
                original(self, slot)
            original = receiver._AcceptLoop.run
            receiver._AcceptLoop.run = broken_run       # type: ignore[method-assign]

            class Log:
                def panic(self, text, msgid=None):
                    with open(panics, "a") as f:
                        f.write(text + "\n")
                main = reject = panic
            config = SimpleNamespace(main=SimpleNamespace(tcp_nodelay=True))
            status = receiver.receiver_main([lst], config, Log(), Notifier(child_end),
                                            lambda *a, **k: None,
                                            connections=(ConnectionTable(4), [0, 1, 2]))
        finally:
            os._exit(status)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the receiver did not retire")
    assert status == 0
    assert "a session thread ended unexpectedly; retiring" in panics.read_text()
    lst.close()
    master_end.close()
    child_end.close()
