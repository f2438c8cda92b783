"""The main TLS options of the daemon (Exim 4.96's TLS chapter) with real clients.

Client certificates (tls_verify_hosts, tls_try_verify_hosts, tls_verify_certificates),
the TLS facts on the "<=" line, in the Received header, in the -H file and in the
delivery's $tls_in_* variables, SNI choosing the certificate, OCSP stapling from
tls_ocsp_file, tls_require_ciphers with openssl_options, tls_eccurve, session
resumption (tls_resumption_hosts), acl_smtp_starttls and the ``encrypted`` condition.
Certificates are made here; the clients are Python's ssl and ``openssl s_client``.
"""
from __future__ import annotations

import datetime
import os
import re
import shutil
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.integration.conftest import maildir_messages, wait_for
from tests.support.certs import CertFiles, make_ca, make_cert
from tests.support.daemon import PymtaDaemon

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist local_domains = test.example
acl_smtp_rcpt = acl_check_rcpt
smtp_receive_timeout = 5s
tls_certificate = DIR/mx.test.example.pem
tls_privatekey = DIR/mx.test.example.key
@EXTRA@

begin acl

acl_check_rcpt:
  warn    encrypted = *
          add_header = X-Encrypted: $tls_in_cipher
  warn    condition = ${if def:tls_in_peercert}
          add_header = X-Client-CN: ${certextract{subject,CN}{$tls_in_peercert}}
  warn    verify = certificate
          add_header = X-Certificate-Verified: yes
  accept  domains = +local_domains

starttls_acl:
  deny    hosts = 127.0.0.1
          message = not from you

begin routers

local_users:
  driver = accept
  domains = +local_domains
  local_parts = alice : bob
  transport = local_maildir

begin transports

local_maildir:
  driver = appendfile
  directory = DIR/maildir/${local_part_data}
  maildir_format
  create_directory
  headers_add = X-Delivery-TLS: ${tls_in_ver} verified=${tls_in_certificate_verified} \\
    dn=<${tls_in_peerdn}> sni=<${tls_in_sni}>

begin retry

*  *  F,1h,1s
"""


def _config(*extra: str) -> str:
    text = CONFIG.replace("@EXTRA@", "\n".join(extra))
    if any(line.startswith("tls_certificate") for line in extra):
        text = text.replace("tls_certificate = DIR/mx.test.example.pem\n", "") \
            .replace("tls_privatekey = DIR/mx.test.example.key\n", "")
    return text


class PKI:
    def __init__(self, directory: Path):
        self.dir = directory
        self.ca = make_ca(directory)
        self.server = make_cert(directory, "mx.test.example", self.ca)
        self.other = make_cert(directory, "other.test.example", self.ca)
        (directory / "clients").mkdir()
        self.client = make_cert(directory / "clients", "client.example", self.ca, client=True)
        (directory / "strangers").mkdir()
        self.stranger = make_cert(directory / "strangers", "client.example", client=True)


@pytest.fixture
def pki(tmp_path) -> PKI:
    return PKI(tmp_path)


def _client_context(pki: PKI, cert: CertFiles | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca.cert)
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


def _send(port: int, ctx: ssl.SSLContext, sni: str = "mx.test.example",
          rcpt: str = "alice@test.example") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s._host = sni                      # what starttls() sends as SNI
        s.starttls(context=ctx)
        s.ehlo("client.example")
        s.sendmail("someone@remote.example", [rcpt], b"Subject: tls\r\n\r\nbody\r\n")


def _header_file(d: PymtaDaemon, msgid: str) -> str:
    return (d.spool / "input" / f"{msgid}-H").read_text()


def test_client_certificate_facts_reach_log_received_spool_and_delivery(tmp_path, pki):
    main = (f"tls_try_verify_hosts = *\ntls_verify_certificates = {pki.ca.cert}\n"
            "log_selector = +tls_peerdn +tls_sni")
    with PymtaDaemon(_config(main), tmp_path, args=["-odq"]) as d:
        _send(d.port, _client_context(pki, pki.client))
        line = d.wait_for_log(r" <= someone@remote\.example ")[0]
        assert re.search(r" P=esmtps X=TLS1\.3:TLS_[A-Z0-9_]+:\d+ CV=yes "
                         r'DN="CN=client\.example" SNI=mx\.test\.example S=', line), line
        msgid = line.split()[2]
        spooled = _header_file(d, msgid)
        assert "\n-tls_certificate_verified\n" in spooled
        assert re.search(r"\n-tls_cipher TLS1\.3:TLS_\w+:\d+\n", spooled)
        assert "\n--tls_peerdn CN=client.example\n" in spooled
        assert "\n--tls_sni mx.test.example\n" in spooled
        assert "\n--tls_peercert -----BEGIN CERTIFICATE-----\\n" in spooled
        assert "\n-tls_ver TLS1.3\n" in spooled
        assert re.search(r"with esmtps  \(TLS1\.3\) tls TLS_\w+\n\t\(pymta ", spooled)
        assert re.search(r"X-Encrypted: TLS1\.3:TLS_\w+:\d+\n", spooled)
        assert "X-Client-CN: client.example\n" in spooled
        assert "X-Certificate-Verified: yes\n" in spooled
    # Delivered by a later queue run: $tls_in_* come back from the -H file.
    with PymtaDaemon(_config(main), tmp_path, args=["-q1s"]) as d:
        wait_for(lambda: maildir_messages(tmp_path, "alice"))
    text = maildir_messages(tmp_path, "alice")[0].decode()
    assert ("X-Delivery-TLS: TLS1.3 verified=1 dn=<CN=client.example> "
            "sni=<mx.test.example>") in text


def test_untrusted_client_certificate_is_cv_no_under_try(tmp_path, pki):
    main = f"tls_try_verify_hosts = *\ntls_verify_certificates = {pki.ca.cert}"
    with PymtaDaemon(_config(main), tmp_path, args=["-odq"]) as d:
        _send(d.port, _client_context(pki, pki.stranger))
        line = d.wait_for_log(r" <= someone@remote\.example ")[0]
        assert " CV=no " in line and "DN=" not in line       # tls_peerdn not selected
        spooled = _header_file(d, line.split()[2])
        assert "X-Client-CN: client.example\n" in spooled   # a certificate, unverified
        assert "X-Certificate-Verified" not in spooled


def test_tls_verify_hosts_requires_a_trusted_certificate(tmp_path, pki):
    main = f"tls_verify_hosts = 127.0.0.1\ntls_verify_certificates = {pki.ca.cert}"
    with PymtaDaemon(_config(main), tmp_path, args=["-odq"]) as d:
        with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, OSError)):
            _send(d.port, _client_context(pki))               # no certificate
        d.wait_for_log(r"TLS error on connection from .*\[127\.0\.0\.1\] \(SSL_accept\): "
                       r".*peer did not return a certificate")
        _send(d.port, _client_context(pki, pki.client))
        line = d.wait_for_log(r" <= someone@remote\.example ")[0]
        assert " CV=yes " in line


def _s_client(port: int, pki: PKI, *args: str) -> str:
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                          "-starttls", "smtp", "-ign_eof", "-CAfile", pki.ca.cert, *args],
                         input=b"QUIT\r\n", capture_output=True, timeout=30, check=False)
    return out.stdout.decode(errors="replace")


def _ocsp_response(pki: PKI, path: Path) -> str:
    ca_cert = x509.load_pem_x509_certificate(Path(pki.ca.cert).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(pki.ca.key).read_bytes(), None)
    leaf = x509.load_pem_x509_certificate(Path(pki.server.cert).read_bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    resp = (ocsp.OCSPResponseBuilder()
            .add_response(cert=leaf, issuer=ca_cert, algorithm=hashes.SHA1(),
                          cert_status=ocsp.OCSPCertStatus.GOOD,
                          this_update=now - datetime.timedelta(hours=1),
                          next_update=now + datetime.timedelta(days=1),
                          revocation_time=None, revocation_reason=None)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, ca_cert)
            .sign(ca_key, hashes.SHA256()))
    path.write_bytes(resp.public_bytes(serialization.Encoding.DER))
    return str(path)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_sni_chooses_the_certificate_and_ocsp_is_stapled(tmp_path, pki):
    staple = _ocsp_response(pki, tmp_path / "mx.ocsp.der")
    # Chosen per connection, these are read by the receiver (the exim user), not by
    # the master as root: as with Exim, they must be readable by that user.
    for path in (pki.server.key, pki.other.key, staple):
        os.chmod(path, 0o644)
    main = ("tls_certificate = ${if eq{$tls_in_sni}{other.test.example}"
            "{DIR/other.test.example.pem}{DIR/mx.test.example.pem}}\n"
            "tls_privatekey = ${if eq{$tls_in_sni}{other.test.example}"
            "{DIR/other.test.example.key}{DIR/mx.test.example.key}}")
    main2 = f"tls_ocsp_file = ${{if eq{{$tls_in_sni}}{{other.test.example}}{{}}{{{staple}}}}}"
    with PymtaDaemon(_config(main, main2), tmp_path) as d:
        out = _s_client(d.port, pki, "-servername", "mx.test.example", "-status")
        assert "subject=CN = mx.test.example" in out, out
        assert "Verify return code: 0 (ok)" in out
        assert "OCSP Response Status: successful" in out and "Cert Status: good" in out
        out = _s_client(d.port, pki, "-servername", "other.test.example", "-status")
        assert "subject=CN = other.test.example" in out, out
        assert "Verify return code: 0 (ok)" in out
        assert "OCSP response: no response sent" in out


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_require_ciphers_and_eccurve(tmp_path, pki):
    main = ("openssl_options = +no_tlsv1_3\n"
            "tls_require_ciphers = ECDHE-RSA-AES128-GCM-SHA256")
    with PymtaDaemon(_config(main, "tls_eccurve = P-384"), tmp_path,
                     args=["-odq"]) as d:
        out = _s_client(d.port, pki, "-servername", "mx.test.example")
        assert "Cipher is ECDHE-RSA-AES128-GCM-SHA256" in out, out
        assert re.search(r"Server Temp Key: ECDH, (P-384|secp384r1)", out), out
        _send(d.port, _client_context(pki))
        line = d.wait_for_log(r" <= someone@remote\.example ")[0]
        assert " X=TLS1.2:ECDHE-RSA-AES128-GCM-SHA256:128 " in line
        refused = _s_client(d.port, pki, "-cipher", "AES256-SHA", "-tls1_2")
        assert "Cipher is ECDHE" not in refused


def _raw_starttls_message(port: int, ctx: ssl.SSLContext,
                          session: ssl.SSLSession | None) -> ssl.SSLSession | None:
    """One message over STARTTLS offering ``session``; the session to keep."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        f = raw.makefile("rb")

        def reply() -> bytes:
            while True:
                line = f.readline()
                if line[3:4] != b"-":
                    return line
        reply()
        raw.sendall(b"EHLO client.example\r\n")
        reply()
        raw.sendall(b"STARTTLS\r\n")
        assert reply().startswith(b"220")
        with ctx.wrap_socket(raw, server_hostname="mx.test.example",
                             session=session) as tls:
            g = tls.makefile("rb")

            def tls_reply() -> bytes:
                while True:
                    line = g.readline()
                    if line[3:4] != b"-":
                        return line
            for command in (b"EHLO client.example", b"MAIL FROM:<someone@remote.example>",
                            b"RCPT TO:<alice@test.example>", b"DATA"):
                tls.sendall(command + b"\r\n")
                assert tls_reply()[:1] in (b"2", b"3")
            tls.sendall(b"Subject: resumed\r\n\r\nbody\r\n.\r\nQUIT\r\n")
            assert tls_reply().startswith(b"250")
            tls_reply()                       # 221: TLS 1.3 tickets have arrived by now
            return tls.session


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_session_resumption_for_listed_hosts(tmp_path, pki):
    sess = tmp_path / "session.pem"
    main = "tls_resumption_hosts = 127.0.0.1\nlog_selector = +tls_resumption"
    with PymtaDaemon(_config(main), tmp_path, args=["-odq"]) as d:
        first = _s_client(d.port, pki, "-sess_out", str(sess))
        assert "Verify return code: 0 (ok)" in first, first
        again = _s_client(d.port, pki, "-sess_in", str(sess))
        assert "Reused, TLSv1.3" in again, again
        # Python's client too, and the "<=" line marks the resumed session with "*"
        ctx = _client_context(pki)
        session = _raw_starttls_message(d.port, ctx, None)
        _raw_starttls_message(d.port, ctx, session)
        lines = d.wait_for_log(r" <= someone@remote\.example ", count=2)
        assert re.search(r" X=TLS1\.3:TLS_\w+:\d+ CV=no ", lines[0]), lines
        assert re.search(r" X=TLS1\.3:TLS_\w+:\d+\* CV=no ", lines[1]), lines
    with PymtaDaemon(_config(), tmp_path) as d:          # not listed: no tickets
        _s_client(d.port, pki, "-sess_out", str(sess))
        again = _s_client(d.port, pki, "-sess_in", str(sess))
        assert "Reused" not in again and "New, TLSv1.3" in again


def test_acl_smtp_starttls_can_refuse(tmp_path, pki):
    with PymtaDaemon(_config("acl_smtp_starttls = starttls_acl"), tmp_path) as d:
        with d.client() as c:
            c.ehlo()
            assert "STARTTLS" in c.extensions()
            assert c.cmd("STARTTLS") == (550, "not from you")     # as Exim
            assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250     # still in clear
        d.wait_for_log(r"H=\(client\.test\) \[127\.0\.0\.1\] rejected STARTTLS: not from you")


def test_encrypted_condition_is_false_in_clear(tmp_path, pki):
    with PymtaDaemon(_config(), tmp_path, args=["-odq"]) as d:
        with smtplib.SMTP("127.0.0.1", d.port, timeout=20) as s:
            s.sendmail("someone@remote.example", ["alice@test.example"], b"Subject: x\r\n\r\n")
        line = d.wait_for_log(r" <= someone@remote\.example ")[0]
        assert " X=" not in line and " P=esmtp " in line
        spooled = _header_file(d, line.split()[2])
        assert "X-Encrypted" not in spooled and "-tls_" not in spooled


class _TlsFirstDaemon(PymtaDaemon):
    """A daemon whose every port starts TLS at once: ready when a TLS banner comes."""

    def _banner_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            return super()._banner_ready()          # raises with the diagnostics
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            with smtplib.SMTP_SSL("127.0.0.1", self.port, timeout=2, context=ctx) as s:
                return s.noop()[0] == 250
        except (OSError, smtplib.SMTPException):
            return False


def test_tls_on_connect_flag_makes_every_port_tls_first(tmp_path, pki):
    """-tls-on-connect: as if each daemon port were in tls_on_connect_ports."""
    with _TlsFirstDaemon(_config(), tmp_path, ports=2,
                         args=["-tls-on-connect", "-odq"]) as d:
        for port in d.ports:
            with smtplib.SMTP_SSL("127.0.0.1", port, timeout=20,
                                  context=_client_context(pki)) as s:
                s.ehlo("client.example")
                assert not s.has_extn("starttls")
                s.sendmail("someone@remote.example", ["alice@test.example"],
                           b"Subject: 465\r\n\r\n")
        lines = d.wait_for_log(r" <= someone@remote\.example .* P=esmtps X=TLS", count=2)
        assert len(lines) == 2
