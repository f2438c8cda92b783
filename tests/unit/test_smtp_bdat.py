"""BDAT (RFC 3030 CHUNKING) in the sans-IO server: framing, replies and sequencing as
Exim 4.96 gives them (checked with exim4 -bh and a real exim4 daemon), stricter where
Exim's size parsing desynchronises the session."""
from __future__ import annotations

import pytest

from pymta.message.body import FileBody
from pymta.smtp.actions import ReadBytes, ReadLine, SendReply
from pymta.smtp.bdat import BdatReceiver, ChunkedBody, parse_bdat
from pymta.smtp.server import Reply, SmtpHandler, SmtpServer

TX = b"MAIL FROM:<a@b.c>\r\nRCPT TO:<u@d.e>\r\n"
OK_TX = b"250 OK\r\n250 Accepted\r\n"


class Handler(SmtpHandler):
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.predata = 0
        self.rsets = 0

    def on_predata(self) -> Reply | None:
        self.predata += 1
        return None

    def on_rcpt(self, address: str, params: dict[str, str | None]) -> Reply | None:
        if address.startswith("bad@"):
            return Reply(550, "Administrative prohibition")
        return None

    def on_message(self, data: bytes) -> Reply:
        self.messages.append(data)
        return Reply(250, f"OK id={len(self.messages)}")

    def on_rset(self) -> None:
        self.rsets += 1


def _server(size_limit: int = 0, advertise: bool = True, ehlo: bytes = b"EHLO x\r\n",
            **kw) -> tuple[SmtpServer, Handler]:
    handler = Handler()
    server = SmtpServer("mx.test", handler, size_limit=size_limit, **kw)
    chunking = BdatReceiver(server)
    if advertise:
        chunking.advertise()
    server.greet("mx.test ESMTP")
    server.feed(ehlo)
    return server, handler


def test_ehlo_advertises_chunking_and_help_lists_bdat():
    server, _ = _server()
    assert b"250-CHUNKING\r\n" in server.feed(b"EHLO y\r\n")
    assert b"BDAT" in server.feed(b"HELP\r\n")
    quiet, _ = _server(advertise=False)
    assert b"CHUNKING" not in quiet.feed(b"EHLO y\r\n")


def test_chunks_are_data_byte_exact_without_dot_unstuffing():
    server, h = _server()
    out = server.feed(TX + b"BDAT 5\r\nab\r\n.BDAT 11 LAST\r\n.\r\nQUIT\r\n\r\nNOOP\r\n")
    assert out == OK_TX + b"250 5 byte chunk received\r\n" \
        b"250- 11 byte chunk, total 16\r\n250 OK id=1\r\n250 OK\r\n"
    # ".\r\n" and "QUIT\r\n" inside a chunk are data, CRLF became LF, dots are kept.
    assert h.messages == [b"ab\n..\nQUIT\n\n"]
    assert h.predata == 0                     # Exim runs no predata ACL for BDAT
    assert not server.closed


def test_crlf_split_between_chunks_and_lone_cr_lf_and_missing_final_newline():
    server, h = _server()
    server.feed(TX + b"BDAT 3\r\nab\r")
    server.feed(b"BDAT 9 LAST\r\n\nc\rd\ne\r\nf")
    assert h.messages == [b"ab\nc\rd\ne\nf\n"]


def test_a_chunk_arriving_a_byte_at_a_time():
    server, h = _server()
    server.feed(TX)
    actions = server.receive(b"BDAT 4 LAST\r\n")
    assert actions[-1] == ReadBytes(4)
    for left, byte in zip((3, 2, 1), b"x\r\n"):
        assert server.receive(bytes([byte])) == [ReadBytes(left)]
    actions = server.receive(b"yNOOP\r\n")
    assert actions == [SendReply(b"250- 4 byte chunk, total 6\r\n250 OK id=1\r\n250 OK\r\n"),
                       ReadLine(16384)]
    assert h.messages == [b"x\ny\n"]


def test_bdat_0_last_makes_an_empty_message_and_bdat_0_is_a_chunk():
    server, h = _server()
    assert server.feed(TX + b"BDAT 0\r\nBDAT 0 LAST\r\n") == \
        OK_TX + b"250 0 byte chunk received\r\n250- 0 byte chunk, total 2\r\n250 OK id=1\r\n"
    assert h.messages == [b"\n"]


def test_last_is_case_insensitive_and_spaces_may_repeat_and_zeros_lead():
    server, h = _server()
    server.feed(TX + b"BDAT 003  last\r\nabc")
    assert h.messages == [b"abc\n"]


@pytest.mark.parametrize("arg", ["", "x", "+5", "-1", "5x", " ", "\u0665", "0x10", "1e3"])
def test_a_bad_size_is_501_and_the_next_line_is_a_command(arg):
    server, h = _server()
    out = server.feed(TX + f"BDAT {arg}\r\n".encode() + b"NOOP\r\n")
    assert out == OK_TX + b"501 missing size for BDAT command\r\n250 OK\r\n"
    assert h.messages == []


@pytest.mark.parametrize("arg", ["3 LASTX", "3 LAST junk", "3 FIRST", "3 LAST LAST"])
def test_junk_after_a_valid_size_is_501_and_the_chunk_is_skipped(arg):
    server, h = _server()
    out = server.feed(TX + f"BDAT {arg}\r\n".encode() + b"abcNOOP\r\n")
    assert out == OK_TX + b"501 syntax error in BDAT command\r\n250 OK\r\n"
    assert h.messages == []


def test_a_huge_size_keeps_reading_data_and_never_runs_commands():
    server, h = _server(size_limit=1000)
    digits = "9" * 5000                            # int() of this would raise
    out = server.feed(TX + f"BDAT {digits} LAST\r\n".encode() + b"QUIT\r\n" * 1000)
    assert out == OK_TX
    assert server.in_data and not server.closed
    assert server.receive(b"RSET\r\n")[-1] == ReadBytes(10 ** 18 - 6006)
    assert h.messages == []


def test_parse_bdat():
    assert parse_bdat("12") == (12, False, True)
    assert parse_bdat("0012 LAST") == (12, True, True)
    assert parse_bdat("4294967297") == (4294967297, False, True)    # no wrap-around
    assert parse_bdat("-1") == (None, False, False)
    assert parse_bdat("7 LAST x") == (7, False, False)


def test_not_advertised_after_helo_is_503_and_the_chunk_is_still_skipped():
    server, _ = _server(ehlo=b"HELO x\r\n")
    server.feed(b"MAIL FROM:<a@b.c>\r\n")
    server.feed(b"RCPT TO:<u@d.e>\r\n")
    # Exim reads "abcRSET" as a command here; the size is known, so pymta skips the chunk.
    out = server.feed(b"BDAT 3 LAST\r\nabcNOOP\r\n")
    assert out == b"503 BDAT command used when CHUNKING not advertised\r\n250 OK\r\n"
    unoffered, _ = _server(advertise=False)
    assert unoffered.feed(b"BDAT x\r\n") == \
        b"503 BDAT command used when CHUNKING not advertised\r\n"


def test_without_a_valid_recipient_the_chunk_is_skipped():
    server, h = _server()
    assert server.feed(b"BDAT 3 LAST\r\nabcNOOP\r\n") == \
        b"503 valid RCPT command must precede BDAT\r\n250 OK\r\n"
    out = server.feed(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<bad@d.e>\r\nBDAT 2\r\nabNOOP\r\n")
    assert out == b"250 OK\r\n550 Administrative prohibition\r\n" \
        b"503-All RCPT commands were rejected with this error:\r\n" \
        b"503-Administrative prohibition\r\n" \
        b"503 Valid RCPT command must precede BDAT\r\n250 OK\r\n"
    assert h.messages == []


def test_data_after_bdat_and_bdat_after_data():
    server, h = _server()
    out = server.feed(TX + b"BDAT 3 LAST\r\nabc")
    assert out.endswith(b"250 OK id=1\r\n")
    assert server.feed(b"DATA\r\n") == b"503 valid RCPT command must precede DATA\r\n"
    server.feed(TX)
    assert server.feed(b"DATA\r\n").startswith(b"354")
    assert server.feed(b"x\r\n.\r\n") == b"250 OK id=2\r\n"
    assert server.feed(b"BDAT 1 LAST\r\nzNOOP\r\n") == \
        b"503 valid RCPT command must precede BDAT\r\n250 OK\r\n"
    assert h.messages == [b"abc\n", b"x\n"]


def test_between_chunks_noop_is_allowed_other_commands_drop_the_message():
    server, h = _server()
    out = server.feed(TX + b"BDAT 3\r\nabcNOOP\r\nHELP\r\nEHLO y\r\nBDAT 6 LAST\r\nRSET\r\n")
    assert out == OK_TX + b"250 3 byte chunk received\r\n250 OK\r\n" \
        b"503 only BDAT permissible after non-LAST BDAT\r\n" \
        b"503 only RSET accepted now\r\n" \
        b"503 only RSET accepted now\r\n"           # and "RSET\r\n" was its chunk
    assert h.rsets == 1
    # RSET clears the state.
    out = server.feed(b"RSET\r\n" + TX + b"BDAT 1 LAST\r\nz")
    assert out == (b"250 Reset OK\r\n" + OK_TX + b"250- 1 byte chunk, total 3\r\n250 OK id=1\r\n")
    assert h.messages == [b"z\n"]


def test_rset_between_chunks_abandons_the_message():
    server, h = _server()
    out = server.feed(TX + b"BDAT 3\r\nabcRSET\r\nBDAT 1 LAST\r\nzNOOP\r\n")
    assert out == OK_TX + b"250 3 byte chunk received\r\n250 Reset OK\r\n" \
        b"503 valid RCPT command must precede BDAT\r\n250 OK\r\n"
    assert h.messages == []


def test_quit_between_chunks_ends_the_session():
    server, h = _server()
    out = server.feed(TX + b"BDAT 3\r\nabcQUIT\r\n")
    assert out.endswith(b"221 mx.test closing connection\r\n")
    assert server.closed and h.messages == []


def test_a_bad_bdat_between_chunks_drops_the_message():
    server, h = _server()
    out = server.feed(TX + b"BDAT 3\r\nabcBDAT 2 junk\r\nxyBDAT 1 LAST\r\nzNOOP\r\n")
    assert out == OK_TX + b"250 3 byte chunk received\r\n501 syntax error in BDAT command\r\n" \
        b"503 valid RCPT command must precede BDAT\r\n250 OK\r\n"
    assert h.messages == []


def test_message_size_limit_552_at_the_end_of_the_chunk_that_exceeds_it():
    server, h = _server(size_limit=10)
    out = server.feed(TX + b"BDAT 8\r\n" + b"a" * 8 + b"BDAT 8\r\n" + b"b" * 8)
    assert out == OK_TX + b"250 8 byte chunk received\r\n" \
        b"552 Message size exceeds maximum permitted\r\n"
    # The transaction is over: a further chunk is refused and skipped.
    assert server.feed(b"BDAT 2 LAST\r\nzzNOOP\r\n") == \
        b"503 valid RCPT command must precede BDAT\r\n250 OK\r\n"
    assert h.messages == []
    # At the limit is fine; CRLF counts as one byte, as for DATA.
    server.feed(TX + b"BDAT 11 LAST\r\n123456789\r\n")
    assert h.messages == [b"123456789\n"]


def test_a_chunk_over_the_limit_is_not_kept_in_memory():
    body = ChunkedBody(limit=100)
    for _ in range(1000):
        body.feed(b"x" * 1000)
    assert body.too_big and body.size == 1_000_000 and len(body.data) == 0


def test_pipelined_bdat_after_rcpt_in_one_packet():
    server, h = _server()
    out = server.feed(TX + b"BDAT 3\r\nabcBDAT 3 LAST\r\ndef" + TX + b"BDAT 2 LAST\r\nghQUIT\r\n")
    assert out == OK_TX + b"250 3 byte chunk received\r\n" \
        b"250- 3 byte chunk, total 8\r\n250 OK id=1\r\n" + OK_TX + \
        b"250- 2 byte chunk, total 4\r\n250 OK id=2\r\n221 mx.test closing connection\r\n"
    assert h.messages == [b"abcdef\n", b"gh\n"]


def test_timeout_and_lost_connection_in_a_chunk_count_as_in_data():
    server, _ = _server()
    server.feed(TX + b"BDAT 10\r\nabc")
    assert server.in_data
    assert b"SMTP incoming data timeout" in server.timeout_reply()


class FileHandler(Handler):
    """Reads the message back from its file, as the spool writer would."""

    def on_message(self, data) -> Reply:
        assert isinstance(data, FileBody)
        data.file.seek(0)
        self.messages.append(data.file.read())
        return Reply(250, "OK id=f")


def test_with_a_store_the_message_streams_to_a_file_not_memory(tmp_path):
    handler = FileHandler()
    server = SmtpServer("mx.test", handler)
    stores: list[FileBody] = []

    def store() -> FileBody:
        stores.append(FileBody(str(tmp_path)))
        return stores[-1]
    chunking = BdatReceiver(server, store)
    chunking.advertise()
    server.greet("mx.test ESMTP")
    server.feed(b"EHLO x\r\n")
    server.feed(TX + b"BDAT 3\r\nab\r")
    assert chunking.body is not None and chunking.body.data == bytearray()
    assert stores[0].size == 2                # the CR waits for what follows
    out = server.feed(b"BDAT 100000 LAST\r\n" + b"\n" + b"x" * 99_999)
    assert out.endswith(b"250- 100000 byte chunk, total 100005\r\n250 OK id=f\r\n")
    assert handler.messages == [b"ab\n" + b"x" * 99_999 + b"\n"]     # CR|LF joined
    assert stores[0].file.closed                # closed once spooled
    # A dropped message closes its file too.
    server.feed(TX + b"BDAT 2\r\nabRSET\r\n")
    assert len(stores) == 2 and stores[1].file.closed
