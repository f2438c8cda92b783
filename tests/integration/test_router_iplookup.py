"""iplookup router against small UDP and TCP lookup services on loopback: the default
query and its check, response_pattern with reroute, optional, and no answer."""
from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from tests.support.daemon import PymtaDaemon

ANSWERS = {"alias@test.example": "real@test.example", "odd@test.example": "wrong@test.example"}


class _Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        query = data.decode().split()[0]
        if query == "odd@test.example":       # answers a different question
            sock.sendto(b"wrong@test.example other@test.example\n", self.client_address)
        elif query in ANSWERS:
            sock.sendto(f"{ANSWERS[query]} {query}\n".encode(), self.client_address)


class _Tcp(socketserver.StreamRequestHandler):
    def handle(self):
        query = self.rfile.read().decode().strip()
        if query.startswith("domain-of "):
            self.wfile.write(b"elsewhere.example\n")


@pytest.fixture(scope="module")
def services():
    udp = socketserver.UDPServer(("127.0.0.1", 0), _Udp)
    tcp = socketserver.TCPServer(("127.0.0.1", 0), _Tcp)
    for s in (udp, tcp):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield udp.server_address[1], tcp.server_address[1]
    for s in (udp, tcp):
        s.shutdown()
        s.server_close()


def _unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
by_udp:
  driver = iplookup
  domains = test.example
  local_parts = alias : odd
  hosts = 127.0.0.1
  port = UDP_PORT
  timeout = 2s
by_tcp:
  driver = iplookup
  domains = test.example
  local_parts = moved
  hosts = 127.0.0.1
  port = TCP_PORT
  protocol = tcp
  query = domain-of $local_part
  response_pattern = ^([a-z.]+)$
  reroute = $local_part@$1
silent:
  driver = iplookup
  local_parts = quiet
  hosts = 127.0.0.1
  port = NOBODY_PORT
  timeout = 1s
silent_optional:
  driver = iplookup
  local_parts = quietopt
  hosts = 127.0.0.1
  port = NOBODY_PORT
  timeout = 1s
  optional
local:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/mbox
"""


def test_lookups(tmp_path, services):
    udp, tcp = services
    d = PymtaDaemon(CONFIG, tmp_path, macros={"UDP_PORT": str(udp), "TCP_PORT": str(tcp),
                                              "NOBODY_PORT": str(_unused_udp_port())})
    d.prepare()
    r = d.run("-bt", "alias@test.example")
    assert (r.returncode, r.stdout) == (0, "real@test.example\n    <-- alias@test.example\n"
                                           "  router = local, transport = t\n"), r.stderr
    # an answer to another question is not used: the router declines
    r = d.run("-bt", "odd@test.example")
    assert r.stdout == "odd@test.example\n  router = local, transport = t\n"
    r = d.run("-bt", "moved@test.example")
    assert r.stdout == ("moved@elsewhere.example\n    <-- moved@test.example\n"
                        "  router = local, transport = t\n")
    r = d.run("-bt", "quiet@test.example")
    assert (r.returncode, r.stdout) == (1, "quiet@test.example cannot be resolved at this "
                                           "time: silent router: no response from any host\n")
    # optional: no answer passes the address on
    r = d.run("-bt", "quietopt@test.example")
    assert (r.returncode, r.stdout) == (0, "quietopt@test.example\n"
                                           "  router = local, transport = t\n")
    d.submit_and_deliver("s@test.example", "alias@test.example", b"Subject: ip\n\nhi\n")
    assert "=> real <alias@test.example> R=local T=t" in d.log()
