"""End-to-end: command-line submission, queue runs, deferrals, bounces, crashes."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import psutil

from tests.integration.conftest import maildir_messages, wait_for
from tests.integration.test_daemon_e2e import MESSAGE, send
from tests.support.daemon import PYMTA, _env
from tests.support.sink import SmtpSink


def test_sendmail_t_delivers_and_removes_bcc(pymta_daemon, tmp_path):
    d = pymta_daemon()
    msg = (b"From: alice@test.example\nTo: alice@test.example\nBcc: bob@test.example\n"
           b"Subject: via sendmail\n\nbody line\n.\nnot reached\n")
    cmd = [PYMTA[0], "-c", "import sys; from pymta.cli.main import sendmail_main; "
           "sys.exit(sendmail_main())", "-C", str(d.config_path)]
    cmd += [f"-D{k}={v}" for k, v in d.macros.items()] + ["-t"]
    proc = subprocess.run(cmd, input=msg, capture_output=True, env=_env(), timeout=30)
    assert proc.returncode == 0, proc.stderr
    a = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    b = wait_for(lambda: maildir_messages(tmp_path, "bob"))
    assert len(a) == 1 and len(b) == 1, d.diagnostics()
    for m in (a[0], b[0]):
        head, body = m.split(b"\n\n", 1)
        assert b"\nBcc:" not in head and b"Subject: via sendmail" in head
        assert body == b"body line\n"        # the lone dot ended the message


def test_refused_destination_defers_then_next_queue_run_delivers(pymta_daemon, sink_port):
    d = pymta_daemon(args=["-q1s"])
    assert send(d, "alice@test.example", ["user@remote.example"], MESSAGE)[0] == 250
    d.wait_for_log(r" == user@remote\.example .*(refused|Connection)", 15)
    assert len(d.queue()) == 1
    with SmtpSink(port=sink_port) as sink:
        assert sink.wait_for(1, 20), d.diagnostics()
        assert wait_for(lambda: not d.queue(), 10), d.diagnostics()
        time.sleep(1.5)   # another queue run must not send it again
        assert len(sink.messages) == 1
        assert sink.messages[0].recipients == ["user@remote.example"]


def test_permanent_550_gives_exactly_one_bounce(pymta_daemon, sink_port, tmp_path):
    with SmtpSink(port=sink_port, mode="rcpt", code=550, text="no such user"):
        d = pymta_daemon(args=["-q1s"])
        assert send(d, "alice@test.example", ["gone@remote.example"], MESSAGE)[0] == 250
        bounces = wait_for(lambda: maildir_messages(tmp_path, "alice"), 20)
        assert len(bounces) == 1, d.diagnostics()
        assert wait_for(lambda: not d.queue(), 10), d.diagnostics()
        time.sleep(2.5)   # two more queue runs
        assert len(maildir_messages(tmp_path, "alice")) == 1
        assert b"gone@remote.example" in bounces[0]
        assert len([ln for ln in d.log().splitlines() if " ** gone@remote.example" in ln]) == 1


def _session_process(d) -> psutil.Process | None:
    """The daemon child that has an established connection on the SMTP port."""
    for child in psutil.Process(d.proc.pid).children():
        try:
            for c in child.net_connections(kind="tcp"):
                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == d.port:
                    return child
        except (psutil.NoSuchProcess, AttributeError):
            try:
                for c in child.connections(kind="tcp"):
                    if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == d.port:
                        return child
            except psutil.NoSuchProcess:
                pass
    return None


def test_kill_9_receiver_mid_data_leaves_nothing_queued(pymta_daemon):
    d = pymta_daemon()
    c = d.client()
    c.banner()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@outside.example>")[0] == 250
    assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send_raw(b"Subject: half\r\n\r\nfirst part of the body\r\n")
    victim = wait_for(lambda: _session_process(d), 5)
    assert victim is not None
    os.kill(victim.pid, signal.SIGKILL)
    d.wait_for_log("receiver process .* ended unexpectedly", 10, name="panic")
    assert d.queue() == []
    # The daemon lives on and replaced the receiver.
    assert send(d, "a@outside.example", ["bob@test.example"], MESSAGE)[0] == 250


def test_kill_9_daemon_after_250_loses_nothing(pymta_daemon, tmp_path):
    d = pymta_daemon(args=["-odq"])
    code, text = send(d, "a@outside.example", ["bob@test.example"], MESSAGE)
    assert code == 250
    os.killpg(d.proc.pid, signal.SIGKILL)
    d.proc.wait(10)
    assert len(d.queue()) == 1
    r = d.run("-q")
    assert r.returncode == 0, r.stderr
    assert len(maildir_messages(tmp_path, "bob")) == 1
    assert d.queue() == []


def test_bp_and_mailq_show_queued_message(pymta_daemon):
    d = pymta_daemon(args=["-odq"])
    assert send(d, "a@outside.example", ["bob@test.example"], MESSAGE)[0] == 250
    (msgid,) = d.queue()
    r = d.run("-bp")
    assert r.returncode == 0 and msgid in r.stdout and "<a@outside.example>" in r.stdout
    assert "bob@test.example" in r.stdout
    assert d.run("-bpc").stdout.strip() == "1"
    cmd = [PYMTA[0], "-c", "import sys; from pymta.cli.main import mailq_main; "
           "sys.exit(mailq_main())", "-C", str(d.config_path)]
    cmd += [f"-D{k}={v}" for k, v in d.macros.items()]
    mq = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=30)
    assert mq.returncode == 0 and msgid in mq.stdout


def test_manual_queue_run_while_daemon_runs_does_not_double_deliver(pymta_daemon, sink_port):
    def slow(addr):                  # hold each delivery for a while
        time.sleep(0.3)
    with SmtpSink(port=sink_port, rcpt_handler=slow) as sink:
        d = pymta_daemon(args=["-odq", "-q1s"])
        for i in range(4):
            assert send(d, "a@outside.example", [f"u{i}@remote.example"], MESSAGE)[0] == 250
        results = []
        runs = [threading.Thread(target=lambda: results.append(d.run("-qf")))
                for _ in range(2)]
        for t in runs:
            t.start()
        for t in runs:
            t.join(60)
        assert all(r.returncode == 0 for r in results)
        assert wait_for(lambda: not d.queue(), 20), d.diagnostics()
        time.sleep(1.5)
        rcpts = sorted(r for m in sink.messages for r in m.recipients)
        assert rcpts == [f"u{i}@remote.example" for i in range(4)]
