"""run_session on a socketpair: ACLs, banner, spooling, notify, logging, errors."""
from __future__ import annotations

import os
import socket
import textwrap
import threading

import pymta.hostname as hostname_mod
from pymta.config import load_config
from pymta.smtp import session as session_mod
from pymta.smtp.etrn import set_queue_runner
from pymta.smtp.session import run_session
from tests.support.recording_log import RecordingLog

CONF = """\
primary_hostname = test.example
spool_directory = {spool}
smtp_banner = $smtp_active_hostname ESMTP test
{size}
domainlist local_domains = a.example
acl_smtp_rcpt = check_rcpt
acl_smtp_data = check_data
{extra}
begin acl
check_rcpt:
  deny    message = bad domain
          domains = bad.example
  warn    set acl_m_seen = $local_part
          set acl_c_conn = $sender_helo_name
  accept  domains = +local_domains
          local_parts = !queue
  accept  domains = +local_domains
          control = queue_only
check_data:
  deny    condition = ${{if eq{{$h_subject:}}{{bad}}}}
          message = bad subject
  accept  add_header = X-Seen: $acl_m_seen $acl_c_conn
{acls}
begin routers
r:
  driver = accept
  domains = +local_domains
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
"""


class StopEvent:
    def __init__(self):
        self.flag = False

    def is_set(self):
        return self.flag


def make_config(tmp_path, extra="", acls=""):
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    path = tmp_path / "configure"
    # A plain number: receive.py does not parse K/M suffixes yet.
    size = "" if "message_size_limit" in extra else "message_size_limit = 1000000"
    path.write_text(CONF.format(spool=spool, extra=textwrap.dedent(extra), acls=acls,
                                size=size))
    return load_config(str(path))


class Client:
    """The client end of a socketpair with run_session running in a thread."""

    def __init__(self, cfg, stop=None, early: bytes = b""):
        self.sock, server_sock = socket.socketpair()
        self.sock.settimeout(5)
        self.log = RecordingLog(with_msgid=True)
        self.notified = []
        if early:
            self.sock.sendall(early)
        self.thread = threading.Thread(target=run_session, args=(
            server_sock, cfg, 25, self.log, self.notified.append, stop),
            kwargs={"peer": ("192.0.2.1", 40000), "local": ("192.0.2.2", 25)}, daemon=True)
        self.thread.start()
        self._server_sock = server_sock
        self.buf = b""

    def read_reply(self) -> list[str]:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return lines
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] == b" ":
                return lines

    def cmd(self, text: bytes) -> list[str]:
        self.sock.sendall(text)
        return self.read_reply()

    def close(self):
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.sock.close()
        self._server_sock.close()


def spooled(cfg):
    d = os.path.join(cfg.main.spool_directory, "input")
    found = []
    for root, _, files in os.walk(d):
        found += [f for f in files if f.endswith("-H")]
    return found


def test_full_session_spools_and_notifies(tmp_path):
    cfg = make_config(tmp_path)
    c = Client(cfg)
    assert c.read_reply() == ["220 test.example ESMTP test"]
    assert c.cmd(b"EHLO client.example\r\n")[0] == \
        "250-test.example Hello client.example [192.0.2.1]"
    assert c.cmd(b"MAIL FROM:<s@x.example>\r\n") == ["250 OK"]
    assert c.cmd(b"RCPT TO:<joe@a.example>\r\n") == ["250 Accepted"]
    assert c.cmd(b"DATA\r\n")[0].startswith("354")
    reply = c.cmd(b"Subject: hi\r\n\r\nbody\r\n.\r\n")
    assert reply[0].startswith("250 OK id=")
    msgid = reply[0].split("=", 1)[1]
    assert c.cmd(b"QUIT\r\n") == ["221 test.example closing connection"]
    c.close()
    assert c.notified == [msgid]
    assert spooled(cfg) == [msgid + "-H"]
    hdr = open(os.path.join(cfg.main.spool_directory, "input", msgid + "-H")).read()
    assert "X-Seen: joe client.example" in hdr
    assert "<= s@x.example" in c.log.text()


def test_pipelined_group_and_rejections_logged(tmp_path):
    cfg = make_config(tmp_path)
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO client.example\r\n")
    c.sock.sendall(b"MAIL FROM:<s@x.example>\r\nRCPT TO:<q@bad.example>\r\n"
                   b"RCPT TO:<q@c.example>\r\nDATA\r\n")
    assert c.read_reply() == ["250 OK"]
    assert c.read_reply() == ["550 bad domain"]
    assert c.read_reply() == ["550 Administrative prohibition"]
    assert c.read_reply() == ["503 Valid RCPT command must precede DATA"]
    c.cmd(b"QUIT\r\n")
    c.close()
    rejects = [t for k, t in c.log.lines if k == "reject"]
    assert rejects == [
        "H=(client.example) [192.0.2.1] F=<s@x.example> rejected RCPT <q@bad.example>: bad domain",
        "H=(client.example) [192.0.2.1] F=<s@x.example> rejected RCPT <q@c.example>"]


def test_data_acl_rejection(tmp_path):
    cfg = make_config(tmp_path)
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO client.example\r\n")
    c.cmd(b"MAIL FROM:<s@x.example>\r\n")
    c.cmd(b"RCPT TO:<joe@a.example>\r\n")
    c.cmd(b"DATA\r\n")
    assert c.cmd(b"Subject: bad\r\n\r\nbody\r\n.\r\n") == ["550 bad subject"]
    c.cmd(b"QUIT\r\n")
    c.close()
    assert spooled(cfg) == [] and c.notified == []
    assert "rejected after DATA: bad subject" in c.log.text()


def test_queue_only_control_does_not_notify(tmp_path):
    cfg = make_config(tmp_path)
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO client.example\r\n")
    c.cmd(b"MAIL FROM:<s@x.example>\r\n")
    assert c.cmd(b"RCPT TO:<queue@a.example>\r\n") == ["250 Accepted"]
    c.cmd(b"DATA\r\n")
    assert c.cmd(b"Subject: x\r\n\r\nbody\r\n.\r\n")[0].startswith("250 OK id=")
    c.cmd(b"QUIT\r\n")
    c.close()
    assert c.notified == [] and len(spooled(cfg)) == 1


def test_acl_m_reset_per_message_acl_c_kept(tmp_path):
    cfg = make_config(tmp_path, acls="check_mail:\n  deny condition = ${if def:acl_m_seen}\n"
                                     "  accept condition = ${if eq{$acl_c_conn}{client.example}}\n"
                                     "  deny\n", extra="acl_smtp_mail = check_mail\n")
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO client.example\r\n")
    assert c.cmd(b"MAIL FROM:<s@x.example>\r\n") == ["550 Administrative prohibition"]
    c.cmd(b"QUIT\r\n")
    c.close()


def test_connect_acl_rejects(tmp_path):
    cfg = make_config(tmp_path, extra="acl_smtp_connect = deny message = go away\n")
    c = Client(cfg)
    assert c.read_reply() == ["550 go away"]
    assert c.sock.recv(10) == b""
    c.close()
    assert 'rejected connection in "connect" ACL: go away' in c.log.text()


def test_input_before_banner_is_sync_error_without_pipe_connect(tmp_path):
    cfg = make_config(tmp_path, extra="pipelining_connect_advertise_hosts =\n")
    c = Client(cfg, early=b"EHLO early\r\n")
    assert c.read_reply() == ["554 SMTP synchronization error"]
    c.close()
    assert "SMTP protocol synchronization error (input sent without waiting for greeting)" \
        in c.log.text()


def test_pipe_connect_early_ehlo_and_mail_answered_after_banner(tmp_path):
    """Exim 4.96's default (pipelining_connect_advertise_hosts = *): PIPECONNECT is
    offered, and commands sent before the banner are answered after it."""
    cfg = make_config(tmp_path)
    c = Client(cfg, early=b"EHLO early\r\nMAIL FROM:<a@example.com>\r\n")
    assert c.read_reply()[0].startswith("220 ")
    ehlo = c.read_reply()
    assert "250-PIPELINING" in ehlo and "250-PIPECONNECT" in ehlo
    assert ehlo.index("250-PIPECONNECT") == ehlo.index("250-PIPELINING") + 1
    assert c.read_reply() == ["250 OK"]
    # HELO/EHLO are no synchronisation points either
    c.sock.sendall(b"HELO again\r\nMAIL FROM:<b@example.com>\r\n")
    assert c.read_reply()[0].startswith("250 ")
    assert c.read_reply() == ["250 OK"]
    c.cmd(b"QUIT\r\n")
    c.close()
    assert "synchronization" not in c.log.text()


def test_pipe_connect_off_for_unlisted_hosts(tmp_path):
    cfg = make_config(tmp_path, extra="pipelining_connect_advertise_hosts = 192.0.2.99\n")
    c = Client(cfg)
    c.read_reply()
    ehlo = c.cmd(b"EHLO client.example\r\n")
    assert "250-PIPELINING" in ehlo and not any("PIPECONNECT" in ln for ln in ehlo)
    c.sock.sendall(b"EHLO again\r\nMAIL FROM:<a@example.com>\r\n")
    assert c.read_reply() == ["554 SMTP synchronization error"]
    c.close()


def test_unexpected_disconnection_logged(tmp_path):
    cfg = make_config(tmp_path)
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO client.example\r\n")
    c.cmd(b"MAIL FROM:<>\r\n")          # Exim: only with a transaction in progress
    c.sock.shutdown(socket.SHUT_WR)
    assert c.read_reply() == ["421 test.example lost input connection"]
    c.close()
    assert "unexpected disconnection while reading SMTP command from (client.example) " \
           "[192.0.2.1] D=0s" in c.log.text()


def test_command_timeout(tmp_path):
    cfg = make_config(tmp_path, extra="smtp_receive_timeout = 1s\n")
    c = Client(cfg)
    c.read_reply()
    assert c.read_reply() == ["421 test.example SMTP command timeout - closing connection"]
    c.close()
    assert "SMTP command timeout on connection from [192.0.2.1]" in c.log.text()


def test_stop_event_gives_421(tmp_path):
    cfg = make_config(tmp_path)
    stop = StopEvent()
    c = Client(cfg, stop=stop)
    c.read_reply()
    c.cmd(b"EHLO client.example\r\n")
    stop.flag = True
    assert c.cmd(b"NOOP\r\n") == ["421 test.example Service not available - closing connection"]
    c.close()


def test_exception_while_receiving_gives_451(tmp_path, monkeypatch):
    cfg = make_config(tmp_path)

    def boom(self, *args):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(session_mod.SmtpSession, "_spool", boom)
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO client.example\r\n")
    c.cmd(b"MAIL FROM:<s@x.example>\r\n")
    c.cmd(b"RCPT TO:<joe@a.example>\r\n")
    c.cmd(b"DATA\r\n")
    assert c.cmd(b"Subject: x\r\n\r\nbody\r\n.\r\n") == [
        "451 Temporary local problem - please try later"]
    c.cmd(b"QUIT\r\n")
    c.close()
    assert c.notified == []
    assert any(k == "panic" and "disk on fire" in t for k, t in c.log.lines)


def test_too_many_synprot_errors_logged(tmp_path):
    cfg = make_config(tmp_path)
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO x\r\n")
    for _ in range(3):
        c.cmd(b"RCPT TO:<a@b>\r\n")
    assert c.cmd(b"RCPT TO:<a@b>\r\n") == ["503-sender not yet given",
                                          "503 Too many syntax or protocol errors"]
    c.close()
    assert 'SMTP call from (x) [192.0.2.1] dropped: too many syntax or protocol errors ' \
           '(last command was "RCPT TO:<a@b>",  C=EHLO,RCPT,RCPT,RCPT,RCPT)' in c.log.text()


def session_with(tmp_path, script: list[bytes], **kw):
    cfg = make_config(tmp_path, **kw)
    c = Client(cfg)
    replies = [c.read_reply()]
    for cmd in script:
        replies.append(c.cmd(cmd))
    c.close()
    return replies, c, cfg


def test_vrfy_expn_etrn_defaults(tmp_path):
    replies, c, _ = session_with(tmp_path, [b"EHLO x\r\n", b"VRFY joe@a.example\r\n",
                                            b"EXPN joe\r\n", b"ETRN #x\r\n", b"QUIT\r\n"])
    assert replies[2:5] == [["252 Administrative prohibition"],
                            ["550 Administrative prohibition"],
                            ["458 Administrative prohibition"]]


def test_vrfy_expn_etrn_when_allowed(tmp_path):
    set_queue_runner(lambda config, log, selection: None)    # what the daemon registers
    try:
        replies, c, _ = session_with(
            tmp_path, [b"EHLO x\r\n", b"VRFY joe@a.example\r\n", b"VRFY joe@c.example\r\n",
                       b"VRFY joe\r\n", b"VRFY\r\n", b"EXPN joe@a.example\r\n",
                       b"ETRN x.y\r\n", b"ETRN #x\r\n", b"QUIT\r\n"],
            extra="acl_smtp_vrfy = accept\nacl_smtp_expn = accept\nacl_smtp_etrn = accept\n")
    finally:
        set_queue_runner(None)
    assert replies[2:9] == [["250 <joe@a.example> is deliverable"],
                            ["550 <joe@c.example> Unrouteable address"],
                            ["501 joe: recipient address must contain a domain"],
                            ["501 empty address"], ["250 <joe@a.example>"],
                            ["501 argument must begin with #"], ["250 OK"]]
    assert "VRFY failed for joe@c.example H=(x) [192.0.2.1]" in c.log.text()
    assert "ETRN #x received from (x) [192.0.2.1]" in c.log.text()


def test_helo_acl_and_invalid_helo_logged(tmp_path):
    replies, c, _ = session_with(
        tmp_path, [b"HELO a_b\r\n", b"EHLO bad.example\r\n", b"EHLO good.example\r\n",
                   b"QUIT\r\n"],
        extra="acl_smtp_helo = check_helo\n",
        acls="check_helo:\n  deny condition = ${if eq{$sender_helo_name}{bad.example}}\n"
             "       message = I don't like you\n  accept\n")
    assert replies[1] == ["501 Syntactically invalid HELO argument(s)"]
    assert replies[2] == ["550 I don't like you"]
    assert replies[3][0] == "250-test.example Hello good.example [192.0.2.1]"
    text = c.log.text()
    assert "rejected HELO from [192.0.2.1]: syntactically invalid argument(s): a_b" in text
    assert "H=[192.0.2.1] rejected EHLO or HELO bad.example: I don't like you" in text


def test_no_pipelining_control(tmp_path):
    replies, c, _ = session_with(tmp_path, [b"EHLO x\r\n", b"QUIT\r\n"],
                                 extra="acl_smtp_connect = accept control = no_pipelining\n")
    assert "250-PIPELINING" not in replies[1]
    replies, c, _ = session_with(tmp_path, [b"EHLO x\r\n", b"QUIT\r\n"])
    assert "250-PIPELINING" in replies[1]


def test_pipelining_advertise_hosts(tmp_path):
    replies, c, _ = session_with(tmp_path, [b"EHLO x\r\n", b"QUIT\r\n"],
                                 extra="pipelining_advertise_hosts = 10.0.0.0/8\n")
    assert "250-PIPELINING" not in replies[1]


def test_mail_acl_discard_accepts_without_spooling(tmp_path):
    replies, c, cfg = session_with(
        tmp_path, [b"EHLO x\r\n", b"MAIL FROM:<s@x.example>\r\n", b"RCPT TO:<joe@a.example>\r\n",
                   b"DATA\r\n", b"Subject: x\r\n\r\nb\r\n.\r\n", b"QUIT\r\n"],
        extra="acl_smtp_mail = discard\n")
    assert replies[2:4] == [["250 OK"], ["250 Accepted"]]
    assert replies[5][0].startswith("250")
    assert spooled(cfg) == [] and c.notified == []


def test_mail_drop_closes_connection(tmp_path):
    cfg = make_config(tmp_path, extra="acl_smtp_mail = drop message = bye\n")
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO x\r\n")
    assert c.cmd(b"MAIL FROM:<s@x.example>\r\n") == ["550 bye"]
    assert c.sock.recv(10) == b""
    c.close()


def test_queue_per_connection_limit(tmp_path):
    msg = [b"MAIL FROM:<s@x.example>\r\n", b"RCPT TO:<joe@a.example>\r\n", b"DATA\r\n",
           b"Subject: x\r\n\r\nb\r\n.\r\n"]
    replies, c, cfg = session_with(tmp_path, [b"EHLO x\r\n"] + msg * 3 + [b"QUIT\r\n"],
                                   extra="smtp_accept_queue_per_connection = 2\n")
    assert len(spooled(cfg)) == 3
    assert len(c.notified) == 2


def test_received_protocol_and_envelope(tmp_path, monkeypatch):
    seen = {}

    def fake_receive(config, envelope, data, log, prepared=None):
        seen["env"] = envelope
        seen["data"] = data
        return "1abcde-000000-00"
    import pymta.smtp.assemble as receive  # where the session calls the spool writer
    monkeypatch.setattr(receive, "receive_message", fake_receive)
    replies, c, _ = session_with(
        tmp_path, [b"EHLO client.example\r\n", b"MAIL FROM:<s@x.example> BODY=8BITMIME\r\n",
                   b"RCPT TO:<joe@a.example>\r\n", b"DATA\r\n",
                   b"Subject: x\r\n\r\n..dot\r\n.\r\n", b"QUIT\r\n"])
    assert replies[5] == ["250 OK id=1abcde-000000-00"]
    env = seen["env"]
    assert (env.sender, env.recipients, env.protocol) == ("s@x.example", ["joe@a.example"], "esmtp")
    assert (env.host_address, env.host_port, env.helo_name) == \
        ("192.0.2.1", 40000, "client.example")
    assert (env.interface_address, env.interface_port) == ("192.0.2.2", 25)
    assert env.acl_vars == {"acl_c_conn": "client.example", "acl_m_seen": "joe"}
    assert env.extra_headers == ["X-Seen: joe client.example"]
    from pymta.taint import is_tainted
    assert is_tainted(env.sender) and is_tainted(env.recipients[0])
    assert seen["data"] == b"Subject: x\n\n.dot\n"
    assert c.notified == ["1abcde-000000-00"]


def test_host_lookup_sets_name_in_logs(tmp_path, monkeypatch):
    monkeypatch.setattr(hostname_mod, "find_host_name",
                        lambda ip, order, again: hostname_mod.HostName(
                            "client.example" if ip == "192.0.2.1" else None, False, True))
    replies, c, _ = session_with(
        tmp_path, [b"EHLO other.example\r\n", b"MAIL FROM:<s@x.example>\r\n",
                   b"RCPT TO:<q@bad.example>\r\n", b"QUIT\r\n"],
        extra="host_lookup = 192.0.2.0/24\n")
    assert "H=client.example (other.example) [192.0.2.1] F=<s@x.example> rejected RCPT " \
           "<q@bad.example>: bad domain" in c.log.text()


def test_host_lookup_not_done_when_unset(tmp_path, monkeypatch):
    def boom(ip, order, again):
        raise AssertionError("lookup done")
    monkeypatch.setattr(hostname_mod, "find_host_name", boom)
    replies, c, _ = session_with(tmp_path, [b"QUIT\r\n"])
    assert replies[1] == ["221 test.example closing connection"]


def test_log_selector_syntax_and_protocol_errors(tmp_path):
    replies, c, _ = session_with(tmp_path, [b"EHLO x\r\n", b"RCPT TO:<a@b>\r\n",
                                            b"MAIL FROM:<s@x.example>\r\n", b"RCPT TO:<>\r\n",
                                            b"QUIT\r\n"],
                                 extra="log_selector = +smtp_syntax_error +smtp_protocol_error\n")
    text = c.log.text()
    assert 'SMTP protocol error in "RCPT TO:<a@b>" H=(x) [192.0.2.1] sender not yet given' in text
    # exim4 -bh logs the error without the "<>: " its reply starts with
    assert 'SMTP syntax error in "RCPT TO:<>" H=(x) [192.0.2.1] missing or malformed ' \
           'local part' in text.splitlines()[-1]
    replies, c, _ = session_with(tmp_path, [b"EHLO x\r\n", b"RCPT TO:<a@b>\r\n", b"QUIT\r\n"])
    assert "SMTP protocol error" not in c.log.text()


def test_log_selector_can_silence_lost_connections(tmp_path):
    cfg = make_config(tmp_path, extra="log_selector = -lost_incoming_connection\n")
    c = Client(cfg)
    c.read_reply()
    c.sock.shutdown(socket.SHUT_WR)
    c.read_reply()
    c.close()
    assert "unexpected disconnection" not in c.log.text()


def test_quit_acl_message_and_notquit_acl(tmp_path):
    extra = ("acl_smtp_quit = accept message = bye $acl_c_conn\n"
             "acl_smtp_notquit = warn logwrite = notquit $smtp_notquit_reason\n")
    replies, c, _ = session_with(tmp_path, [b"EHLO x\r\n", b"MAIL FROM:<s@x.example>\r\n",
                                            b"RCPT TO:<joe@a.example>\r\n", b"QUIT\r\n"],
                                 extra=extra)
    assert replies[-1] == ["221 bye x"]
    assert "notquit" not in c.log.text()
    cfg = make_config(tmp_path, extra=extra)
    c = Client(cfg)
    c.read_reply()
    c.sock.shutdown(socket.SHUT_WR)
    c.read_reply()
    c.close()
    assert "notquit connection-lost" in c.log.text()


def test_size_rejections_logged_like_exim(tmp_path):
    replies, c, cfg = session_with(
        tmp_path, [b"EHLO x.y\r\n", b"MAIL FROM:<a@b.c> SIZE=5000\r\n", b"MAIL FROM:<a@b.c>\r\n",
                   b"RCPT TO:<joe@a.example>\r\n", b"DATA\r\n",
                   b"Subject: x\r\n\r\n" + b"y" * 2000 + b"\r\n.\r\n", b"QUIT\r\n"],
        extra="message_size_limit = 1000\n")
    assert replies[2] == ["552 Message size exceeds maximum permitted"]
    assert replies[6] == ["552 Message size exceeds maximum permitted"]
    text = c.log.text()
    assert "rejected MAIL FROM:<a@b.c> H=(x.y) [192.0.2.1]: message too big: size=5000 max=1000" \
        in text
    assert "rejected from <a@b.c> H=(x.y) [192.0.2.1]: message too big: read=2013 max=1000" in text
    assert spooled(cfg) == []


def test_rcpt_discard_with_discard_acl(tmp_path, monkeypatch):
    seen = {}

    def fake_receive(config, envelope, data, log, prepared=None):
        seen["rcpts"] = list(envelope.recipients)
        return "1abcde-000000-00"
    import pymta.smtp.assemble as receive  # where the session calls the spool writer
    monkeypatch.setattr(receive, "receive_message", fake_receive)
    acls = "discarder:\n  discard local_parts = hole\n  accept domains = +local_domains\n"
    cfg = make_config(tmp_path, acls=acls)
    cfg.main.set("acl_smtp_rcpt", "discarder")
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO x\r\n")
    c.cmd(b"MAIL FROM:<s@x.example>\r\n")
    assert c.cmd(b"RCPT TO:<hole@a.example>\r\n") == ["250 Accepted"]
    assert c.cmd(b"RCPT TO:<joe@a.example>\r\n") == ["250 Accepted"]
    c.cmd(b"DATA\r\n")
    assert c.cmd(b"Subject: x\r\n\r\nb\r\n.\r\n") == ["250 OK id=1abcde-000000-00"]
    c.cmd(b"QUIT\r\n")
    c.close()
    assert seen["rcpts"] == ["joe@a.example"]


def test_verify_helo(tmp_path):
    acl = "helo_acl:\n  require verify = helo\n  accept\n"
    for helo, ok in [(b"[192.0.2.1]", True), (b"[192.0.2.9]", False),
                     (b"localhost", False)]:
        replies, c, _ = session_with(tmp_path, [b"EHLO " + helo + b"\r\n", b"QUIT\r\n"],
                                     extra="acl_smtp_helo = helo_acl\n", acls=acl)
        assert replies[1][0].startswith("250") == ok, helo


def test_helo_verify_hosts(tmp_path):
    replies, c, _ = session_with(tmp_path, [b"EHLO [192.0.2.9]\r\n", b"EHLO [192.0.2.1]\r\n",
                                            b"QUIT\r\n"],
                                 extra="helo_verify_hosts = 192.0.2.0/24\n")
    assert replies[1] == ["550 EHLO argument does not match calling host"]
    assert replies[2][0].startswith("250-")
    # As Exim 4.96: the refused name is in the host part of the line.
    assert 'rejected "EHLO [192.0.2.9]" from ([192.0.2.9]) [192.0.2.1]' in c.log.text()


def test_recipients_max_logged_once(tmp_path):
    replies, c, _ = session_with(
        tmp_path, [b"EHLO x\r\n", b"MAIL FROM:<a@b.c>\r\n"] + [b"RCPT TO:<joe@a.example>\r\n"] * 4
        + [b"QUIT\r\n"], extra="recipients_max = 2\n")
    assert replies[3:7] == [["250 Accepted"], ["250 Accepted"], ["452 too many recipients"],
                            ["452 too many recipients"]]
    assert c.log.text().count("too many recipients: excess temporarily rejected: "
                              "sender=<a@b.c> H=(x) [192.0.2.1]") == 1
