"""The configurations shipped in etc/ run in the real daemon and are not open relays.

Clients are made to come from 127.0.0.2 (any 127/8 source address works on Linux
loopback), which is not in either configuration's relay_from_hosts.
"""
from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
from pathlib import Path

import pytest

from tests.integration.conftest import maildir_messages, wait_for
from tests.support.daemon import PymtaDaemon
from tests.support.ports import free_port

ETC = Path(__file__).resolve().parents[2] / "etc"


def _dialog(port: int, source: str, commands: list[str]) -> list[str]:
    """Send each command after the banner (and EHLO) and return the reply lines' codes+text."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(source, 0))
    f = sock.makefile("rb")

    def reply() -> str:
        lines = []
        while True:
            line = f.readline().decode()
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return " ".join(lines)

    try:
        reply()
        out = []
        for cmd in ["EHLO client.test"] + commands:
            sock.sendall(cmd.encode() + b"\r\n")
            out.append(reply())
        return out[1:]
    finally:
        sock.close()


@pytest.fixture
def dev_daemon(tmp_path):
    for name in ("dev-users", "dev-aliases", "dev-passwd"):
        shutil.copy(ETC / name, tmp_path / name)
    # _CONFIG_DIR points at the temporary directory, where the copies of the lookup
    # files are; SPOOL keeps the spool, logs and maildirs there too.
    d = PymtaDaemon((ETC / "dev.conf").read_text(), tmp_path,
                    macros={"SPOOL": str(tmp_path / "spool"), "EXIM_USER": "nobody"})
    d.start()
    yield d
    d.stop()


def test_dev_conf_refuses_relay_from_unlisted_host(dev_daemon):
    replies = _dialog(dev_daemon.port, "127.0.0.2", [
        "MAIL FROM:<someone@outside.example>",
        "RCPT TO:<victim@elsewhere.example>",
        "RCPT TO:<x@relay.test>",
        "RCPT TO:<alice@pymta.test>",
        "QUIT"])
    assert replies[0].startswith("250")
    assert replies[1].startswith("550") and "relay not permitted" in replies[1]
    assert replies[2].startswith("550") and "relay not permitted" in replies[2]
    assert replies[3].startswith("250")


def test_dev_conf_delivers_local_mail_and_refuses_unroutable(dev_daemon, tmp_path):
    body = "From: a@b.example\r\nSubject: quick start\r\n\r\nhello\r\n."
    replies = _dialog(dev_daemon.port, "127.0.0.1", [
        "MAIL FROM:<someone@outside.example>",
        "RCPT TO:<somebody@elsewhere.example>",
        "RCPT TO:<nobody@pymta.test>",
        "RCPT TO:<postmaster@pymta.test>",
        "DATA", body, "QUIT"])
    assert replies[1].startswith("550")     # no DNS router: unroutable, not accepted
    assert replies[2].startswith("550")     # unknown local user
    assert replies[3].startswith("250")
    assert replies[5].startswith("250 OK id=")
    # postmaster is an alias of alice; the maildir is keyed by the user name
    msgs = wait_for(lambda: maildir_messages(tmp_path / "spool", "alice"))
    assert len(msgs) == 1 and msgs[0].endswith(b"\nhello\n")


def test_production_conf_refuses_relay_from_unlisted_host(tmp_path):
    text = (f"spool_directory = {tmp_path}/spool\n"
            f"log_file_path = {tmp_path}/spool/log/%slog\n"
            "primary_hostname = mx.example.net\n"
            + (ETC / "pymta.conf").read_text())
    # The configured user "pymta" need not exist on a test machine.
    text = text.replace("exim_user = pymta\nexim_group = pymta\n", "exim_user = nobody\n")
    d = PymtaDaemon(text, tmp_path)
    d.start()
    try:
        # The null sender always passes the config's `verify = sender` (a remote sender
        # would need the dnslookup router and DNS, which this test does not provide).
        replies = _dialog(d.port, "127.0.0.2", [
            "MAIL FROM:<>",
            "RCPT TO:<victim@elsewhere.example>",
            "QUIT"])
        assert replies[0].startswith("250")
        assert replies[1].startswith("550") and "relay not permitted" in replies[1]
    finally:
        d.stop()


def test_dev_conf_offers_tls_out_of_the_box(tmp_path):
    """No certificate configured: STARTTLS on the SMTP ports and TLS on connect on the
    submissions port, with the self-signed certificate made in the spool."""
    for name in ("dev-users", "dev-aliases", "dev-passwd"):
        shutil.copy(ETC / name, tmp_path / name)
    ports = [free_port(), free_port()]
    d = PymtaDaemon((ETC / "dev.conf").read_text(), tmp_path, ports=ports,
                    macros={"SPOOL": str(tmp_path / "spool"), "EXIM_USER": "nobody",
                            "SUBMISSIONS_PORT": str(ports[1])})
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with d:
        with smtplib.SMTP("127.0.0.1", ports[0], timeout=20) as s:
            assert s.starttls(context=ctx)[0] == 220
            assert s.ehlo("client.test")[0] == 250
        with smtplib.SMTP_SSL("127.0.0.1", ports[1], timeout=20, context=ctx) as s:
            assert s.ehlo("client.test")[0] == 250
            assert not s.has_extn("starttls")
        # clients that pin the certificate can: it is the file in the spool
        verify = ssl.create_default_context(cafile=str(tmp_path / "spool" / "tls" /
                                                       "selfsigned.pem"))
        verify.check_hostname = False
        with smtplib.SMTP_SSL("127.0.0.1", ports[1], timeout=20, context=verify) as s:
            assert s.noop()[0] == 250


def test_dev_conf_auth_only_under_tls_and_lets_users_relay(dev_daemon):
    """AUTH PLAIN/LOGIN is offered only after STARTTLS; alice (etc/dev-passwd) may then
    relay from a host outside relay_from_hosts, a wrong password may not."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", dev_daemon.port, timeout=20,
                      source_address=("127.0.0.2", 0)) as s:
        s.ehlo("client.test")
        assert not s.has_extn("auth")
        s.starttls(context=ctx)
        s.ehlo("client.test")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("alice", "not-the-password")
        s.mail("alice@pymta.test")
        assert s.rcpt("someone@relay.test")[0] == 550          # not authenticated
        s.rset()
        s.login("alice", "alice-dev-password")
        s.mail("alice@pymta.test")
        assert s.rcpt("someone@relay.test")[0] == 250
    dev_daemon.wait_for_log(r"plain authenticator failed for \(client\.test\) "
                            r"\[127\.0\.0\.2\]: 535 Incorrect authentication data "
                            r"\(set_id=alice\)")
