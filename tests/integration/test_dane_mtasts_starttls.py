"""The DANE / MTA-STS hook on a real STARTTLS session, driven by a minimal client.

A loopback DNS server (AD set for the secure zone), a loopback HTTPS server with an
MTA-STS policy, and SMTP sinks offering STARTTLS with certificates made here.  The
client below does what the transport's TLS client is to do with the
:class:`~pymta.tls.outbound.HostRequirements` it gets: skip a host that may not be
used, send the forced SNI, verify the chain by DANE (or PKIX) after the handshake,
and only then send the message.
"""
from __future__ import annotations

import hashlib
import socket

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pymta import dns as pdns
from pymta.address import Host
from pymta.expand import ExpandContext
from pymta.match import match_host
from pymta.tls.client import ClientTLS, ClientTLSOptions
from pymta.tls.expander import no_expansion
from pymta.tls.mtasts import PORT_ENV
from pymta.tls.server import VerifyMode
from pymta.tls.session import cv_field, session_facts
from pymta.transports.smtp_security import OutboundSecurity
from tests.support import certs
from tests.support.dns import DnsServer
from tests.support.https import HttpsServer
from tests.support.recording_log import RecordingLog
from tests.support.sink import SmtpSink


def _spki_sha256(path: str) -> str:
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return hashlib.sha256(cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


@pytest.fixture()
def world(tmp_path, monkeypatch):
    ca = certs.make_ca(tmp_path)
    good = certs.make_cert(tmp_path, "mx.secure.test", ca)
    (tmp_path / "impostor").mkdir()
    impostor = certs.make_cert(tmp_path / "impostor", "mx.secure.test")   # another CA
    web = certs.make_cert(tmp_path, "mta-sts.secure.test", ca)
    zones = {"secure.test": f"""
        @             IN MX 10 mx
        @             IN MX 20 backup
        mx            IN A 127.0.0.1
        backup        IN A 127.0.0.1
        _25._tcp.mx   IN TLSA 3 1 1 {_spki_sha256(good.cert)}
        _mta-sts      IN TXT "v=STSv1; id=7"
        mta-sts       IN A 127.0.0.1
    """}
    policy = b"version: STSv1\nmode: enforce\nmx: mx.secure.test\nmax_age: 3600\n"
    with DnsServer(zones, secure=True) as dns_server, HttpsServer(web) as https:
        https.routes["/.well-known/mta-sts.txt"] = (200, "text/plain", policy)
        monkeypatch.setenv(PORT_ENV, str(https.port))
        pdns.set_server("127.0.0.1", dns_server.port)
        try:
            yield {"ca": ca, "good": good, "impostor": impostor, "spool": str(tmp_path)}
        finally:
            pdns.set_server(None)


def _security(world, log, **options):
    opts = {"hosts_try_dane": "*", "hosts_require_dane": None, "mta_sts": True,
            "mta_sts_ca_file": world["ca"].cert, "mta_sts_timeout": 5, **options}

    def host_in(option, host):
        return bool(opts[option]) and match_host(host.address, host.name, opts[option],
                                                 ExpandContext())

    return OutboundSecurity(opts.get, host_in, spool_dir=world["spool"], dnssec_ok=1, log=log)


def _reply(f) -> tuple[int, str]:
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line)
        if line[3:4] != "-":
            return int(line[:3]), "".join(lines)


def _deliver(req, port: int, ca_file: str) -> tuple[bool, str]:
    """Send one message the way the transport is to, obeying ``req``."""
    if not req.use_host:
        return False, req.message
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")
    try:
        _reply(f)
        sock.sendall(b"EHLO client.test\r\n")
        _, ehlo = _reply(f)
        if "STARTTLS" not in ehlo:
            return (False, "TLS required") if req.tls_required else (True, "clear")
        sock.sendall(b"STARTTLS\r\n")
        _reply(f)
        verify = VerifyMode.REQUIRED if req.verify == "pkix" else VerifyMode.NONE
        client = ClientTLS(ClientTLSOptions(verify_certificates=ca_file, sni=req.sni),
                           no_expansion)
        sock.settimeout(None)
        conn = client.connection(sock, req.host, verify=verify)
        try:
            conn.do_handshake()
        except Exception as exc:  # noqa: BLE001 -- a failed verification ends it
            return False, f"TLS error: {exc}"
        dane = req.check_peer(conn.get_peer_cert_chain(as_cryptography=True) or []) \
            if req.verify == "dane" else None
        if dane is not None and not dane.ok:
            conn.shutdown()
            return False, f"DANE verification failed: {dane.reason}"
        for cmd in (b"EHLO client.test\r\n", b"MAIL FROM:<a@client.test>\r\n",
                    b"RCPT TO:<u@secure.test>\r\n", b"DATA\r\n",
                    b"Subject: t\r\n\r\nhello\r\n.\r\n", b"QUIT\r\n"):
            conn.sendall(cmd)
            buf = b""
            while not buf.endswith(b"\r\n") or buf.split(b"\r\n")[-2][3:4] == b"-":
                buf += conn.recv(4096)
        facts = session_facts(conn)
        return True, cv_field(facts, dane=dane is not None and dane.ok)
    finally:
        sock.close()


def test_dane_ee_delivery_and_mta_sts_rejecting_an_unlisted_mx(world):
    log = RecordingLog()
    sec = _security(world, log)
    with SmtpSink(tls_context=certs.server_context(world["good"])) as sink:
        ok, cv = _deliver(sec.requirements(Host("mx.secure.test", "127.0.0.1", None, 10),
                                           "secure.test", 25), sink.port, world["ca"].cert)
        assert ok and cv == "CV=dane"
        assert len(sink.messages) == 1 and sink.messages[0].tls
        req = sec.requirements(Host("backup.secure.test", "127.0.0.1", None, 20),
                               "secure.test", 25)
        ok, why = _deliver(req, sink.port, world["ca"].cert)
        assert not ok and why == ("MTA-STS: backup.secure.test is not an MX allowed by the "
                                  "enforced policy of secure.test")
        assert len(sink.messages) == 1


def test_dane_mismatch_sends_nothing(world):
    sec = _security(world, RecordingLog())
    with SmtpSink(tls_context=certs.server_context(world["impostor"])) as sink:
        req = sec.requirements(Host("mx.secure.test", "127.0.0.1", None, 10), "secure.test", 25)
        ok, why = _deliver(req, sink.port, world["ca"].cert)
        assert not ok and why.startswith("DANE verification failed")
        assert sink.messages == []
        assert not any(c.upper().startswith("MAIL") for c in sink.commands)


def test_mta_sts_enforce_without_dane_verifies_pkix(world):
    sec = _security(world, RecordingLog(), hosts_try_dane=None)
    host = Host("mx.secure.test", "127.0.0.1", None, 10)
    with SmtpSink(tls_context=certs.server_context(world["good"])) as sink:
        ok, cv = _deliver(sec.requirements(host, "secure.test", 25), sink.port,
                          world["ca"].cert)
        assert ok and cv == "CV=yes"
    with SmtpSink(tls_context=certs.server_context(world["impostor"])) as sink:
        ok, why = _deliver(sec.requirements(host, "secure.test", 25), sink.port,
                           world["ca"].cert)
        assert not ok and why.startswith("TLS error")
        assert sink.messages == []
    with SmtpSink() as sink:                       # no STARTTLS offered
        ok, why = _deliver(sec.requirements(host, "secure.test", 25), sink.port,
                           world["ca"].cert)
        assert not ok and why == "TLS required" and sink.messages == []
