"""smtp_accept_keepalive: the daemon's accepted connections have SO_KEEPALIVE (the
default), or not when the option is false.  Seen from outside the daemon with
``ss -o``, which shows a "keepalive" timer on a socket that has it."""
from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from pymta.daemon.keepalive import set_keepalive
from tests.support.daemon import PymtaDaemon
from tests.support.wait import wait_until

CONFIG = """\
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
local_interfaces = 127.0.0.1
{options}
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/box
"""


def server_side_timer(port: int, client_port: int) -> str:
    """The ``ss -o`` line of the daemon's end of the connection from ``client_port``."""
    out = subprocess.run(["ss", "-tnoH", "state", "established", "(", "sport", "=",
                          f":{port}", "and", "dport", "=", f":{client_port}", ")"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip()


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) is not installed")
@pytest.mark.parametrize("options,keepalive", [("", True),
                                               ("smtp_accept_keepalive = false", False)])
def test_daemon_connection_keepalive(tmp_path, options, keepalive):
    d = PymtaDaemon(CONFIG.format(options=options), tmp_path).start()
    with d.client() as c:
        assert c.ehlo("x.test")[0] == 250       # the session runs: the socket is set up
        client_port = c.sock.getsockname()[1]
        # while a reply is unacknowledged ss shows the retransmission timer instead
        wait_until(lambda: "timer:(on," not in server_side_timer(d.port, client_port)
                   and server_side_timer(d.port, client_port), 5, 0.05)
        line = server_side_timer(d.port, client_port)
        assert ("timer:(keepalive," in line) is keepalive, line


@pytest.mark.parametrize("on", [True, False])
def test_set_keepalive_on_a_tcp_socket(on):
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client:
        conn, _ = server.accept()
        with conn:
            set_keepalive(conn, on)
            assert bool(conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)) is on
        client.close()
