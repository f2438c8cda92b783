"""smtp transport against scripted SMTP servers on 127.0.0.1 (real sockets)."""
from __future__ import annotations

import errno
from types import SimpleNamespace

import pytest

from pymta.address import Address, Host
from pymta.config.model import DriverInstance
from pymta.delivery.job import DeliveryJob
from pymta.drivers import get_driver
from pymta.errnos import EximErrno
from pymta.expand.context import ExpandContext
from pymta.spool.model import SpoolHeader, SpoolMessage
from tests.support.ports import free_port
from tests.unit.test_smtp_client import ScriptedServer

MSGID = "1tAbCd-000042-Zz"
BODY = b"Hello\n.leading dot\n..two dots\n.\nlast line without newline"


def cfg():
    return SimpleNamespace(main=SimpleNamespace(primary_hostname="mta.test.example"))


def make_job(tmp_path, rcpts=("a@dst.example",), hosts=(), body=BODY, sender="s@src.example",
             variables=None):
    data = tmp_path / f"{MSGID}-D"
    data.write_bytes(f"{MSGID}-D\n".encode() + body)
    msg = SpoolMessage(MSGID, "s", 1000, 1000, sender, 1700000000,
                       variables=dict(variables or {}),
                       headers=[SpoolHeader(" ", "Subject: test\n"),
                                SpoolHeader("T", "To: a@dst.example\n")])
    addrs = [Address(r, hosts=list(hosts)) for r in rcpts]
    ctx = ExpandContext(config=cfg(), variables={"primary_hostname": "mta.test.example"})
    return DeliveryJob(msg, str(tmp_path), str(data), addrs, ctx, None, cfg())


_made: list = []


def transport(**options):
    options.setdefault("allow_localhost", True)
    options.setdefault("connect_timeout", 3)
    options.setdefault("command_timeout", 3)
    inst = DriverInstance("transport", "remote_smtp", "smtp", options=options)
    t = get_driver("transport", "smtp")(inst, cfg())
    _made.append(t)
    return t


@pytest.fixture(autouse=True)
def close_cached_connections():
    yield
    while _made:
        _made.pop().close_connections()


@pytest.fixture
def server():
    made = []

    def make(**kw):
        s = ScriptedServer(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def local(s):
    return Host("localhost", "127.0.0.1", s.port)


def test_accept_delivers_with_dot_stuffing_and_confirmation(server, tmp_path):
    s = server()
    job = make_job(tmp_path, rcpts=("a@dst.example", "b@dst.example"), hosts=[local(s)])
    t = transport()
    t.deliver(job)
    t.close_connections()
    assert [a.result for a in job.addresses] == ["ok", "ok"]
    a = job.addresses[0]
    assert a.smtp_confirmation == "250 OK id=1abc-000001-AB"
    assert a.host_used.address == "127.0.0.1" and a.host_used.port == s.port
    (m,) = s.messages
    assert m.sender == "s@src.example" and m.recipients == ["a@dst.example", "b@dst.example"]
    assert m.raw == (b"Subject: test\r\nTo: a@dst.example\r\n\r\n"
                     b"Hello\r\n..leading dot\r\n...two dots\r\n..\r\n"
                     b"last line without newline\r\n")
    assert m.unstuffed.replace(b"\r\n", b"\n").endswith(BODY + b"\n")
    assert s.commands[0] == "EHLO mta.test.example"
    assert m.mail_line.startswith("MAIL FROM:<s@src.example> SIZE=")
    assert s.commands[-1] == "QUIT"


def test_rcpt_550_fails_only_that_address(server, tmp_path):
    s = server(rcpt={"bad@dst.example": (550, "5.1.1 unknown user")})
    job = make_job(tmp_path, rcpts=("bad@dst.example", "good@dst.example"), hosts=[local(s)])
    transport().deliver(job)
    bad, good = job.addresses
    assert bad.result == "fail"
    assert bad.message == ("SMTP error from remote mail server after "
                           "RCPT TO:<bad@dst.example>: 550 5.1.1 unknown user")
    assert good.result == "ok"
    assert s.messages[0].recipients == ["good@dst.example"]


def test_rcpt_550_without_pipelining_message(server, tmp_path):
    s = server(ehlo=(250, "x\nSIZE"), rcpt={"bad@dst.example": (550, "no")})
    job = make_job(tmp_path, rcpts=("bad@dst.example",), hosts=[local(s)])
    transport().deliver(job)
    assert job.addresses[0].message == \
        "SMTP error from remote mail server after RCPT TO:<bad@dst.example>: 550 no"
    assert "DATA" not in s.commands


def test_rcpt_451_defers(server, tmp_path):
    s = server(rcpt={"a@dst.example": (451, "4.7.1 greylisted\ntry later")})
    job = make_job(tmp_path, hosts=[local(s)])
    transport().deliver(job)
    a = job.addresses[0]
    assert a.result == "defer" and a.basic_errno == EximErrno.RCPT4XX
    assert a.more_errno == 451
    assert a.message.endswith(": 451-4.7.1 greylisted\n451 try later")


def test_mail_5xx_fails_all(server, tmp_path):
    s = server(mail=(550, "sender rejected"))
    job = make_job(tmp_path, rcpts=("a@dst.example", "b@dst.example"), hosts=[local(s)])
    transport().deliver(job)
    assert {a.result for a in job.addresses} == {"fail"}
    assert job.addresses[0].message.startswith(
        "SMTP error from remote mail server after MAIL FROM:<s@src.example> SIZE=")
    assert s.messages == []


def test_data_5xx_after_end_of_data_fails_all(server, tmp_path):
    s = server(dot=(554, "content rejected"))
    job = make_job(tmp_path, rcpts=("a@dst.example", "b@dst.example"), hosts=[local(s)])
    transport().deliver(job)
    assert {a.result for a in job.addresses} == {"fail"}
    assert job.addresses[1].message == \
        "SMTP error from remote mail server after end of data: 554 content rejected"


def test_connection_refused_defers_with_errno(tmp_path):
    job = make_job(tmp_path, hosts=[Host("nowhere", "127.0.0.1", free_port())])
    transport().deliver(job)
    a = job.addresses[0]
    assert a.result == "defer" and a.basic_errno == errno.ECONNREFUSED
    assert a.message == "Connection refused"
    assert a.host_used.address == "127.0.0.1"


def test_next_host_after_host_error(server, tmp_path):
    s = server()
    dead = Host("dead", "127.0.0.1", free_port())
    job = make_job(tmp_path, hosts=[dead, local(s)])
    transport().deliver(job)
    a = job.addresses[0]
    assert a.result == "ok" and a.host_used.port == s.port
    assert len(s.messages) == 1


def test_next_host_after_451_but_not_after_550(server, tmp_path):
    first = server(rcpt={"t@dst.example": (451, "later"), "p@dst.example": (550, "no")})
    second = server()
    job = make_job(tmp_path, rcpts=("t@dst.example", "p@dst.example"),
                   hosts=[local(first), local(second)])
    transport().deliver(job)
    t, p = job.addresses
    assert t.result == "ok" and t.host_used.port == second.port
    assert p.result == "fail"
    assert second.messages[0].recipients == ["t@dst.example"]


def test_timeout_after_end_of_data_defers(server, tmp_path):
    s = server(stall_at="dot")
    job = make_job(tmp_path, hosts=[local(s)])
    transport(final_timeout=0.3).deliver(job)
    a = job.addresses[0]
    assert a.result == "defer" and a.basic_errno == errno.ETIMEDOUT
    assert a.message.startswith("SMTP timeout after end of data (")


def test_bad_banner_defers(server, tmp_path):
    s = server(banner=(554, "go away"))
    job = make_job(tmp_path, hosts=[local(s)])
    transport().deliver(job)
    a = job.addresses[0]
    assert a.result == "defer"
    assert a.message == "SMTP error from remote mail server after initial connection: 554 go away"


def test_router_local_host_used_without_allow_localhost(server, tmp_path):
    # Exim 4.96: a router's hosts were vetted by its "self" option (self = send)
    s = server()
    job = make_job(tmp_path, hosts=[local(s)])
    transport(allow_localhost=False).deliver(job)
    assert job.addresses[0].result == "ok" and s.connections == 1


@pytest.mark.parametrize("options", [{"hosts": "127.0.0.1"},
                                     {"hosts": "127.0.0.1", "hosts_override": True},
                                     {"fallback_hosts": "127.0.0.1"}])
def test_own_local_host_refused_without_allow_localhost(server, tmp_path, options):
    s = server(rcpt={"a@dst.example": (451, "later")})
    router_hosts = [local(s)] if "hosts" not in options or "hosts_override" in options else []
    job = make_job(tmp_path, hosts=router_hosts)
    transport(allow_localhost=False, port=str(s.port), **options).deliver(job)
    a = job.addresses[0]
    assert a.result == "defer" and a.basic_errno == EximErrno.HOST_IS_LOCAL
    assert a.message == "remote_smtp transport found host 127.0.0.1 to be local"
    assert s.connections == (1 if "fallback_hosts" in options else 0)


def test_hosts_option_and_port(server, tmp_path):
    s = server()
    job = make_job(tmp_path)
    transport(hosts="127.0.0.1", port=str(s.port)).deliver(job)
    assert job.addresses[0].result == "ok" and len(s.messages) == 1


def test_max_rcpt_splits_transactions(server, tmp_path):
    s = server()
    rcpts = tuple(f"u{i}@dst.example" for i in range(5))
    job = make_job(tmp_path, rcpts=rcpts, hosts=[local(s)])
    transport(max_rcpt=2).deliver(job)
    assert {a.result for a in job.addresses} == {"ok"}
    assert [m.recipients for m in s.messages] == [list(rcpts[:2]), list(rcpts[2:4]),
                                                  list(rcpts[4:])]
    assert s.connections == 1


def test_8bitmime_sent_for_8bit_message(server, tmp_path):
    s = server()
    job = make_job(tmp_path, hosts=[local(s)], variables={"body_8bitmime": "8"})
    transport().deliver(job)
    assert s.messages[0].mail_line.endswith(" BODY=8BITMIME")


def test_helo_data_and_headers_add(server, tmp_path):
    s = server()
    job = make_job(tmp_path, hosts=[local(s)])
    transport(helo_data="helo.$primary_hostname", headers_add="X-T: $transport_name",
              return_path="bounces@src.example").deliver(job)
    assert s.commands[0] == "EHLO helo.mta.test.example"
    m = s.messages[0]
    assert m.sender == "bounces@src.example"
    assert b"To: a@dst.example\r\nX-T: remote_smtp\r\n\r\n" in m.raw


def test_lines_too_long_fail(server, tmp_path):
    s = server()
    job = make_job(tmp_path, hosts=[local(s)], variables={"max_received_linelength": "1200"})
    transport().deliver(job)
    assert job.addresses[0].result == "fail"
    assert s.connections == 0


def test_connection_reused_for_next_message_with_rset(server, tmp_path):
    s = server()
    t = transport()
    for i in range(3):
        job = make_job(tmp_path, rcpts=(f"r{i}@dst.example",), hosts=[local(s)])
        t.deliver(job)
        assert job.addresses[0].result == "ok"
    assert s.connections == 1 and len(s.messages) == 3
    assert s.commands.count("RSET") == 2 and s.commands.count("EHLO mta.test.example") == 1
    t.close_connections()
    assert s.commands[-1] == "QUIT"


def test_dead_cached_connection_is_replaced(server, tmp_path):
    s = server()
    t = transport(connection_max_messages=0)
    t.deliver(make_job(tmp_path, hosts=[local(s)]))
    for entry in t._cache().values():       # the server side went away meanwhile
        entry[0].sock.shutdown(2)
    job = make_job(tmp_path, hosts=[local(s)])
    t.deliver(job)
    assert job.addresses[0].result == "ok"
    assert s.connections == 2 and len(s.messages) == 2


def test_connection_max_messages_closes(server, tmp_path):
    s = server()
    t = transport(connection_max_messages=1)
    t.deliver(make_job(tmp_path, hosts=[local(s)]))
    assert t._cache() == {} and s.commands[-1] == "QUIT"


def test_size_parameter_like_exim(server, tmp_path):
    # Exim: message size (headers, blank line, body) + lines (without the blank one)
    # + size_addition; checked against exim4 4.96.
    s = server()
    job = make_job(tmp_path, hosts=[local(s)], body=b".body\nline\n",
                   variables={"body_linecount": "2"})
    transport().deliver(job)
    header = b"Subject: test\nTo: a@dst.example\n\n"
    expected = len(header) + 11 + 2 + 2 + 1024
    assert s.messages[0].mail_line == f"MAIL FROM:<s@src.example> SIZE={expected}"


def test_message_size_limit_fails_without_connecting(server, tmp_path):
    s = server()
    job = make_job(tmp_path, hosts=[local(s)])
    transport(message_size_limit="20").deliver(job)
    a = job.addresses[0]
    assert a.result == "fail" and a.message == "message is too big (transport limit = 20)"
    assert s.connections == 0
    job = make_job(tmp_path, hosts=[local(s)])
    transport(message_size_limit="1K").deliver(job)
    assert job.addresses[0].result == "ok"


def test_hosts_avoid_pipelining_and_esmtp(server, tmp_path):
    s = server()
    job = make_job(tmp_path, hosts=[local(s)])
    transport(hosts_avoid_pipelining="127.0.0.1").deliver(job)
    assert job.addresses[0].result == "ok"
    assert not any(b"RCPT" in c and b"MAIL" in c for c in s.chunks)
    s2 = server()
    job = make_job(tmp_path, hosts=[local(s2)])
    transport(hosts_avoid_esmtp="127.0.0.0/8").deliver(job)
    assert job.addresses[0].result == "ok"
    assert s2.commands[0] == "HELO mta.test.example"
    assert s2.messages[0].mail_line == "MAIL FROM:<s@src.example>"   # no SIZE without EHLO


def test_fallback_hosts_get_deferred_addresses(server, tmp_path):
    first = server(rcpt={"t@dst.example": (451, "later"), "p@dst.example": (550, "no")})
    fb = server()
    job = make_job(tmp_path, rcpts=("t@dst.example", "p@dst.example", "ok@dst.example"),
                   hosts=[local(first)])
    transport(fallback_hosts=f"127.0.0.1::{fb.port}").deliver(job)
    t, p, ok = job.addresses
    assert (t.result, p.result, ok.result) == ("ok", "fail", "ok")
    assert t.host_used.port == fb.port and ok.host_used.port == first.port
    assert fb.messages[0].recipients == ["t@dst.example"]


def test_interface_option_sets_source_address(server, tmp_path):
    s = server()
    job = make_job(tmp_path, hosts=[local(s)])
    t = transport(interface="::1 : 127.0.0.2", connection_max_messages=1)
    t.deliver(job)
    assert job.addresses[0].result == "ok"
    assert s.peers[0][0] == "127.0.0.2"


class LineLog:
    """Collects main-log lines like pymta.log.Logger.main."""

    def __init__(self):
        self.lines = []

    def main(self, text, msgid=None):
        self.lines.append(f"{msgid} {text}")


def test_host_errors_are_logged_like_exim(server, tmp_path):
    s = server(close_at="rcpt")
    dead = Host("dead.example", "127.0.0.1", free_port())
    job = make_job(tmp_path, hosts=[dead, local(s)])
    job.log, job.log_host_errors = LineLog(), True
    transport().deliver(job)
    assert job.log.lines == [
        f"{MSGID} H=dead.example [127.0.0.1] Connection refused",
        f"{MSGID} H=localhost [127.0.0.1]: Remote host closed connection in response to "
        "pipelined RCPT TO:<a@dst.example>"]
    a = job.addresses[0]
    assert a.result == "defer" and a.basic_errno == EximErrno.SMTPCLOSED


def test_timeout_in_transaction_has_no_host_line(server, tmp_path):
    """Exim 4.96 (checked with exim4): a timeout after MAIL is reported only on the
    address's defer line, while a timeout at the banner also gets a per-host line."""
    s = server(stall_at="dot")
    job = make_job(tmp_path, hosts=[local(s)])
    job.log = LineLog()
    assert job.log_host_errors          # on by default, as Exim writes these lines
    transport(final_timeout=0.3).deliver(job)
    assert job.addresses[0].basic_errno == errno.ETIMEDOUT
    assert job.log.lines == []
