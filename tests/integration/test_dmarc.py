"""DMARC over SMTP: the dmarc_status condition in the DATA ACL with policy records
served by the loopback DNS server, the $dmarc_* variables, dmarc_history_file and
forensic reports (control = dmarc_enable_forensic)."""
from __future__ import annotations

import base64

import dkim
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer

ZONES = {
    "reject.example": '_dmarc IN TXT "v=DMARC1; p=reject; sp=quarantine; '
                      'ruf=mailto:alice@test.example"\n',
    "none.example": '_dmarc IN TXT "v=DMARC1; p=none"\n',
    "plain.example": "www IN A 192.0.2.1\n",
    "spfok.example": '_dmarc IN TXT "v=DMARC1; p=reject; aspf=s"\n'
                     '@ IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
                     'bounces IN TXT "v=spf1 ip4:127.0.0.1 -all"\n',
}


def config(tmp_path) -> str:
    (tmp_path / "tlds").write_text("// test suffixes\nexample\n")
    return BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt", f"""\
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_data
dmarc_tld_file = {tmp_path}/tlds
dmarc_history_file = {tmp_path}/dmarc.history
dmarc_forensic_sender = DMARC reports <dmarc@test.example>""").replace(
        "begin acl\n", """begin acl

acl_data:
  warn    logwrite = DM before=$dmarc_status
  warn    spf = pass:fail:softfail:neutral:none:permerror:temperror
  warn    senders = forensic@*
          control = dmarc_enable_forensic
  warn    senders = off@*
          control = dmarc_disable_verify
  deny    dmarc_status = reject
          message = Message from $dmarc_used_domain failed its DMARC policy
  warn    dmarc_status = !accept
          logwrite = DM status=$dmarc_status text=$dmarc_status_text \\
                     used=$dmarc_used_domain policy=$dmarc_domain_policy
  warn    add_header = :at_start:${authresults{mx.test.example}}
  accept

""").replace("acl_check_rcpt:\n", "acl_check_rcpt:\n  accept  senders = *@*\n"
             "          domains = +local_domains\n")


def daemon(tmp_path, dns: DnsServer) -> PymtaDaemon:
    (tmp_path / "users").write_text("alice: alice\nbob: bob\n")
    return PymtaDaemon(config(tmp_path), tmp_path, macros={"SINK_PORT": "1"},
                       env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns.port}"})


def send(d: PymtaDaemon, sender: str, from_header: str) -> tuple[int, str]:
    with d.client() as c:
        c.ehlo()
        return c.send_message(sender, "bob@test.example",
                              f"From: {from_header}\r\nSubject: x\r\n\r\nhi\r\n".encode())


def test_dmarc_status_with_policy_records(tmp_path):
    """With neither SPF nor DKIM passing nothing is aligned: the record's policy
    applies (sp= for a subdomain without its own record)."""
    with DnsServer(ZONES) as dns, daemon(tmp_path, dns) as d:
        assert send(d, "s@reject.example", "A <a@reject.example>") == (
            550, "Message from reject.example failed its DMARC policy")
        assert send(d, "s@x.example", "a@Shop.Reject.Example")[0] == 250
        [line] = d.wait_for_log(r"DM status=quarantine")
        assert line.endswith("DM status=quarantine text=Quarantine used=reject.example "
                             "policy=quarantine")
        assert send(d, "s@x.example", "a@none.example")[0] == 250
        d.wait_for_log(r"DM status=none text=None, Accept used=none\.example policy=none$")
        assert send(d, "s@x.example", "a@plain.example")[0] == 250
        d.wait_for_log(r"DM status=norecord text=No DMARC record used=plain\.example policy=$")
        assert send(d, "s@x.example", "a@x.example, b@y.example")[0] == 250
        d.wait_for_log(r"DM status=nofrom text=No From: domain found used= policy=$")
        assert send(d, "off@reject.example", "a@reject.example")[0] == 250
        d.wait_for_log(r"DM status=off text= used= policy=$")
        assert "DM before=none" in d.log()
    history = (tmp_path / "dmarc.history").read_text()
    # one block per message whose domain has a record (reject, quarantine, none)
    assert history.count("\njob ") + history.startswith("job ") == 3
    assert "\nfrom reject.example\nmfrom reject.example\nspf 6\npdomain reject.example\n" \
        "policy 16\nrua -\npct 100\nadkim 0\naspf 0\np 114\nsp 113\n" \
        "align_dkim 5\nalign_spf 5\naction 0\n" in history


def test_forensic_report_goes_to_ruf(tmp_path):
    with DnsServer(ZONES) as dns, daemon(tmp_path, dns) as d:
        assert send(d, "forensic@x.example", "a@shop.reject.example")[0] == 250
        [report] = wait_for(lambda: maildir_messages(tmp_path, "alice"))
        assert b"Subject: DMARC Forensic Report for reject.example from IP 127.0.0.1" \
            in report
        assert b"From: DMARC reports <dmarc@test.example>" in report
        assert b"DMARC Results: Quarantine" in report and b"SPF Alignment: no" in report
        assert b"From: a@shop.reject.example" in report       # the message's headers
        d.wait_for_log(r"<= dmarc@test\.example .*")
        # without the control nobody is told
        assert send(d, "s@x.example", "a@shop.reject.example")[0] == 250
        assert wait_for(lambda: d.log().count("DM status=quarantine") == 2)
        assert d.log().count("<= dmarc@test.example") == 1
    assert len(maildir_messages(tmp_path, "alice")) == 1


def test_aligned_dkim_signature_passes(tmp_path):
    """A valid DKIM signature of the From: domain (or, relaxed, of its organizational
    domain) makes the check pass; one of another domain does not."""
    key = ed25519.Ed25519PrivateKey.generate()
    seed = base64.b64encode(key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw,
                                              ser.NoEncryption()))
    public = base64.b64encode(key.public_key().public_bytes(
        ser.Encoding.Raw, ser.PublicFormat.Raw)).decode()
    zones = dict(ZONES)
    zones["reject.example"] += f'sel._domainkey IN TXT "v=DKIM1; k=ed25519; p={public}"\n'
    zones["other.example"] = f'sel._domainkey IN TXT "v=DKIM1; k=ed25519; p={public}"\n'

    def signed(from_header: str, domain: str) -> bytes:
        message = f"From: {from_header}\r\nSubject: x\r\n\r\nhi\r\n".encode()
        signature = dkim.sign(message, b"sel", domain.encode(), seed,
                              signature_algorithm=b"ed25519-sha256",
                              include_headers=[b"from", b"subject"])
        return signature + message

    with DnsServer(zones) as dns, daemon(tmp_path, dns) as d:
        for from_header, domain, code in (("a@reject.example", "reject.example", 250),
                                          ("a@news.reject.example", "reject.example", 250),
                                          ("a@reject.example", "other.example", 550)):
            with d.client() as c:
                c.ehlo()
                assert c.send_message("s@x.example", "bob@test.example",
                                      signed(from_header, domain))[0] == code, domain
        assert wait_for(lambda: len(maildir_messages(tmp_path, "bob")) == 2)
        # the two are delivered in parallel: take the first one sent by its From:
        [first] = [m for m in maildir_messages(tmp_path, "bob")
                   if b"\nFrom: a@reject.example\n" in m]
    assert first.startswith(
        b"Authentication-Results: mx.test.example;\n\tspf=temperror smtp.mailfrom=x.example;"
        b"\n\tdkim=pass header.d=reject.example "
        b"header.i=@reject.example header.s=sel header.a=ed25519-sha256;"
        b"\n\tdmarc=pass header.from=reject.example\n")
    history = (tmp_path / "dmarc.history").read_text()
    assert "dkim reject.example sel 0\n" in history and "align_dkim 4\n" in history
    assert "dkim other.example sel 0\n" in history


def test_aligned_spf_pass_passes(tmp_path):
    """An SPF pass for the From: domain passes; with aspf=s a pass for a subdomain of
    it (another MAIL FROM domain) is not aligned."""
    with DnsServer(ZONES) as dns, daemon(tmp_path, dns) as d:
        assert send(d, "s@spfok.example", "a@spfok.example")[0] == 250
        assert send(d, "s@bounces.spfok.example", "a@spfok.example")[0] == 550
        assert send(d, "s@other.example", "a@spfok.example")[0] == 550
    history = (tmp_path / "dmarc.history").read_text()
    assert "\nspf 0\n" in history and "align_spf 4\n" in history
