"""SMTP AUTH on the daemon with real clients: swaks (PLAIN, LOGIN, CRAM-MD5 over
STARTTLS), Python's smtplib, the log lines fail2ban's exim filter reads (checked with
Debian's fail2ban-regex), relaying for authenticated clients only, AUTH offered only
under TLS, and the dovecot authenticator against a real Dovecot."""
from __future__ import annotations

import re
import shutil
import smtplib
import ssl
import subprocess

import pytest

from tests.support.certs import make_ca, make_cert
from tests.support.daemon import PymtaDaemon
from tests.support.dovecot import private_dovecot

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist local_domains = test.example
acl_smtp_rcpt = acl_check_rcpt
queue_only
tls_certificate = DIR/mx.test.example.pem
tls_privatekey = DIR/mx.test.example.key
auth_advertise_hosts = ${if eq{$tls_in_cipher}{}{}{*}}

begin acl

acl_check_rcpt:
  accept  domains = +local_domains
  accept  authenticated = *
  deny    message = relay not permitted

begin authenticators

@AUTHENTICATORS@
"""

PASSWORDS = """\
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{alice}}{eq{$auth3}{secret}}}}
  server_set_id = $auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and {{eq{$auth1}{alice}}{eq{$auth2}{secret}}}}
  server_set_id = $auth1

cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = ${if eq{$auth1}{alice}{secret}fail}
  server_set_id = $auth1
"""

DOVECOT = """\
dovecot_plain:
  driver = dovecot
  public_name = PLAIN
  server_socket = @SOCKET@
  server_set_id = $auth1
"""


@pytest.fixture
def certs(tmp_path):
    ca = make_ca(tmp_path)
    make_cert(tmp_path, "mx.test.example", ca)
    return ca


@pytest.fixture
def daemon(tmp_path, certs):
    with PymtaDaemon(CONFIG.replace("@AUTHENTICATORS@", PASSWORDS), tmp_path) as d:
        yield d


def _swaks(d: PymtaDaemon, ca: str, mech: str, password: str,
           to: str = "someone@elsewhere.example") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(d.port), "--tls",
         "--tls-verify", "--tls-ca-path", ca, "--auth", mech,
         "--auth-user", "alice", "--auth-password", password,
         "--from", "alice@test.example", "--to", to, "--helo", "client.example",
         "--timeout", "20"], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
@pytest.mark.parametrize("mech, name", [("PLAIN", "plain"), ("LOGIN", "login"),
                                        ("CRAM-MD5", "cram")])
def test_swaks_authenticates_and_relays(daemon, certs, mech, name):
    out = _swaks(daemon, certs.cert, mech, "secret")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "235 Authentication succeeded" in out.stdout
    line = daemon.wait_for_log(r" <= alice@test\.example ")[0]
    # as Exim writes it: P=esmtpsa, then X= and CV=, then A=<authenticator>:<id>
    assert re.search(r" P=esmtpsa X=TLS1\.3:\S+ CV=no A=" + name + r":alice S=", line), line


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_wrong_password_is_535_and_logged_for_fail2ban(daemon, certs, tmp_path):
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
        out = _swaks(daemon, certs.cert, mech, "wrong")
        assert "535 Incorrect authentication data" in out.stdout, out.stdout
    lines = daemon.wait_for_log(r"authenticator failed for ", count=3)
    # Exim 4.96's words, which fail2ban's exim filter matches
    assert [line.split(" ", 2)[2] for line in lines] == [
        f"{name} authenticator failed for (client.example) [127.0.0.1]: "
        "535 Incorrect authentication data (set_id=alice)"
        for name in ("plain", "login", "cram")]
    if shutil.which("fail2ban-regex") is None:
        pytest.skip("fail2ban-regex is not installed (Debian package fail2ban)")
    out = subprocess.run(["fail2ban-regex", str(daemon.spool / "log" / "mainlog"),
                          "/etc/fail2ban/filter.d/exim.conf"],
                         capture_output=True, text=True, timeout=120)
    matched = re.search(r"Lines: \d+ lines, \d+ ignored, (\d+) matched", out.stdout)
    assert matched and int(matched.group(1)) >= 3, out.stdout


def test_smtplib_starttls_login(daemon, certs):
    ctx = ssl.create_default_context(cafile=certs.cert)
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=20) as s:
        s.ehlo("client.example")
        assert not s.has_extn("auth")                    # not in clear
        s.starttls(context=ctx)
        s.ehlo("client.example")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN", "CRAM-MD5"]
        s.login("alice", "secret")
        s.sendmail("alice@test.example", ["friend@elsewhere.example"], b"Subject: hi\r\n\r\n")
    daemon.wait_for_log(r" <= alice@test\.example .* A=\w+:alice ")


def test_unauthenticated_client_may_not_relay(daemon, certs):
    ctx = ssl.create_default_context(cafile=certs.cert)
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=20) as s:
        s.starttls(context=ctx)
        s.ehlo("client.example")
        s.mail("alice@test.example")
        code, text = s.rcpt("friend@elsewhere.example")
        assert (code, text) == (550, b"relay not permitted")
        assert s.rcpt("bob@test.example")[0] == 250


@pytest.fixture(scope="module")
def dovecot_socket():
    with private_dovecot() as path:
        yield path


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_dovecot_authenticator_through_the_daemon(tmp_path, certs, dovecot_socket):
    text = CONFIG.replace("@AUTHENTICATORS@", DOVECOT.replace("@SOCKET@", dovecot_socket))
    with PymtaDaemon(text, tmp_path) as d:
        ok = _swaks(d, certs.cert, "PLAIN", "secret")
        assert ok.returncode == 0 and "235 Authentication succeeded" in ok.stdout, ok.stdout
        d.wait_for_log(r" <= alice@test\.example .* A=dovecot_plain:alice ")
        bad = _swaks(d, certs.cert, "PLAIN", "wrong")
        assert "535 Incorrect authentication data" in bad.stdout, bad.stdout
        d.wait_for_log(r"dovecot_plain authenticator failed for ")


SUBMISSION_ACL = """\
acl_check_rcpt:
  accept  authenticated = *
          control = submission/domain=test.example/name=Alice Example
  deny    message = relay not permitted
"""


def test_submission_mode_fixes_up_sender_date_and_message_id(tmp_path, certs):
    """control = submission for an authenticated client: Sender: lines go, a Sender:
    naming the authenticated user is added when From: is someone else (and becomes the
    return path), Date: and Message-ID: are added when missing."""
    text = CONFIG.replace("@AUTHENTICATORS@", PASSWORDS)
    text = text[:text.index("acl_check_rcpt:")] + SUBMISSION_ACL + \
        text[text.index("begin authenticators"):]
    ctx = ssl.create_default_context(cafile=certs.cert)
    with PymtaDaemon(text, tmp_path) as d:
        with smtplib.SMTP("127.0.0.1", d.port, timeout=20) as s:
            s.starttls(context=ctx)
            s.login("alice", "secret")
            s.sendmail("bob@evil.example", ["friend@elsewhere.example"],
                       b"From: Bob <bob@evil.example>\r\nSender: bob@evil.example\r\n"
                       b"Subject: spoof\r\n\r\nbody\r\n")
            s.sendmail("alice@test.example", ["friend@elsewhere.example"],
                       b"From: Alice <alice@test.example>\r\nSubject: own\r\n\r\nbody\r\n")
        lines = d.wait_for_log(r" <= \S+ H=", count=2)
        first = (d.spool / "input" / f"{lines[0].split()[2]}-H").read_text()
        second = (d.spool / "input" / f"{lines[1].split()[2]}-H").read_text()
    assert lines[0].split()[4] == "alice@test.example"            # the return path
    assert "\n<alice@test.example>\n" in first
    assert re.search(r"\n\d{3}\* Sender: bob@evil\.example\n", first), first
    assert re.search(r"\n\d{3}S Sender: Alice Example <alice@test\.example>\n", first), first
    assert re.search(r"\n\d{3}I Message-Id: <", first) and "Date: " in first
    assert "(envelope-from <alice@test.example>)" in first
    assert "Sender:" not in second and " <= alice@test.example " in lines[1]


def test_submission_mode_ignores_local_from_affixes(tmp_path, certs):
    """local_from_prefix/local_from_suffix also apply to submission mode's From: check
    (the Exim manual's "The Sender: header line"): alice+lists@ is alice, bob+x@ is not."""
    text = CONFIG.replace("@AUTHENTICATORS@", PASSWORDS)
    text = text[:text.index("acl_check_rcpt:")] + SUBMISSION_ACL + \
        text[text.index("begin authenticators"):]
    text = "local_from_suffix = +*\n" + text
    ctx = ssl.create_default_context(cafile=certs.cert)
    with PymtaDaemon(text, tmp_path) as d:
        with smtplib.SMTP("127.0.0.1", d.port, timeout=20) as s:
            s.starttls(context=ctx)
            s.login("alice", "secret")
            s.sendmail("alice@test.example", ["friend@elsewhere.example"],
                       b"From: <alice+lists@test.example>\r\nSubject: a\r\n\r\nbody\r\n")
            s.sendmail("alice@test.example", ["friend@elsewhere.example"],
                       b"From: <bob+x@test.example>\r\nSubject: b\r\n\r\nbody\r\n")
        lines = d.wait_for_log(r" <= \S+ H=", count=2)
        first = (d.spool / "input" / f"{lines[0].split()[2]}-H").read_text()
        second = (d.spool / "input" / f"{lines[1].split()[2]}-H").read_text()
    assert "Sender:" not in first, first
    assert re.search(r"\n\d{3}S Sender: Alice Example <alice@test\.example>\n", second), second
