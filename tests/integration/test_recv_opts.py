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


def _transcript(d, commands: list[str]) -> list[str]:
    """The replies to ``commands`` in record.sh's form (banner cut to "220 NAME ESMTP")."""
    lines: list[str] = []
    with d.client() as c:
        code, text = c.banner()
        lines.append(f"{code} {text.split(' ESMTP')[0]} ESMTP")
        for command in commands:
            code, text = c.cmd(command)
            parts = text.split("\n")
            lines += [f"{code}-{p}" for p in parts[:-1]] + [f"{code} {parts[-1]}"]
    return lines


HELO_INPUT = ["MAIL FROM:<a@b.example>", "RCPT TO:<alice@test.example>", "HELO x",
              "MAIL FROM:<a@b.example>", "QUIT"]


@pytest.mark.parametrize("hosts,recorded", [
    ("127.0.0.1", "helo_required_match.txt"),
    ("127.0.0.2", "helo_required_other.txt"),
])
def test_hosts_require_helo(pymta_daemon, hosts, recorded):
    d = pymta_daemon(config=with_main(f"hosts_require_helo = {hosts}"))
    expected = (DATA / recorded).read_text().splitlines()
    assert _transcript(d, HELO_INPUT) == expected


def test_message_without_helo_from_host_outside_hosts_require_helo(pymta_daemon):
    d = pymta_daemon(config=with_main("queue_only\nhosts_require_helo = 127.0.0.2"))
    with d.client() as c:
        c.banner()
        assert c.cmd("MAIL FROM:<a@b.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        code, text = c.data(b"Subject: no helo\r\n\r\nbody\r\n")
        assert code == 250, text
        msgid = text.split("=", 1)[1]
        c.quit()
    assert d.queue() == [msgid]
    assert "H=[127.0.0.1]" in d.wait_for_log(f"{msgid} <= a@b.example")[0]


ANGLE_INPUT = ["HELO x", "MAIL FROM:<<a@b.example>>", "MAIL FROM:<a@b.example>",
               "RCPT TO:<<<alice@test.example>>>", "RCPT TO:<<alice@test.example>",
               "RCPT TO:<<alice@test.example>>>", "RCPT TO:<<alice@test.example> >",
               "RCPT TO:<alice@test.example>>", "RSET", "MAIL FROM:<<>>", "QUIT"]
DOT_INPUT = ["HELO x", "MAIL FROM:<a@b.example.>", "MAIL FROM:<a@b.example>",
             "RCPT TO:<alice@test.example.>", "RCPT TO:<alice@test.example..>",
             "RCPT TO:<alice@[127.0.0.1].>", "RCPT TO:<alice@.>",
             "RCPT TO:alice@test.example.", "QUIT"]
UTF8_INPUT = ["HELO x", "MAIL FROM:<a@b\u00e9.example>", "MAIL FROM:<a@b.example>",
              "RCPT TO:<alice@t\u00e9st.example>", "QUIT"]
NO_SYNPROT_LIMIT = "smtp_max_synprot_errors = 1000\n"


@pytest.mark.parametrize("setting,commands,recorded", [
    ("", ANGLE_INPUT, "angle_default.txt"),
    ("strip_excess_angle_brackets = true", ANGLE_INPUT, "angle_strip.txt"),
    ("", DOT_INPUT, "dot_default.txt"),
    ("strip_trailing_dot = true", DOT_INPUT, "dot_strip.txt"),
    ("", UTF8_INPUT, "utf8_default.txt"),
    ("allow_utf8_domains = true", UTF8_INPUT, "utf8_allow.txt"),
])
def test_address_stripping_options(pymta_daemon, setting, commands, recorded):
    config = with_main(NO_SYNPROT_LIMIT + setting)
    if commands is UTF8_INPUT:      # exim4's recording accepted any domain
        config = config.replace("local_domains = test.example",
                                "local_domains = test.example : t\u00e9st.example")
    d = pymta_daemon(config=config)
    expected = (DATA / recorded).read_text().splitlines()
    assert _transcript(d, commands) == expected


@pytest.mark.parametrize("setting,sender,recipient", [
    ("strip_excess_angle_brackets = true", "<<<a@b.example>>>", "<<alice@test.example>>"),
    ("strip_trailing_dot = true", "<a@b.example.>", "<alice@test.example.>"),
])
def test_stripped_addresses_are_what_is_queued(pymta_daemon, setting, sender, recipient):
    d = pymta_daemon(config=with_main("queue_only\n" + setting))
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd(f"MAIL FROM:{sender}")[0] == 250
        assert c.cmd(f"RCPT TO:{recipient}")[0] == 250
        code, text = c.data(b"Subject: stripped\r\n\r\nbody\r\n")
        assert code == 250, text
        msgid = text.split("=", 1)[1]
        c.quit()
    h_file = (d.spool / "input" / f"{msgid}-H").read_text()
    assert "\n<a@b.example>\n" in h_file
    assert "\nalice@test.example\n" in h_file


def _msglog_files(spool: Path, msgid: str) -> list[str]:
    return sorted(str(p.relative_to(spool)).replace(msgid, "ID")
                  for pattern in ("msglog/**/*", "msglog.OLD/**/*")
                  for p in spool.glob(pattern) if p.is_file())


@pytest.mark.parametrize("setting,recorded", [
    ("", "msglog_default.txt"),
    ("message_logs = false", "msglog_off.txt"),
    ("preserve_message_logs = true", "msglog_preserve.txt"),
])
def test_message_logs_options(pymta_daemon, setting, recorded):
    d = pymta_daemon(config=with_main("queue_only\n" + setting))
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        code, text = c.data(b"Subject: s\r\n\r\nbody\r\n")
        assert code == 250, text
        msgid = text.split("=", 1)[1]
        c.quit()
    seen = ["after reception:", *_msglog_files(d.spool, msgid)]
    proc = d.run("-M", msgid)
    assert proc.returncode == 0, proc.stderr
    assert d.queue() == []
    seen += ["after delivery:", *_msglog_files(d.spool, msgid)]
    assert seen == (DATA / recorded).read_text().splitlines()
    if setting.startswith("preserve"):
        kept = (d.spool / "msglog.OLD" / msgid).read_text()
        assert "Received from" in kept and "=> alice" in kept


@pytest.mark.parametrize("setting,smtputf8,code", [
    ("", False, 550),
    ("allow_utf8_domains = true", False, 250),
    ("", True, 250),                # an SMTPUTF8 message may have UTF-8 domains anyway
])
def test_header_syntax_utf8_domain(pymta_daemon, setting, smtputf8, code):
    acl = "acl_smtp_data = check_data\n" + setting
    config = with_main(acl).replace(
        "begin acl\n", "begin acl\n\ncheck_data:\n  deny !verify = header_syntax\n"
                       "  accept\n", 1)
    d = pymta_daemon(config=config)
    with d.client() as c:
        c.banner()
        c.ehlo()
        mail = "MAIL FROM:<a@b.example>" + (" SMTPUTF8" if smtputf8 else "")
        assert c.cmd(mail)[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        got, text = c.data("From: a@b.example\r\nTo: c@d\u00e9.example\r\n\r\nb\r\n"
                           .encode("utf-8"))
        assert got == code, text
        c.quit()
