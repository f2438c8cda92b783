"""ETRN over SMTP: acl_smtp_etrn, the default queue run (-R), smtp_etrn_command with its
taint check, and smtp_etrn_serialize (one run per argument at a time)."""
from __future__ import annotations

import os
import stat
import time

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for

ETRN_ACL = """\
acl_etrn:
  deny    condition = ${if eq{$smtp_command_argument}{#forbidden}}
          message = not that one
  accept
"""


def config(extra: str = "") -> str:
    return BASE_CONFIG.replace(
        "acl_smtp_rcpt = acl_check_rcpt",
        "acl_smtp_rcpt = acl_check_rcpt\nacl_smtp_etrn = acl_etrn\n" + extra).replace(
        "begin acl\n", "begin acl\n\n" + ETRN_ACL)


def script(tmp_path, seconds: float) -> str:
    """A command that records its arguments and then takes ``seconds``."""
    path = tmp_path / "etrn.sh"
    path.write_text(f'#!/bin/sh\necho "start $*" >> {tmp_path}/etrn.out\nsleep {seconds}\n'
                    f'echo "end $*" >> {tmp_path}/etrn.out\n')
    path.chmod(0o755)
    (tmp_path / "etrn.out").touch()
    os.chmod(tmp_path / "etrn.out", 0o666)
    return str(path)


def test_etrn_hash_starts_a_queue_run_for_matching_recipients(pymta_daemon, tmp_path):
    d = pymta_daemon(args=["-odq"], config=config())
    with d.client() as c:
        c.ehlo()
        for user in ("alice", "bob"):
            assert c.send_message("s@remote.example", f"{user}@test.example",
                                  b"Subject: a\r\n\r\na\r\n")[0] == 250
    assert len(d.queue()) == 2
    with d.client() as c:
        c.ehlo()
        assert c.cmd("ETRN #alice") == (250, "OK")
    assert wait_for(lambda: maildir_messages(tmp_path, "alice"))
    d.wait_for_log(r"=> alice <alice@test.example> R=local_users")
    assert wait_for(lambda: len(d.queue()) == 1)
    assert maildir_messages(tmp_path, "bob") == []       # not selected
    assert "ETRN #alice received from (client.test) [127.0.0.1]" in d.log()


def test_etrn_refusals(pymta_daemon):
    d = pymta_daemon(config=config())
    with d.client() as c:
        c.ehlo()
        assert c.cmd("ETRN remote.example") == (501, "argument must begin with #")
        assert c.cmd("ETRN #forbidden") == (458, "not that one")
        assert c.cmd("MAIL FROM:<s@remote.example>")[0] == 250
        assert c.cmd("ETRN #x") == (503, "ETRN is not permitted inside a transaction")
    assert "H=(client.test) [127.0.0.1] rejected ETRN #forbidden: not that one" in d.log()
    # No ETRN ACL at all: every ETRN is refused.
    d2 = pymta_daemon(config=BASE_CONFIG)
    with d2.client() as c:
        c.ehlo()
        assert c.cmd("ETRN #x") == (458, "Administrative prohibition")


def test_etrn_command_runs_serialised(pymta_daemon, tmp_path):
    cmd = script(tmp_path, 2)
    d = pymta_daemon(config=config(f"smtp_etrn_command = {cmd} $sender_host_address"))
    out = tmp_path / "etrn.out"
    with d.client() as c:
        c.ehlo()
        start = time.monotonic()
        assert c.cmd("ETRN anything.example") == (250, "OK")
        assert time.monotonic() - start < 1.5           # the client does not wait
        assert wait_for(lambda: "start 127.0.0.1" in out.read_text(), 10)
        # Same argument while the first still runs: refused; another argument: started.
        assert c.cmd("ETRN anything.example") == (458, "Already processing anything.example")
        assert c.cmd("ETRN other.example") == (250, "OK")
    assert wait_for(lambda: out.read_text().count("end 127.0.0.1") == 2, 10)
    with d.client() as c:
        c.ehlo()
        assert c.cmd("ETRN anything.example") == (250, "OK")
    assert wait_for(lambda: out.read_text().count("start 127.0.0.1") == 3, 10)


def test_etrn_command_without_serialisation(pymta_daemon, tmp_path):
    cmd = script(tmp_path, 2)
    d = pymta_daemon(config=config(f"smtp_etrn_command = {cmd} x\nno_smtp_etrn_serialize"))
    out = tmp_path / "etrn.out"
    with d.client() as c:
        c.ehlo()
        assert c.cmd("ETRN a") == (250, "OK")
        assert c.cmd("ETRN a") == (250, "OK")
    assert wait_for(lambda: out.read_text().count("start x") == 2, 10)
    assert "end x" not in out.read_text()       # both ran at once


def test_etrn_argument_is_tainted(pymta_daemon, tmp_path):
    cmd = script(tmp_path, 0)
    d = pymta_daemon(config=config(f"smtp_etrn_command = {cmd} $domain"))
    with d.client() as c:
        c.ehlo()
        assert c.cmd("ETRN ;rm -rf /") == (458, "Internal failure")
    d.wait_for_log("failed to set up ETRN command: Tainted arg 1 for ETRN processing "
                   "command: ';rm -rf /'", name="panic")
    time.sleep(0.5)
    assert (tmp_path / "etrn.out").read_text() == ""
    assert stat.S_ISREG((tmp_path / "etrn.out").stat().st_mode)


def test_etrn_in_host_checking_runs_nothing(pymta_daemon, tmp_path):
    cmd = script(tmp_path, 0)
    d = pymta_daemon(config=config(f"smtp_etrn_command = {cmd} x"))
    proc = d.run("-bh", "192.0.2.1", input=b"EHLO x\r\nETRN #a\r\nQUIT\r\n")
    assert "\n250 OK\r\n" in proc.stdout
    time.sleep(0.5)
    assert (tmp_path / "etrn.out").read_text() == ""


def test_etrn_from_local_smtp(pymta_daemon, tmp_path):
    d = pymta_daemon(args=["-odq"], config=config())
    assert d.run("-odq", "alice@test.example", input=b"Subject: q\n\nq\n").returncode == 0
    proc = d.run("-bs", input=b"EHLO x\r\nETRN #alice\r\nQUIT\r\n")
    assert "\r\n250 OK\r\n" in proc.stdout
    assert wait_for(lambda: maildir_messages(tmp_path, "alice"))


def test_etrn_without_argument(pymta_daemon, tmp_path):
    d = pymta_daemon(config=config())
    with d.client() as c:
        c.ehlo()
        assert c.cmd("ETRN") == (501, "argument must begin with #")
    assert "ETRN  received from (client.test) [127.0.0.1]" in d.log()
    cmd = script(tmp_path, 0)
    d2 = pymta_daemon(config=config(f"smtp_etrn_command = {cmd} empty"))
    with d2.client() as c:
        c.ehlo()
        assert c.cmd("ETRN") == (250, "OK")
    assert wait_for(lambda: "start empty" in (tmp_path / "etrn.out").read_text())


def test_etrn_runs_the_named_queue_its_acl_sets(pymta_daemon, tmp_path):
    """As Exim passes -MCG <queue> to its -R run: the queue run an ETRN starts covers
    the named queue the ETRN ACL set with "queue =", else the default queue."""
    held = config().replace(
        "acl_check_rcpt:\n", "acl_check_rcpt:\n  warn    queue = held\n").replace(
        "acl_etrn:\n", "acl_etrn:\n  accept  condition = ${if eq{$smtp_command_argument}"
        "{#alice}}\n          queue = held\n")
    d = pymta_daemon(args=["-odq"], config=held)
    with d.client() as c:
        c.ehlo()
        for user in ("alice", "bob"):
            assert c.send_message("s@remote.example", f"{user}@test.example",
                                  b"Subject: a\r\n\r\na\r\n")[0] == 250
    assert d.queue() == [] and len(os.listdir(d.spool / "held" / "input")) == 4
    with d.client() as c:
        c.ehlo()
        assert c.cmd("ETRN #bob") == (250, "OK")      # its run covers the default queue
        assert c.cmd("ETRN #alice") == (250, "OK")
    d.wait_for_log(r"=> alice <alice@test.example> Q=held R=local_users")
    assert maildir_messages(tmp_path, "alice")
    assert len(os.listdir(d.spool / "held" / "input")) == 2      # bob's -H and -D
    assert maildir_messages(tmp_path, "bob") == []
