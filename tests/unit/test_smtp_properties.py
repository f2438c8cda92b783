"""Property-based tests (Hypothesis) for what parses untrusted input on the SMTP side: the
command dialogue, envelope paths, the header splitter and BDAT framing.

The properties: no exception escapes; one command line never becomes two commands (nor
two lines one); a reply never carries a bare CR or LF; data inside a BDAT chunk is never
taken for a command, wherever the network splits the stream.  Examples are limited so
the file runs in a few seconds.
"""
from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymta.config import load_config
from pymta.message import body as body_module
from pymta.message.body import FileBody
from pymta.message.envelope import Envelope
from pymta.message.headers import split_message
from pymta.message.receive import prepare_message
from pymta.smtp.bdat import BdatReceiver, parse_bdat
from pymta.smtp.server import SMTP_CMD_BUFFER_SIZE, Reply, SmtpHandler, SmtpServer, parse_path
from pymta.spool.files import data_path, write_spool

FAST = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Bytes that matter to the parsers: line ends, NUL, quoting, address punctuation, 8-bit.
_PIECES = [b"\r", b"\n", b"\r\n", b"\0", b" ", b"\t", b"a", b"Z", b"0", b"5", b":", b"<",
           b">", b"@", b".", b",", b'"', b"\\", b"[", b"]", b"=", b"+", b"-", b"\xff",
           b"\xc3\xa9", b"LAST", b"SIZE=", b"BODY="]
_VERBS = [b"MAIL FROM:", b"RCPT TO:", b"HELO ", b"EHLO ", b"RSET", b"NOOP", b"HELP",
          b"VRFY ", b"EXPN ", b"ETRN ", b"STARTTLS", b"AUTH ", b"XYZZY ", b"mail from:<",
          b"rcpt to:<"]


def _junk(pieces: list[bytes] = _PIECES, max_size: int = 40) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(pieces), max_size=max_size).map(b"".join)


def _line_text() -> st.SearchStrategy[bytes]:
    """One command line's content (no LF): a verb or not, then junk without LF, or an
    over-long line."""
    no_lf = [p for p in _PIECES if b"\n" not in p]
    normal = st.tuples(st.sampled_from([b""] + _VERBS), _junk(no_lf)).map(b"".join)
    long = st.integers(SMTP_CMD_BUFFER_SIZE - 4, SMTP_CMD_BUFFER_SIZE + 300).map(
        lambda n: b"a" * n)
    return st.one_of(normal, normal, normal, long)


def _splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points + [len(data)]:
        out.append(data[last:p])
        last = p
    return out


class Counting(SmtpHandler):
    """Counts the commands that reached policy, and keeps the messages."""

    def __init__(self) -> None:
        self.calls = 0
        self.messages: list[bytes] = []

    def on_helo(self, verb: str, name: str) -> Reply | None:
        self.calls += 1
        return None

    def on_mail(self, address: str, params: dict[str, str | None]) -> Reply | None:
        self.calls += 1
        return None

    def on_rcpt(self, address: str, params: dict[str, str | None]) -> Reply | None:
        self.calls += 1
        return None

    def on_rset(self) -> None:
        self.calls += 1

    def on_message(self, data: bytes) -> Reply:
        self.messages.append(data)
        return Reply(250, "OK id=m")


def _server(handler: SmtpHandler, **kw) -> SmtpServer:
    server = SmtpServer("mx.test", handler, max_synprot_errors=0, max_unknown_commands=0,
                        max_nonmail=0, enforce_sync=False, **kw)
    BdatReceiver(server).advertise()
    server.greet("mx.test ESMTP")
    return server


_FINAL = re.compile(rb"^\d{3}(?: |$)")


def _final_replies(out: bytes) -> int:
    assert out == b"" or out.endswith(b"\r\n")
    lines = out[:-2].split(b"\r\n") if out else []
    # No reply line carries a CR or LF of its own (no reply injection).
    assert all(b"\r" not in ln and b"\n" not in ln for ln in lines), out
    return sum(1 for ln in lines if _FINAL.match(ln))


@FAST
@given(st.lists(_line_text(), min_size=1, max_size=8), st.lists(st.integers(0, 10 ** 6),
                                                               max_size=6))
def test_every_command_line_gets_exactly_one_reply(lines, cuts):
    handler = Counting()
    server = _server(handler)
    assert server.feed(b"EHLO client.test\r\n").startswith(b"250-")
    wire = b"".join(line + b"\r\n" for line in lines)
    out = b"".join(server.feed(piece) for piece in _splits(wire, cuts))
    assert not server.closed
    # One reply per line: no line was cut into two commands, no two lines merged.
    assert _final_replies(out) == len(lines)
    assert handler.calls <= len(lines) + 1


@FAST
@given(_junk(max_size=80), st.lists(st.integers(0, 10 ** 6), max_size=6))
def test_arbitrary_bytes_never_raise_and_never_inject_replies(data, cuts):
    handler = Counting()
    server = _server(handler)
    server.feed(b"EHLO client.test\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@d.e>\r\n")
    out = b"".join(server.feed(piece) for piece in _splits(data, cuts))
    # At most one reply per line end received (a BDAT or DATA may be waiting for data).
    assert _final_replies(out) <= data.count(b"\n")


@FAST
@given(st.text(max_size=60))
def test_parse_path_never_raises_and_keeps_no_control_characters(text):
    for role in ("sender", "recipient"):
        path = parse_path(text, role, allow_domain_literals=True, qualify_domain="q.test")
        if path.error is None and path.address:
            assert not any(ord(c) < 32 or ord(c) == 127 for c in path.address)
            assert "@" in path.address
            # What was parsed parses to itself again inside <>.
            again = parse_path(f"<{path.address}>", role, allow_domain_literals=True)
            assert again.error is None and again.address == path.address


@FAST
@given(st.lists(st.one_of(
    st.sampled_from([b"Subject: x", b"To: a@b.c", b" folded", b"\tfolded", b"", b"X-Y:",
                     b"Bad Header: z", b"not a header", b":colon", b"From :spaced"]),
    _junk([p for p in _PIECES if b"\n" not in p]),
), max_size=12), st.booleans())
def test_split_message_makes_one_header_per_header_start(lines, final_newline):
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    parsed = split_message(data)
    assert 0 <= parsed.header_bytes <= parsed.body_start <= len(data)
    assert data[parsed.header_bytes:parsed.body_start] in (b"", b"\n")
    joined = b"".join(h.text.encode("utf-8", "surrogateescape") for h in parsed.headers)
    head = data[:parsed.header_bytes]
    assert joined in (head, head + b"\n")        # nothing lost, nothing invented
    for h in parsed.headers:
        raw = h.text.encode("utf-8", "surrogateescape")
        assert raw.endswith(b"\n") and raw[:1] not in (b" ", b"\t")
        # Every further line of a header is a continuation line.
        assert all(ln[:1] in (b" ", b"\t") for ln in raw[:-1].split(b"\n")[1:])


@FAST
@given(st.text(max_size=40))
def test_parse_bdat_never_raises(arg):
    size, last, valid = parse_bdat(arg)
    if size is None:
        assert not last and not valid
    else:
        assert size >= 0 and arg.split()[0].isdigit()


_CHUNK_BYTES = [b"\r", b"\n", b"\r\n", b".", b"\r\n.\r\n", b"QUIT\r\n", b"RSET\r\n",
                b"BDAT 5 LAST\r\n", b"x", b"\0", b"\xff"]


@FAST
@given(st.lists(_junk(_CHUNK_BYTES, 12), min_size=1, max_size=5),
       st.lists(st.integers(0, 10 ** 6), max_size=8), st.booleans())
def test_bdat_framing_wherever_the_stream_is_split(chunks, cuts, pipelined):
    handler = Counting()
    server = _server(handler)
    server.feed(b"EHLO client.test\r\n")
    tx = b"MAIL FROM:<a@b.c>\r\nRCPT TO:<u@d.e>\r\n"
    wire = b"".join(b"BDAT %d%s\r\n" % (len(c), b" LAST" if i == len(chunks) - 1 else b"") + c
                    for i, c in enumerate(chunks)) + b"NOOP\r\n"
    if pipelined:
        wire = tx + wire
    else:
        server.feed(tx)
    calls = handler.calls
    out = b"".join(server.feed(piece) for piece in _splits(wire, cuts))
    expected = b"".join(chunks).replace(b"\r\n", b"\n")
    if not expected.endswith(b"\n"):
        expected += b"\n"
    assert handler.messages == [expected]
    # Nothing inside a chunk ran as a command: only MAIL and RCPT reached the handler.
    assert handler.calls == calls + (2 if pipelined else 0)
    # Replies: (MAIL, RCPT,) one per chunk, and the NOOP after the last chunk.
    assert _final_replies(out) == (2 if pipelined else 0) + len(chunks) + 1
    assert out.endswith(b"250 OK id=m\r\n250 OK\r\n") and not server.in_data


@FAST
@given(st.lists(st.integers(0, 40), min_size=1, max_size=5), st.integers(1, 60),
       st.lists(st.integers(0, 10 ** 6), max_size=6))
def test_bdat_over_the_size_limit_stays_in_step(sizes, limit, cuts):
    handler = Counting()
    server = _server(handler, size_limit=limit)
    server.feed(b"EHLO client.test\r\n")
    wire = b"MAIL FROM:<a@b.c>\r\nRCPT TO:<u@d.e>\r\n" + b"".join(
        b"BDAT %d%s\r\n" % (n, b" LAST" if i == len(sizes) - 1 else b"") + b"y" * n
        for i, n in enumerate(sizes)) + b"NOOP\r\n"
    out = b"".join(server.feed(piece) for piece in _splits(wire, cuts))
    # Each chunk is answered (a refused one is still read), then the NOOP as a command.
    assert _final_replies(out) == 2 + len(sizes) + 1
    assert out.endswith(b"250 OK\r\n") and not server.in_data
    total = sum(sizes) + 1                       # the line end Exim adds
    assert (handler.messages == []) == (total > limit or b"552" in out)


_MESSAGE_PIECES = [b"Subject: x\n", b"To: a@b.c\n", b" folded\n", b"\n", b"body", b"\0",
                   b"\r", b"line\n", b"not a header\n", b"x" * 70, b"X-Long: " + b"y" * 300]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_MESSAGE_PIECES), max_size=30).map(b"".join),
       st.lists(st.integers(1, 400), max_size=5), st.integers(1, 100))
def test_a_message_streamed_to_a_file_spools_exactly_as_bytes(tmp_path_factory, data, writes,
                                                              block):
    """The BDAT path (message in a FileBody) and the DATA path (bytes) make the same
    spool image and the same -D file."""
    tmp = tmp_path_factory.mktemp("fb")
    (tmp / "conf").write_text(f"spool_directory = {tmp}/spool\nprimary_hostname = mx.test\n")
    cfg = load_config(str(tmp / "conf"))
    body = FileBody(str(tmp))
    rest = data
    for n in writes:                       # written in pieces, as chunks arrive
        body.write(rest[:n])
        rest = rest[n:]
    body.write(rest)
    msgid = "1abcde-000001-00"
    body_module._BLOCK, saved = block, body_module._BLOCK     # small reads: block edges
    try:
        images = _spool_images(cfg, tmp, data, body, msgid)
    finally:
        body_module._BLOCK = saved
    assert images[0] == images[1]


def _spool_images(cfg, tmp, data, body, msgid):
    images = []
    for source, spool_dir in ((data, str(tmp / "s1")), (body, str(tmp / "s2"))):
        env = Envelope(sender="a@b.c", recipients=["u@d.e"], host_address="10.0.0.1",
                       host_port=1, helo_name="x.y", msgid=msgid, received_time=1.0e9)
        prepared = prepare_message(cfg, env, source)
        spool = prepared.spool
        spool.variables.pop("received_time_complete", None)
        on_disk = (body, prepared.body_start) if source is body else \
            memoryview(data)[prepared.body_start:]
        write_spool(spool_dir, spool, on_disk)
        with open(data_path(spool_dir, msgid), "rb") as f:
            d_file = f.read().split(b"\n", 1)[1]
        images.append(([h.text for h in spool.headers], spool.variables, prepared.size,
                       prepared.body_start, d_file))
    return images
