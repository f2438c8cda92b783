"""hosts_connection_nolog: no "SMTP connection from" lines (opening, closed by QUIT,
lost) for the listed clients, while the other session lines stay.  The expected lines
are what an exim4 4.96 daemon wrote for the same two sessions from each client
(tests/data/connection_nolog; 127.0.0.1 listed, 127.0.0.3 not)."""
from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.support.daemon import PymtaDaemon

DATA = Path(__file__).resolve().parent.parent / "data" / "connection_nolog"

CONFIG = """\
primary_hostname = mx.test
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
log_selector = +smtp_connection +smtp_no_mail +smtp_incomplete_transaction
hosts_connection_nolog = 127.0.0.1
daemon_smtp_ports = SMTP_PORT
local_interfaces = 127.0.0.1
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept
"""


def _reply(f) -> None:
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            return


def _sessions(source: str, port: int) -> None:
    """A MAIL abandoned by QUIT, then a session that drops after EHLO."""
    def connect() -> socket.socket:
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        return s
    with connect() as s:
        f = s.makefile("rb")
        _reply(f)
        for command in (b"EHLO x\r\n", b"MAIL FROM:<a@b.c>\r\n", b"QUIT\r\n"):
            s.sendall(command)
            _reply(f)
    with connect() as s:
        f = s.makefile("rb")
        _reply(f)
        s.sendall(b"EHLO x\r\n")
        _reply(f)
        time.sleep(0.2)


def test_listed_clients_get_no_connection_lines(tmp_path):
    expected = (DATA / "exim4_mainlog.txt").read_text().splitlines()
    with PymtaDaemon(CONFIG, tmp_path) as d:
        _sessions("127.0.0.1", d.port)
        d.wait_for_log(r"no MAIL in SMTP connection from \(x\) \[127\.0\.0\.1\]")
        _sessions("127.0.0.3", d.port)
        d.wait_for_log(r"no MAIL in SMTP connection from \(x\) \[127\.0\.0\.3\]")
        # (the harness's own readiness probe, a bare connect and QUIT, is left out)
        lines = [line[20:] for line in d.log().splitlines()
                 if "127.0.0." in line and "daemon" not in line and "C=QUIT" not in line]
    assert lines == expected
