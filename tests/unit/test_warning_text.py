"""The address list of a delay warning, as Exim 4.96 writes it (exim4 with a server that
answers 450 to two recipients): the latest deferral first in both parts, the host
tried, and the reason broken after a colon once the line is long."""
from __future__ import annotations

from pymta.address import Address, Host
from pymta.delivery.warning import build_warning
from pymta.expand import ExpandContext
from tests.unit.test_bounce import cfg, original


def test_delay_warning_address_list():
    first = Address("Tmp-x@relay.example", message="SMTP error from remote mail server "
                    "after RCPT TO:<Tmp-x@relay.example>: 450 try later")
    first.host_used = Host("127.0.0.1", "127.0.0.1")
    second = Address("slow@test.example", message="not now")
    config = cfg()
    text = build_warning(config, original(), [first, second], "alice@src.example", 3,
                         ExpandContext(config)).decode()
    assert ("\n  slow@test.example\n    Delay reason: not now\n"
            "  Tmp-x@relay.example\n    host 127.0.0.1 [127.0.0.1]\n"
            "    Delay reason: SMTP error from remote mail server after RCPT "
            "TO:<Tmp-x@relay.example>:\n    450 try later\n\n") in text
    assert text.index("Final-Recipient: rfc822;slow@") < \
        text.index("Final-Recipient: rfc822;Tmp-x@")
