"""The smtp transport sends BDAT (RFC 3030 CHUNKING) to servers that offer it, when the
host is in hosts_try_chunking (default ``*``), as Exim 4.96 does (checked with exim4 as
the client of a capturing server): MAIL, RCPT and a single ``BDAT <n> LAST`` in one
write for a small message, the header block first for a large one; ``K`` on the ``=>``
line; failures named "pipelined end of data" / "pipelined sending data block"."""
from __future__ import annotations

import re

from tests.integration.conftest import BASE_CONFIG, wait_for
from tests.integration.test_daemon_e2e import MESSAGE, send
from tests.support.daemon import PymtaDaemon
from tests.support.exim import EximDaemon, exim_or_skip
from tests.support.sink import SmtpSink

CONFIG = BASE_CONFIG.replace("  allow_localhost\n", "  allow_localhost\n"
                             ".ifdef TRY_CHUNKING\n  hosts_try_chunking = TRY_CHUNKING\n.endif\n"
                             ".ifdef AVOID_PIPELINING\n  hosts_avoid_pipelining = *\n.endif\n")
WIRE_BODY = b"Hello Alice.\r\n.leading dot\r\n\r\nbye\r\n"


def _delivered_line(d) -> str:
    [line] = d.wait_for_log(r"=> user@remote\.example ", 15)
    return line


def test_a_small_message_is_one_bdat_last_pipelined_with_mail_and_rcpt(pymta_daemon,
                                                                       sink_port):
    with SmtpSink(port=sink_port, chunking=True) as sink:
        d = pymta_daemon(config=CONFIG)
        assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
        assert sink.wait_for(1, 15), d.diagnostics()
        msg = sink.messages[0]
        # No dot-stuffing, CRLF line ends, and the whole message in one LAST chunk.
        assert msg.data.endswith(b"\r\n\r\n" + WIRE_BODY)
        assert msg.bdat_chunks == [len(msg.data)]
        assert [c for c in sink.commands if c.startswith(("BDAT", "DATA"))] == \
            [f"BDAT {len(msg.data)} LAST"]
        line = _delivered_line(d)
        assert re.search(r'H=127\.0\.0\.1 \[127\.0\.0\.1\] K C="250 OK id=sink"$', line), line


def test_hosts_try_chunking_empty_means_data(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port, chunking=True) as sink:
        d = pymta_daemon(config=CONFIG, macros={"TRY_CHUNKING": ":"})
        assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
        assert sink.wait_for(1, 15), d.diagnostics()
        assert sink.messages[0].bdat_chunks == []
        assert "DATA" in sink.commands
        assert " K " not in _delivered_line(d)


def test_a_large_message_sends_its_header_block_first(pymta_daemon, sink_port):
    body = b"".join(b"line %07d .\r\n.dot\r\n" % i for i in range(50_000))   # 1.1 MB
    message = b"Subject: big\r\n\r\n" + body
    with SmtpSink(port=sink_port, chunking=True) as sink:
        d = pymta_daemon(config=CONFIG)
        assert send(d, "a@outside.example", ["user@remote.example"],
                    message.replace(b"\r\n.", b"\r\n.."))[0] == 250
        assert sink.wait_for(1, 30), d.diagnostics()
        msg = sink.messages[0]
        assert msg.data.endswith(b"\r\n\r\n" + body)
        header_len = msg.data.index(b"\r\n\r\n") + 4
        assert msg.bdat_chunks[0] == header_len
        assert len(msg.bdat_chunks) == 3 and sum(msg.bdat_chunks) == len(msg.data)
        assert max(msg.bdat_chunks) <= 1 << 20
        assert " K " in _delivered_line(d)


def test_refused_last_chunk_bounces_as_pipelined_end_of_data(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port, chunking=True, mode="data", code=550, text="spam"):
        d = pymta_daemon(config=CONFIG)
        assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
        d.wait_for_log(r"\*\* user@remote\.example R=remote T=remote_smtp "
                       r"H=127\.0\.0\.1 \[127\.0\.0\.1\]: SMTP error from remote mail server "
                       r"after pipelined end of data: 550 spam", 15)


def test_refused_header_chunk_is_pipelined_sending_data_block(pymta_daemon, sink_port):
    message = b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * (1 << 14)     # 1.3 MB
    with SmtpSink(port=sink_port, chunking=True, bdat_reply=(451, "try later")) as sink:
        d = pymta_daemon(config=CONFIG)
        assert send(d, "a@outside.example", ["user@remote.example"], message)[0] == 250
        d.wait_for_log(r"== user@remote\.example R=remote T=remote_smtp defer \(-46\) "
                       r"H=127\.0\.0\.1 \[127\.0\.0\.1\]: SMTP error from remote mail server "
                       r"after pipelined sending data block: 451 try later", 15)
        # Only the header block was sent: nothing after the refusal.
        [bdat] = [c for c in sink.commands if c.startswith("BDAT")]
        assert re.fullmatch(r"BDAT \d{2,3}", bdat), bdat


def test_all_recipients_refused_the_pipelined_chunk_is_skipped(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port, chunking=True, mode="rcpt", code=550,
                  text="no such user") as sink:
        d = pymta_daemon(config=CONFIG)
        assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
        d.wait_for_log(r"\*\* user@remote\.example .* after RCPT TO:<user@remote\.example>: "
                       r"550 no such user", 15)
        # The chunk went with MAIL and RCPT (as Exim sends it); the server skipped it.
        assert any(c.startswith("BDAT") and c.endswith(" LAST") for c in sink.commands)
        assert not any(c.startswith("DATA") for c in sink.commands)
        assert sink.messages == []


def test_without_pipelining_no_chunk_is_sent_before_a_recipient_is_accepted(pymta_daemon,
                                                                             sink_port):
    refused = {"nobody@remote.example": (550, "no such user")}
    with SmtpSink(port=sink_port, chunking=True, rcpt_replies=refused) as sink:
        d = pymta_daemon(config=CONFIG, macros={"AVOID_PIPELINING": "1"})
        assert send(d, "a@outside.example", ["nobody@remote.example"], MESSAGE)[0] == 250
        d.wait_for_log(r"\*\* nobody@remote\.example .* after RCPT TO:", 15)
        assert not any(c.startswith("BDAT") for c in sink.commands)
        assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
        assert sink.wait_for(1, 15), d.diagnostics()
        assert len(sink.messages[0].bdat_chunks) == 1
        assert " K " in _delivered_line(d)


def test_pymta_to_pymta_with_bdat(pymta_daemon, tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "users").write_text("alice: alice\n")
    receiver_config = BASE_CONFIG.replace(
        "domainlist local_domains = test.example",
        "domainlist local_domains = test.example : remote.example").replace(
        "  domains = remote.example\n  route_list", "  domains = nowhere.example\n  route_list")
    with PymtaDaemon(receiver_config, inner, macros={"SINK_PORT": "1"}) as receiver:
        d = pymta_daemon(config=CONFIG, macros={"SINK_PORT": str(receiver.port)})
        assert send(d, "a@outside.example", ["alice@remote.example"], MESSAGE)[0] == 250
        [line] = receiver.wait_for_log(r"<= a@outside\.example ", 15)
        assert re.search(r" P=esmtps? (X=\S+ CV=\w+ )?K S=", line), line
        sent = d.wait_for_log(r"=> alice@remote\.example ", 15)[0]
        assert re.search(r' K C="250- \d+ byte chunk, total \d+\\n250 OK id=\S+"$', sent), sent
        files = wait_for(lambda: list((inner / "maildir" / "alice" / "new").glob("*")), 15)
        assert files and files[0].read_bytes().endswith(b"\n\nHello Alice.\n.leading dot\n"
                                                        b"\nbye\n")


EXIM_RECEIVER = """\
primary_hostname = exim.test
daemon_smtp_ports = @PORT@
local_interfaces = 127.0.0.1
spool_directory = @SPOOL@
log_file_path = @SPOOL@/log/%slog
tls_advertise_hosts =
acl_smtp_rcpt = accept
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = @DIR@/mbox
"""


def test_pymta_to_exim_with_bdat(pymta_daemon, tmp_path):
    exim_or_skip()
    edir = tmp_path / "exim"
    edir.mkdir()
    with EximDaemon(EXIM_RECEIVER, edir) as exim:
        d = pymta_daemon(config=CONFIG, macros={"SINK_PORT": str(exim.port)})
        assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
        assert wait_for(lambda: " P=esmtp K S=" in exim.log(), 15), exim.diagnostics()
        # Exim's reply to the last chunk: the chunk line, then the usual one.
        assert re.search(r' K C="250- 288 byte chunk, total 288\\n250 OK id=\S+"$',
                         _delivered_line(d))
        mbox = edir / "mbox"
        assert wait_for(lambda: mbox.exists() and b"bye" in mbox.read_bytes(), 15)
        # Exim's mbox escapes nothing here: the body arrived byte for byte.
        assert b"\n\nHello Alice.\n.leading dot\n\nbye\n" in mbox.read_bytes()
