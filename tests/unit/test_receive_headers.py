"""Header block parsing (Exim's rules) and the Received: header text."""
import email.utils

import pytest

from pymta import __version__
from pymta.config.option_tables import MAIN_TABLE
from pymta.message import headers as H
from pymta.message.received import (
    DEFAULT_RECEIVED_HEADER_TEXT,
    build_received,
    default_received_text,
    sender_rcvhost,
)


def test_split_with_blank_line_and_folding():
    data = (b"Received: from a\n\tby b\nFrom: A <a@x>\nTO: b@x\nCc: c@x\nbcc: d@x\n"
            b"Message-ID: <m@x>\nReply-To: r@x\nSender: s@x\nSubject : hi\n"
            b"\nbody\n")
    p = H.split_message(data)
    assert [h.flag for h in p.headers] == ["P", "F", "T", "C", "B", "I", "R", "S", " "]
    assert p.headers[0].text == "Received: from a\n\tby b\n"
    assert p.headers[-1].text == "Subject : hi\n"
    assert data[p.body_start:] == b"body\n"


def test_body_without_blank_line_starts_at_first_non_header():
    data = b"Subject: x\nthis is body text\nmore\n"
    p = H.split_message(data)
    assert [h.text for h in p.headers] == ["Subject: x\n"]
    assert data[p.body_start:] == b"this is body text\nmore\n"


@pytest.mark.parametrize("line,ok", [
    (b"Subject: x", True), (b"X-A:", True), (b"Sub ject: x", False), (b": x", False),
    (b"NoColon", False), (b" folded: x", False), (b"Name\t: x", True), (b"", False)])
def test_header_start(line, ok):
    assert H.is_header_start(line) is ok


def test_leading_continuation_and_empty_message():
    p = H.split_message(b"  indented\nSubject: x\n")
    assert p.headers == [] and p.body_start == 0
    p = H.split_message(b"")
    assert p.headers == [] and p.body_start == 0
    p = H.split_message(b"Subject: no newline")
    assert p.headers[0].text == "Subject: no newline\n"


def test_stats():
    assert H.body_stats(b"a\n\nb\n") == (3, 0)
    assert H.body_stats(b"a\nb") == (2, 0)
    assert H.body_stats(b"x\0y\0\n") == (1, 2)
    assert H.max_line_length(b"Subject: hi\n\nbody line\nsecond\n") == 11   # Exim: 11


def test_sender_rcvhost_forms():
    assert sender_rcvhost("192.0.2.1", "rhost.example", "client.example", "root") == \
        "rhost.example\n\t([192.0.2.1] helo=client.example ident=root)"
    assert sender_rcvhost("192.0.2.1", "rhost.example", "client.example") == \
        "rhost.example ([192.0.2.1] helo=client.example)"
    assert sender_rcvhost("192.0.2.1", "rhost.example", "rhost.example") == \
        "rhost.example ([192.0.2.1])"
    assert sender_rcvhost("192.0.2.1", None, "c.example") == "[192.0.2.1] (helo=c.example)"
    assert sender_rcvhost("192.0.2.1", None, "[192.0.2.1]") == "[192.0.2.1]"
    assert sender_rcvhost("192.0.2.1", None, None, None, 4567, True) == "[192.0.2.1] (port=4567)"
    assert sender_rcvhost(None) == ""


def test_default_text_matches_exim_output():
    # what Exim 4.96 wrote for an SMTP message with two recipients, with pymta's name and
    # release where Exim's has "(Exim 4.96)" ...
    v = {"sender_rcvhost": sender_rcvhost("192.0.2.1", "rhost.example", "client.example",
                                          "root"),
         "received_protocol": "esmtp", "sender_address": "s@remote.example",
         "message_exim_id": "1xUsgJ-0001b3-13"}
    assert default_received_text(v, "test.example") == (
        "Received: from rhost.example\n\t([192.0.2.1] helo=client.example ident=root)\n"
        f"\tby test.example with esmtp (pymta {__version__})\n"
        "\t(envelope-from <s@remote.example>)\n"
        "\tid 1xUsgJ-0001b3-13")
    # ... and for a local one with one recipient
    v = {"sender_ident": "root", "received_protocol": "local",
         "sender_address": "root@test.example", "message_exim_id": "1xUsgH-0001Zt-1R",
         "received_for": "x@y.example"}
    assert default_received_text(v, "test.example") == (
        f"Received: from root by test.example with local (pymta {__version__})\n"
        "\t(envelope-from <root@test.example>)\n\tid 1xUsgH-0001Zt-1R\n\tfor x@y.example")


def test_build_received_appends_date_and_handles_empty(monkeypatch):
    import types
    cfg = types.SimpleNamespace(main=types.SimpleNamespace(
        received_header_text=DEFAULT_RECEIVED_HEADER_TEXT, primary_hostname="h.example"))
    text = build_received(cfg, {"message_exim_id": "X"}, when=0)
    from pymta.message.received import tod_full
    assert text == f"Received: by h.example (pymta {__version__})\n\tid X;\n\t{tod_full(0)}\n"
    # RFC 5322 date in the local time zone (whatever TZ says)
    assert tod_full(0) == email.utils.formatdate(0, localtime=True)
    import pymta.expand as expand
    monkeypatch.setattr(expand, "expand_string", lambda t, ctx: "", raising=False)
    cfg.main.received_header_text = "${if false{x}}"
    assert build_received(cfg, {"message_exim_id": "X"}) is None


def test_build_received_with_real_expander():
    expand = pytest.importorskip("pymta.expand")
    if not hasattr(expand, "expand_string"):
        pytest.skip("expander not available yet")
    import types

    from pymta.config.main_options import MainOptions
    main = MainOptions()
    main.primary_hostname = "test.example"
    cfg = types.SimpleNamespace(main=main, filename="x")
    v = {"sender_ident": "root", "received_protocol": "local",
         "sender_address": "root@test.example", "message_exim_id": "1xUsgH-0001Zt-1R",
         "received_for": "x@y.example"}
    direct = default_received_text(v, "test.example")
    main.received_header_text = DEFAULT_RECEIVED_HEADER_TEXT + " "   # force the expander
    assert build_received(cfg, v).startswith(direct + " ;\n\t")


def test_config_default_is_the_builders_text():
    # -bP and the option table show the text the Python builder stands in for
    assert MAIN_TABLE["received_header_text"][1] == DEFAULT_RECEIVED_HEADER_TEXT
    assert f"(pymta {__version__})" in DEFAULT_RECEIVED_HEADER_TEXT
