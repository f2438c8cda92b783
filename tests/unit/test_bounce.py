"""Bounce messages: RFC 3464 structure, addressing and size limits."""
import email
from email import policy
from types import SimpleNamespace

from pymta.address import Address, Host
from pymta.config.model import Config
from pymta.delivery.bounce import bounce_recipient, build_bounce
from pymta.spool.model import SpoolHeader, SpoolMessage


def cfg(**main):
    opts = dict(primary_hostname="mta.example", qualify_domain="q.example")
    opts.update(main)
    return Config("x", main=SimpleNamespace(**opts))


def original(sender="alice@src.example"):
    m = SpoolMessage("1xUsgZ-0001rW-2U", "alice", 1000, 1000, sender, 1795296711)
    m.headers = [SpoolHeader("P", "Received: from alice by mta.example\n"),
                 SpoolHeader("I", "Message-Id: <E1xUsgZ-0001rW-2U@mta.example>\n"),
                 SpoolHeader("*", "X-Deleted: gone\n"),
                 SpoolHeader(" ", "Subject: hello\n")]
    return m


def failed_addresses():
    a = Address("nobody@nowhere.example", message="Unrouteable address")
    b = Address("bob@remote.example",
                message="SMTP error from remote mail server after RCPT TO:<bob@remote.example>: "
                        "550 5.1.1 no such user")
    b.host_used = Host("mx.remote.example", "198.51.100.5")
    return [a, b]


def parse(data: bytes):
    return email.message_from_bytes(data, policy=policy.compat32)


def test_structure_of_a_bounce():
    msg = parse(build_bounce(cfg(), original(), failed_addresses(), "alice@src.example",
                             b"the body\n"))
    assert msg["From"] == "Mail Delivery System <Mailer-Daemon@q.example>"
    assert msg["To"] == "alice@src.example"
    assert msg["Auto-Submitted"] == "auto-replied"
    # as Exim: the latest failure first, one address per line
    assert msg["X-Failed-Recipients"] == "bob@remote.example,\n  nobody@nowhere.example"
    assert msg["References"] == "<E1xUsgZ-0001rW-2U@mta.example>"
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    text, status, returned = msg.get_payload()
    assert text.get_content_type() == "text/plain"
    body = text.get_payload()
    assert "permanent error" in body
    # the host tried, and a long error broken after its colon (exim4 4.96)
    assert body.endswith(
        "failed:\n\n"
        "  bob@remote.example\n"
        "    host mx.remote.example [198.51.100.5]\n"
        "    SMTP error from remote mail server after RCPT TO:<bob@remote.example>:\n"
        "    550 5.1.1 no such user\n"
        "  nobody@nowhere.example\n    Unrouteable address\n")
    assert status.get_content_type() == "message/delivery-status"
    groups = status.get_payload()
    assert groups[0]["Reporting-MTA"] == "dns; mta.example"
    assert groups[1]["Final-Recipient"] == "rfc822;nobody@nowhere.example"
    assert groups[1]["Action"] == "failed" and groups[1]["Status"] == "5.0.0"
    assert groups[1]["Diagnostic-Code"] is None
    assert groups[2]["Remote-MTA"] == "dns; mx.remote.example"
    assert groups[2]["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    assert returned.get_content_type() == "message/rfc822"
    inner = returned.get_payload()[0]
    assert inner["Return-path"] == "<alice@src.example>"
    assert inner["Subject"] == "hello" and inner["X-Deleted"] is None
    assert inner.get_payload() == "the body\n"


def test_headers_only_and_size_limit():
    msg = parse(build_bounce(cfg(bounce_return_body=False), original(), failed_addresses()[:1],
                             "alice@src.example", b"secret body\n"))
    returned = msg.get_payload()[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    assert "secret body" not in returned.as_string()
    big = b"x" * 60 + b"\n"
    msg = parse(build_bounce(cfg(bounce_return_size_limit=100), original(),
                             failed_addresses()[:1], "a@b", big * 10))
    inner = msg.get_payload()[2].get_payload()[0].get_payload()
    assert inner.count("x" * 60) == 1
    assert "is 610 characters long" in inner


def test_bounce_recipient_rules():
    m = original()
    a = Address("x@y.example")
    assert bounce_recipient(a, m) == "alice@src.example"
    parent = Address("list@y.example", errors_address="owner@y.example")
    child = Address("x@y.example", parent=parent)
    assert bounce_recipient(child, m) == "owner@y.example"
    assert bounce_recipient(Address("x@y", errors_address=""), m) is None   # errors_to = <>
    assert bounce_recipient(a, original(sender="")) is None


def test_a_line_too_long_counts_as_too_big():
    body = b"short line\n" + b"x" * 1200 + b"\nafter\n"
    text = build_bounce(cfg(), original(), failed_addresses(), "alice@src.example",
                        body).decode()
    assert "\nshort line\n" in text and "x" * 100 not in text and "\nafter\n" not in text
    assert f"------ The body of the message is {len(body)} characters long" in text
    text = build_bounce(cfg(bounce_return_linesize_limit=2000), original(),
                        failed_addresses(), "alice@src.example", body).decode()
    assert "x" * 1200 in text and "The body of the message is" not in text


def test_bounce_comes_from_exim_user():
    """Exim gives up root before it sends a bounce: U=<exim_user> on its <= line and
    "Received: from <exim_user>" (exim4 4.96 on Debian: Debian-exim)."""
    import pwd

    from pymta.delivery.bounce import mta_identity
    nobody = pwd.getpwnam("nobody")
    assert mta_identity(cfg(exim_user="nobody")) == (nobody.pw_uid, nobody.pw_gid, "nobody")
    assert mta_identity(cfg())[2] == pwd.getpwuid(__import__("os").geteuid()).pw_name
