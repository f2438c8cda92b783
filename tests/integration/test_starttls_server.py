"""STARTTLS on the real daemon, with real clients (swaks, openssl s_client, smtplib).

Certificates come from a private CA made in the test's directory; replies and log lines
are the ones Exim 4.96 gives (checked against a real exim4 daemon: "220 TLS go ahead",
"501 unexpected argument data", "503 STARTTLS command used when not advertised",
"554 Already in TLS" then "554 Security failure", "TLS error on connection from ...
(SSL_accept): ...").
"""
from __future__ import annotations

import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest
from cryptography import x509

from tests.support.certs import CertFiles, make_ca, make_cert
from tests.support.daemon import PymtaDaemon, run_pymta
from tests.support.ports import free_port

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist local_domains = test.example
acl_smtp_rcpt = acl_check_rcpt
queue_only
smtp_receive_timeout = 3s
tls_certificate = DIR/mx.test.example.pem
tls_privatekey = DIR/mx.test.example.key
.ifdef EXTRA_MAIN
EXTRA_MAIN
.endif

begin acl

acl_check_rcpt:
  accept  domains = +local_domains
  deny    message = relay not permitted
"""


def _certs(directory) -> CertFiles:
    ca = make_ca(directory)
    return make_cert(directory, "mx.test.example", ca)


@pytest.fixture
def certs(tmp_path) -> CertFiles:
    return _certs(tmp_path)


@pytest.fixture
def daemon(tmp_path, certs):
    d = PymtaDaemon(CONFIG, tmp_path)
    with d:
        yield d


def _verifying(ca: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


# --------------------------------------------------------------------------- real clients

@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_tls_delivers_a_message(daemon, certs):
    out = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(daemon.port), "--tls",
         "--tls-verify", "--tls-ca-path", certs.ca,
         "--from", "someone@remote.example", "--to", "alice@test.example",
         "--helo", "client.example", "--timeout", "20"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "<-  220 TLS go ahead" in out.stdout
    assert "~> EHLO client.example" in out.stdout     # EHLO again, under TLS
    assert "250 OK id=" in out.stdout
    line = daemon.wait_for_log(r" <= someone@remote\.example ")[0]
    assert " P=esmtps " in line


def test_smtplib_starttls_with_verification(daemon, certs):
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls")
        code, _ = s.starttls(context=_verifying(certs.ca))
        assert code == 220
        assert isinstance(s.sock, ssl.SSLSocket) and s.sock.version() is not None
        s.ehlo("client.example")
        assert not s.has_extn("starttls")     # never offered again under TLS
        s.sendmail("someone@remote.example", ["bob@test.example"],
                   b"Subject: tls\r\n\r\nbody\r\n")
    daemon.wait_for_log(r" <= someone@remote\.example .* P=esmtps ")


def s_client(args: list[str], command: str, timeout: float = 60.0) -> str:
    """Run ``openssl s_client args`` typing one command after the handshake; the daemon
    closes the connection after smtp_receive_timeout.  (One command only: s_client
    sends all it has read at once, and its own output is buffered, so the test cannot
    wait for a reply before typing the next.)  stdout and stderr, joined."""
    out = subprocess.run(["openssl", "s_client", *args, "-ign_eof", "-nocommands"],
                         input=command + "\r\n", capture_output=True, text=True,
                         timeout=timeout)
    return out.stdout + out.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_starttls_verifies(daemon, certs):
    out = s_client(["-starttls", "smtp", "-connect", f"127.0.0.1:{daemon.port}",
                    "-CAfile", certs.ca, "-verify_return_error",
                    "-verify_hostname", "mx.test.example", "-name", "client.example"],
                   "EHLO client.example")
    assert "Verify return code: 0 (ok)" in out
    assert re.search(r"subject=\s*CN\s*=\s*mx\.test\.example", out)
    assert "250-mx.test.example Hello client.example" in out
    assert "421 mx.test.example SMTP command timeout" in out


# --------------------------------------------------------------------------- the dialogue

def test_starttls_advertised_after_ehlo_only(daemon):
    with daemon.client() as c:
        c.ehlo()
        assert "STARTTLS" in c.extensions()
        code, text = c.cmd("HELP")
        assert "STARTTLS" in text
    with daemon.client() as c:
        assert c.cmd("STARTTLS") == (503, "STARTTLS command used when not advertised")
        c.cmd("HELO client.example")
        assert c.cmd("STARTTLS") == (503, "STARTTLS command used when not advertised")


def test_starttls_with_an_argument_is_a_syntax_error(daemon):
    with daemon.client() as c:
        c.ehlo()
        assert c.cmd("STARTTLS now") == (501, "unexpected argument data")
        assert c.starttls()[0] == 220


def test_plaintext_pipelined_after_starttls_is_discarded(daemon):
    """CVE-2011-0411: commands sent in clear behind STARTTLS must not be executed
    inside the TLS session."""
    with daemon.client() as c:
        c.ehlo()
        c.send_raw(b"STARTTLS\r\nMAIL FROM:<evil@remote.example>\r\nNOOP\r\n")
        assert c.read_reply() == (220, "TLS go ahead")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c.rfile.close()
        c.sock = ctx.wrap_socket(c.sock)
        c.rfile = c.sock.makefile("rb")
        # The first reply under TLS answers the first command sent under TLS.
        assert c.cmd("RSET") == (250, "Reset OK")
        c.ehlo()
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 503     # no MAIL was taken


def test_session_starts_afresh_after_tls(daemon):
    with daemon.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
        assert c.starttls()[0] == 220
        assert c.cmd("MAIL FROM:<a@remote.example>") == (503, "HELO or EHLO required")
        c.ehlo()
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 503     # sender forgotten
        assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250


def test_tls_remember_esmtp_keeps_the_ehlo_state(tmp_path, certs):
    """tls_remember_esmtp: a client that never says EHLO again after STARTTLS may go
    on; the message is esmtps, without the HELO name (as exim4 4.96 logs it)."""
    with PymtaDaemon(CONFIG, tmp_path, macros={"EXTRA_MAIN": "tls_remember_esmtp"}) as d:
        with d.client() as c:
            c.ehlo()
            assert c.starttls()[0] == 220
            assert c.cmd("MAIL FROM:<a@remote.example> BODY=8BITMIME")[0] == 250
            assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            code, text = c.cmd("Subject: remembered\r\n\r\nbody\r\n.")
            assert code == 250
        [line] = d.wait_for_log(r" <= a@remote\.example ")
        assert re.search(r" H=\[127\.0\.0\.1\]:\d+ P=esmtps X=", line) or \
            re.search(r" H=\[127\.0\.0\.1\] P=esmtps X=", line), line


def test_second_starttls_after_new_ehlo_is_refused(daemon):
    with daemon.client() as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        assert "STARTTLS" not in c.extensions()
        assert c.cmd("STARTTLS") == (503, "STARTTLS command used when not advertised")
        assert c.cmd("NOOP") == (250, "OK")
        assert c.tls_version is not None


def test_starttls_again_before_ehlo_refuses_everything_but_quit(daemon):
    with daemon.client() as c:
        c.ehlo()
        c.starttls()
        assert c.cmd("STARTTLS") == (554, "Already in TLS")
        assert c.cmd("EHLO client.example") == (554, "Security failure")
        assert c.cmd("NOOP") == (554, "Security failure")
        assert c.cmd("QUIT")[0] == 221
    daemon.wait_for_log(r"TLS error on connection from \[127\.0\.0\.1\] "
                        r"\(STARTTLS received after TLS started\)")


def test_stalled_handshake_is_timed_out(daemon):
    with daemon.client() as c:
        c.ehlo()
        assert c.cmd("STARTTLS")[0] == 220
        started = time.monotonic()
        c.sock.settimeout(20)
        assert c.sock.recv(100) == b""       # closed by the server, nothing sent
        assert time.monotonic() - started < 15
    daemon.wait_for_log(r"TLS error on connection from \(client\.test\) \[127\.0\.0\.1\] "
                        r"\(SSL_accept\): timed out")


def test_garbage_instead_of_a_handshake_closes_the_connection(daemon):
    with daemon.client() as c:
        c.ehlo()
        assert c.cmd("STARTTLS")[0] == 220
        c.send_raw(b"EHLO not tls\r\n")
        c.sock.settimeout(20)
        assert c.sock.recv(100) == b""
    daemon.wait_for_log(r"TLS error on connection from \(client\.test\) \[127\.0\.0\.1\] "
                        r"\(SSL_accept\): ")
    with daemon.client() as c:            # the daemon serves the next client
        assert c.ehlo()[0] == 250


def test_tls_advertise_hosts_limits_the_offer(tmp_path, certs):
    extra = {"EXTRA_MAIN": "tls_advertise_hosts = 10.0.0.1"}
    with PymtaDaemon(CONFIG, tmp_path, macros=extra) as d:
        with d.client() as c:
            c.ehlo()
            assert "STARTTLS" not in c.extensions()
            assert c.cmd("STARTTLS") == (503, "STARTTLS command used when not advertised")


def test_empty_tls_advertise_hosts_offers_nothing(tmp_path, certs):
    with PymtaDaemon(CONFIG, tmp_path, macros={"EXTRA_MAIN": "tls_advertise_hosts ="}) as d:
        with d.client() as c:
            c.ehlo()
            assert "STARTTLS" not in c.extensions()
            assert c.cmd("STARTTLS") == (503, "STARTTLS command used when not advertised")


def _peer_certificate(port: int, starttls: bool) -> x509.Certificate:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if starttls:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.starttls(context=ctx)
            der = s.sock.getpeercert(binary_form=True)
    else:
        with smtplib.SMTP_SSL("127.0.0.1", port, timeout=20, context=ctx) as s:
            der = s.sock.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def test_without_certificate_a_self_signed_one_is_made_once(tmp_path):
    """As Exim 4.96, STARTTLS is offered without tls_certificate, with a self-signed
    certificate; pymta keeps it in the spool so it stays the same across restarts."""
    text = CONFIG.replace("tls_certificate = DIR/mx.test.example.pem\n", "") \
        .replace("tls_privatekey = DIR/mx.test.example.key\n", "")
    d = PymtaDaemon(text, tmp_path)
    with d:
        with d.client() as c:
            c.ehlo()
            assert "STARTTLS" in c.extensions()
        first = _peer_certificate(d.port, starttls=True)
    path = d.spool / "tls" / "selfsigned.pem"
    st = path.stat()
    assert st.st_mode & 0o777 == 0o600
    assert st.st_uid == (d.spool.stat().st_uid)
    assert first.subject == first.issuer
    assert first.subject.rfc4514_string() == "CN=mx.test.example"
    with d:
        assert _peer_certificate(d.port, starttls=True) == first


# --------------------------------------------------------------------------- TLS on connect

@pytest.fixture
def two_ports(tmp_path, certs):
    ports = [free_port(), free_port()]
    d = PymtaDaemon(CONFIG, tmp_path, ports=ports,
                    macros={"EXTRA_MAIN": f"tls_on_connect_ports = {ports[1]}"})
    with d:
        yield d


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_tlsc_on_the_tls_on_connect_port(two_ports, certs):
    d = two_ports
    out = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(d.ports[1]), "--tlsc",
         "--tls-verify", "--tls-ca-path", certs.ca,
         "--from", "someone@remote.example", "--to", "alice@test.example",
         "--helo", "client.example", "--timeout", "20"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "<~  220 mx.test.example" in out.stdout      # "~": the banner came under TLS
    assert "STARTTLS" not in out.stdout
    line = d.wait_for_log(r" <= someone@remote\.example ")[0]
    assert " P=esmtps " in line


def test_smtps_client_and_no_starttls_on_that_port(two_ports, certs):
    d = two_ports
    with smtplib.SMTP_SSL("127.0.0.1", d.ports[1], timeout=20,
                          context=_verifying(certs.ca)) as s:
        s.ehlo("client.example")
        assert not s.has_extn("starttls")
        assert s.docmd("STARTTLS") == (503, b"STARTTLS command used when not advertised")
        s.sendmail("someone@remote.example", ["bob@test.example"], b"Subject: 465\r\n\r\nx\r\n")
    d.wait_for_log(r" <= someone@remote\.example .* P=esmtps ")
    with d.client() as c:        # the other port still talks in clear first
        c.ehlo()
        assert "STARTTLS" in c.extensions()


def test_plaintext_client_on_the_tls_port_gets_no_banner(two_ports):
    d = two_ports
    with socket.create_connection(("127.0.0.1", d.ports[1]), timeout=20) as s:
        s.sendall(b"EHLO client.example\r\n")
        rest = s.makefile("rb").read()
        assert b"220" not in rest
    d.wait_for_log(r"TLS error on connection from \[127\.0\.0\.1\] \(SSL_accept\): ")


# --------------------------------------------------------------------------- start-up checks

def test_unreadable_certificate_stops_the_start_and_bV(tmp_path, certs):
    text = CONFIG.replace("DIR/mx.test.example.pem", "DIR/missing.pem")
    d = PymtaDaemon(text, tmp_path)
    with pytest.raises(RuntimeError) as exc:
        d.start()
    assert "tls_certificate: cannot load" in str(exc.value)
    assert "missing.pem" in str(exc.value)
    out = run_pymta(["-bV"], d.config_path, macros=d.macros)
    assert out.returncode == 1
    assert "tls_certificate: cannot load" in out.stderr


def test_key_not_matching_the_certificate_is_named(tmp_path, certs):
    other = make_cert(tmp_path, "other.example")
    text = CONFIG.replace("DIR/mx.test.example.key", other.key)
    d = PymtaDaemon(text, tmp_path)
    d.prepare()
    out = run_pymta(["-bV"], d.config_path, macros=d.macros)
    assert out.returncode == 1
    assert "tls_privatekey: cannot use" in out.stderr


def test_bV_accepts_a_good_tls_configuration(tmp_path, certs):
    d = PymtaDaemon(CONFIG, tmp_path)
    d.prepare()
    out = run_pymta(["-bV"], d.config_path, macros=d.macros)
    assert out.returncode == 0, out.stderr


def test_raw_socket_is_not_reused_for_plaintext_after_failure(daemon):
    """After a failed handshake the connection is over: nothing more is read in clear."""
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=20)
    try:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO x\r\n")
        while f.readline()[3:4] == b"-":
            pass
        s.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        s.sendall(b"\x16\x03\x01\x00\x05hello" + b"\r\nQUIT\r\n")
        rest = f.read()
        # at most a TLS alert record (type 21): no SMTP reply, the QUIT was never read
        assert rest == b"" or rest.startswith(b"\x15\x03"), rest
        assert b"221" not in rest
    finally:
        s.close()
