"""sd_notify: the datagram systemd's Type=notify waits for, to a path or an abstract
socket, sent once (the variable is removed for the children)."""
from __future__ import annotations

import os
import socket

from pymta.daemon.sdnotify import NOTIFY_ENV, sd_notify


def test_ready_to_a_socket_path_once(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        monkeypatch.setenv(NOTIFY_ENV, path)
        assert sd_notify("READY=1\nMAINPID=42")
        assert sock.recv(100) == b"READY=1\nMAINPID=42"
        assert NOTIFY_ENV not in os.environ
        assert not sd_notify("READY=1")          # nothing the second time


def test_abstract_socket(monkeypatch):
    name = f"pymta-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv(NOTIFY_ENV, "@" + name)
        assert sd_notify("READY=1")
        assert sock.recv(100) == b"READY=1"


def test_nobody_listening_or_no_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(NOTIFY_ENV, raising=False)
    assert not sd_notify("READY=1")
    monkeypatch.setenv(NOTIFY_ENV, str(tmp_path / "absent"))
    assert not sd_notify("READY=1")
    monkeypatch.setenv(NOTIFY_ENV, "relative/path")
    assert not sd_notify("READY=1")
