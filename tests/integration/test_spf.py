"""SPF over SMTP: the spf and spf_guess conditions and the $spf_* variables, with SPF
records served by the loopback DNS server.  The client is 127.0.0.1, which must be
evaluated like any other address.  The expected texts are those exim4 4.96 (libspf2)
wrote for the same records with the client 192.0.2.1 (exim4 -bh in a mount namespace
whose resolv.conf points at the test DNS server), with the address replaced."""
from __future__ import annotations

import re

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer

ZONES = {
    "pass.example": '@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"\n',
    "fail.example": '@ IN TXT "v=spf1 -all"\n',
    "soft.example": '@ IN TXT "v=spf1 ~all"\n',
    "neutral.example": '@ IN TXT "v=spf1 ?all"\n',
    "none.example": "www IN A 192.0.2.9\n",
    "perm.example": '@ IN TXT "v=spf1 foo:bar -all"\n',
    "twice.example": '@ IN TXT "v=spf1 -all"\n@ IN TXT "v=spf1 +all"\n',
    "helo.example": '@ IN TXT "v=spf1 ip4:127.0.0.1 -all"\n',
    "guess.example": "@ IN A 127.0.0.1\n",
}
IP = "127.0.0.1"
H = "mx.test.example"
# (result, $spf_header_comment) as exim4 wrote them
EXIM = {
    "pass.example": ("pass", f"{H}: domain of pass.example designates {IP} as permitted "
                             "sender"),
    "fail.example": ("fail", f"{H}: domain of fail.example does not designate {IP} as "
                             "permitted sender"),
    "soft.example": ("softfail", f"{H}: transitioning domain of soft.example does not "
                                 f"designate {IP} as permitted sender"),
    "neutral.example": ("neutral", f"{H}: {IP} is neither permitted nor denied by domain of "
                                   "neutral.example"),
    "none.example": ("none", f"{H}: domain of none.example does not provide an SPF record"),
}

CONFIG = BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt", """\
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_mail = acl_mail
acl_smtp_data = acl_data""").replace("begin acl\n", """begin acl

acl_mail:
  warn    spf = pass:fail:softfail:neutral:none:permerror:temperror
          logwrite = SPF $sender_address result=$spf_result guessed=$spf_result_guessed
          logwrite = SPF $sender_address comment=$spf_header_comment
          logwrite = SPF $sender_address received=$spf_received
          logwrite = SPF $sender_address smtp=$spf_smtp_comment
  warn    senders = *@guess.example
          spf_guess = pass
          logwrite = GUESS $sender_address result=$spf_result guessed=$spf_result_guessed
  deny    spf = fail
          message = $sender_host_address may not send for $sender_address_domain: \\
                    $spf_smtp_comment
  accept

acl_data:
  warn    add_header = :at_start:$spf_received
  warn    add_header = :at_start:${authresults{mx.test.example}}
  accept

""")


def daemon(tmp_path, dns: DnsServer) -> PymtaDaemon:
    (tmp_path / "users").write_text("alice: alice\nbob: bob\n")
    return PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": "1"},
                       env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns.port}"})


def _lines(d: PymtaDaemon, sender: str) -> dict[str, str]:
    found = {}
    for key in ("result", "comment", "received", "smtp"):
        [line] = d.wait_for_log(rf"SPF {re.escape(sender)} {key}=")
        found[key] = line.split(f"SPF {sender} {key}=", 1)[1]
    return found


def test_results_and_variables_as_exim(tmp_path):
    with DnsServer(ZONES) as dns, daemon(tmp_path, dns) as d:
        with d.client() as c:
            c.ehlo("helo.example")
            for domain in EXIM:
                code = c.cmd(f"MAIL FROM:<s@{domain}>")[0]
                assert code == (550 if domain == "fail.example" else 250), domain
                c.cmd("RSET")
        for domain, (result, comment) in EXIM.items():
            got = _lines(d, f"s@{domain}")
            assert got["result"] == f"{result} guessed=no"
            assert got["comment"] == comment
            assert got["received"] == (f"Received-SPF: {result} ({comment}) client-ip={IP}; "
                                       f"envelope-from=s@{domain}; helo=helo.example;")
            refusing = result in ("fail", "softfail", "neutral")
            assert got["smtp"] == ("Please see http://www.open-spf.org/Why : Reason: mechanism"
                                   if refusing else "")


def test_refusal_message_and_errors(tmp_path):
    with DnsServer(ZONES, servfail=["temp.example"]) as dns, daemon(tmp_path, dns) as d:
        with d.client() as c:
            c.ehlo("helo.example")
            # longer than 75 characters: broken into reply lines where Exim breaks it
            assert c.cmd("MAIL FROM:<s@fail.example>") == (
                550, f"{IP} may not send for fail.example:\nPlease see "
                     "http://www.open-spf.org/Why : Reason: mechanism")
            # a record with an unknown mechanism, two records, a DNS failure: the RFC's
            # permerror / temperror (libspf2 makes these "(invalid)")
            for domain in ("perm.example", "twice.example", "temp.example"):
                assert c.cmd(f"MAIL FROM:<s@{domain}>")[0] == 250
                c.cmd("RSET")
        for domain, result in (("perm.example", "permerror"), ("twice.example", "permerror"),
                               ("temp.example", "temperror")):
            got = _lines(d, f"s@{domain}")
            assert got["result"] == f"{result} guessed=no"
        assert "error in processing during lookup of domain of perm.example: " in \
            _lines(d, "s@perm.example")["comment"]


def test_bounce_checks_the_helo_name_and_best_guess(tmp_path):
    with DnsServer(ZONES) as dns, daemon(tmp_path, dns) as d:
        with d.client() as c:
            c.ehlo("helo.example")
            assert c.cmd("MAIL FROM:<>")[0] == 250
            c.cmd("RSET")
            assert c.cmd("MAIL FROM:<s@guess.example>")[0] == 250
        [line] = d.wait_for_log(r"SPF  received=")
        assert line.endswith(f"Received-SPF: pass ({H}: domain of helo.example designates "
                             f"{IP} as permitted sender) client-ip={IP}; "
                             "envelope-from=postmaster@helo.example; helo=helo.example;")
        # no SPF record: spf says none, spf_guess uses "a/24 mx/24 ptr ?all" (as exim4)
        assert _lines(d, "s@guess.example")["result"] == "none guessed=no"
        d.wait_for_log(r"GUESS s@guess\.example result=pass guessed=yes")


def test_received_spf_and_authresults_in_the_message(tmp_path):
    with DnsServer(ZONES) as dns, daemon(tmp_path, dns) as d:
        with d.client() as c:
            c.ehlo("helo.example")
            assert c.send_message("s@pass.example", "alice@test.example",
                                  b"Subject: spf\r\n\r\nhi\r\n")[0] == 250
        [msg] = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    head = msg.split(b"\n\n", 1)[0].decode()
    assert head.startswith(
        "Authentication-Results: mx.test.example;\n\tspf=pass smtp.mailfrom=pass.example\n"
        f"Received-SPF: pass ({H}: domain of pass.example designates {IP} as permitted "
        f"sender) client-ip={IP}; envelope-from=s@pass.example; helo=helo.example;\n")


def test_configured_guess_record_and_comment_template(tmp_path):
    """spf_guess and spf_smtp_comment_template set in the configuration are used (the
    template's SPF macros expanded: %_ a space, %{S} the sender URL-encoded, %{s} as is,
    %{I} the client)."""
    config = CONFIG.replace("begin acl\n", "spf_guess = v=spf1 -all\n"
                            "spf_smtp_comment_template = See%_https://spf.test/why?s=%{S}"
                            "&raw=%{s}&ip=%{I}\n\nbegin acl\n").replace(
        "spf_guess = pass", "spf_guess = fail")
    (tmp_path / "users").write_text("alice: alice\nbob: bob\n")
    with DnsServer(ZONES) as dns, PymtaDaemon(
            config, tmp_path, macros={"SINK_PORT": "1"},
            env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns.port}"}) as d:
        with d.client() as c:
            c.ehlo("helo.example")
            assert c.cmd("MAIL FROM:<s@fail.example>") == (
                550, f"{IP} may not send for fail.example:\nSee "
                     f"https://spf.test/why?s=s%40fail.example&raw=s@fail.example&ip={IP}\n: "
                     "Reason: mechanism")
            assert c.cmd("MAIL FROM:<s@guess.example>")[0] == 250
        # the configured guess record refuses everyone, so the guess fails this time
        d.wait_for_log(r"GUESS s@guess\.example result=fail guessed=yes")
