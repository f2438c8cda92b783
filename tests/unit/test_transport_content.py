"""write_message: chunked line-start escaping, CRLF, dot-stuffing, sendfile path."""
from __future__ import annotations

import io
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from pymta.transports import content

MSGID = "1tAbCd-000042-Zz"


def reference(body: bytes, check: bytes | None, escape: bytes, crlf: bool) -> bytes:
    """Line-by-line model of the transformation."""
    out = []
    for line in body.split(b"\n"):
        if check and line.startswith(check):
            line = escape + line[len(check):]
        out.append(line)
    text = b"\n".join(out)
    return text.replace(b"\n", b"\r\n") if crlf else text


def write_d(tmp_path, body: bytes):
    p = tmp_path / f"{MSGID}-D"
    p.write_bytes(f"{MSGID}-D\n".encode() + body)
    return str(p)


@settings(max_examples=150, deadline=None)
@given(body=st.lists(st.sampled_from([b"From ", b"Fr", b"om", b".", b"..", b"\n", b"x",
                                      b"\r", b" "]), max_size=40).map(b"".join),
       chunk=st.integers(1, 7), crlf=st.booleans(), dot=st.booleans())
def test_filter_matches_line_model(tmp_path_factory, body, chunk, crlf, dot):
    tmp = tmp_path_factory.mktemp("c")
    path = write_d(tmp, body)
    old = content.CHUNK
    content.CHUNK = chunk
    try:
        out = io.BytesIO()
        if dot:
            content.write_message(out, b"", path, use_crlf=crlf, dot_stuff=True)
            expected = reference(body, b".", b"..", crlf)
        else:
            content.write_message(out, b"", path, use_crlf=crlf, check_string=b"From ",
                                  escape_string=b">From ")
            expected = reference(body, b"From ", b">From ", crlf)
    finally:
        content.CHUNK = old
    assert out.getvalue() == expected


def test_prefix_header_suffix_order_and_count(tmp_path):
    path = write_d(tmp_path, b"body\n")
    out = io.BytesIO()
    n = content.write_message(out, b"H: 1\n\n", path, prefix=b"P\n", suffix=b"S\n")
    assert out.getvalue() == b"P\nH: 1\n\nbody\nS\n" and n == len(out.getvalue())


def test_sendfile_path_for_plain_files(tmp_path):
    body = bytes(range(256)) * 1000 + b"\nFrom x\n"
    path = write_d(tmp_path, body)
    target = tmp_path / "out"
    with open(target, "wb") as f:
        f.write(b"old\n")
        n = content.write_message(f, b"H: 1\n\n", path, suffix=b"END\n")
    assert target.read_bytes() == b"old\nH: 1\n\n" + body + b"END\n"
    assert n == len(b"H: 1\n\n" + body + b"END\n")


def test_smtp_end_dot_adds_missing_newline_over_socket(tmp_path):
    path = write_d(tmp_path, b"a\n.b")
    a, b = socket.socketpair()
    with a, b:
        content.write_message(a, b"H: 1\n\n", path, use_crlf=True, dot_stuff=True,
                              end_dot=True)
        a.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := b.recv(4096):
            got += chunk
    assert got == b"H: 1\r\n\r\na\r\n..b\r\n.\r\n"


def test_empty_body_end_dot(tmp_path):
    path = write_d(tmp_path, b"")
    out = io.BytesIO()
    content.write_message(out, b"H: 1\n\n", path, use_crlf=True, dot_stuff=True,
                          end_dot=True)
    assert out.getvalue() == b"H: 1\r\n\r\n.\r\n"


def test_headers_only_and_body_only(tmp_path):
    path = write_d(tmp_path, b"B\n")
    o1, o2 = io.BytesIO(), io.BytesIO()
    content.write_message(o1, b"H: 1\n\n", path, headers_only=True)
    content.write_message(o2, b"H: 1\n\n", path, body_only=True)
    assert o1.getvalue() == b"H: 1\n\n" and o2.getvalue() == b"B\n"
