"""End-to-end: the dnslists ACL condition in a running daemon, with block-list zones served
by a loopback DNS server (PYMTA_DNS_SERVER).  The client is 127.0.0.1, so the lists are
looked up at 1.0.0.127.<list>."""
from __future__ import annotations

from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt

begin acl

acl_mail:
  deny    dnslists = +defer_unknown : broken.test
  accept

acl_rcpt:
  deny    local_parts = plain
          dnslists = clean.test : bl.test
  deny    local_parts = quiet
          dnslists = clean.test : bl.test=127.0.0.9 : bl.test!=127.0.0.9
          message = $sender_host_address is listed at $dnslist_domain \\
                    ($dnslist_value): $dnslist_text
  deny    local_parts = bydomain
          dnslists = dbl.test/$sender_address_domain
          message = sender domain $dnslist_matched listed at $dnslist_domain
  warn    dnslists = +include_unknown : broken.test
          log_message = include_unknown matched $dnslist_domain
  accept
"""

ZONES = {
    "bl.test": """
        1.0.0.127   IN A   127.0.0.2
        1.0.0.127   IN TXT "see http://bl.test/127.0.0.1"
    """,
    "dbl.test": """
        spammer.example IN A 127.0.1.2
    """,
    "clean.test": "",
    "broken.test": "",
}


def _daemon(tmp_path, dns_server: DnsServer) -> PymtaDaemon:
    return PymtaDaemon(CONFIG, tmp_path,
                       env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})


def test_listed_client_is_rejected_with_the_list_details(tmp_path):
    with DnsServer(ZONES) as dns_server, _daemon(tmp_path, dns_server) as d:
        c = d.client()
        c.banner()
        c.ehlo("client.test")
        assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
        # No message: Exim's default.
        assert c.cmd("RCPT TO:<plain@test.example>") == (550, "Administrative prohibition")
        code, text = c.cmd("RCPT TO:<quiet@test.example>")
        assert (code, text) == (550, "127.0.0.1 is listed at bl.test (127.0.0.2): "
                                     "see http://bl.test/127.0.0.1")
        assert c.cmd("RCPT TO:<bydomain@test.example>")[0] == 250
        c.cmd("RSET")
        assert c.cmd("MAIL FROM:<a@spammer.example>")[0] == 250
        assert c.cmd("RCPT TO:<bydomain@test.example>") == (
            550, "sender domain spammer.example listed at dbl.test")
        c.quit()
        lines = d.wait_for_log(r"rejected RCPT <quiet@test.example>", name="reject")
        assert lines[0].endswith("F=<a@sender.example> rejected RCPT <quiet@test.example>: "
                                 "127.0.0.1 is listed at bl.test (127.0.0.2): "
                                 "see http://bl.test/127.0.0.1")
        assert ("1.0.0.127.bl.test", "TXT") in dns_server.queries
        # Answers are kept for the session: each name was asked once for all RCPTs.
        for name in ("1.0.0.127.bl.test", "1.0.0.127.clean.test"):
            assert dns_server.queries.count((name, "A")) == 1, name
        # A new session asks again.
        c = d.client()
        c.banner()
        c.ehlo("client.test")
        assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
        assert c.cmd("RCPT TO:<plain@test.example>")[0] == 550
        c.quit()
        assert dns_server.queries.count(("1.0.0.127.bl.test", "A")) == 2


def test_failing_list_defers_with_defer_unknown_and_counts_with_include_unknown(tmp_path):
    with DnsServer(ZONES, servfail=["1.0.0.127.broken.test"]) as dns_server, \
            _daemon(tmp_path, dns_server) as d:
        c = d.client()
        c.banner()
        c.ehlo("client.test")
        assert c.cmd("MAIL FROM:<a@sender.example>") == (
            451, "Temporary local problem - please try later")
        c.quit()
        d.wait_for_log(r"DNS list lookup defer \(probably timeout\) for "
                       r"1\.0\.0\.127\.broken\.test: returned DEFER")
    with DnsServer(ZONES) as dns_server, _daemon(tmp_path / "ok", dns_server) as d:
        c = d.client()
        c.banner()
        c.ehlo("client.test")
        assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
        c.quit()
    with DnsServer(ZONES, servfail=["1.0.0.127.broken.test"]) as dns_server:
        # only the RCPT-time +include_unknown sees a failure here
        d = PymtaDaemon(CONFIG.replace("deny    dnslists = +defer_unknown : broken.test",
                                       "deny    dnslists = clean.test"),
                        tmp_path / "inc",
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})
        with d:
            c = d.client()
            c.banner()
            c.ehlo("client.test")
            assert c.cmd("MAIL FROM:<a@sender.example>")[0] == 250
            assert c.cmd("RCPT TO:<other@test.example>")[0] == 250
            c.quit()
            d.wait_for_log(r"Warning: include_unknown matched broken\.test")
            d.wait_for_log(r"1\.0\.0\.127\.broken\.test: assumed in list")
