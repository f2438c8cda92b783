"""Private Dovecot servers (Debian's dovecot-core and dovecot-lmtpd), started as root in
a temporary directory:

* :func:`private_dovecot`: the auth server for the dovecot authenticator's tests.  Users:
  ``alice`` / ``secret``.  The passdb is ``passwd-%{secured}``: only secured
  connections (TLS, or local) find the users, which shows pymta passes the flag on.
* :func:`private_dovecot_lmtp`: an LMTP server (unix socket and TCP) delivering into
  maildirs under ``<dir>/mail/<user>``, for the lmtp transport's tests.
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


LMTP_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = pymta-test-{tag}
protocols = lmtp
listen = 127.0.0.1
ssl = no
mail_location = maildir:{d}/mail/%n
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = {d}/passwd
  default_fields = uid=nobody gid=nogroup home={d}/mail/%n
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


@contextlib.contextmanager
def private_dovecot() -> Iterator[str]:
    """A private Dovecot auth server; skipped (with the reason) where none can run."""
    def setup(d: str) -> str:
        Path(d, "passwd").write_text("alice:{PLAIN}secret::::::\n")
        Path(d, "passwd-secured").write_text("alice:{PLAIN}secret::::::\n")
        Path(d, "passwd-").write_text("")
        return DOVECOT_CONF.format(d=d, tag=os.path.basename(d))
    with _dovecot(setup, "auth-client") as (_d, socket_path):
        yield socket_path


@contextlib.contextmanager
def private_dovecot_lmtp(users: list[str], port: int) -> Iterator[tuple[str, str]]:
    """A private Dovecot LMTP server for ``users`` (full addresses) on a unix socket and
    on 127.0.0.1:``port``; yields (directory, socket path).  Skipped where none can run."""
    if not os.path.exists("/usr/lib/dovecot/lmtp"):
        pytest.skip("Dovecot's LMTP server is not installed (Debian package dovecot-lmtpd)")

    def setup(d: str) -> str:
        Path(d, "passwd").write_text("".join(f"{u}:{{PLAIN}}x::::::\n" for u in users))
        mail = Path(d, "mail")
        mail.mkdir()
        mail.chmod(0o777)
        return LMTP_CONF.format(d=d, tag=os.path.basename(d), port=port)
    with _dovecot(setup, "lmtp") as (d, socket_path):
        yield d, socket_path


@contextlib.contextmanager
def _dovecot(setup, socket_name: str) -> Iterator[tuple[str, str]]:
    """Start a dovecot whose configuration ``setup(directory)`` writes; wait for its
    socket ``socket_name``; stop it and remove the directory afterwards."""
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(binary):
        pytest.skip("dovecot is not installed (Debian package dovecot-core)")
    if os.geteuid() != 0:
        pytest.skip("starting a private dovecot needs root")
    # A short path: unix socket names are limited to about 100 bytes.
    d = tempfile.mkdtemp(prefix="pymta-dc-", dir="/tmp")
    os.chmod(d, 0o755)
    conf = Path(d, "dovecot.conf")
    conf.write_text(setup(d))
    socket_path = os.path.join(d, "run", socket_name)
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
            pytest.skip(f"dovecot did not create its {socket_name} socket: "
                        + Path(d, "dovecot.log").read_text(errors="replace")[-500:])
        yield d, socket_path
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
