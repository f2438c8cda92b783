"""PIPECONNECT (Exim 4.96's early pipelining) as client and server (issue 10).

Server: with pipelining_connect_advertise_hosts (default *) PIPECONNECT follows
PIPELINING in the EHLO reply and a client may send EHLO and MAIL before the banner
(checked against exim4: it answers them after the banner; with the option empty the
same input is a synchronisation error).  Client: to hosts in hosts_pipe_connect the
smtp transport remembers the EHLO reply of a server that offers PIPECONNECT and on the
next connection sends EHLO without waiting for the banner.
"""
from __future__ import annotations

import socket

from tests.integration.conftest import BASE_CONFIG, wait_for
from tests.integration.test_daemon_e2e import MESSAGE, send
from tests.support.sink import SmtpSink


def _config(transport: str = "") -> str:
    # serialize_hosts: every delivery opens its own connection (none is kept open for
    # the next message), so each one shows whether it waited for the banner.
    return BASE_CONFIG.replace("  allow_localhost\n",
                               "  allow_localhost\n  serialize_hosts = *\n" + transport)


def _read_replies(sock: socket.socket, n: int, timeout: float = 10.0) -> list[str]:
    """The first lines of ``n`` complete replies."""
    sock.settimeout(timeout)
    buf, replies = b"", []
    while len(replies) < n:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
        while b"\r\n" in buf and len(replies) < n:
            line, buf = buf.split(b"\r\n", 1)
            text = line.decode()
            if text[3:4] == " ":
                replies.append(text)
    return replies


def test_server_answers_commands_sent_before_the_banner(pymta_daemon):
    d = pymta_daemon()
    with socket.create_connection(("127.0.0.1", d.port)) as s:
        s.sendall(b"EHLO early.test\r\nMAIL FROM:<a@outside.example>\r\n"
                  b"RCPT TO:<alice@test.example>\r\n")
        replies = _read_replies(s, 4)
        assert [r[:3] for r in replies] == ["220", "250", "250", "250"], replies
        s.sendall(b"QUIT\r\n")
    assert "synchronization" not in d.log()


def test_server_without_pipe_connect_refuses_early_talkers(pymta_daemon):
    # the connect ACL's delay makes sure the early input is there when it is checked
    config = BASE_CONFIG.replace("begin acl\n\n", "begin acl\n\nacl_conn:\n"
                                 "  accept delay = 1s\n\n")
    d = pymta_daemon(config="pipelining_connect_advertise_hosts =\n"
                     "acl_smtp_connect = acl_conn\n" + config)
    with socket.create_connection(("127.0.0.1", d.port)) as s:
        s.sendall(b"EHLO early.test\r\n")
        assert _read_replies(s, 1) == ["554 SMTP synchronization error"]
    d.wait_for_log(r"SMTP protocol synchronization error \(input sent without waiting "
                   r"for greeting\)", 5)


def test_client_sends_ehlo_early_to_pipe_connect_servers(pymta_daemon, sink_port):
    config = _config("  hosts_pipe_connect = *\n")
    with SmtpSink(port=sink_port, extensions=["PIPECONNECT"], banner_delay=0.5) as sink:
        d = pymta_daemon(config=config)
        for n in (1, 2):
            assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
            assert sink.wait_for(n, 15), d.diagnostics()
            assert wait_for(lambda: len(sink.early_input) == n, 5)
        # the first connection learnt that the sink offers PIPECONNECT; the second
        # sent its EHLO before the banner
        assert sink.early_input == [False, True]
        assert sum(1 for c in sink.commands if c.startswith("EHLO ")) == 2


def test_client_waits_for_banner_without_hosts_pipe_connect(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port, extensions=["PIPECONNECT"], banner_delay=0.3) as sink:
        d = pymta_daemon(config=_config())
        for n in (1, 2):
            assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
            assert sink.wait_for(n, 15), d.diagnostics()
        assert wait_for(lambda: len(sink.early_input) == 2, 5)
        assert sink.early_input == [False, False]


def test_client_forgets_a_server_that_stopped_offering_it(pymta_daemon, sink_port):
    config = _config("  hosts_pipe_connect = *\n")
    d = pymta_daemon(config=config)
    with SmtpSink(port=sink_port, extensions=["PIPECONNECT"], banner_delay=0.3) as sink:
        assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
        assert sink.wait_for(1, 15), d.diagnostics()
    with SmtpSink(port=sink_port, banner_delay=0.3) as sink:
        for n in (1, 2):
            assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
            assert sink.wait_for(n, 15), d.diagnostics()
        assert wait_for(lambda: len(sink.early_input) == 2, 5)
        # one early EHLO (the cache said yes), then no more: the reply lacked PIPECONNECT
        assert sink.early_input == [True, False]
