"""pymta and Exim 4.96 send the same syslog messages for the same SMTP session.

Exim writes to /dev/log through the C library, so its run happens in a private mount
namespace (unshare -m) with a tmpfs on /dev whose /dev/log is the test's receiver;
pymta is pointed at its receiver with PYMTA_TEST_SYSLOG_SOCKET.  The messages are
compared with the pid, the syslog time and the log time stamps blanked."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.daemon import give_to_user, run_pymta

LONG = "y" * 880                       # one line over syslog's 870 characters

CONFIG = f"""\
keep_environment =
exim_user = Debian-exim
primary_hostname = mx.test.example
spool_directory = @DIR@/spool
log_file_path = syslog : @DIR@/log/%slog
log_selector = +pid
syslog_facility = local3
syslog_processname = mta-test
@OPTIONS@
acl_smtp_rcpt = check_rcpt
begin acl
check_rcpt:
  deny    local_parts = long
          message = {LONG}
  deny    message = relay not permitted
"""

SESSION = (b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<long@d.example>\r\n"
           b"RCPT TO:<c@d.example>\r\nQUIT\r\n")

# The receiver used inside the namespace: binds /dev/log, prints each datagram (repr)
RECEIVER = textwrap.dedent("""\
    import os, socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666)
    open(sys.argv[2], "w").close()
    s.settimeout(3)
    with open(sys.argv[3], "w") as out:
        try:
            while True:
                out.write(repr(s.recv(8192)) + "\\n"); out.flush()
        except socket.timeout:
            pass
    """)

EXIM_RUN = """\
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/random c 1 8
"$PY" "$DIR/receiver.py" /dev/log "$DIR/ready" "$DIR/exim.out" &
while [ ! -e "$DIR/ready" ]; do sleep 0.05; done
exim4 -C "$DIR/exim.conf" -bs < "$DIR/session" > /dev/null 2>&1 || true
wait
"""


def _normalise(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        data = eval(line).decode()          # noqa: S307 -- repr() of bytes we wrote
        data = re.sub(r"^(<\d+>)[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+)\[\d+\]: ",
                      r"\1\2: ", data)
        data = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "STAMP", data)
        out.append(re.sub(r"\[\d+\] U=", "[PID] U=", data))
    return out


def _exim(tmp: Path, config: str) -> list[str]:
    (tmp / "exim.conf").write_text(config)
    (tmp / "session").write_bytes(SESSION)
    (tmp / "receiver.py").write_text(RECEIVER)
    env = dict(os.environ, PY=sys.executable, DIR=str(tmp))
    proc = subprocess.run(["unshare", "-m", "sh", "-c", EXIM_RUN], env=env,
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a private /dev for Exim: {proc.stderr.strip()}")
    return (tmp / "exim.out").read_text().splitlines()


def _pymta(tmp: Path, config: str) -> list[str]:
    (tmp / "pymta.conf").write_text(config)
    path = str(tmp / "devlog")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o666)
    sock.settimeout(3)
    try:
        run_pymta(["-bs"], tmp / "pymta.conf", input=SESSION,
                  env={"PYMTA_TEST_SYSLOG_SOCKET": path}, check=True)
        grams = []
        try:
            while True:
                grams.append(repr(sock.recv(8192)))
        except socket.timeout:
            pass
        return grams
    finally:
        sock.close()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("exim4") is None
                    or shutil.which("unshare") is None,
                    reason="needs root, exim4 (Debian package exim4-daemon-heavy) and unshare")
@pytest.mark.parametrize("options", [
    "",
    "syslog_timestamp = false\nsyslog_pid = false",
    "syslog_duplication = false",
])
def test_same_syslog_messages_as_exim(tmp_path, options):
    got = {}
    for mta in ("exim", "pymta"):
        d = tmp_path / mta
        for sub in ("", "spool", "log"):
            (d / sub).mkdir(exist_ok=True)
            os.chmod(d / sub, 0o777)
        give_to_user(d, "Debian-exim")         # and its parents searchable
        config = CONFIG.replace("@DIR@", str(d)).replace("@OPTIONS@", options)
        got[mta] = _normalise(_exim(d, config) if mta == "exim" else _pymta(d, config))
    assert got["exim"], "Exim sent nothing"
    assert got["pymta"] == got["exim"]
