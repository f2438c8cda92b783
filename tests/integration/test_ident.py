"""RFC 1413 (ident) calls by the SMTP server: rfc1413_hosts and rfc1413_query_timeout.

The counterpart is Debian's oidentd on a loopback port (pymta is pointed at it with the
test-only PYMTA_TEST_IDENT_PORT; Exim always uses port 113).  What Exim 4.96 itself
writes for the same sessions is recorded in tests/data/ident (see its README): the
"<=" line carries U=<ident>, $sender_rcvhost gains "ident=<user>", the -H file an
"-ident" line, and only a timed-out connect is logged ("ident connection to <ip> timed
out", with log_selector +ident_timeout).
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.ports import free_port

OIDENTD = shutil.which("oidentd") or "/usr/sbin/oidentd"
DATA = Path(__file__).resolve().parents[1] / "data" / "ident"

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
queue_only = true
rfc1413_hosts = IDENT_HOSTS
rfc1413_query_timeout = IDENT_TIMEOUT
log_selector = +ident_timeout
acl_smtp_connect = acl_connect
acl_smtp_rcpt = acl_rcpt

begin acl
acl_connect:
  accept logwrite = connect ident=${if def:sender_ident{$sender_ident}{none}}

acl_rcpt:
  accept domains = test.example

begin routers
blackhole:
  driver = redirect
  data = :blackhole:
"""


def _wait_listening(port: int, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture
def oidentd(tmp_path):
    """A real oidentd on a free loopback port, in the foreground, logging to a file."""
    if not os.access(OIDENTD, os.X_OK):
        pytest.skip("oidentd is not installed (Debian package oidentd)")
    port = free_port()
    conf = tmp_path / "oidentd.conf"
    conf.write_text("")                          # the built-in defaults: real user names
    log = open(tmp_path / "oidentd.log", "wb")
    proc = subprocess.Popen([OIDENTD, "-i", "-S", "-C", str(conf), "-a", "127.0.0.1",
                             "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    # The readiness probe asks nothing: oidentd logs a "lookup" only for real queries.
    if not _wait_listening(port, proc):
        proc.kill()
        pytest.skip(f"oidentd did not start: {(tmp_path / 'oidentd.log').read_text()}")
    yield port, tmp_path / "oidentd.log"
    proc.terminate()
    proc.wait(5)
    log.close()


def _daemon(tmp_path, ident_port: int, hosts: str = "*", timeout: str = "2s",
            extra: str = ""):
    config = CONFIG.replace("log_selector = +ident_timeout\n", extra + "\n") if extra \
        else CONFIG
    d = PymtaDaemon(config, tmp_path / "pymta",
                    macros={"IDENT_HOSTS": hosts, "IDENT_TIMEOUT": timeout},
                    env={"PYMTA_TEST_IDENT_PORT": str(ident_port)})
    return d.start()


def _send(d: PymtaDaemon) -> tuple[str, str, float]:
    """One message over SMTP: (EHLO greeting, message id, seconds until the banner)."""
    started = time.monotonic()
    with d.client() as c:
        c.banner()
        waited = time.monotonic() - started
        code, greeting = c.ehlo("client.test")
        assert code == 250
        assert c.cmd("MAIL FROM:<s@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<a@test.example>")[0] == 250
        code, text = c.data(b"Subject: ident\r\n\r\nbody\r\n")
        assert code == 250, text
        c.quit()
    [msgid] = d.queue()
    return greeting.splitlines()[0], msgid, waited


def _header_file(d: PymtaDaemon, msgid: str) -> str:
    [path] = list(d.spool.glob(f"input/**/{msgid}-H"))
    return path.read_text()


def test_exim_recording_shows_what_pymta_must_write():
    """The recorded Exim 4.96 answers the expectations below are based on."""
    log = (DATA / "exim-mainlog.txt").read_text()
    assert "<= s@c.example H=(vm) [127.0.0.1] U=root P=esmtp" in log
    assert "ident connection to 127.0.0.1 timed out" in log
    header = (DATA / "exim-answered.H").read_text()
    assert "\n-ident root\n" in header
    assert "Received: from [127.0.0.1] (helo=vm ident=root)\n" in header


def test_ident_answer_becomes_sender_ident(tmp_path, oidentd):
    port, oidentd_log = oidentd
    user = pwd.getpwuid(os.geteuid()).pw_name     # oidentd names the client's owner
    d = _daemon(tmp_path, port)
    greeting, msgid, _ = _send(d)
    assert greeting == f"mx.test.example Hello {user} at client.test [127.0.0.1]"
    d.wait_for_log(f"connect ident={user}")
    [line] = d.wait_for_log(rf"{msgid} <= s@remote.example")
    assert f" H=(client.test) [127.0.0.1] U={user} P=esmtp " in line
    header = _header_file(d, msgid)
    # Exim 4.96 writes "-ident"; pymta marks the value the client's ident server sent
    # tainted ("--"), as it does the HELO name and the host name.
    assert f"\n--ident {user}\n" in header
    # the addresses are the kernel's, untainted, as in Exim's recording
    assert "\n-host_address [127.0.0.1]:" in header
    assert "\n-interface_address [127.0.0.1]:" in header
    assert f"Received: from [127.0.0.1] (helo=client.test ident={user})\n" in header
    assert "Successful lookup" in oidentd_log.read_text()


def test_ident_in_reject_lines_but_not_connection_lines(tmp_path, oidentd):
    """As Exim: U= follows H= (a rejected RCPT), the "SMTP connection from" lines,
    which have no H=, leave it out."""
    port, _ = oidentd
    user = pwd.getpwuid(os.geteuid()).pw_name
    d = _daemon(tmp_path, port, extra="log_selector = +ident_timeout +smtp_connection")
    with d.client() as c:
        c.banner()
        c.ehlo("client.test")
        assert c.cmd("MAIL FROM:<s@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<nobody@elsewhere.example>")[0] == 550
        c.quit()
    d.wait_for_log(rf"H=\(client.test\) \[127.0.0.1\] U={user} F=<s@remote.example> "
                   r"rejected RCPT <nobody@elsewhere.example>")
    d.wait_for_log(r"SMTP connection from \(client.test\) \[127.0.0.1\] closed by QUIT$")


def test_ident_server_that_never_answers_costs_only_the_timeout(tmp_path):
    """A server that accepts but stays silent: the session goes on after the timeout,
    without $sender_ident and (as Exim) without a log line."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    try:
        d = _daemon(tmp_path, silent.getsockname()[1], timeout="1s")
        greeting, msgid, waited = _send(d)
        assert 0.8 <= waited < 4, waited
        assert accepted, "no ident call was made"
        assert greeting == "mx.test.example Hello client.test [127.0.0.1]"
        d.wait_for_log("connect ident=none")
        [line] = d.wait_for_log(rf"{msgid} <= ")
        assert " U=" not in line
        assert "-ident" not in _header_file(d, msgid)
        assert "timed out" not in d.log()
    finally:
        silent.close()
        for s in accepted:
            s.close()


def test_ident_connect_timeout_is_logged(tmp_path):
    """A listener whose backlog is full drops the SYN: the connect times out, which
    Exim logs with log_selector +ident_timeout."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(full.getsockname())
        except BlockingIOError:
            pass
        fillers.append(s)
    try:
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(full.getsockname())
            pytest.skip("this kernel completes connections to a full backlog")
        except socket.timeout:
            pass
        finally:
            probe.close()
        d = _daemon(tmp_path, full.getsockname()[1], timeout="1s")
        _, msgid, waited = _send(d)
        assert waited < 4, waited
        d.wait_for_log("ident connection to 127.0.0.1 timed out")
        assert " U=" not in d.wait_for_log(rf"{msgid} <= ")[0]
    finally:
        full.close()
        for s in fillers:
            s.close()


def test_no_call_for_a_host_not_in_rfc1413_hosts(tmp_path, oidentd):
    port, oidentd_log = oidentd
    d = _daemon(tmp_path, port, hosts="192.0.2.1")
    greeting, msgid, _ = _send(d)
    assert greeting == "mx.test.example Hello client.test [127.0.0.1]"
    d.wait_for_log("connect ident=none")
    assert " U=" not in d.wait_for_log(rf"{msgid} <= ")[0]
    assert "lookup" not in oidentd_log.read_text()     # oidentd was never asked


def test_zero_timeout_makes_no_call(tmp_path, oidentd):
    port, oidentd_log = oidentd
    d = _daemon(tmp_path, port, timeout="0s")
    _send(d)
    d.wait_for_log("connect ident=none")
    assert "lookup" not in oidentd_log.read_text()
