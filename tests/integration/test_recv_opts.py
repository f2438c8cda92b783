"""Reception options compared with Exim 4.96's recorded behaviour (tests/data/recv_opts).

Each test runs the real daemon and talks SMTP to it; the expected result is what
``tests/data/recv_opts/record.sh`` recorded from exim4 for the same input.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.conftest import BASE_CONFIG

DATA = Path(__file__).resolve().parent.parent / "data" / "recv_opts"

TRANSIT_MESSAGE = (b"Delivery-date: x\r\nEnvelope-to: y\r\nReturn-path: <z>\r\n"
                   b"Subject: s\r\n\r\nbody\r\n")
_HEADER_LINE = re.compile(r"^\d{3}(.) ([A-Za-z-]+):", re.M)


def with_main(settings: str) -> str:
    """BASE_CONFIG with extra main-section lines."""
    return BASE_CONFIG.replace("begin acl\n", f"{settings}\nbegin acl\n", 1)


def _header_flags(h_file: Path) -> list[str]:
    """'flag Name' for each header the message brought (as record.sh prints them)."""
    text = h_file.read_text()
    return [f"{flag} {name}" for flag, name in _HEADER_LINE.findall(text)
            if name not in ("Received", "Message-Id", "From", "Date")]


@pytest.mark.parametrize("setting,recorded", [
    ("", "transit_default.txt"),
    ("delivery_date_remove = false\nenvelope_to_remove = false\nreturn_path_remove = false",
     "transit_off.txt"),
])
def test_transit_headers_removed_on_reception(pymta_daemon, setting, recorded):
    d = pymta_daemon(config=with_main("queue_only\n" + setting))
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@elsewhere.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        code, text = c.data(TRANSIT_MESSAGE)
        assert code == 250, text
        msgid = text.split("=", 1)[1]
        c.quit()
    expected = (DATA / recorded).read_text().splitlines()
    assert _header_flags(d.spool / "input" / f"{msgid}-H") == expected
