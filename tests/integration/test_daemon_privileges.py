"""Privileges of the real daemon: who receives and delivers, who owns the spool, and
what happens to the children when the master is killed.

The tests marked ``root_only`` need root (the suite runs as root in CI); run as another
user there is no user to switch to and the daemon runs as the caller.
"""
from __future__ import annotations

import os
import pwd
import signal
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import PymtaDaemon, run_pymta
from tests.support.ports import free_port

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

MESSAGE = b"From: a@outside.example\r\nSubject: privs\r\n\r\nhello\r\n"


def _send(d: PymtaDaemon, rcpt: str) -> tuple[int, str]:
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@outside.example>")[0] == 250
        assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250, d.diagnostics()
        assert c.cmd("DATA")[0] == 354
        c.send_raw(MESSAGE + b".\r\n")
        return c.read_reply()


def _running(proc: psutil.Process) -> bool:
    """Still running (an exited child nobody has reaped yet is a zombie: not running)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _refusal(tmp_path: Path, config_text: str) -> tuple[int, str]:
    """Start the daemon as root with ``config_text``; (exit status, stderr)."""
    d = PymtaDaemon(config_text, tmp_path, exim_user=None, macros={"SINK_PORT": "9"})
    d.prepare()
    try:
        out = run_pymta(["-bdf", "-oX", str(d.port)], d.config_path, macros=d.macros,
                        timeout=8)
    except Exception as exc:        # still running: it did not refuse
        pytest.fail(f"the daemon did not refuse to start: {exc!r}")
    return out.returncode, out.stderr


@root_only
def test_root_daemon_without_exim_user_refuses(tmp_path):
    status, err = _refusal(tmp_path, BASE_CONFIG)
    assert status == 1
    assert "exim_user is not set" in err and str(tmp_path / "pymta.conf") in err


@root_only
def test_root_daemon_with_unknown_exim_user_refuses_naming_file_and_line(tmp_path):
    status, err = _refusal(tmp_path, "# comment\nexim_user = no_such_user_pymta\n"
                           + BASE_CONFIG)
    assert status == 1
    assert 'exim_user: user "no_such_user_pymta" was not found' in err
    assert f"{tmp_path / 'pymta.conf'} line 2" in err


@root_only
def test_root_daemon_with_exim_user_root_refuses(tmp_path):
    status, err = _refusal(tmp_path, "exim_user = root\n" + BASE_CONFIG)
    assert status == 1 and "exim_user must not be root" in err


# bob's mail goes through a transport that names a delivery user
TWO_USERS = BASE_CONFIG.replace("""local_users:
  driver = accept""", """bob:
  driver = accept
  domains = +local_domains
  local_parts = bob
  transport = bob_maildir

local_users:
  driver = accept""").replace("""begin retry""", """bob_maildir:
  driver = appendfile
  directory = DIR/maildir/bob
  maildir_format
  create_directory
  user = daemon

begin retry""")


@root_only
def test_receivers_and_deliveries_run_as_exim_user(tmp_path):
    """Every child of a root-started daemon runs as exim_user; a local delivery without
    a user is made as exim_user, one whose transport names a user as that user."""
    nobody, daemon = pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("daemon").pw_uid
    (tmp_path / "users").write_text("alice: alice\nbob: bob\n")
    (tmp_path / "maildir").mkdir()
    os.chmod(tmp_path / "maildir", 0o1777)      # both users create their maildirs here
    os.chmod(tmp_path, 0o711)
    d = PymtaDaemon(TWO_USERS, tmp_path, macros={"SINK_PORT": "9"})
    with d:
        children = psutil.Process(d.proc.pid).children()
        assert len(children) >= 3        # receivers and workers
        for child in children:
            # A child the master has just forked holds root for the moment it takes to
            # switch its ids; one that keeps it fails here.
            def settled(child: psutil.Process = child) -> bool:
                uids = child.uids()
                return (uids.real, uids.effective) == (nobody, nobody)
            assert wait_for(settled, timeout=5), (child, child.uids())
        assert _send(d, "alice@test.example")[0] == 250
        assert _send(d, "bob@test.example")[0] == 250
        assert wait_for(lambda: maildir_messages(tmp_path, "alice")
                        and maildir_messages(tmp_path, "bob")), d.diagnostics()
    for user, uid in (("alice", nobody), ("bob", daemon)):
        new = tmp_path / "maildir" / user / "new"
        owners = {p.stat().st_uid for p in new.iterdir()}
        assert owners == {uid}, (user, owners)


def test_children_exit_when_the_master_is_killed(tmp_path):
    """kill -9 of the master alone: its children notice and exit, so that a new daemon
    can bind the same port at once."""
    (tmp_path / "users").write_text("alice: alice\n")
    d = PymtaDaemon(BASE_CONFIG, tmp_path, macros={"SINK_PORT": "9"})
    d.start()
    try:
        children = psutil.Process(d.proc.pid).children()
        assert children
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait(5)
        # The parent-death signal ends them at once (polling getppid() would take up
        # to receiver.PARENT_CHECK_SECONDS).
        assert wait_for(lambda: not [c for c in children if _running(c)], 1.5), \
            [c for c in children if _running(c)]
        d2 = PymtaDaemon(BASE_CONFIG, tmp_path, ports=[d.port], macros={"SINK_PORT": "9"})
        with d2:
            assert _send(d2, "alice@test.example")[0] == 250
    finally:
        d.stop()


@root_only
def test_root_command_line_leaves_the_spool_to_exim_user(tmp_path):
    """sendmail and -q run by root create the spool as exim_user, so the daemon's
    unprivileged receivers can use it afterwards."""
    nobody = pwd.getpwnam("nobody").pw_uid
    sink_port = free_port()          # nothing listens: remote mail stays queued
    (tmp_path / "users").write_text("alice: alice\n")
    d = PymtaDaemon(BASE_CONFIG, tmp_path, macros={"SINK_PORT": str(sink_port)})
    d.prepare()
    for rcpt in ("alice@test.example", "someone@remote.example"):
        out = d.run("-odq", rcpt, input="Subject: from root\n\nbody\n")
        assert out.returncode == 0, out.stderr
    out = d.run("-q")
    assert out.returncode == 0, out.stderr
    assert maildir_messages(tmp_path, "alice") and len(d.queue()) == 1
    with d:
        code, text = _send(d, "alice@test.example")
        assert code == 250, text + d.diagnostics()
        assert wait_for(lambda: len(maildir_messages(tmp_path, "alice")) == 2)
    wrong = []
    for top in (d.spool, tmp_path / "maildir"):
        for dirpath, dirs, files in os.walk(top):
            for name in [""] + dirs + files:
                path = os.path.join(dirpath, name)
                if os.lstat(path).st_uid != nobody:
                    wrong.append(path)
    assert not wrong, wrong


@root_only
def test_root_quick_start_in_a_closed_directory_says_what_to_do(tmp_path):
    """The README quick start run by root from a checkout exim_user cannot reach (say
    under /root): the daemon stops at once and names the directory."""
    etc = Path(__file__).resolve().parents[2] / "etc"
    closed = tmp_path / "checkout"
    closed.mkdir(mode=0o700)
    conf = closed / "dev.conf"
    conf.write_text((etc / "dev.conf").read_text())
    port = free_port()
    out = run_pymta(["-bdf", "-oX", str(port)], conf, timeout=8)
    assert out.returncode == 1
    assert f"exim_user nobody cannot write to {closed}/../spool" in out.stderr
