"""The default Received: header of a message taken in over SMTP by the real daemon."""
from __future__ import annotations

import re

import pymta
from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.integration.test_daemon_e2e import MESSAGE, send

# BASE_CONFIG without its own received_header_text: the default applies
DEFAULT_CONFIG = re.sub(r"(?m)^received_header_text = .*\n", "", BASE_CONFIG)


def test_default_received_header_names_pymta_and_its_version(pymta_daemon, tmp_path):
    assert "received_header_text" not in DEFAULT_CONFIG
    d = pymta_daemon(config=DEFAULT_CONFIG)
    code, text = send(d, "sender@outside.example", ["alice@test.example"], MESSAGE)
    assert code == 250, text
    msgs = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    assert len(msgs) == 1, d.diagnostics()
    received = msgs[0].decode().split("\nFrom: ")[0]
    version = re.escape(pymta.__version__)
    # Exim's default layout, with pymta's name and release where Exim names itself
    assert re.fullmatch(
        r"Received: from \[127\.0\.0\.1\] \(helo=client\.test\)\n"
        r"\tby mx\.test\.example with esmtp \(pymta " + version + r"\)\n"
        r"\t\(envelope-from <sender@outside\.example>\)\n"
        r"\tid [0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}\n"
        r"\tfor alice@test\.example;\n"
        r"\t\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", received), received
    assert "Exim" not in received
