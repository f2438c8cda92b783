"""End-to-end: the real daemon, SMTP over loopback, maildir delivery."""
from __future__ import annotations

import os

from tests.integration.conftest import maildir_messages, strip_received, wait_for

MESSAGE = (b"From: sender@outside.example\r\nTo: alice@test.example\r\n"
           b"Subject: byte exact\r\nMessage-ID: <abc@outside.example>\r\n"
           b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n"
           b"Hello Alice.\r\n..leading dot\r\n\r\nbye\r\n")


def send(d, sender, rcpts, data, helo="client.test"):
    c = d.client()
    c.banner()
    c.ehlo(helo)
    assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250
    for r in rcpts:
        assert c.cmd(f"RCPT TO:<{r}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send_raw(data + b".\r\n")
    code, text = c.read_reply()
    c.cmd("QUIT")
    return code, text


def test_smtp_message_delivered_to_maildir_byte_exact(pymta_daemon, tmp_path):
    d = pymta_daemon()
    code, text = send(d, "sender@outside.example", ["alice@test.example"], MESSAGE)
    assert code == 250, text
    msgs = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    assert len(msgs) == 1, d.diagnostics()
    expected = MESSAGE.replace(b"\r\n", b"\n").replace(b"\n..leading", b"\n.leading")
    assert strip_received(msgs[0]) == expected
    assert wait_for(lambda: not d.queue(), 5)


def test_relay_denied_at_rcpt(pymta_daemon):
    d = pymta_daemon()
    c = d.client()
    c.banner()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@outside.example>")[0] == 250
    code, text = c.cmd("RCPT TO:<victim@elsewhere.example>")
    assert code == 550 and "relay not permitted" in text
    c.cmd("QUIT")


def test_unknown_local_user_rejected_at_rcpt(pymta_daemon):
    d = pymta_daemon()
    c = d.client()
    c.banner()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@outside.example>")[0] == 250
    assert c.cmd("RCPT TO:<nosuchuser@test.example>")[0] == 550
    assert c.cmd("RCPT TO:<bob@test.example>")[0] == 250
    c.cmd("QUIT")


def test_sigterm_gives_421_to_session_in_progress(pymta_daemon, tmp_path):
    import signal
    pidfile = tmp_path / "daemon.pid"
    d = pymta_daemon(args=["-oP", str(pidfile)])
    assert pidfile.read_text() == f"{d.proc.pid}\n"
    c = d.client()
    c.banner()
    assert c.ehlo()[0] == 250
    d.signal(signal.SIGTERM)
    wait_for(lambda: "daemon terminating" in d.log(), 5)
    code, _text = c.cmd("NOOP")
    assert code == 421
    assert d.proc.wait(15) == 0
    assert not pidfile.exists()


def test_sigterm_to_the_process_group_is_a_clean_stop(pymta_daemon):
    # timeout(1), a shell's kill -TERM -<pgid> or a container runtime signal every
    # process at once: the children that exit before the master has seen its own
    # SIGTERM are not "unexpected" and must not fill the paniclog.
    import signal
    d = pymta_daemon()
    os.killpg(d.proc.pid, signal.SIGTERM)
    assert d.proc.wait(15) == 0
    assert "daemon terminating" in d.log()
    assert "unexpectedly" not in d.log("panic"), d.log("panic")


def test_sighup_reload_picks_up_changed_config(pymta_daemon):
    import signal

    from tests.integration.conftest import BASE_CONFIG
    d = pymta_daemon()
    c = d.client()
    assert "RELOADED" not in c.banner()[1]
    c.cmd("QUIT")
    d.config_path.write_text(BASE_CONFIG + "")
    text = d.config_path.read_text().replace(
        "primary_hostname = mx.test.example",
        "primary_hostname = mx.test.example\nsmtp_banner = RELOADED $primary_hostname")
    d.config_path.write_text(text)
    d.signal(signal.SIGHUP)

    def banner_changed():
        c = d.client()
        b = c.banner()[1]
        c.cmd("QUIT")
        return "RELOADED mx.test.example" in b
    assert wait_for(banner_changed, 10, 0.2), d.diagnostics()
    assert "SIGHUP received" in d.log()
    # Still delivering after the reload.
    assert send(d, "x@outside.example", ["bob@test.example"], MESSAGE)[0] == 250


def test_bd_detaches_and_writes_pid_file(tmp_path):
    """-bd returns at once; the detached daemon answers and its pid file names it."""
    import signal
    import subprocess

    from tests.integration.conftest import BASE_CONFIG, _write_users
    from tests.support.daemon import PYMTA, PymtaDaemon, _env, macro_args
    from tests.support.ports import free_port
    port = free_port()
    _write_users(tmp_path)
    # the configuration as PymtaDaemon writes it (with an exim_user when root)
    prepared = PymtaDaemon(BASE_CONFIG, tmp_path)
    prepared.prepare()
    conf = prepared.config_path
    pidfile = tmp_path / "d.pid"
    macros = {"SPOOL": str(tmp_path / "spool"), "DIR": str(tmp_path), "SINK_PORT": "9"}
    r = subprocess.run(PYMTA + ["-C", str(conf)] + macro_args(macros)
                       + ["-bd", "-oX", f"127.0.0.1.{port}", "-oP", str(pidfile)],
                       env=_env(), timeout=20, capture_output=True)
    assert r.returncode == 0, r.stderr
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10))
    try:
        ok = wait_for(lambda: _banner(port), 10)
        assert ok and ok.startswith(b"220")
        assert os.getsid(pid) != os.getsid(0)   # a new session: detached from ours
    finally:
        os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not pidfile.exists(), 15)


def _banner(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            b = s.recv(200)
            s.sendall(b"QUIT\r\n")
            return b
    except OSError:
        return None


def test_bd_reload_and_stop_as_soon_as_the_pid_file_exists(tmp_path):
    """An init script may reload (SIGHUP) or stop the daemon as soon as -bd has
    returned and the pid file is there: the daemon survives the reload and the stop
    is a clean one (pid file removed), not death by the signal's default action."""
    import signal
    import subprocess

    from tests.integration.conftest import BASE_CONFIG, _write_users
    from tests.support.daemon import PYMTA, PymtaDaemon, _env, macro_args
    from tests.support.ports import free_port
    port = free_port()
    _write_users(tmp_path)
    prepared = PymtaDaemon(BASE_CONFIG, tmp_path)
    prepared.prepare()
    pidfile = tmp_path / "d.pid"
    macros = {"SPOOL": str(tmp_path / "spool"), "DIR": str(tmp_path), "SINK_PORT": "9"}
    r = subprocess.run(PYMTA + ["-C", str(prepared.config_path)] + macro_args(macros)
                       + ["-bd", "-oX", f"127.0.0.1.{port}", "-oP", str(pidfile)],
                       env=_env(), timeout=20, capture_output=True)
    assert r.returncode == 0, r.stderr
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, 0.005))
    os.kill(pid, signal.SIGHUP)
    try:
        ok = wait_for(lambda: _banner(port), 10)
        assert ok and ok.startswith(b"220"), "the daemon did not survive an early SIGHUP"
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    assert wait_for(lambda: not pidfile.exists(), 15)
