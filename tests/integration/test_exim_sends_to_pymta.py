"""Exim 4.96 as the sending side: it delivers to pymta over STARTTLS and to pymta's
TLS-on-connect port (465-style), verifying pymta's certificate.

A real exim4 daemon (Debian's) receives a message in clear on its own port and relays
it by its smtp transport to a pymta daemon; both logs are checked.
"""
from __future__ import annotations

import os
import re
import smtplib

import pytest

from tests.support import certs
from tests.support.daemon import PymtaDaemon
from tests.support.exim import EximDaemon, exim_or_skip
from tests.support.ports import free_port
from tests.support.wait import wait_until

PYMTA = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist local_domains = test.example
acl_smtp_rcpt = acl_check_rcpt
queue_only
tls_certificate = DIR/mx.test.example.pem
tls_privatekey = DIR/mx.test.example.key
tls_on_connect_ports = PORT2

begin acl

acl_check_rcpt:
  accept  domains = +local_domains
  deny    message = relay not permitted
"""

EXIM = """\
primary_hostname = exim.test.example
spool_directory = @SPOOL@
log_file_path = @SPOOL@/log/%slog
acl_smtp_rcpt = accept_all
log_selector = +tls_peerdn

begin acl
accept_all:
  accept

begin routers
to_pymta:
  driver = manualroute
  route_list = * 127.0.0.1::{port}
  self = send
  transport = {transport}

begin transports
starttls:
  driver = smtp
  allow_localhost
  hosts_require_tls = *
  tls_verify_hosts = *
  tls_verify_certificates = {ca}
  tls_verify_cert_hostnames =

smtps:
  driver = smtp
  allow_localhost
  protocol = smtps
  hosts_require_tls = *
  tls_verify_hosts = *
  tls_verify_certificates = {ca}
  tls_verify_cert_hostnames =

begin retry
*  *  F,1h,10m
"""


@pytest.fixture
def world(tmp_path):
    exim_or_skip()
    ca = certs.make_ca(tmp_path)
    certs.make_cert(tmp_path, "mx.test.example", ca)
    ports = [free_port(), free_port()]
    with PymtaDaemon(PYMTA, tmp_path, ports=ports) as pymta:
        yield tmp_path, ca, pymta


def _relay_through_exim(tmp_path, ca, port: int, transport: str) -> EximDaemon:
    directory = tmp_path / f"exim-{transport}"
    directory.mkdir()
    shared_ca = directory / "ca.pem"
    shared_ca.write_bytes(open(ca.cert, "rb").read())
    os.chmod(shared_ca, 0o644)
    exim = EximDaemon(EXIM.format(port=port, transport=transport, ca=shared_ca), directory)
    exim.start()
    with smtplib.SMTP("127.0.0.1", exim.port, timeout=20) as s:
        s.sendmail("someone@exim.test.example", ["alice@test.example"],
                   f"Subject: via exim {transport}\r\n\r\nbody\r\n".encode())
    return exim


@pytest.mark.parametrize("transport", ["starttls", "smtps"])
def test_exim_delivers_to_pymta_with_verification(world, transport):
    tmp_path, ca, pymta = world
    port = pymta.ports[0] if transport == "starttls" else pymta.ports[1]
    exim = _relay_through_exim(tmp_path, ca, port, transport)
    try:
        line = pymta.wait_for_log(r" <= someone@exim\.test\.example ", timeout=20)[0]
        # Exim uses pymta's CHUNKING by default, so the message came by BDAT (K, after
        # the TLS fields as in Exim's own line).
        assert re.search(r" H=\(exim\.test\.example\) \[127\.0\.0\.1\] P=esmtps "
                         r"X=TLS1\.3:\S+ CV=\w+ K S=", line), line
        try:
            wait_until(lambda: " => alice@test.example" in exim.log(), 20, 0.1)
        except TimeoutError:
            pytest.fail(f"exim did not deliver:\n{exim.log()}")
        delivered = [x for x in exim.log().splitlines() if " => alice@test.example" in x]
        # Exim verified pymta's certificate and names its subject
        assert " CV=yes " in delivered[0] and 'DN="CN=mx.test.example"' in delivered[0], \
            delivered[0]
    finally:
        exim.stop()
