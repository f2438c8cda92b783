"""Reading a command-line message and extracting recipients (-t)."""
import io
from types import SimpleNamespace

from pymta.cli.submit import (caller_is_trusted, extract_recipients, make_envelope, qualify,
                              read_message)


def test_dot_line_ends_message_and_crlf_normalised():
    src = io.BytesIO(b"Subject: x\r\n\r\nline1\r\n..two\r\n.\r\nafter\n")
    assert read_message(src, True) == b"Subject: x\n\nline1\n..two\n"


def test_dot_ignored_with_i():
    src = io.BytesIO(b"Subject: x\n\n.\nmore")
    assert read_message(src, False) == b"Subject: x\n\n.\nmore\n"


def test_extract_recipients_removes_bcc_and_arguments():
    msg = (b"From: a@b\nTo: One <one@x>, two@x\nCc: three@x,\n  four@x\n"
           b"Bcc: secret@x\nSubject: hi\n\nBcc: not a header\n")
    rcpts, data = extract_recipients(msg, exclude=["two@x"])
    assert rcpts == ["one@x", "three@x", "four@x", "secret@x"]
    assert b"secret@x" not in data.split(b"\n\n")[0]
    assert data.endswith(b"\n\nBcc: not a header\n")
    assert b"Cc: three@x,\n  four@x\n" in data


def test_extract_adds_arguments_when_option_false():
    rcpts, _ = extract_recipients(b"To: a@x\n\nbody\n", exclude=["b@x"], remove_arguments=False)
    assert rcpts == ["a@x", "b@x"]


def test_resent_headers_take_precedence():
    msg = b"To: old@x\nResent-To: new@x\nResent-Bcc: hidden@x\n\nb\n"
    rcpts, data = extract_recipients(msg)
    assert rcpts == ["new@x", "hidden@x"]
    assert b"Resent-Bcc" not in data and b"To: old@x" in data


def test_qualify():
    assert qualify("user", "example.org") == "user@example.org"
    assert qualify("u@d", "example.org") == "u@d"
    assert qualify("", "example.org") == ""


def test_make_envelope_passes_only_known_fields():
    from dataclasses import dataclass, field

    @dataclass
    class Env:
        sender: str
        recipients: list = field(default_factory=list)
    env = make_envelope(Env, sender="s@x", recipients=["r@x"], bogus=1)
    assert env.sender == "s@x" and env.recipients == ["r@x"]


def test_trusted_callers():
    cfg = SimpleNamespace(main=SimpleNamespace(exim_user="root", trusted_users=None))
    assert caller_is_trusted(cfg, 0)
    assert not caller_is_trusted(cfg, 65534)
    cfg.main.trusted_users = "nobody"
    assert caller_is_trusted(cfg, 65534)
