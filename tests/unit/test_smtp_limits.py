"""Address length limits at MAIL/RCPT, with the replies Exim 4.96 gives (``exim4 -bh``):
an address (the text inside <>, source route included) longer than 256 octets gets
"501 <arg>: address is ridiculously long: <first 64 characters>..."; a local part
longer than 64 octets inside that limit is accepted, as Exim does."""
from __future__ import annotations

from pymta.smtp.server import parse_path
from tests.unit.test_smtp_server import ehlo, lines, make

DOMAIN = "@test.example"


def _addr(total: int) -> str:
    """An address of ``total`` characters with a recognisable start."""
    local = "".join(chr(97 + i % 26) for i in range(total - len(DOMAIN)))
    return local + DOMAIN


def _long_reply(arg: str, addr: str) -> str:
    return f"501 {arg}: address is ridiculously long: {addr[:64]}..."


def test_parse_path_limit_is_256_octets_inside_brackets():
    assert parse_path(f"<{_addr(256)}>").error is None
    too_long = parse_path(f"<{_addr(257)}>")
    assert too_long.error == f"address is ridiculously long: {_addr(257)[:64]}..."
    # The source route counts towards the length, but is not shown.
    routed = parse_path(f"<@rr.example:{_addr(245)}>")
    assert routed.error == f"address is ridiculously long: {_addr(245)[:64]}..."
    assert parse_path(f"<@rr.example:{_addr(244)}>").error is None
    # Octets, not characters: 100 two-octet letters plus the domain is over the limit.
    assert parse_path("<" + "\u00e9" * 122 + DOMAIN + ">").error.startswith(
        "address is ridiculously long")
    # Other syntax errors are reported first; a missing domain is not.
    assert parse_path(f"<{'a' * 300}@test..example>").error == "domain missing or malformed"
    assert parse_path(f"<{'a' * 300}>").error.startswith("address is ridiculously long")


def test_long_local_part_within_256_is_accepted_like_exim():
    s, h = make()
    ehlo(s)
    local65 = "x" * 65 + DOMAIN
    assert lines(s.feed(f"MAIL FROM:<{local65}>\r\n".encode())) == ["250 OK"]
    assert lines(s.feed(f"RCPT TO:<{local65}>\r\n".encode())) == ["250 Accepted"]


def test_mail_and_rcpt_refuse_a_600_character_path():
    s, h = make()
    ehlo(s)
    addr = _addr(600)
    assert lines(s.feed(f"MAIL FROM:<{addr}>\r\n".encode())) == [
        _long_reply(f"<{addr}>", addr)]
    assert s.sender is None
    assert lines(s.feed(b"MAIL FROM:<s@x.example>\r\n")) == ["250 OK"]
    assert lines(s.feed(f"RCPT TO:{addr}\r\n".encode())) == [_long_reply(addr, addr)]
    assert h.rcpts == []
    # Trailing junk is reported before the length, as Exim does (with no space after
    # the address: none came before the junk).
    assert lines(s.feed(f"RCPT TO:<{addr}>x\r\n".encode())) == [
        f"501 <{addr}>x: malformed address: x may not follow <{addr}>"]
