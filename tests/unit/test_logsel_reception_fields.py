"""The reception log fields in Exim 4.96's formats (shapes taken from a live Exim)."""
from __future__ import annotations

from types import SimpleNamespace

from pymta.cli.arguments_log import arguments_line
from pymta.log import duration
from pymta.logarrival import pipelining_field, subject_field
from pymta.logevents import Arrival, IncompleteTransaction, NoMail


def _config(selector: str) -> SimpleNamespace:
    return SimpleNamespace(main=SimpleNamespace(log_selector=selector))


def test_no_mail_lists_the_last_twenty_commands_after_dots():
    # Exim: "C=...NOOP,...,QUIT" (no comma after the dots)
    commands = ("EHLO",) + ("NOOP",) * 10 + ("VRFY",) + ("NOOP",) * 12 + ("QUIT",)
    text = NoMail("(c.test) [127.0.0.1]", "0s", (), commands).text()
    assert text == ("no MAIL in SMTP connection from (c.test) [127.0.0.1] D=0s C=..."
                    + ",".join(commands[-20:]))
    assert NoMail("[1.2.3.4]", "3s", ("A=plain:user",), ("EHLO", "QUIT")).text() == \
        "no MAIL in SMTP connection from [1.2.3.4] D=3s A=plain:user C=EHLO,QUIT"


def test_incomplete_transaction_without_recipients_names_the_sender_only():
    assert IncompleteTransaction("H=[1.2.3.4]", "RSET", "").text() == \
        "H=[1.2.3.4] incomplete transaction (RSET) from <>"


def test_subject_field_escapes_as_exim():
    assert subject_field('Subject: a "b" \\ \u00e9\n\tc\n') == \
        'T="a \\"b\\" \\\\ \\303\\251\\n\tc"'
    assert subject_field("Subject: =?utf-8?q?a_b?= =?utf-8?b?w6k=?= x\n") == \
        'T="a b\\303\\251 x"'
    assert subject_field("Subject: =?nosuch?q?x?=\n") == 'T="=?nosuch?q?x?="'


def test_durations_and_the_pipelining_field():
    assert duration(0.2049, True) == "0.204s" and duration(0.9, False) == "0s"
    assert duration(65, True) == "1m5s"
    assert pipelining_field(False, True, False, False) == ""
    assert pipelining_field(True, False, False, False) == "L-"
    assert pipelining_field(True, True, True, False) == "L."
    assert pipelining_field(True, False, True, False) == "L.-"
    assert pipelining_field(True, True, True, True) == "L*"


def test_arrival_fields_in_exims_order_and_only_when_selected():
    a = Arrival(sender="a@x", protocol="esmtp", size=10, host_address="1.2.3.4",
                helo_name="c.test", pipelining="L-", body_type="8BITMIME",
                receive_seconds=0.0, subject="Subject: s\n", original_sender="a@x",
                recipients=("r@y", "s@y"), message_id_created="E1@h")
    assert a.fields(_config("")) == "a@x H=(c.test) [1.2.3.4] P=esmtp S=10"
    assert a.fields(_config("+all")) == (
        'a@x H=(c.test) [1.2.3.4] P=esmtp L- S=10 M8S=8 RT=0.000s id*=E1@h T="s" '
        "from <a@x> for r@y s@y")


def test_arguments_line():
    assert arguments_line("/d", ["pymta", "-f", "a b", "\u00e9"]) == \
        'cwd=/d 4 args: pymta -f "a b" \\303\\251'
