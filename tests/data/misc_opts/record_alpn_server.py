#!/usr/bin/env python3
"""Record how an Exim 4.96 server (Debian's exim4, built with GnuTLS) treats clients
with hosts_require_alpn = * (as root, with the project's venv:
``.venv/bin/python tests/data/misc_opts/record_alpn_server.py``; writes
alpn_server.txt).

An Exim daemon (tests/support/exim.py) with a certificate from tests/support/certs.py;
Python's ssl module as the client, after STARTTLS, offering no ALPN, "smtp",
"http/1.1", and "smtp","esmtp".  For each: whether the handshake and a following EHLO
worked (``client:`` lines), then Exim's main log without the time stamps and the
daemon's start line.
"""
from __future__ import annotations

import os
import re
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

from tests.support.certs import make_ca, make_cert  # noqa: E402
from tests.support.exim import EximDaemon  # noqa: E402

CONF = """primary_hostname = mx.test.example
spool_directory = @SPOOL@
log_file_path = @SPOOL@/log/%slog
tls_certificate = @DIR@/mx.test.example.pem
tls_privatekey = @DIR@/mx.test.example.key
hosts_require_alpn = *
acl_smtp_rcpt = accept
"""

OFFERS: list[list[str] | None] = [None, ["smtp"], ["http/1.1"], ["smtp", "esmtp"]]


def attempt(port: int, alpn: list[str] | None) -> str:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO c.example\r\n")
    while f.readline()[3:4] != b" ":
        pass
    s.sendall(b"STARTTLS\r\n")
    f.readline()
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if alpn:
        c.set_alpn_protocols(alpn)
    try:
        t = c.wrap_socket(s)
        t.sendall(b"EHLO c.example\r\n")
        reply = t.recv(100).split(b"\r\n")[0].decode()
        result = f"ok alpn={t.selected_alpn_protocol()} ehlo={reply!r}"
        t.sendall(b"QUIT\r\n")
        t.recv(100)
        t.close()
    except (ssl.SSLError, OSError) as exc:
        result = f"failed ({type(exc).__name__})"
    return f"client: offer={alpn} {result}"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        os.chmod(d, 0o755)
        make_cert(d, "mx.test.example", make_ca(d))
        e = EximDaemon(CONF, d).start()
        try:
            lines = [attempt(e.port, alpn) for alpn in OFFERS]
            time.sleep(0.5)
            log = e.log()
        finally:
            e.stop()
    for line in log.splitlines():
        line = re.sub(r"^\S+ \S+ ", "", line)
        if "daemon started" not in line:
            lines.append(line)
    with open(os.path.join(HERE, "alpn_server.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
