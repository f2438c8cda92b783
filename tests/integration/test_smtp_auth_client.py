"""SMTP AUTH as a client (hosts_require_auth, hosts_try_auth, authenticated_sender) in
the smtp transport, against a real Exim 4.96 smarthost that requires a login over
STARTTLS with certificate verification, and against pymta's own daemon.  Also
protocol = smtps (TLS from the first byte) to both."""
from __future__ import annotations

import re
import shutil

import pytest

from tests.integration.conftest import wait_for
from tests.support import certs
from tests.support.daemon import PymtaDaemon
from tests.support.exim import EximDaemon, exim_or_skip

EXIM_SMARTHOST = """\
primary_hostname = smarthost.test
spool_directory = @SPOOL@
log_file_path = @SPOOL@/log/%slog
acl_smtp_rcpt = acl_rcpt
tls_certificate = @DIR@/good.pem
tls_privatekey = @DIR@/good.key
tls_on_connect_ports = @PORT2@
auth_advertise_hosts = ${if eq{$tls_in_cipher}{}{}{*}}

begin acl
acl_rcpt:
  accept  authenticated = *
          logwrite = auth_sender=<$authenticated_sender>
  deny    message = relay not permitted

begin routers
all:
  driver = accept
  transport = mbox

begin transports
mbox:
  driver = appendfile
  file = @DIR@/mbox
  user = Debian-exim

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{relay}}{eq{$auth3}{s3cret}}}}
  server_set_id = $auth2
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = ${if eq{$auth1}{relay}{s3cret}fail}
  server_set_id = $auth1
"""

PYMTA_CLIENT = """\
primary_hostname = pymta.test
qualify_domain = pymta.test
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
{transport}

begin retry
*  *  F,1h,10m

begin authenticators
{authenticators}
"""

PLAIN_CLIENT = """\
client_plain:
  driver = plaintext
  public_name = PLAIN
  client_send = ^relay^{password}
"""

CRAM_CLIENT = """\
client_cram:
  driver = cram_md5
  public_name = CRAM-MD5
  client_name = relay
  client_secret = {password}
"""


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    ca = certs.make_ca(d)
    certs.make_cert(d, "smarthost.test", ca, prefix="good")
    return d


@pytest.fixture
def exim(tmp_path, pki):
    exim_or_skip()
    directory = tmp_path / "exim"
    directory.mkdir()
    for name in ("good.pem", "good.key"):
        shutil.copy(pki / name, directory / name)
    e = EximDaemon(EXIM_SMARTHOST, directory, ports=2).start()
    yield e
    e.stop()


def _deliver(tmp_path, port: int, ca: str, transport: str, authenticators: str,
             sender: str = "sender@pymta.test") -> str:
    conf = PYMTA_CLIENT.format(port=port, ca=ca, transport=transport,
                               authenticators=authenticators)
    d = PymtaDaemon(conf, tmp_path / "pymta")
    d.submit_and_deliver(sender, "user@remote.example", b"Subject: via smarthost\n\nhello\n")
    return d.log()


def _delivered(log: str) -> str:
    m = re.search(r"=> user@remote\.example .*", log)
    assert m, log
    return m.group(0)


@pytest.mark.parametrize("authenticator, name", [(PLAIN_CLIENT, "client_plain"),
                                                 (CRAM_CLIENT, "client_cram")])
def test_login_to_an_exim_smarthost_over_starttls(tmp_path, pki, exim, authenticator, name):
    log = _deliver(tmp_path, exim.port, str(pki / "ca.pem"), "  hosts_require_auth = *",
                   authenticator.format(password="s3cret"))
    line = _delivered(log)
    # Exim offers CHUNKING, so the message goes by BDAT (K), as Exim's own client does.
    assert re.search(r" X=TLS1\.[23]:\S+ CV=yes A=" + name + r" K C=\"250", line), line
    assert wait_for(lambda: " <= sender@pymta.test " in exim.log()), exim.log()
    received = re.search(r"<= sender@pymta\.test .*", exim.log()).group(0)
    assert " P=esmtpsa " in received and " A=" in received and ":relay " in received


def test_wrong_password_defers_with_exims_words(tmp_path, pki, exim):
    log = _deliver(tmp_path, exim.port, str(pki / "ca.pem"), "  hosts_require_auth = *",
                   PLAIN_CLIENT.format(password="wrong") + CRAM_CLIENT.format(password="bad"))
    # each authenticator is tried in turn; a 535 is logged and the next one tried
    assert re.search(r"client_plain authenticator failed H=127\.0\.0\.1 \[127\.0\.0\.1\] "
                     r"535 Incorrect authentication data", log), log
    assert "client_cram authenticator failed H=127.0.0.1 [127.0.0.1] 535 " in log, log
    assert re.search(r"== user@remote\.example .* defer \(-42\) H=127\.0\.0\.1 "
                     r"\[127\.0\.0\.1\]: authentication required "
                     r"but authentication attempt\(s\) failed", log), log


def test_try_auth_without_auth_offered_goes_on_in_clear_session(tmp_path, pki, exim):
    """The smarthost offers AUTH only under TLS: without STARTTLS (hosts_avoid_tls)
    hosts_try_auth sends without logging in (and the smarthost refuses to relay),
    hosts_require_auth defers."""
    log = _deliver(tmp_path, exim.port, str(pki / "ca.pem"),
                   "  hosts_avoid_tls = *\n  hosts_try_auth = *",
                   PLAIN_CLIENT.format(password="s3cret"))
    assert re.search(r"\*\* user@remote\.example .* 550 relay not permitted", log), log
    (tmp_path / "pymta").rename(tmp_path / "pymta-1")
    log = _deliver(tmp_path, exim.port, str(pki / "ca.pem"),
                   "  hosts_avoid_tls = *\n  hosts_require_auth = *",
                   PLAIN_CLIENT.format(password="s3cret"))
    assert re.search(r"== user@remote\.example .* defer \(-42\) H=127\.0\.0\.1 "
                     r"\[127\.0\.0\.1\]: authentication required "
                     r"but server did not advertise AUTH support", log), log


def test_authenticated_sender_goes_on_mail(tmp_path, pki, exim):
    log = _deliver(tmp_path, exim.port, str(pki / "ca.pem"),
                   "  hosts_require_auth = *\n  authenticated_sender = sender+x=y@pymta.test",
                   PLAIN_CLIENT.format(password="s3cret"))
    _delivered(log)
    assert wait_for(lambda: " <= sender@pymta.test " in exim.log()), exim.log()
    # Exim accepted the AUTH= value of MAIL (xtext-decoded) as $authenticated_sender
    assert "auth_sender=<sender+x=y@pymta.test>" in exim.log(), exim.log()


def test_smtps_to_exims_tls_on_connect_port(tmp_path, pki, exim):
    log = _deliver(tmp_path, exim.ports[1], str(pki / "ca.pem"),
                   "  protocol = smtps\n  hosts_require_auth = *",
                   PLAIN_CLIENT.format(password="s3cret"))
    assert re.search(r" X=TLS1\.[23]:\S+ CV=yes A=client_plain ", _delivered(log)), log


PYMTA_SERVER = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = acl_rcpt
queue_only
tls_certificate = DIR/pki/good.pem
tls_privatekey = DIR/pki/good.key
tls_on_connect_ports = PORT2

begin acl
acl_rcpt:
  accept  authenticated = *
  deny    message = relay not permitted

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{relay}}{eq{$auth3}{s3cret}}}}
  server_set_id = $auth2
"""


@pytest.mark.parametrize("protocol", ["smtp", "smtps"])
def test_pymta_to_pymta_with_auth(tmp_path, pki, protocol):
    with PymtaDaemon(PYMTA_SERVER, tmp_path, ports=2) as server:
        port = server.ports[0] if protocol == "smtp" else server.ports[1]
        log = _deliver(tmp_path, port, str(pki / "ca.pem"),
                       f"  protocol = {protocol}\n  hosts_require_auth = *",
                       PLAIN_CLIENT.format(password="s3cret"))
        assert re.search(r" X=TLS1\.3:\S+ CV=yes A=client_plain ", _delivered(log)), log
        line = server.wait_for_log(r" <= sender@pymta\.test ")[0]
        assert " P=esmtpsa " in line and " A=plain:relay " in line, line
