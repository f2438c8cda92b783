"""pymta's smtp transport delivering to a real Exim 4.96 daemon over STARTTLS (issue 8,
part 3).

The expected behaviour and log lines were checked with exim4 as the sending side against
the same kind of server: ``X=``/``CV=``/``DN=`` after ``H=`` on the ``=>`` line; a TLS
failure defers with ``(-37)`` when clear text is not allowed and otherwise logs
"... delivering unencrypted to H=... (not in hosts_require_tls)" and delivers in clear;
hosts_require_tls without STARTTLS defers with ``(-38)`` and a host line.  Exim here is
built with GnuTLS, so only pymta's (OpenSSL) cipher names are matched in pymta's log.
"""
from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.support import certs
from tests.support.daemon import DEFAULT_EXIM_USER, PymtaDaemon
from tests.support.exim import EximDaemon, exim_or_skip

EXIM_SERVER = """\
primary_hostname = exim.test
spool_directory = @SPOOL@
log_file_path = @SPOOL@/log/%slog
log_selector = +tls_sni +tls_peerdn
acl_smtp_rcpt = acl_rcpt
tls_advertise_hosts = {advertise}
tls_certificate = @DIR@/{cert}.pem
tls_privatekey = @DIR@/{cert}.key
tls_verify_certificates = @DIR@/ca.pem
tls_try_verify_hosts = *
{extra}
begin acl
acl_rcpt:
  accept

begin routers
all:
  driver = accept
  transport = mbox

begin transports
mbox:
  driver = appendfile
  file = @DIR@/mbox
  user = Debian-exim
"""

PYMTA_CLIENT = """\
primary_hostname = pymta.test
qualify_domain = pymta.test
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
{main}

begin routers
smarthost:
  driver = manualroute
  route_list = * {host}::{port}
  self = send
  transport = remote_smtp

begin transports
remote_smtp:
  driver = smtp
  allow_localhost
  hosts_try_chunking =
  headers_add = X-TLS-Out: <$tls_out_cipher> <$tls_out_certificate_verified> \\
    <$tls_out_peerdn> <$tls_out_sni> <$tls_out_ver>
{transport}

begin retry
*  *  F,1h,10m
"""

MESSAGE = b"Subject: tls test\n\nhello over TLS\n"
X_FIELD = r"X=TLS1\.[23]:[A-Z0-9_-]+:\d+"


@pytest.fixture
def pki(tmp_path):
    exim_or_skip()
    d = tmp_path / "exim"
    d.mkdir()
    ca = certs.make_ca(d)
    certs.make_cert(d, "mx.test", ca, prefix="good")
    certs.make_cert(d, "client.test", ca, prefix="client", client=True)
    other = tmp_path / "other"
    other.mkdir()
    certs.make_cert(other, "mx.test", prefix="untrusted")     # its own CA
    for suffix in ("pem", "key"):
        os.replace(other / f"untrusted.{suffix}", d / f"untrusted.{suffix}")
    return d


@pytest.fixture
def exim(pki):
    started: list[EximDaemon] = []

    def start(advertise: str = "*", cert: str = "good", extra: str = "") -> EximDaemon:
        text = EXIM_SERVER.format(advertise=advertise, cert=cert, extra=extra)
        e = EximDaemon(text, pki).start()
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()


def deliver(tmp_path: Path, exim: EximDaemon, transport: str, main: str = "",
            host: str = "127.0.0.1") -> PymtaDaemon:
    """Submit one message to pymta with -odi; it goes to ``exim`` by the smtp transport."""
    conf = PYMTA_CLIENT.format(main=main, host=host, port=exim.port, transport=transport)
    d = PymtaDaemon(conf, tmp_path / "pymta")
    d.submit_and_deliver("sender@pymta.test", "user@remote.example", MESSAGE)
    return d


def ca(pki: Path) -> str:
    return str(pki / "ca.pem")


def test_starttls_with_verification_logs_x_cv_and_dn(tmp_path, pki, exim):
    e = exim()
    d = deliver(tmp_path, e, f"  tls_verify_certificates = {ca(pki)}\n"
                             "  tls_verify_hosts = *\n  tls_sni = sni.mx.test\n",
                main="log_selector = +tls_peerdn")
    line = re.search(r"=> user@remote\.example .*", d.log())
    assert line, d.log()
    assert re.fullmatch(r"=> user@remote\.example R=smarthost T=remote_smtp "
                        rf"H=127\.0\.0\.1 \[127\.0\.0\.1\] {X_FIELD} CV=yes "
                        r'DN="CN=mx\.test" C="250 OK id=[-\w]+"', line.group(0)), line.group(0)
    assert wait_for(lambda: "=> user <user@remote.example>" in e.log()), e.diagnostics()
    received = re.search(r"<= sender@pymta\.test .*", e.log()).group(0)
    assert " P=esmtps X=" in received and " SNI=sni.mx.test" in received
    mbox = (pki / "mbox").read_text()
    # $tls_out_* were set for the transport's expansions during the delivery
    cipher = re.search(X_FIELD, line.group(0)).group(0)[2:]
    assert f"X-TLS-Out: <{cipher}> <1> <CN=mx.test> <sni.mx.test> <{cipher.split(':')[0]}>" \
        in mbox, mbox


def test_no_x_field_without_tls_cipher_selector(tmp_path, pki, exim):
    e = exim()
    d = deliver(tmp_path, e, f"  tls_verify_certificates = {ca(pki)}\n",
                main="log_selector = -tls_cipher")
    line = re.search(r"=> user@remote\.example .*", d.log()).group(0)
    assert " X=" not in line and " CV=yes " in line, line


def test_client_certificate_is_presented(tmp_path, pki, exim):
    e = exim()
    key = pki / "client.key"
    os.chown(key, pwd.getpwnam(DEFAULT_EXIM_USER).pw_uid, -1)   # pymta delivers as it
    deliver(tmp_path, e, f"  tls_certificate = {pki / 'client.pem'}\n"
                         f"  tls_privatekey = {key}\n"
                         f"  tls_verify_certificates = {ca(pki)}\n")
    assert wait_for(lambda: "<= sender@pymta.test" in e.log()), e.diagnostics()
    received = re.search(r"<= sender@pymta\.test .*", e.log()).group(0)
    assert ' CV=yes DN="CN=client.test"' in received, received


def test_untrusted_certificate_defers_under_tls_verify_hosts(tmp_path, pki, exim):
    e = exim(cert="untrusted")
    d = deliver(tmp_path, e, f"  tls_verify_certificates = {ca(pki)}\n"
                             "  tls_verify_hosts = *\n  tls_tempfail_tryclear = false\n")
    assert re.search(r"== user@remote\.example R=smarthost T=remote_smtp defer \(-37\) "
                     r"H=127\.0\.0\.1 \[127\.0\.0\.1\]: TLS session: \(SSL_connect\): "
                     r".*certificate verify failed", d.log()), d.log()
    assert "=> user@remote.example" not in d.log()
    assert "<= sender@pymta.test" not in e.log()


def test_untrusted_certificate_falls_back_to_clear_text_when_allowed(tmp_path, pki, exim):
    e = exim(cert="untrusted")
    d = deliver(tmp_path, e, f"  tls_verify_certificates = {ca(pki)}\n"
                             "  tls_verify_hosts = *\n")
    log = d.log()
    assert re.search(r"TLS session: \(SSL_connect\): .*certificate verify failed: "
                     r"delivering unencrypted to H=127\.0\.0\.1 \[127\.0\.0\.1\] "
                     r"\(not in hosts_require_tls\)", log), log
    line = re.search(r"=> user@remote\.example .*", log).group(0)
    assert " X=" not in line and " CV=" not in line, line
    assert wait_for(lambda: " P=esmtp S=" in e.log()), e.diagnostics()


def test_untrusted_certificate_is_used_unverified_under_try_verify(tmp_path, pki, exim):
    e = exim(cert="untrusted")
    d = deliver(tmp_path, e, f"  tls_verify_certificates = {ca(pki)}\n")
    line = re.search(r"=> user@remote\.example .*", d.log())
    assert line and re.search(rf" {X_FIELD} CV=no C=", line.group(0)), d.log()
    assert "X-TLS-Out: " in (pki / "mbox").read_text()
    assert "<0> <CN=mx.test>" in (pki / "mbox").read_text()


def test_host_name_is_checked_against_the_certificate(tmp_path, pki, exim):
    # The certificate names mx.test and 127.0.0.1; the host is called "localhost".
    e = exim()
    opts = f"  tls_verify_certificates = {ca(pki)}\n  tls_verify_hosts = *\n" \
           "  tls_tempfail_tryclear = false\n"
    d = deliver(tmp_path / "checked", e, opts, host="localhost")
    assert re.search(r"defer \(-37\) H=localhost \[[\d.:]+\]: TLS session: "
                     r"\(SSL_connect\): .*certificate verify failed", d.log()), d.log()
    d = deliver(tmp_path / "unchecked", e, opts + "  tls_verify_cert_hostnames =\n",
                host="localhost")
    assert re.search(rf"=> user@remote\.example .* {X_FIELD} CV=yes C=", d.log()), d.log()


def test_hosts_require_tls_defers_when_server_has_no_starttls(tmp_path, pki, exim):
    e = exim(advertise="")
    d = deliver(tmp_path, e, "  hosts_require_tls = *\n")
    log = d.log()
    why = "a TLS session is required, but the server did not offer TLS support"
    assert f"H=127.0.0.1 [127.0.0.1]: {why}" in log, log
    assert re.search(r"== user@remote\.example R=smarthost T=remote_smtp defer \(-38\) "
                     rf"H=127\.0\.0\.1 \[127\.0\.0\.1\]: {why}", log), log
    assert "<= sender@pymta.test" not in e.log()


def test_hosts_avoid_tls_delivers_in_clear(tmp_path, pki, exim):
    e = exim()
    d = deliver(tmp_path, e, "  hosts_avoid_tls = 127.0.0.1\n")
    line = re.search(r"=> user@remote\.example .*", d.log()).group(0)
    assert " X=" not in line, line
    assert wait_for(lambda: " P=esmtp S=" in e.log()), e.diagnostics()


def test_session_is_resumed_from_the_tls_hints_database(tmp_path, pki, exim):
    """tls_resumption_hosts: the session of the first delivery is kept in the ``tls``
    hints database and offered by the next delivery process; Exim resumes it."""
    e = exim(extra="tls_resumption_hosts = *")
    transport = (f"  tls_verify_certificates = {ca(pki)}\n  tls_resumption_hosts = *\n")
    first = deliver(tmp_path, e, transport, main="log_selector = +tls_resumption")
    second = deliver(tmp_path, e, transport, main="log_selector = +tls_resumption")
    lines = re.findall(r"=> user@remote\.example .*", second.log())
    assert len(lines) == 2, second.log()
    assert re.search(rf" {X_FIELD} CV=yes ", lines[0]), lines
    assert re.search(rf" {X_FIELD}\* CV=yes ", lines[1]), lines
    assert (first.spool / "db" / "tls").exists()


def _stored_session_keys(d: PymtaDaemon) -> list[str]:
    from pymta.hints.store import open_hints
    return list(open_hints(str(d.spool), "tls").keys())


RESUMPTION_LOG = "log_selector = +tls_resumption"
EXTRACT = "  host_name_extract = ${if match{$item}{\\N^250-([\\w.]+)\\s\\N}{$1}}\n"


def test_host_name_extract_names_the_server_in_the_session_key(tmp_path, pki, exim):
    """host_name_extract: the server name taken from the EHLO reply ($item) is part of the
    stored session's key, and the next delivery to the same server resumes."""
    e = exim(extra="tls_resumption_hosts = *")
    transport = (f"  tls_verify_certificates = {ca(pki)}\n  tls_resumption_hosts = *\n"
                 + EXTRACT)
    first = deliver(tmp_path, e, transport, main=RESUMPTION_LOG)
    keys = _stored_session_keys(first)
    assert len(keys) == 1 and keys[0].endswith(":exim.test"), keys
    second = deliver(tmp_path, e, transport, main=RESUMPTION_LOG)
    lines = re.findall(r"=> user@remote\.example .*", second.log())
    assert re.search(rf" {X_FIELD}\* CV=yes ", lines[1]), lines


def test_host_name_extract_that_differs_means_no_resumption(tmp_path, pki, exim):
    """A session stored under one extracted name is not offered when the EHLO reply
    yields another (here the message id makes every extraction differ)."""
    e = exim(extra="tls_resumption_hosts = *")
    transport = (f"  tls_verify_certificates = {ca(pki)}\n  tls_resumption_hosts = *\n"
                 + EXTRACT.replace("{$1}", "{$1-$message_exim_id}"))
    deliver(tmp_path, e, transport, main=RESUMPTION_LOG)
    second = deliver(tmp_path, e, transport, main=RESUMPTION_LOG)
    lines = re.findall(r"=> user@remote\.example .*", second.log())
    assert len(lines) == 2, second.log()
    assert re.search(rf" {X_FIELD} CV=yes ", lines[1]), lines
    assert len(_stored_session_keys(second)) == 2
