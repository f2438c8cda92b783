"""The ldap, ldapdn and ldapm lookups, $ldap_dn and the ldapauth condition against a real
OpenLDAP server (Debian's slapd, started by the test: tests/support/slapd.py).

The expected results of the -be cases were recorded from exim4 4.96 (Debian's
exim4-daemon-heavy, built with LDAP) against the same directory.
"""
from __future__ import annotations

import pytest

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import run_pymta
from tests.support.ports import free_port
from tests.support.slapd import MANAGER, SUFFIX, private_slapd
from tests.support.smtp import SmtpTestClient

B = SUFFIX


@pytest.fixture(scope="module")
def slapd():
    with private_slapd() as server:
        yield server


def be(tmp_path, main: str, *expressions: str):
    conf = tmp_path / "ldap.conf"
    conf.write_text(main + "\n")
    return run_pymta(["-be", *expressions], conf)


def servers(*ports: int) -> str:
    return "ldap_default_servers = " + " : ".join(f"127.0.0.1::{p}" for p in ports)


# (expression, what exim4 4.96 printed)
EXIM_RECORDED = [
    (f"${{lookup ldap{{ldap:///{B}?mail?sub?(uid=alice)}}}}",
     "alice@test.example,alice,,wonder@test.example"),
    (f"${{lookup ldap{{ldap:///{B}?mail,cn,description?sub?(uid=alice)}}}}",
     'cn="Alice Liddell" mail="alice@test.example,alice,,wonder@test.example" '
     'description="says \\"hello\\" \\\\ bye"'),
    (f"${{lookup ldap{{ldap:///{B}??sub?(uid=bob)}}}}",
     'objectClass="inetOrgPerson" uid="bob" cn="Bob Builder" sn="Builder" '
     'mail="bob@test.example" departmentNumber="sales"'),
    (f"${{lookup ldapm{{ldap:///{B}?mail?sub?(departmentNumber=sales)}}}}",
     "alice@test.example,alice,,wonder@test.example\nbob@test.example"),
    (f"${{lookup ldapm{{ldap:///{B}?cn,mail?sub?(departmentNumber=sales)}}}}",
     'cn="Alice Liddell" mail="alice@test.example,alice,,wonder@test.example"\n'
     'cn="Bob Builder" mail="bob@test.example"'),
    (f"${{lookup ldapdn{{ldap:///{B}?mail?sub?(uid=nomail)}}}}",
     f"uid=nomail,ou=people,{B}"),
    # an entry without the attribute asked for is as no entry
    (f"${{lookup ldap{{ldap:///{B}?mail?sub?(uid=nomail)}}{{$value}}{{FAIL}}}}", "FAIL"),
    (f"${{lookup ldapm{{ldap:///{B}?mail?sub?(uid=nobody)}}{{$value}}{{FAIL}}}}", "FAIL"),
    # the scope defaults to base
    (f"${{lookup ldap{{ldap:///uid=bob,ou=people,{B}?cn}}}}", "Bob Builder"),
    (f"${{lookup ldap{{ldap:///ou=people,{B}?cn?one?(uid=bob)}}}}", "Bob Builder"),
    # userPassword is readable only after a bind as the manager
    (f"${{lookup ldap{{ldap:///{B}?userPassword?sub?(uid=bob)}}{{$value}}{{FAIL}}}}",
     "FAIL"),
    (f'${{lookup ldap{{user="{MANAGER}" pass=secret ldap:///{B}?userPassword?sub?'
     "(uid=bob)}}", "canwefixit"),
    (f"${{lookup ldapdn{{ldap:///{B}?cn?sub?(uid=bob)}}{{$value dn=$ldap_dn}}}}",
     f"uid=bob,ou=people,{B} dn=uid=bob,ou=people,{B}"),
    (f"${{lookup ldap{{ldap:///{B}?cn?sub?(uid=bob)}}{{$value dn=$ldap_dn}}}}",
     f"Bob Builder dn=uid=bob,ou=people,{B}"),
    # quoting: a filter value, and a DN with parentheses
    (f"${{lookup ldap{{ldap:///{B}?cn?sub?(uid=${{quote_ldap:carol (admin)}})}}}}",
     "Carol*Star"),
    (f"${{lookup ldap{{ldap:///${{quote_ldap_dn:uid=carol (admin)}},ou=people,{B}?cn?base}}}}",
     "Carol*Star"),
    (f"${{lookup ldap{{ldap:///{B}?cn?sub?(cn=${{quote_ldap:Carol*Star}})}}}}", "Carol*Star"),
    # a size limit truncates the result instead of failing
    (f"${{lookup ldap{{size=1 ldap:///{B}?cn?sub?(departmentNumber=sales)}}}}",
     "Alice Liddell"),
    (f"${{lookup ldap{{nettime=2 time=3 dereference=never referrals=nofollow "
     f"ldap:///{B}?cn?sub?(uid=bob)}}}}", "Bob Builder"),
    (f'${{if ldapauth{{user="uid=bob,ou=people,{B}" pass=canwefixit ldap:///{B}}}'
     "{yes}{no}}", "yes"),
    (f'${{if ldapauth{{user="uid=bob,ou=people,{B}" pass=wrong ldap:///{B}}}{{yes}}{{no}}}}',
     "no"),
    (f'${{if ldapauth{{user="uid=bob,ou=people,{B}" pass= ldap:///{B}}}{{yes}}{{no}}}}', "no"),
    (f"${{if ldapauth{{user=uid=${{quote_ldap_dn:bob}},ou=people,{B} pass=canwefixit "
     f"ldap:///{B}}}{{yes}}{{no}}}}", "yes"),
]


def test_results_are_formatted_as_exim_formats_them(slapd, tmp_path):
    out = be(tmp_path, servers(slapd.port), *(e for e, _ in EXIM_RECORDED))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:-1] == "\n".join(w for _, w in EXIM_RECORDED).split("\n")


EXIM_ERRORS = [
    (f"${{lookup ldap{{ldap:///{B}?mail?sub?(departmentNumber=sales)}}}}",
     f'Failed: lookup of "ldap:///{B}?mail?sub?(departmentNumber=sales)" gave DEFER: LDAP '
     "search: more than one entry (2) was returned (filter not specific enough?)"),
    (f"${{lookup ldapdn{{ldap:///{B}?mail?sub?(departmentNumber=sales)}}}}",
     f'Failed: lookup of "ldap:///{B}?mail?sub?(departmentNumber=sales)" gave DEFER: LDAP '
     "search: more than one entry (2) was returned (filter not specific enough?)"),
    (f"${{lookup ldap{{ldap:///{B}?cn?sub?(uid=bob}}}}",
     f'Failed: lookup of "ldap:///{B}?cn?sub?(uid=bob" gave DEFER: ldap_search failed: '
     "-7, Bad search filter"),
    (f"${{lookup ldap{{http:///{B}?cn?sub?(uid=bob)}}}}",
     f'Failed: lookup of "http:///{B}?cn?sub?(uid=bob)" gave DEFER: malformed parameter '
     "setting precedes LDAP URL"),
    (f"${{lookup ldap{{bogus=2 ldap:///{B}?cn?sub?(uid=bob)}}}}",
     f'Failed: lookup of "bogus=2 ldap:///{B}?cn?sub?(uid=bob)" gave DEFER: unknown '
     'parameter "bogus=" precedes LDAP URL'),
]


@pytest.mark.parametrize("expression,message", EXIM_ERRORS)
def test_errors_defer_with_exims_messages(slapd, tmp_path, expression, message):
    out = be(tmp_path, servers(slapd.port), expression)
    assert out.stdout.strip() == message


def test_bad_credentials_and_unreachable_servers_defer(slapd, tmp_path):
    dead = free_port()
    out = be(tmp_path, servers(slapd.port),
             f'${{lookup ldap{{user="{MANAGER}" pass=wrong ldap:///{B}?cn?sub?(uid=bob)}}}}')
    assert out.stdout.strip().endswith(
        f"gave DEFER: failed to bind the LDAP connection to server 127.0.0.1:{slapd.port} "
        "- LDAP error 49: Invalid credentials")
    out = be(tmp_path, "", f"${{lookup ldap{{ldap://127.0.0.1:{dead}/{B}?cn?sub?(uid=bob)}}}}")
    assert out.stdout.strip().endswith(
        f"gave DEFER: failed to bind the LDAP connection to server 127.0.0.1:{dead} - "
        "ldap_bind() returned -1")
    out = be(tmp_path, "", f'${{if ldapauth{{user="uid=bob,ou=people,{B}" pass=x '
             f"ldap://127.0.0.1:{dead}/{B}}}{{yes}}{{no}}}}")
    assert out.stdout.startswith("Failed: ") and "ldap_bind() returned -1" in out.stdout


def test_server_lists_fail_over_and_one_connection_serves_many_lookups(slapd, tmp_path):
    dead = free_port()
    before = slapd.connections()
    query = f"${{lookup ldap{{ldap:///{B}?cn?sub?(uid=bob)}}}}"
    # the dead server first: the lookup moves on to the live one
    out = be(tmp_path, servers(dead, slapd.port), query, query, query.replace("bob", "alice"))
    assert out.stdout.split("\n")[:3] == ["Bob Builder", "Bob Builder", "Alice Liddell"]
    # three lookups in one process, one connection
    assert wait_for(lambda: slapd.connections() - before == 1 or None, timeout=5)
    # SERVERS= in the query replaces ldap_default_servers
    out = be(tmp_path, servers(dead),
             f"${{lookup ldap{{SERVERS=127.0.0.1::{dead}:127.0.0.1::{slapd.port} "
             f"ldap:///{B}?cn?sub?(uid=bob)}}}}")
    assert out.stdout.strip() == "Bob Builder"
    # a host in the URL is the only server tried
    out = be(tmp_path, servers(slapd.port),
             f"${{lookup ldap{{ldap://127.0.0.1:{dead}/{B}?cn?sub?(uid=bob)}}}}")
    assert "gave DEFER" in out.stdout
    # ldapi: the server's Unix socket
    out = be(tmp_path, "", f"${{lookup ldap{{ldapi://{slapd.ldapi_host}/{B}?cn?sub?(uid=bob)}}}}")
    assert out.stdout.strip() == "Bob Builder"


def test_tls_ldaps_and_starttls(slapd, tmp_path):
    ldaps = f"${{lookup ldap{{ldaps://127.0.0.1:{slapd.tls_port}/{B}?cn?sub?(uid=bob)}}}}"
    plain = f"${{lookup ldap{{ldap:///{B}?cn?sub?(uid=bob)}}}}"
    # the server's certificate is verified by default: our test CA is not trusted
    out = be(tmp_path, "", ldaps)
    assert "gave DEFER: failed to bind the LDAP connection to server" in out.stdout
    ca = f"ldap_ca_cert_file = {slapd.ca_file}\nldap_require_cert = demand"
    out = be(tmp_path, ca, ldaps)
    assert out.stdout.strip() == "Bob Builder"
    out = be(tmp_path, "ldap_require_cert = never", ldaps)
    assert out.stdout.strip() == "Bob Builder"
    # StartTLS on ldap:// connections
    out = be(tmp_path, f"{servers(slapd.port)}\nldap_start_tls = true\n{ca}", plain)
    assert out.stdout.strip() == "Bob Builder"
    out = be(tmp_path, f"{servers(slapd.port)}\nldap_start_tls = true", plain)
    assert out.stdout.strip().endswith(
        f"failed to initiate TLS processing on an LDAP session to server "
        f"127.0.0.1:{slapd.port} - ldap_start_tls_s() returned -11: Connect error")


def test_ldap_version_2_is_refused(tmp_path):
    out = be(tmp_path, "ldap_version = 2", "x")
    assert out.returncode != 0
    assert 'main option "ldap_version" is not supported' in out.stderr
    assert be(tmp_path, "ldap_version = 3", "x").stdout.strip() == "x"


LDAP_ROUTING = BASE_CONFIG.replace("""local_users:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;DIR/users
  transport = local_maildir
""", """ldap_aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup ldap{ldap:///ou=people,dc=test,dc=example?uid?sub?\\
          (mail=${quote_ldap:$local_part@$domain})}{$value@$domain}}

ldap_users:
  driver = accept
  domains = +local_domains
  # what a lookup returns is not tainted: the mailbox is named by the directory
  address_data = ${lookup ldap{ldap:///ou=people,dc=test,dc=example?uid?sub?\\
          (uid=${quote_ldap:$local_part})}{$value}fail}
  transport = ldap_maildir
""").replace("begin transports\n", """begin transports

ldap_maildir:
  driver = appendfile
  directory = DIR/maildir/$address_data
  maildir_format
  create_directory
""").replace("begin acl", """ldap_default_servers = LDAP_SERVERS

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if ldapauth{user="uid=${quote_ldap_dn:$auth2},ou=people,\\
                       dc=test,dc=example" pass=${quote:$auth3} ldap:///}}
  server_set_id = $auth2

begin acl""")


def test_a_virtual_domain_routed_by_ldap(pymta_daemon, slapd, tmp_path):
    """Users and aliases kept in LDAP: RCPT verification, delivery, AUTH by bind; a
    directory that cannot be reached defers (451) instead of refusing."""
    d = pymta_daemon(config=LDAP_ROUTING, macros={"LDAP_SERVERS": f"127.0.0.1::{slapd.port}"})
    with SmtpTestClient(d.port) as c:
        c.ehlo()
        # a comma needs quotes in an SMTP address (Exim refuses <alice,wonder@...>)
        code, text = c.send_message("sender@remote.example",
                                    ["bob@test.example", '"alice,wonder"@test.example'],
                                    b"Subject: ldap\r\n\r\nhello\r\n")
        assert code == 250, text
        c.cmd("MAIL FROM:<sender@remote.example>")
        # ${quote_ldap:} keeps "*" a literal: no wildcard match on "b*"
        assert c.cmd("RCPT TO:<b*@test.example>")[0] == 550
        assert c.cmd("RCPT TO:<nobody@test.example>")[0] == 550
        c.cmd("RSET")
        assert c.auth_plain("bob", "wrong")[0] == 535
        assert c.auth_plain("bob", "canwefixit")[0] == 235
    assert wait_for(lambda: maildir_messages(tmp_path, "bob"))
    assert wait_for(lambda: maildir_messages(tmp_path, "alice"))
    # the directory down: a temporary error, not an unknown user
    dead = pymta_daemon(config=LDAP_ROUTING,
                        macros={"LDAP_SERVERS": f"127.0.0.1::{free_port()}"})
    with SmtpTestClient(dead.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<sender@remote.example>")
        code, text = c.cmd("RCPT TO:<bob@test.example>")
        assert code == 451, text
