#!/usr/bin/env python3
"""Record how an Exim 4.96 client (smtp transport with tls_alpn = smtp, with and without
hosts_require_alpn = *) delivers to a TLS server that does or does not agree on ALPN
(as root, with the project's venv:
``.venv/bin/python tests/data/misc_opts/record_alpn_client.py``; writes alpn_client.txt).

The server is pymta's daemon from this checkout (tests/support/daemon.py) with its
default tls_alpn ("smtp : esmtp") or with tls_alpn empty (no ALPN at all); the client
is ``exim4 -odi``.  Exim's main log lines are kept without time stamp and message id,
and without the "<=", "Completed" and privilege lines.
"""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

from tests.support.certs import make_ca, make_cert  # noqa: E402
from tests.support.daemon import PymtaDaemon  # noqa: E402

base = Path(tempfile.mkdtemp())
os.chmod(base, 0o777)
out = []
SERVER = """primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
tls_certificate = DIR/mx.test.example.pem
tls_privatekey = DIR/mx.test.example.key
acl_smtp_rcpt = accept
queue_only
"""
for server_alpn in ("default", "none"):
    sd = base / f"s-{server_alpn}"
    sd.mkdir()
    make_cert(sd, "mx.test.example", make_ca(sd))
    conf = SERVER + ("tls_alpn =\n" if server_alpn == "none" else "")
    d = PymtaDaemon(conf, sd).start()
    try:
        for require in (False, True):
            ed = base / f"e-{server_alpn}-{require}"
            (ed / "spool" / "log").mkdir(parents=True)
            subprocess.run(["chmod", "-R", "777", str(ed)], check=True)
            (ed / "conf").write_text(f"""keep_environment =
exim_user = Debian-exim
primary_hostname = client.test
spool_directory = {ed}/spool
log_file_path = {ed}/spool/log/%slog
begin routers
r:
  driver = manualroute
  route_list = * 127.0.0.1::{d.port}
  self = send
  transport = t
begin transports
t:
  driver = smtp
  allow_localhost
  tls_alpn = smtp
""" + ("  hosts_require_alpn = *\n" if require else "") + """begin retry
* * F,1h,10m
""")
            subprocess.run(["exim4", "-C", str(ed / "conf"), "-odi", "-f", "s@client.test",
                            "u@remote.example"], input=b"Subject: x\n\nbody\n")
            out.append(f"== server alpn {server_alpn}, hosts_require_alpn {require}")
            for line in (ed / "spool/log/mainlog").read_text().splitlines():
                line = re.sub(r"^\S+ \S+ (\S+-\S+-\S+ )?", "", line)
                if not line.startswith(("<=", "Completed", "exim user lost")):
                    out.append(re.sub(r"id=\S+", "id=<id>", line))
    finally:
        d.stop()
subprocess.run(["rm", "-rf", str(base)])
with open(os.path.join(HERE, "alpn_client.txt"), "w") as f:
    f.write("\n".join(out) + "\n")
