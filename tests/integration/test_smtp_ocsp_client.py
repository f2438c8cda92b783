"""hosts_request_ocsp / hosts_require_ocsp on the smtp transport, against a pymta daemon
that staples an OCSP response from tls_ocsp_file (or staples none)."""
from __future__ import annotations

import re

from tests.integration.test_tls_server_options import PKI, _config, _ocsp_response
from tests.support.daemon import PymtaDaemon

CLIENT = """\
primary_hostname = client.test.example
qualify_domain = client.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog

begin routers
smarthost:
  driver = manualroute
  route_list = * 127.0.0.1::{port}
  self = send
  transport = remote_smtp

begin transports
remote_smtp:
  driver = smtp
  allow_localhost
  tls_verify_certificates = {ca}
  tls_verify_cert_hostnames =
  headers_add = X-OCSP: $tls_out_ocsp
{extra}

begin retry
*  *  F,1h,1s
"""


def _deliver(tmp_path, pki: PKI, port: int, extra: str, name: str = "client") -> str:
    """Submit with -odi from a fresh client spool (``name``): no retry hints carried over."""
    d = PymtaDaemon(CLIENT.format(port=port, ca=pki.ca.cert, extra=extra), tmp_path / name)
    d.submit_and_deliver("a@client.test.example", "alice@test.example",
                         b"Subject: ocsp\n\nbody\n")
    return d.log()


def test_required_staple_present_delivers(tmp_path):
    pki = PKI(tmp_path)
    staple = _ocsp_response(pki, tmp_path / "ocsp.der")
    with PymtaDaemon(_config(f"tls_ocsp_file = {staple}"), tmp_path, args=["-odq"]) as server:
        log = _deliver(tmp_path, pki, server.port, "  hosts_require_ocsp = *")
        assert re.search(r"=> alice@test\.example .* X=TLS1\.3:\S+ CV=yes ", log), log
        server.wait_for_log(r" <= a@client\.test\.example ")


def test_required_staple_missing_fails_the_tls_session(tmp_path):
    """The handshake fails; with hosts_require_tls the delivery defers, otherwise (as
    for any TLS failure, tls_tempfail_tryclear) it goes on in clear and says so."""
    pki = PKI(tmp_path)
    with PymtaDaemon(_config(), tmp_path, args=["-odq"]) as server:
        log = _deliver(tmp_path, pki, server.port,
                       "  hosts_require_ocsp = *\n  hosts_require_tls = *")
        assert re.search(r"== alice@test\.example .* defer \(-37\)", log), log
        assert " <= a@client" not in server.log()
        log = _deliver(tmp_path, pki, server.port, "  hosts_require_ocsp = *", "client2")
        assert "TLS session: (SSL_connect): " in log and "delivering unencrypted" in log, log


def test_requested_staple_missing_still_delivers(tmp_path):
    pki = PKI(tmp_path)
    with PymtaDaemon(_config(), tmp_path, args=["-odq"]) as server:
        log = _deliver(tmp_path, pki, server.port, "")     # hosts_request_ocsp = * default
        assert "=> alice@test.example" in log, log
