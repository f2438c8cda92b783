"""DSCP marking: the values Exim knows, control = dscp on the client's connection (a
real loopback TCP connection served by run_session) and the smtp client's dscp."""
from __future__ import annotations

import socket
import threading

import pytest

from pymta.config import load_config
from pymta.dscp import NAMES, dscp_byte, set_dscp
from pymta.smtp.client import SmtpClient
from pymta.smtp.session import run_session
from tests.support.recording_log import RecordingLog

CONF = """\
primary_hostname = mx.test.example
spool_directory = {spool}
acl_smtp_connect = conn
acl_smtp_helo = helo
begin acl
conn:
  accept  control = dscp/ef
helo:
  accept  condition = ${{if eq{{$sender_helo_name}}{{bad}}}}
          control = dscp/bogus
  accept  control = dscp/0x0a
"""


def test_values_exim_knows():
    # exim4 -bI:dscp lists these names
    assert sorted(NAMES) == ["af11", "af12", "af13", "af21", "af22", "af23", "af31", "af32",
                             "af33", "af41", "af42", "af43", "ef", "lowcost", "lowdelay",
                             "mincost", "reliability", "throughput"]
    assert (dscp_byte("ef"), dscp_byte("af11"), dscp_byte("af43")) == (0xB8, 0x28, 0x98)
    assert (dscp_byte("lowdelay"), dscp_byte(" throughput ")) == (0x10, 0x08)
    assert (dscp_byte("46"), dscp_byte("0x3f"), dscp_byte("0")) == (0xB8, 0xFC, 0)
    assert dscp_byte("64") is None and dscp_byte("-1") is None and dscp_byte("ef2") is None


def _tcp_pair(family: int, host: str) -> tuple[socket.socket, socket.socket]:
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname()[:2], timeout=5)
    server, _ = listener.accept()
    listener.close()
    return client, server


def _tos(sock: socket.socket) -> int:
    if sock.family == socket.AF_INET6:
        return sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS)
    return sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"),
                                         (socket.AF_INET6, "::1")])
def test_set_dscp_on_both_families(family, host):
    try:
        client, server = _tcp_pair(family, host)
    except OSError as exc:
        pytest.skip(f"no {host} here: {exc}")
    with client, server:
        assert set_dscp(server, 0xB8)
        assert _tos(server) == 0xB8
    a, b = socket.socketpair()
    with a, b:
        assert not set_dscp(a, 0xB8)          # not an IP socket: nothing to mark


def test_control_marks_the_client_connection(tmp_path):
    (tmp_path / "spool").mkdir()
    (tmp_path / "configure").write_text(CONF.format(spool=tmp_path / "spool"))
    cfg = load_config(str(tmp_path / "configure"))
    client, server = _tcp_pair(socket.AF_INET, "127.0.0.1")
    thread = threading.Thread(target=run_session, args=(server, cfg, 25, RecordingLog()),
                              daemon=True)
    thread.start()
    rfile = client.makefile("rb")
    try:
        assert rfile.readline().startswith(b"220 ")
        assert _tos(server) == 0xB8                     # set by the connect ACL
        client.sendall(b"HELO bad\r\n")
        assert rfile.readline().startswith(b"451 ")     # an unknown value: ACL error
        client.sendall(b"HELO good\r\n")
        assert rfile.readline().startswith(b"250 ")
        assert _tos(server) == 0x28                     # 0x0a = af11
        client.sendall(b"QUIT\r\n")
        assert rfile.readline().startswith(b"221 ")
    finally:
        thread.join(5)
        client.close()
        server.close()


def test_smtp_client_marks_its_connection():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"220 sink\r\n")
            conn.recv(100)
    threading.Thread(target=serve, daemon=True).start()
    cl = SmtpClient(connect_timeout=5, command_timeout=5, dscp=0x10)
    assert cl.connect("127.0.0.1", listener.getsockname()[1]).code == 220
    assert _tos(cl.sock) == 0x10
    cl.sock.close()
    listener.close()
