"""Parsing RFC 1413 answers (pymta.smtp.ident): only a USERID answer for our port
pair gives a user, shown printable and tainted."""
from __future__ import annotations

import socket
import threading

from pymta.smtp.ident import parse_reply, printable, query_ident
from pymta.taint import is_tainted


def test_userid_answer_gives_the_user():
    assert parse_reply("6191, 23 : USERID : UNIX : stjohns", 6191, 23) == "stjohns"
    assert parse_reply("6191,23:USERID:UNIX,US-ASCII:  x y ", 6191, 23) == "x y"


def test_other_answers_give_nothing():
    assert parse_reply("6191, 23 : ERROR : NO-USER", 6191, 23) is None
    assert parse_reply("6191, 24 : USERID : UNIX : a", 6191, 23) is None   # not our pair
    assert parse_reply("x, 23 : USERID : UNIX : a", 6191, 23) is None
    assert parse_reply("6191, 23 : USERID : UNIX : ", 6191, 23) is None
    assert parse_reply("garbage", 6191, 23) is None


def test_non_printing_characters_are_escaped():
    assert printable("a\tb\x7f\\\xe9") == "a\\tb\\177\\\\351"


def test_query_against_a_loopback_server_is_tainted():
    """A small server that answers like oidentd (the integration tests use oidentd)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    asked: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            question = conn.recv(100)
            asked.append(question)
            ports = question.decode().strip()
            conn.sendall(f"{ports} : USERID : UNIX : bob\x01\r\n".encode())
    t = threading.Thread(target=answer)
    t.start()
    try:
        result = query_ident(("127.0.0.1", 25), ("127.0.0.1", 4321), 2.0,
                             port=server.getsockname()[1])
    finally:
        t.join(5)
        server.close()
    assert asked == [b"4321 , 25\r\n"]
    assert result.user == "bob\\001" and is_tainted(result.user)
    assert not result.connect_timed_out


def test_refused_connection_gives_nothing_quietly():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    result = query_ident(("127.0.0.1", 25), ("127.0.0.1", 4321), 1.0, port=port)
    assert result.user is None and not result.connect_timed_out
