"""pymta -bw: inetd wait mode, the daemon takes its listening socket from standard input."""
from __future__ import annotations

import socket
import subprocess
import time

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import PYMTA, REPO, PymtaDaemon, macro_args, pymta_env
from tests.support.smtp import SmtpTestClient


def start_bw(tmp_path, *flags: str) -> tuple[subprocess.Popen, int, PymtaDaemon]:
    """A bound, listening socket on an ephemeral port, given to ``pymta -bw`` as stdin."""
    (tmp_path / "users").write_text("alice: alice\nbob: bob\n")
    d = PymtaDaemon(BASE_CONFIG, tmp_path, macros={"SINK_PORT": "1"})
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    proc = subprocess.Popen(PYMTA + ["-C", str(d.config_path)] + macro_args(d.macros)
                            + list(flags), stdin=listener.fileno(), cwd=str(REPO),
                            env=pymta_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    listener.close()          # only the daemon holds it now
    return proc, port, d


def test_bw_serves_the_inherited_socket_and_times_out(tmp_path):
    proc, port, d = start_bw(tmp_path, "-bw3s")
    try:
        d.wait_for_log(r"daemon started: pid=\d+, launched with listening socket, "
                       r"terminating after 3 seconds$")
        with SmtpTestClient(port) as c:
            assert c.banner()[0] == 220
            c.ehlo()
            assert c.send_message("s@remote.example", "alice@test.example",
                                  b"Subject: inetd\r\n\r\nhi\r\n")[0] == 250
            time.sleep(3.5)       # a session in progress keeps the daemon
            assert proc.poll() is None
        connected = time.monotonic()
        assert wait_for(lambda: maildir_messages(tmp_path, "alice"))
        proc.wait(20)
        assert proc.returncode == 0
        assert time.monotonic() - connected >= 2      # 3s after the last connection
        assert "daemon terminating, inetd wait timeout reached." in d.log()
        assert not (d.spool / "pymta-daemon.pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bw_without_timeout_runs_until_sigterm(tmp_path):
    proc, port, d = start_bw(tmp_path, "-bw")
    try:
        d.wait_for_log(r"launched with listening socket$")
        with SmtpTestClient(port) as c:
            assert c.banner()[0] == 220
        time.sleep(1)
        assert proc.poll() is None
        proc.terminate()
        proc.wait(20)
        assert "SIGTERM received: daemon terminating" in d.log()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bw_needs_a_listening_socket_on_stdin(tmp_path):
    (tmp_path / "users").write_text("")
    d = PymtaDaemon(BASE_CONFIG, tmp_path, macros={"SINK_PORT": "1"})
    d.prepare()
    proc = subprocess.run(PYMTA + ["-C", str(d.config_path)] + macro_args(d.macros)
                          + ["-bw"], stdin=subprocess.DEVNULL, cwd=str(REPO), env=pymta_env(),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "pymta: -bw: standard input is not a socket" in proc.stderr
    assert d.run("-bw", "-q5m").returncode == 1        # no queue runs with -bw


def test_bw_refuses_a_socket_that_does_not_listen(tmp_path):
    (tmp_path / "users").write_text("")
    d = PymtaDaemon(BASE_CONFIG, tmp_path, macros={"SINK_PORT": "1"})
    d.prepare()
    unbound = socket.socket()
    try:
        proc = subprocess.run(PYMTA + ["-C", str(d.config_path)] + macro_args(d.macros)
                              + ["-bw"], stdin=unbound.fileno(), cwd=str(REPO),
                              env=pymta_env(), capture_output=True, text=True, timeout=30)
    finally:
        unbound.close()
    assert proc.returncode == 1
    assert "pymta: -bw: standard input is not a listening TCP socket" in proc.stderr
