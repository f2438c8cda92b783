"""verify = helo (helo_verify_hosts, helo_try_verify_hosts, helo_lookup_domains),
verify = reverse_host_lookup and verify = csa in the running daemon, with the client's
names, addresses and CSA SRV records served by a loopback DNS server.  The client is
127.0.0.1, whose PTR record names client.test."""
from __future__ import annotations

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer

ZONES = {
    "127.in-addr.arpa": """
        1.0.0   IN PTR client.test.
        _client._smtp.1.0.0 IN SRV 1 2 0 client.test.
    """,
    "test": """
        client      IN A   127.0.0.1
        alias       IN A   127.0.0.1
        wrong       IN A   192.0.2.9
        elsewhere   IN A   192.0.2.5
        _client._smtp.client     IN SRV 1 2 0 client.test.
        _client._smtp.alias      IN SRV 1 2 0 elsewhere.test.
        _client._smtp.wrong      IN SRV 1 1 0 wrong.test.
        _client._smtp.strict     IN SRV 1 0 1 .
        _client._smtp.lenient    IN SRV 1 0 0 .
        _client._smtp.noaddr     IN SRV 1 2 0 nowhere.test.
    """,
}
SERVFAIL = ["_client._smtp.broken.test"]

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_mail = acl_mail
{main}
begin acl
acl_mail:
{acl}
  accept
"""


def _daemon(tmp_path, dns_server: DnsServer, acl: str, main: str = "") -> PymtaDaemon:
    return PymtaDaemon(CONFIG.format(acl=acl, main=main), tmp_path,
                       env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})


def _try(d: PymtaDaemon, helo: str, verb: str = "EHLO") -> tuple[tuple[int, str],
                                                                  tuple[int, str] | None]:
    c = d.client()
    c.banner()
    hello = c.cmd(f"{verb} {helo}")
    mail = c.cmd("MAIL FROM:<a@sender.example>") if hello[0] == 250 else None
    c.quit()
    return hello, mail


@pytest.fixture(scope="module")
def dns_server():
    with DnsServer(ZONES, servfail=SERVFAIL) as srv:
        yield srv


def test_verify_helo(tmp_path, dns_server):
    acl = "  deny !verify = helo\n       message = helo $sender_helo_name not verified"
    with _daemon(tmp_path, dns_server, acl) as d:
        # the looked-up host name, a name resolving to the client, the IP literal
        for helo in ("client.test", "alias.test", "[127.0.0.1]"):
            assert _try(d, helo)[1] == (250, "OK"), helo
        for helo in ("wrong.test", "missing.test", "[127.0.0.2]"):
            assert _try(d, helo)[1] == (550, f"helo {helo} not verified"), helo
        # Verifying looked the host name up: the logs show it.
        lines = d.wait_for_log(r"rejected MAIL <a@sender\.example>", name="reject")
        assert lines[0].split(" ", 2)[2].startswith(
            "H=client.test (wrong.test) [127.0.0.1] rejected MAIL <a@sender.example>: "
            "helo wrong.test not verified")


def test_helo_verify_hosts_rejects_and_try_verify_remembers(tmp_path, dns_server):
    main = "helo_verify_hosts = 127.0.0.1"
    with _daemon(tmp_path, dns_server, "", main) as d:
        assert _try(d, "wrong.test")[0] == (550, "EHLO argument does not match calling host")
        assert _try(d, "wrong.test", "HELO")[0] == (
            550, "HELO argument does not match calling host")
        assert _try(d, "client.test")[1] == (250, "OK")
        d.wait_for_log(r'rejected "EHLO wrong\.test" from client\.test \(wrong\.test\) '
                       r'\[127\.0\.0\.1\]',
                       name="reject")
    # helo_try_verify_hosts: checked at EHLO time (the DNS is asked before MAIL), the
    # client is not refused, and a later "verify = helo" uses the result.
    acl = "  deny !verify = helo\n       message = not verified"
    with _daemon(tmp_path / "try", dns_server, acl,
                 "helo_try_verify_hosts = 127.0.0.1") as d:
        c = d.client()
        c.banner()
        before = len(dns_server.queries)
        assert c.cmd("EHLO wrong.test")[0] == 250
        assert ("wrong.test", "A") in dns_server.queries[before:]
        asked = len(dns_server.queries)
        assert c.cmd("MAIL FROM:<a@sender.example>") == (550, "not verified")
        assert ("wrong.test", "A") not in dns_server.queries[asked:]
        c.quit()
        assert _try(d, "alias.test")[1] == (250, "OK")


def test_helo_lookup_domains(tmp_path, dns_server):
    acl = "  deny message = no"
    # By default a client that greets with our own name has its real name looked up.
    with _daemon(tmp_path, dns_server, acl) as d:
        _try(d, "mx.test.example")
        _try(d, "other.example")
        lines = d.wait_for_log(r"rejected MAIL", name="reject", count=2)
        assert "H=client.test (mx.test.example) [127.0.0.1] rejected MAIL" in lines[0]
        assert "H=(other.example) [127.0.0.1] rejected MAIL" in lines[1]
        # A receiver remembers names that are not in the list, never those that are.
        for _ in range(3):
            _try(d, "other.example")
        _try(d, "mx.test.example")
        lines = d.wait_for_log(r"rejected MAIL", name="reject", count=6)
        assert "H=(other.example) [127.0.0.1] rejected MAIL" in lines[4]
        assert "H=client.test (mx.test.example) [127.0.0.1] rejected MAIL" in lines[5]
    with _daemon(tmp_path / "none", dns_server, acl, "helo_lookup_domains =") as d:
        _try(d, "mx.test.example")
        lines = d.wait_for_log(r"rejected MAIL", name="reject")
        assert "H=(mx.test.example) [127.0.0.1] rejected MAIL" in lines[0]
    with _daemon(tmp_path / "list", dns_server, acl,
                 "helo_lookup_domains = *.example") as d:
        _try(d, "other.example")
        lines = d.wait_for_log(r"rejected MAIL", name="reject")
        assert "H=client.test (other.example) [127.0.0.1] rejected MAIL" in lines[0]


@pytest.mark.parametrize("helo,status,reply", [
    ("client.test", "ok", (250, "OK")),
    ("[127.0.0.1]", "ok", (250, "OK")),                       # reverse-DNS CSA record
    ("alias.test", "fail", (550, "client SMTP authorization failed (client address "
                                 "mismatch)")),
    ("wrong.test", "fail", (550, "client SMTP authorization failed (host name not "
                                 "authorized)")),
    ("noaddr.test", "fail", (550, "client SMTP authorization failed (no authorized "
                                  "addresses)")),
    ("host.sub.strict.test", "fail", (550, "client SMTP authorization failed (explicit "
                                           "authorization required)")),
    ("host.lenient.test", "unknown", (250, "OK")),
    ("nothing.test", "unknown", (250, "OK")),
    ("broken.test", "defer", (250, "OK")),
])
def test_verify_csa(tmp_path, dns_server, helo, status, reply):
    acl = "  warn logwrite = csa_status=[$csa_status]\n  require verify = csa\n" \
          "  warn logwrite = csa_status=[$csa_status]"
    with _daemon(tmp_path, dns_server, acl) as d:
        assert _try(d, helo)[1] == reply
        if reply[0] == 250:
            d.wait_for_log(rf"csa_status=\[{status}\]$")
        else:
            d.wait_for_log(rf"rejected MAIL <a@sender\.example>: {reply[1]}".replace(
                "(", r"\(").replace(")", r"\)"), name="reject")


def test_csa_search_limit_and_reverse_options(tmp_path, dns_server):
    acl = "  require verify = csa"
    # One parent level only: strict.test is two levels above a.sub.strict.test.
    with _daemon(tmp_path, dns_server, acl, "dns_csa_search_limit = 1") as d:
        assert _try(d, "a.sub.strict.test")[1] == (250, "OK")
        assert _try(d, "sub.strict.test")[1][0] == 550
    with _daemon(tmp_path / "norev", dns_server, "  require verify = csa/$sender_host_address\n"
                 "  warn logwrite = csa_status=[$csa_status]",
                 "dns_csa_use_reverse = false") as d:
        assert _try(d, "client.test")[1] == (250, "OK")
        d.wait_for_log(r"csa_status=\[unknown\]$")


def test_reverse_host_lookup(tmp_path, dns_server):
    acl = "  require verify = reverse_host_lookup\n  warn logwrite = name=$sender_host_name"
    with _daemon(tmp_path, dns_server, acl) as d:
        assert _try(d, "x.example")[1] == (250, "OK")
        d.wait_for_log(r"name=client\.test$")
    # No PTR: the system resolver's name (/etc/hosts: localhost) has no address in the
    # DNS.  Exim 4.96 -bh with the same zones writes the same line.
    with DnsServer({"test": ZONES["test"], "127.in-addr.arpa": "", "localhost": ""}
                   ) as no_ptr:
        with _daemon(tmp_path / "noptr", no_ptr, acl) as d:
            assert _try(d, "x.example")[1] == (550, "Administrative prohibition")
            d.wait_for_log(r"rejected MAIL <a@sender\.example>: host lookup failed for "
                           r"reverse lookup check \(127\.0\.0\.1 does not match any IP "
                           r"address for localhost\)$", name="reject")
    with DnsServer(ZONES, servfail=["1.0.0.127.in-addr.arpa"]) as failing:
        with _daemon(tmp_path / "defer", failing, acl) as d:
            assert _try(d, "x.example")[1][0] == 451
        with _daemon(tmp_path / "deferok", failing,
                     acl.replace("reverse_host_lookup", "reverse_host_lookup/defer_ok")) as d:
            assert _try(d, "x.example")[1] == (250, "OK")
