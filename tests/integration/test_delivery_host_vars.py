"""Delivery sees the sending host and the receiving interface as Exim does: the spool's
"[ip]:port" values become $sender_host_address/$sender_host_port and
$received_ip_address/$received_port (issue 7, item 4)."""
from __future__ import annotations

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.integration.test_daemon_e2e import MESSAGE

CONFIG = BASE_CONFIG.replace(
    "  maildir_format\n",
    "  maildir_format\n"
    "  headers_add = X-Host: $sender_host_address\\n"
    "X-Ports: $sender_host_port $received_ip_address $received_port\n")


def test_appendfile_transport_sees_sender_host_address(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    c = d.client()
    client_port = c.sock.getsockname()[1]
    c.banner()
    c.ehlo("client.test")
    assert c.cmd("MAIL FROM:<a@outside.example>")[0] == 250
    assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send_raw(MESSAGE + b".\r\n")
    assert c.read_reply()[0] == 250
    c.cmd("QUIT")
    msgs = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    assert len(msgs) == 1, d.diagnostics()
    head = msgs[0].split(b"\n\n", 1)[0].split(b"\n")
    assert b"X-Host: 127.0.0.1" in head
    assert f"X-Ports: {client_port} 127.0.0.1 {d.port}".encode() in head
