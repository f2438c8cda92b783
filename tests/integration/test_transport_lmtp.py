"""lmtp transport against Debian's Dovecot LMTP server (dovecot-lmtpd): over its unix
socket and with Dovecot's lmtp program as the command, several recipients in one
transaction (batch_max), per-recipient replies; and the faults a real server does not
produce on demand (a 4xx for one recipient, a server that dies mid-batch) with a small
scripted LMTP server as the command.

The expected log lines are those Exim 4.96 writes against the same Dovecot.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.dovecot import private_dovecot_lmtp
from tests.support.ports import free_port

SENDER = "s@test.example"
# The scripted server runs as nobody: Debian's python3, not the project's virtualenv.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# An LMTP server on stdin/stdout that answers RCPT for "later" with 451, and after the
# data answers only the first accepted recipient before it exits.
FLAKY_LMTP = r'''
import sys
out = sys.stdout.buffer
def say(line):
    out.write(line.encode() + b"\r\n"); out.flush()
say("220 flaky ready")
rcpts = []
for raw in sys.stdin.buffer:
    line = raw.decode().rstrip("\r\n")
    verb = line.split(" ", 1)[0].upper()
    if verb == "LHLO":
        say("250-flaky"); say("250 PIPELINING")
    elif verb == "MAIL":
        say("250 2.1.0 OK")
    elif verb == "RCPT":
        if "later@" in line:
            say("451 4.3.0 <later@test.example> try again")
        else:
            rcpts.append(line); say("250 2.1.5 OK")
    elif verb == "DATA":
        say("354 go ahead")
        for body in sys.stdin.buffer:
            if body in (b".\r\n", b".\n"):
                break
        say("250 2.0.0 first one saved")
        sys.exit(0)          # gone before answering for the others
    elif verb == "QUIT":
        say("221 bye"); break
'''


def _config(sock: str, dovecot_dir: str, script: Path, port: int) -> str:
    user = "user = nobody" if os.geteuid() == 0 else ""
    return f"""
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
to_command:
  driver = accept
  local_parts = carol
  transport = lmtp_command
to_flaky:
  driver = accept
  local_parts = first : later : second : third
  transport = lmtp_flaky
to_tcp:
  driver = accept
  local_parts = dave : erin : nobody-here
  transport = lmtp_tcp
to_dovecot:
  driver = accept
  transport = lmtp_socket
begin transports
lmtp_socket:
  driver = lmtp
  socket = {sock}
  batch_max = 10
lmtp_command:
  driver = lmtp
  command = /usr/lib/dovecot/lmtp -c {dovecot_dir}/dovecot.conf
  {user}
lmtp_flaky:
  driver = lmtp
  command = {PYTHON} {script}
  batch_max = 10
  {user}
lmtp_tcp:
  driver = smtp
  protocol = lmtp
  hosts = 127.0.0.1
  port = {port}
  allow_localhost
begin retry
*  *  F,1d,1h
"""


@pytest.fixture(scope="module")
def lmtp(tmp_path_factory):
    base = tmp_path_factory.mktemp("lmtp")
    script = base / "flaky_lmtp.py"
    script.write_text(FLAKY_LMTP)
    script.chmod(0o644)
    os.chmod(base, 0o755)
    users = ["alice@test.example", "bob@test.example", "carol@test.example",
             "dave@test.example", "erin@test.example"]
    port = free_port()
    with private_dovecot_lmtp(users, port) as (dovecot_dir, sock):
        d = PymtaDaemon(_config(sock, dovecot_dir, script, port), base / "mta")
        d.mail = Path(dovecot_dir) / "mail"
        yield d


def deliver(d: PymtaDaemon, *recipients: str, body: str = "body\n.dot\n") -> list[str]:
    before = len(d.log().splitlines())
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    proc = d.run("-odi", "-f", SENDER, *recipients, input=f"Subject: t\n\n{body}".encode())
    assert proc.returncode == 0, proc.stderr + d.log("panic")
    lines = [line.split(" ", 2)[2] for line in d.log().splitlines()[before:]]
    return [re.sub(r"^\w{6}-\w{6}-\w{2} ", "", line) for line in lines]


def maildir(d: PymtaDaemon, user: str) -> list[str]:
    new = d.mail / user / "new"
    return [p.read_text() for p in sorted(new.iterdir())] if new.is_dir() else []


def test_one_transaction_with_a_reply_per_recipient(lmtp):
    lines = deliver(lmtp, "alice@test.example", "bob@test.example", "nosuch@test.example")
    first = [ln for ln in lines if ln.startswith("=> alice <alice@test.example> R=to_dovecot "
                                                  "T=lmtp_socket C=\"250 2.0.0 "
                                                  "<alice@test.example> ")]
    assert first and first[0].endswith(' Saved"'), lines
    assert any(ln.startswith("-> bob <bob@test.example> R=to_dovecot T=lmtp_socket C=\"250 ")
               for ln in lines), lines
    assert ("** nosuch@test.example R=to_dovecot T=lmtp_socket: LMTP error after RCPT "
            "TO:<nosuch@test.example>: 550 5.1.1 <nosuch@test.example> User doesn't exist: "
            "nosuch@test.example") in lines
    for user in ("alice", "bob"):
        (message,) = maildir(lmtp, user)
        assert "\nSubject: t\n" in message and message.endswith("\n\nbody\n.dot\n")
        assert "by " in message and "with LMTP" in message     # Dovecot's Received:


def test_command_speaks_lmtp_on_stdin_and_stdout(lmtp):
    lines = deliver(lmtp, "carol@test.example")
    assert any(ln.startswith("=> carol <carol@test.example> R=to_command T=lmtp_command C=")
               for ln in lines), lines
    assert len(maildir(lmtp, "carol")) == 1


def test_temporary_rcpt_error_and_a_server_dying_mid_batch(lmtp):
    lines = deliver(lmtp, "first@test.example", "later@test.example", "second@test.example",
                    "third@test.example")
    assert any(ln.startswith("=> first <first@test.example> R=to_flaky T=lmtp_flaky "
                             'C="250 2.0.0 first one saved"') for ln in lines), lines
    assert ("== later@test.example R=to_flaky T=lmtp_flaky defer (0): LMTP error after RCPT "
            "TO:<later@test.example>: 451 4.3.0 <later@test.example> try again") in lines
    # the two it never answered are deferred, not failed and not delivered
    for name in ("second", "third"):
        assert any(ln.startswith(f"== {name}@test.example R=to_flaky T=lmtp_flaky defer ")
                   and "LMTP connection closed after end of data" in ln
                   for ln in lines), lines
    assert not any("** " in ln for ln in lines), lines


def test_lmtp_over_tcp_with_the_smtp_transport(lmtp):
    """protocol = lmtp on an smtp transport: LHLO, and one reply per recipient after
    the data, from Dovecot listening on TCP."""
    lines = deliver(lmtp, "dave@test.example", "erin@test.example",
                    "nobody-here@test.example")
    assert any(re.match(r'=> dave@test\.example R=to_tcp T=lmtp_tcp H=127\.0\.0\.1 '
                        r'\[127\.0\.0\.1\] C="250 2\.0\.0 <dave@test\.example> .* Saved"',
                        ln) for ln in lines), lines
    assert any(re.match(r'-> erin@test\.example R=to_tcp T=lmtp_tcp H=127\.0\.0\.1 '
                        r'\[127\.0\.0\.1\] C="250 2\.0\.0 <erin@test\.example> ', ln)
               for ln in lines), lines
    assert any(ln.startswith("** nobody-here@test.example R=to_tcp T=lmtp_tcp H=127.0.0.1 "
                             "[127.0.0.1]: SMTP error from remote mail server after RCPT "
                             "TO:<nobody-here@test.example>: 550 ") for ln in lines), lines
    for user in ("dave", "erin"):
        (message,) = maildir(lmtp, user)
        assert "\nSubject: t\n" in message and "with LMTP" in message
