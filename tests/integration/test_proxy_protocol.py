"""hosts_proxy: the PROXY protocol (v1 and v2) in front of the SMTP server.

The test client connects from 127.0.0.2 (the "proxy"; the daemon's own readiness probe
comes from 127.0.0.1, which is not in hosts_proxy) and writes the header itself.
"""
from __future__ import annotations

import socket
import ssl
import struct
import time

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.smtp import SmtpTestClient

PROXY = "127.0.0.2"
CONFIG = BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt", f"""\
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_connect = acl_conn
hosts_proxy = {PROXY}
proxy_protocol_timeout = 1s
log_selector = +proxy +incoming_port""").replace("begin acl\n", """begin acl

acl_conn:
  warn log_message = PV session=$proxy_session ext=$proxy_external_address:\\
                     $proxy_external_port loc=$proxy_local_address:$proxy_local_port \\
                     sha=$sender_host_address:$sender_host_port
  accept
""").replace("Received: from $sender_helo_name by", "Received: from $sender_rcvhost by")


class ProxiedClient(SmtpTestClient):
    """An SMTP test client that connects from ``source`` and first sends ``header``."""

    def __init__(self, port: int, header: bytes | None, source: str = PROXY,
                 timeout: float = 10.0) -> None:
        self.host, self.port, self.timeout = "127.0.0.1", port, timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        if header is not None:
            self.sock.sendall(header)
        self.rfile = self.sock.makefile("rb")
        self._banner = None
        self.ehlo_reply = None


def v2(command: int = 1, family: int = 0x11, body: bytes | None = None) -> bytes:
    if body is None:
        body = (socket.inet_aton("192.0.2.7") + socket.inet_aton("198.51.100.1")
                + struct.pack("!HH", 4000, 25))
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20 | command, family]) + \
        struct.pack("!H", len(body)) + body


V1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 4000 25\r\n"


def test_v1_header_names_the_real_client(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    with ProxiedClient(d.port, V1) as c:
        assert c.banner()[0] == 220
        assert c.ehlo("client.test")[1].splitlines()[0].endswith("[192.0.2.7]")
        code, text = c.send_message("sender@remote.example", "alice@test.example",
                                    b"Subject: proxied\r\n\r\nhello\r\n")
        assert code == 250, text
    [line] = d.wait_for_log(r"<= sender@remote\.example")
    assert "H=(client.test) [192.0.2.7]:4000 P=esmtp PRX=127.0.0.2 S=" in line
    [pv] = d.wait_for_log(r"PV session=yes")
    assert " H=[192.0.2.7] Warning: PV session=yes ext=198.51.100.1:25 " \
        f"loc={PROXY}:" in pv
    assert pv.endswith(" sha=192.0.2.7:4000")
    assert "no host name found for IP address 192.0.2.7" in d.log()
    [msg] = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    assert msg.startswith(b"Received: from [192.0.2.7] (port=4000 helo=client.test) by ")


def test_v2_header_and_tls_less_ipv6(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    with ProxiedClient(d.port, v2()) as c:
        assert c.cmd("HELO client.test") == (250, "mx.test.example Hello client.test [192.0.2.7]")
    six = (socket.inet_pton(socket.AF_INET6, "2001:db8::7")
           + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 1234, 25))
    with ProxiedClient(d.port, v2(family=0x21, body=six)) as c:
        assert c.cmd("HELO client.test") == (
            250, "mx.test.example Hello client.test [2001:db8::7]")
    d.wait_for_log(r"PV session=yes ext=2001:db8::1:25 .* sha=2001:db8::7:1234")


def test_local_and_unknown_headers_keep_the_proxy_address(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    for header in (v2(command=0, family=0, body=b""), b"PROXY UNKNOWN\r\n"):
        with ProxiedClient(d.port, header) as c:
            assert c.cmd("HELO client.test") == (
                250, f"mx.test.example Hello client.test [{PROXY}]")


def test_bad_header_allows_only_quit(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    refused = (503, "Command refused, required Proxy negotiation failed")
    for header in (b"PROXY TCP4 192.0.2.999 198.51.100.1 4000 25\r\n",
                   b"PROXY TCP4 192.0.2.7 198.51.100.1 4000 25" + b" " * 80 + b"\r\n",
                   v2(body=b"x" * 300)):
        with ProxiedClient(d.port, header) as c:
            assert c.banner()[0] == 220
            assert c.cmd("HELO client.test") == refused
            assert c.cmd("NOOP") == refused
            assert c.cmd("QUIT")[0] == 221
            c.sock.close()
    assert f"PV session=yes ext=:0 loc=:0 sha={PROXY}:" in d.log()


def test_missing_header_times_out_then_only_quit(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    start = time.monotonic()
    with ProxiedClient(d.port, None) as c:
        assert c.banner()[0] == 220
        assert time.monotonic() - start >= 0.9           # proxy_protocol_timeout = 1s
        assert c.cmd("EHLO client.test")[0] == 503


def test_header_from_a_host_not_in_hosts_proxy_is_a_command(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    with ProxiedClient(d.port, None, source="127.0.0.1") as c:
        c.banner()
        assert c.cmd("PROXY TCP4 192.0.2.7 198.51.100.1 4000 25")[0] == 500
        assert c.cmd("HELO client.test") == (250, "mx.test.example Hello client.test [127.0.0.1]")
    # Sent before the banner it is an early pipelined command (PIPECONNECT is offered
    # to everyone by default), answered after the banner, as exim4 does.
    with ProxiedClient(d.port, V1, source="127.0.0.1") as c:
        assert c.banner()[0] == 220
        assert c.read_reply()[0] == 500
    # Without PIPECONNECT it is input before the greeting: a synchronisation error.
    # The connect ACL's delay makes sure the early input is there when it is checked.
    d2 = pymta_daemon(config="pipelining_connect_advertise_hosts =\n"
                      + CONFIG.replace("  accept\n", "  accept delay = 1s\n", 1))
    with ProxiedClient(d2.port, V1, source="127.0.0.1") as c:
        assert c.banner()[0] == 554
    assert "PV session=no ext=:0 loc=:0 sha=127.0.0.1:" in d.log()


def test_header_comes_before_tls_on_connect(tmp_path):
    (tmp_path / "users").write_text("alice: alice\n")
    config = CONFIG.replace("hosts_proxy =", "tls_on_connect_ports = PORT2\nhosts_proxy =")
    with PymtaDaemon(config, tmp_path, ports=2, macros={"SINK_PORT": "1"}) as d:
        raw = socket.create_connection(("127.0.0.1", d.ports[1]), timeout=10,
                                       source_address=(PROXY, 0))
        raw.sendall(V1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw, server_hostname="mx.test.example") as tls:
            replies = tls.makefile("rb")
            assert replies.readline().startswith(b"220 ")
            tls.sendall(b"HELO client.test\r\n")
            assert replies.readline() == \
                b"250 mx.test.example Hello client.test [192.0.2.7]\r\n"
            tls.sendall(b"QUIT\r\n")
            assert replies.readline().startswith(b"221 ")


ZONES = {
    "2.0.192.in-addr.arpa": "7 IN PTR client.proxied.test.\n",
    "proxied.test": "client IN A 192.0.2.7\n",
}


def test_the_real_client_name_is_looked_up(tmp_path):
    (tmp_path / "users").write_text("alice: alice\n")
    with DnsServer(ZONES) as dns_server:
        env = {"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"}
        with PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": "1"}, env=env) as d:
            with ProxiedClient(d.port, V1) as c:
                assert c.cmd("HELO client.test") == (
                    250, "mx.test.example Hello client.proxied.test [192.0.2.7]")
                assert c.send_message("s@remote.example", "alice@test.example",
                                      b"Subject: x\r\n\r\nx\r\n")[0] == 250
            d.wait_for_log(r"<= s@remote\.example H=client\.proxied\.test \(client\.test\) "
                           r"\[192\.0\.2\.7\]:4000 P=esmtp PRX=127\.0\.0\.2 S=")
            assert any("client.proxied.test" in str(q[0]) for q in dns_server.queries)
