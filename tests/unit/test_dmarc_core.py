"""DMARC without the network: records, organizational domains, alignment, policy
choice and the history file lines (the TXT answers come from a dict)."""
import pytest

from pymta import dns as pdns
from pymta.dmarc.evaluate import DkimOutcome, DnsTempError, SpfOutcome, evaluate, txt_records
from pymta.dmarc.history import history_entry
from pymta.dmarc.record import BadRecord, parse_record
from pymta.dmarc.suffixes import SuffixList
from tests.support.dns import DnsServer

PSL = SuffixList("// comment\ncom\nuk\nco.uk\n*.ck\n!www.ck\n")


def test_organizational_domains():
    assert PSL.organizational_domain("mail.example.com") == "example.com"
    assert PSL.organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert PSL.organizational_domain("co.uk") is None
    assert PSL.organizational_domain("x.foo.ck") == "x.foo.ck"     # *.ck: foo.ck a suffix
    assert PSL.organizational_domain("a.www.ck") == "www.ck"       # the exception
    assert PSL.organizational_domain("host.example.test") == "example.test"  # unlisted TLD


def test_records():
    r = parse_record("v=DMARC1; p=quarantine; sp=reject; adkim=s; pct=30; "
                     "rua=mailto:a@x.example,mailto:b@x.example")
    assert (r.p, r.sp, r.adkim, r.aspf, r.pct) == ("quarantine", "reject", "s", "r", 30)
    assert r.rua == ("mailto:a@x.example", "mailto:b@x.example")
    # no valid p= but a report address: as if p=none (RFC 7489 6.6.3)
    assert parse_record("v=DMARC1; p=bogus; rua=mailto:a@x.example").p == "none"
    for bad in ("v=DMARC2; p=none", "p=none; v=DMARC1", "v=DMARC1; p=bogus",
                "v=DMARC1; p=none; pct=101", "v=DMARC1; p=none; adkim=x"):
        with pytest.raises(BadRecord):
            parse_record(bad)


ZONE = {
    "_dmarc.example.com": ["v=DMARC1; p=reject; sp=quarantine; aspf=s"],
    "_dmarc.relaxed.com": ["v=DMARC1; p=quarantine; pct=50"],
    "_dmarc.two.com": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
    "_dmarc.other.com": ["some other text"],
}


def lookup(name):
    if name == "_dmarc.broken.com":
        raise DnsTempError("SERVFAIL")
    return ZONE.get(name, [])


def check(from_domain, spf=None, dkim=(), sample=lambda: 1):
    return evaluate(from_domain, spf, list(dkim), lookup, PSL, sample)


def test_alignment_and_policies():
    good_dkim = DkimOutcome("example.com", "s1", "pass")
    assert check("example.com", dkim=[good_dkim]).status == "accept"
    # relaxed DKIM alignment: a parent signature covers a subdomain From
    r = check("news.example.com", dkim=[good_dkim])
    assert (r.status, r.used_domain, r.domain_policy) == ("accept", "example.com",
                                                          "quarantine")
    # strict SPF alignment (aspf=s): the MAIL FROM domain must be the From domain
    assert check("example.com", SpfOutcome("pass", "example.com")).status == "accept"
    r = check("example.com", SpfOutcome("pass", "bounce.example.com"))
    assert (r.status, r.pass_fail, r.status_text) == ("reject", "fail", "Reject")
    # a subdomain without its own record gets sp=
    assert check("shop.example.com", SpfOutcome("fail", "x.org")).status == "quarantine"
    # failed or unaligned signatures do not count
    assert check("example.com", dkim=[DkimOutcome("example.com", "s", "fail"),
                                      DkimOutcome("evil.org", "s", "pass")]).status == "reject"


def test_pct_sampling_and_special_outcomes():
    assert check("relaxed.com", sample=lambda: 50).status == "quarantine"
    assert check("relaxed.com", sample=lambda: 51).status == "none"    # not sampled
    for domain, status in (("two.com", "norecord"), ("other.com", "norecord"),
                           ("nothing.com", "norecord"), ("broken.com", "temperror"),
                           ("", "nofrom")):
        assert check(domain).status == status, domain
    assert check("nothing.com").status_text == "No DMARC record"


def test_history_entry_lines():
    r = check("example.com", SpfOutcome("softfail", "example.com"),
              [DkimOutcome("example.com", "s1", "fail")])
    text = history_entry(r, "1abcde-000001-AB", "mx.test", 1700000000, "192.0.2.1",
                         "example.com")
    assert text.splitlines() == [
        "job 1abcde-000001-AB", "reporter mx.test", "received 1700000000",
        "ipaddr 192.0.2.1", "from example.com", "mfrom example.com", "spf 2",
        "dkim example.com s1 7", "pdomain example.com", "policy 16", "rua -", "pct 100",
        "adkim 0", f"aspf {ord('s')}", f"p {ord('r')}", f"sp {ord('q')}",
        "align_dkim 5", "align_spf 5", "action 0"]


def test_policy_records_from_a_real_dns_server():
    zones = {"example.test": '_dmarc IN TXT "v=DMARC1; p=rej" "ect"\n'
                             'www IN A 192.0.2.1\n'}
    with DnsServer(zones, servfail=["_dmarc.broken.example.test"]) as srv:
        pdns.set_server("127.0.0.1", srv.port)
        try:
            assert txt_records("_dmarc.example.test") == ["v=DMARC1; p=reject"]
            assert txt_records("_dmarc.www.example.test") == []          # NXDOMAIN
            assert txt_records("www.example.test") == []                 # no TXT
            with pytest.raises(DnsTempError):
                txt_records("_dmarc.broken.example.test")
            r = evaluate("www.example.test", None, [], txt_records,
                         SuffixList("test\n"))
            assert (r.status, r.used_domain) == ("reject", "example.test")
        finally:
            pdns.set_server(None)
