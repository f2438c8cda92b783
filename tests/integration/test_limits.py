"""RFC 5321 length limits for addresses, over SMTP and on the command line (Exim 4.96's
texts: "address is ridiculously long" for more than 256 octets)."""
from __future__ import annotations

LONG = "a" * 587 + "@test.example"          # a 600-character path
RIDICULOUS = f"address is ridiculously long: {LONG[:64]}..."


def test_smtp_refuses_a_600_character_path(pymta_daemon):
    d = pymta_daemon()
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{LONG}>") == (501, f"<{LONG}>: {RIDICULOUS}")
        assert c.cmd("MAIL FROM:<bob@test.example>")[0] == 250
        assert c.cmd(f"RCPT TO:<{LONG}>") == (501, f"<{LONG}>: {RIDICULOUS}")
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        c.quit()


def test_sendmail_refuses_an_over_long_recipient_argument(pymta_daemon):
    d = pymta_daemon()
    proc = d.run("-odq", "-i", LONG, "alice@test.example", input=b"Subject: x\n\nbody\n")
    assert proc.returncode == 1
    assert f'bad recipient address "{LONG}": {RIDICULOUS}' in proc.stderr
    assert d.queue() == []


def test_sendmail_t_leaves_out_an_over_long_header_address(pymta_daemon):
    d = pymta_daemon()
    proc = d.run("-odq", "-t", input=f"To: {LONG}, alice@test.example\nSubject: x\n\nb\n")
    assert proc.returncode == 0, proc.stderr
    assert RIDICULOUS in proc.stderr
    [msgid] = d.queue()
    listing = d.run("-bp").stdout
    assert "alice@test.example" in listing and LONG not in listing
    only_bad = d.run("-odq", "-t", input=f"To: {LONG}\nSubject: x\n\nb\n")
    assert only_bad.returncode == 1
    assert d.queue() == [msgid]
