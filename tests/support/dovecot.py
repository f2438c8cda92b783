"""A private Dovecot auth server (Debian's dovecot-core) for the dovecot authenticator's
tests: started in a temporary directory with a passwd-file database, as root.

Users: ``alice`` / ``secret``.  The passdb is ``passwd-%{secured}``: only secured
connections (TLS, or local) find the users, which shows pymta passes the flag on.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = pymta-test-{tag}
protocols =
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain login cram-md5
auth_failure_delay = 0
disable_plaintext_auth = no
# Only secured connections (TLS, or local) find the users: this shows the flag arrives.
passdb {{
  driver = passwd-file
  args = {d}/passwd-%{{secured}}
}}
userdb {{
  driver = passwd-file
  args = {d}/passwd
}}
service auth {{
  user = root
  unix_listener auth-client {{
    mode = 0666
  }}
}}
service auth-worker {{
  user = root
}}
"""


@contextlib.contextmanager
def private_dovecot() -> Iterator[str]:
    """A private Dovecot auth server; skipped (with the reason) where none can run."""
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(binary):
        pytest.skip("dovecot is not installed (Debian package dovecot-core)")
    if os.geteuid() != 0:
        pytest.skip("starting a private dovecot needs root")
    # A short path: unix socket names are limited to about 100 bytes.
    d = tempfile.mkdtemp(prefix="pymta-dc-", dir="/tmp")
    os.chmod(d, 0o755)
    Path(d, "passwd").write_text("alice:{PLAIN}secret::::::\n")
    Path(d, "passwd-secured").write_text("alice:{PLAIN}secret::::::\n")
    Path(d, "passwd-").write_text("")
    conf = Path(d, "dovecot.conf")
    conf.write_text(DOVECOT_CONF.format(d=d, tag=os.path.basename(d)))
    socket_path = os.path.join(d, "run", "auth-client")
    # Dovecot forks into the background: its output goes to a file, not to a pipe the
    # daemon would hold open.
    with open(os.path.join(d, "start.err"), "w+") as err:
        started = subprocess.run([binary, "-c", str(conf)], check=False,
                                 stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, timeout=30)
        err.seek(0)
        reason = err.read().strip()
    try:
        if started.returncode != 0:
            pytest.skip(f"dovecot did not start: {reason}")
        for _ in range(100):
            if os.path.exists(socket_path):
                break
            time.sleep(0.05)
        else:
            pytest.skip("dovecot did not create its auth socket: "
                        + Path(d, "dovecot.log").read_text(errors="replace")[-500:])
        yield socket_path
    finally:
        if started.returncode == 0:
            subprocess.run([binary, "-c", str(conf), "stop"], check=False,
                           stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            pidfile = Path(d, "run", "master.pid")
            for _ in range(100):
                if not pidfile.exists():
                    break
                time.sleep(0.05)
        shutil.rmtree(d, ignore_errors=True)
