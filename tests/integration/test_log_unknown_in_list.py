"""log_selector +unknown_in_list in the running daemon: a host list in the MAIL ACL
names a host the loopback DNS server does not know, so the list match is forced to fail
(the client's address later in the list is not reached) and, with the selector, the main
log has Exim 4.96's line for it (wording checked with exim4 -bh,
tests/data/logsel/unknown_in_list.log)."""
from __future__ import annotations

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer

ZONES = {"test": """
    client  IN A 127.0.0.1
"""}

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
log_selector = SELECTOR
acl_smtp_mail = acl_mail
begin acl
acl_mail:
  deny hosts = LIST
       message = listed
  accept
"""

LINE = "list matching forced to fail: failed to find IP address for missing.test"


@pytest.fixture(scope="module")
def dns_server():
    with DnsServer(ZONES) as srv:
        yield srv


def _mail(tmp_path, dns_server: DnsServer, selector: str,
          hosts: str) -> tuple[PymtaDaemon, int]:
    config = CONFIG.replace("SELECTOR", selector).replace("LIST", hosts)
    d = PymtaDaemon(config, tmp_path, env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})
    d.start()
    c = d.client()
    c.ehlo("client.example")
    code = c.cmd("MAIL FROM:<a@sender.example>")[0]
    c.quit()
    return d, code


@pytest.mark.parametrize("selector, logged", [("+unknown_in_list", True), ("", False),
                                              ("+all -unknown_in_list", False)])
def test_unknown_host_forces_fail(tmp_path, dns_server, selector, logged):
    d, code = _mail(tmp_path, dns_server, selector, "missing.test : 127.0.0.1")
    try:
        assert code == 250          # the list did not match: 127.0.0.1 was not reached
        if logged:
            lines = d.wait_for_log("list matching forced to fail")
            assert lines[0].split(" ", 2)[2] == LINE, d.log()
        else:
            # the line would be written before the MAIL reply was sent
            assert "list matching forced" not in d.log(), d.log()
    finally:
        d.stop()


def test_known_host_matches(tmp_path, dns_server):
    """A list with a name the DNS knows for the client is matched: MAIL is refused
    and nothing is logged about unknown hosts."""
    d, code = _mail(tmp_path, dns_server, "+unknown_in_list", "client.test : 192.0.2.1")
    try:
        assert code == 550
        d.wait_for_log("rejected MAIL", name="reject")
        assert "list matching forced" not in d.log(), d.log()
    finally:
        d.stop()
