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
