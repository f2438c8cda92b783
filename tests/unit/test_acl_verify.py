"""verify = header_syntax / not_blind / header_names_ascii / header_sender /
reverse_host_lookup, and the unsupported verify options that must fail loudly."""
from __future__ import annotations

import textwrap
from types import SimpleNamespace

import pytest

from pymta import dns as pdns
from pymta.acl import acl_smtp_reply, run_acl
from pymta.acl.addrlist import parse_address_list
from pymta.acl.verify import check_header_names_ascii, check_header_syntax, check_not_blind
from pymta.config import load_config
from pymta.expand.context import ExpandContext
from pymta.hostname import forget_temporary_errors
from tests.support.dns import DnsServer
from tests.support.recording_log import RecordingLog

BASE = """\
primary_hostname = test.example
{main}
begin acl
{acls}
begin routers
r:
  driver = accept
  domains = ! nowhere.invalid
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
"""


def config(tmp_path, acls: str, main: str = ""):
    path = tmp_path / "configure"
    path.write_text(BASE.format(acls=textwrap.dedent(acls), main=main))
    return load_config(str(path))


def ctx_for(cfg, headers, rcpts=("u@test.example",), ip="192.0.2.1", **variables):
    v = {"sender_host_address": ip, "sender_host_name": "", "sender_address": "a@b.example",
         "local_part": "", "domain": "", "authenticated_id": ""}
    v.update(variables)
    ctx = ExpandContext(config=cfg, variables=v,
                        headers=[h + "\n" for h in headers])
    return ctx, SimpleNamespace(log=RecordingLog(), log_prefix="H=[192.0.2.1]", sleep=None,
                                accepted_rcpts=list(rcpts))


def run(cfg, headers, where="data", acl="check", **kw):
    ctx, sess = ctx_for(cfg, headers, **kw)
    return run_acl(cfg, acl, where, ctx, sess), ctx, sess


# ---------------------------------------------------------------- address lists
@pytest.mark.parametrize("value", [
    "a@b.example", "A <a@b.example>", '"Q, x" <a@b.example>, c@d.example',
    "a@b.example (comment)", "undisclosed-recipients:;", "grp: a@b.example, c@d.example;",
    '"quoted local"@b.example', "a@[192.0.2.1]", "", " , a@b.example ,",
])
def test_address_list_valid(value):
    assert all(pa.error is None for pa in parse_address_list(value))


@pytest.mark.parametrize("value,error", [
    ("bad address here <", "missing or malformed local part"),
    ("@", "domain missing or malformed"),
    ("a@", "domain missing or malformed"),
    ("<a@b.example", "'>' missing at end of address"),
    ("a@b.example junk", "malformed address: junk\\n may not follow a@b.example "),
])
def test_address_list_errors(value, error):
    assert [pa.error for pa in parse_address_list(value)] == [error]


def test_unqualified_flagged():
    [pa] = parse_address_list("bare")
    assert pa.error is None and not pa.qualified and pa.address == "bare"


# ---------------------------------------------------------------- pure checks
def test_header_syntax_message_names_header():
    err = check_header_syntax(["Subject: x <\n", "From: bad address here <\n"],
                              lambda kind: False)
    assert err == ('missing or malformed local part: failing address in "From:" header '
                   'is: bad address here <')


def test_header_syntax_unqualified_depends_on_kind():
    hdrs = ["From: a@b.example\n", "To: u@test.example, bare\n"]
    assert check_header_syntax(hdrs, lambda kind: kind == "recipient") is None
    assert check_header_syntax(hdrs, lambda kind: kind == "sender").startswith(
        "unqualified address not permitted: failing address in \"To:\" header is: bare")


def test_header_syntax_checks_resent_and_bcc():
    assert check_header_syntax(["Resent-Cc: @\n"], lambda k: True) is not None
    assert check_header_syntax(["Bcc: x@\n"], lambda k: True) is not None
    assert check_header_syntax(["X-Other: @\n"], lambda k: True) is None


def test_header_names_ascii():
    assert check_header_names_ascii(["From: a@b\n", "X-Ok: 1\n"]) is None
    assert check_header_names_ascii(["X-T\u00e9st: 1\n"]) == \
        'Invalid character in header "X-T\u00e9st" found'


def test_not_blind_case_rules():
    hdrs = ['To: "U" <U@TEST.example>\n']
    assert check_not_blind(hdrs, ["U@test.example"]) is None        # domain caseless
    assert check_not_blind(hdrs, ["u@test.example"]) == "bcc recipient detected"
    assert check_not_blind(hdrs, ["u@test.example"], case_insensitive=True) is None
    assert check_not_blind(["Cc: x@y\n", "Resent-To: u@t\n"], ["x@y", "u@t"]) is None
    assert check_not_blind(["Bcc: x@y\n"], ["x@y"]) == "bcc recipient detected"


# ---------------------------------------------------------------- through the engine
ACLS = """\
check:
  deny !verify = header_syntax
  deny !verify = not_blind
  deny !verify = header_names_ascii
  accept
"""


def test_engine_header_syntax_deny_logs_reason(tmp_path):
    cfg = config(tmp_path, ACLS)
    res, ctx, _ = run(cfg, ["From: bad address here <", "To: u@test.example"])
    assert res.verdict == "deny"
    assert res.log_message.startswith("missing or malformed local part: failing address")
    assert acl_smtp_reply(res, "data") == (550, "Administrative prohibition")
    assert ctx.variables["acl_verify_message"] == res.log_message


def test_engine_not_blind_and_pass(tmp_path):
    cfg = config(tmp_path, ACLS)
    res, _, _ = run(cfg, ["From: a@b.example", "To: other@test.example"])
    assert (res.verdict, res.log_message) == ("deny", "bcc recipient detected")
    res, _, _ = run(cfg, ["From: a@b.example", "To: u@test.example"])
    assert res.verdict == "accept"


def test_engine_unqualified_allowed_by_host_option(tmp_path):
    cfg = config(tmp_path, ACLS, main="recipient_unqualified_hosts = 192.0.2.0/24")
    hdrs = ["From: a@b.example", "To: u@test.example, bare"]
    assert run(cfg, hdrs)[0].verdict == "accept"
    assert run(cfg, hdrs, ip="198.51.100.1")[0].verdict == "deny"
    assert run(cfg, hdrs, ip="")[0].verdict == "accept"       # local message


@pytest.mark.parametrize("cond", ["header_syntax", "not_blind", "header_sender",
                                  "header_names_ascii"])
def test_header_verify_outside_data_acl_is_an_error(tmp_path, cond):
    cfg = config(tmp_path, f"check:\n  deny !verify = {cond}\n  accept\n")
    res, _, _ = run(cfg, [], where="rcpt")
    assert res.verdict == "defer" and res.error
    assert f"cannot verify {cond} in ACL for RCPT" in res.log_message
    assert acl_smtp_reply(res, "rcpt")[0] == 451


def test_header_sender(tmp_path):
    cfg = config(tmp_path, "check:\n  deny !verify = header_sender\n  accept\n")
    res, _, _ = run(cfg, ["From: a@nowhere.invalid", "To: u@test.example"])
    assert (res.verdict, res.log_message) == ("deny",
                                             "there is no valid sender in any header line")
    assert run(cfg, ["To: u@test.example"])[0].verdict == "deny"
    ok = run(cfg, ["From: a@nowhere.invalid", "Reply-To: x@ok.example"])[0]
    assert ok.verdict == "accept"


def test_header_sender_defer(tmp_path, monkeypatch):
    import pymta.routing as routing
    monkeypatch.setattr(routing, "route_address", lambda *a, **k: SimpleNamespace(
        status="defer", message="dns timeout"))
    cfg = config(tmp_path, "check:\n  deny !verify = header_sender\n  accept\n")
    assert run(cfg, ["From: a@b.example"])[0].verdict == "defer"
    cfg = config(tmp_path, "check:\n  deny !verify = header_sender/defer_ok\n  accept\n")
    assert run(cfg, ["From: a@b.example"])[0].verdict == "accept"


def test_verify_arc_outside_data_fails_loudly(tmp_path):
    # verify = arc needs the message: anywhere but the DATA ACL it is an ACL error,
    # so "!verify" in a deny does not let the message through.
    cfg = config(tmp_path, "check:\n  deny !verify = arc\n  accept\n")
    res, _, _ = run(cfg, [], where="rcpt")
    assert res.verdict == "defer" and res.error
    assert "cannot verify arc in ACL for RCPT" in res.log_message
    assert acl_smtp_reply(res, "rcpt") == (451, "Temporary local problem - please try later")
    cfg = config(tmp_path, "check:\n  accept verify = arc\n  deny\n")
    assert run(cfg, [], where="rcpt")[0].verdict == "defer"


# ---------------------------------------------------------------- reverse_host_lookup
ZONES = {
    "test": """
        good      IN A 192.0.2.10
        liar      IN A 192.0.2.99
    """,
    "2.0.192.in-addr.arpa": """
        10 IN PTR good.test.
        11 IN PTR liar.test.
    """,
}


@pytest.fixture
def dns_server():
    forget_temporary_errors()
    with DnsServer(ZONES, servfail=("13.2.0.192.in-addr.arpa",)) as server:
        pdns.set_server("127.0.0.1", server.port, timeout=1.0)
        try:
            yield server
        finally:
            pdns.set_server(None)
            forget_temporary_errors()


RHL = "check:\n  deny !verify = reverse_host_lookup{opt}\n  accept\n"


def test_reverse_host_lookup_confirmed(tmp_path, dns_server):
    cfg = config(tmp_path, RHL.format(opt=""))
    res, ctx, _ = run(cfg, [], where="rcpt", ip="192.0.2.10")
    assert res.verdict == "accept"
    assert ctx.variables["sender_host_name"] == "good.test"


def test_reverse_host_lookup_forward_mismatch_and_missing(tmp_path, dns_server):
    """Exim's reasons: the name that did not resolve back, or no name at all (only
    then the "no host name found" line).  bydns alone: the system resolver is not asked
    for 192.0.2.12."""
    cfg = config(tmp_path, RHL.format(opt=""), main="host_lookup_order = bydns")
    for ip, reason in (("192.0.2.11", "192.0.2.11 does not match any IP address for "
                        "liar.test"),
                       ("192.0.2.12", "failed to find host name from IP address")):
        res, ctx, sess = run(cfg, [], where="rcpt", ip=ip)
        assert res.verdict == "deny"
        assert res.log_message == f"host lookup failed for reverse lookup check ({reason})"
        assert (("main", f"no host name found for IP address {ip}") in sess.log.lines) == \
            (ip == "192.0.2.12")
        assert not ctx.variables["sender_host_name"]


def test_reverse_host_lookup_defer(tmp_path, dns_server):
    # the server fails for 13's PTR: a temporary DNS error (REFUSED would not be one)
    cfg = config(tmp_path, RHL.format(opt=""))
    res = run(cfg, [], where="rcpt", ip="192.0.2.13")[0]
    assert (res.verdict, res.log_message) == \
        ("defer", "host lookup deferred for reverse lookup check")
    cfg = config(tmp_path, RHL.format(opt="/defer_ok"))
    assert run(cfg, [], where="rcpt", ip="192.0.2.13")[0].verdict == "accept"


def test_reverse_host_lookup_local_message_passes(tmp_path):
    cfg = config(tmp_path, RHL.format(opt=""))
    assert run(cfg, [], where="notsmtp", ip="")[0].verdict == "accept"


# Checked against Exim 4.96 (-bh with "deny !verify = header_syntax" / not_blind).
@pytest.mark.parametrize("value,error", [
    ("<>", "missing or malformed local part"),
    ("Name <a@b.c> junk", "malformed address: junk\\n may not follow Name <a@b.c> "),
    ("a@b.c <d@e.f>", "malformed address: <d@e.f>\\n may not follow a@b.c "),
    ("<a@b.c>>", "malformed address: >\\n may not follow <a@b.c>"),
    ("@b.c", "no local part"),
    ("@", "domain missing or malformed"),
    ("a b@c.d", 'missing or malformed local part (expected word or "<")'),
    ("<a@b.c", "'>' missing at end of address"),
    ('"unclosed <a@b.c>', "unmatched doublequote in local part"),
    ("a@-b.c", "domain missing or malformed"),
    ("a@b_c.d", "malformed address: _c.d\\n may not follow a@b"),
    ("a@[1.2.3.4", "malformed domain literal"),
    ("a;b@c.d", "malformed address: ;b@c.d\\n may not follow a"),
    ("a.@b.c", None), (".a@b.c", None), ("a..b@c.d", None), ("a@b-.c", None),
    ("x <@r.s:a@b.c>", None), ("a@b.c (unclosed", None), ("\u00dcn\u00ef <a@b.c>", None),
])
def test_header_syntax_matches_exim(value, error):
    got = check_header_syntax([f"From: {value}\n"], lambda kind: False)
    if error is None:
        assert got is None
    else:
        assert got == f'{error}: failing address in "From:" header is: {value}'


def test_group_label_shown_in_failing_address():
    assert check_header_syntax(["From: To is: x\n"], lambda kind: False) == \
        'unqualified address not permitted: failing address in "From:" header is: To is: x'


def test_not_blind_unqualified_header_address_does_not_match():
    assert check_not_blind(["To: u\n"], ["u@test.example"]) == "bcc recipient detected"
    assert check_not_blind(['To: "u"@test.example\n'], ["u@test.example"]) is not None


def test_reverse_host_lookup_not_repeated_after_failed_lookup(tmp_path):
    cfg = config(tmp_path, RHL.format(opt=""))
    # No DNS server configured: a lookup attempt would defer, not fail.
    res, _, sess = run(cfg, [], where="rcpt", ip="192.0.2.10", host_lookup_failed="1")
    assert res.verdict == "deny" and "reverse lookup check" in res.log_message
    assert sess.log.lines == []


def test_reverse_host_lookup_known_name_passes(tmp_path):
    cfg = config(tmp_path, RHL.format(opt=""))
    res, _, _ = run(cfg, [], where="rcpt", ip="192.0.2.10", sender_host_name="good.test")
    assert res.verdict == "accept"


# Checked against Exim 4.96 -bh with "deny !verify = header_sender".
@pytest.mark.parametrize("headers,log", [
    (["From: x@nowhere.invalid, y@ok.example"], None),
    (["Resent-From: y@ok.example"], None),
    (["From: grp: y@ok.example;"], None),
    (["From: bare"], "there is no valid sender in any header line"),
    (["Sender: bad <", "From: y@ok.example"],
     "syntax error in 'Sender:' header when scanning for sender: missing or malformed "
     "local part in \"bad <\""),
    (["From: y@ok.example", "Sender: bad <"],
     "syntax error in 'Sender:' header when scanning for sender: missing or malformed "
     "local part in \"bad <\""),
    (["From: <>"], "syntax error in 'From:' header when scanning for sender: missing or "
                   "malformed local part in \"<>\""),
])
def test_header_sender_matches_exim(tmp_path, headers, log):
    cfg = config(tmp_path, "check:\n  deny !verify = header_sender\n  accept\n")
    res = run(cfg, headers)[0]
    assert res.verdict == ("accept" if log is None else "deny")
    assert res.log_message == log


def test_header_sender_unqualified_allowed_host(tmp_path):
    cfg = config(tmp_path, "check:\n  deny !verify = header_sender\n  accept\n",
                 main="sender_unqualified_hosts = 192.0.2.1")
    assert run(cfg, ["From: bare"])[0].verdict == "accept"


def test_verify_certificate_needs_a_verified_client_certificate(tmp_path):
    cfg = config(tmp_path, "check:\n  accept verify = certificate\n  deny\n")
    assert run(cfg, [])[0].verdict == "deny"
    assert run(cfg, [], tls_in_certificate_verified="0")[0].verdict == "deny"
    assert run(cfg, [], tls_in_certificate_verified="1")[0].verdict == "accept"


@pytest.mark.parametrize("item", ["header_syntax/foo", "header_names_ascii/x", "helo/x"])
def test_verify_items_without_options(tmp_path, item):
    # Exim 4.96: "unexpected '/' found in ... (this verify item has no options)", a
    # temporary error.
    cfg = config(tmp_path, f"check:\n  require verify = {item}\n  accept\n")
    res, _, _ = run(cfg, ["From: a@b.example"])
    assert res.verdict == "defer" and res.error
    assert f"unexpected '/' found in \"{item}\" (this verify item has no options)" \
        in res.log_message


@pytest.mark.parametrize("kind,where,name", [
    ("recipient", "mail", "MAIL"), ("recipient", "data", "DATA"),
    ("sender", "connect", "connection"), ("sender", "helo", "EHLO or HELO")])
def test_address_verify_where_there_is_no_address(tmp_path, kind, where, name):
    # Exim 4.96 -bh: "cannot verify recipient in ACL for MAIL", a temporary error.
    cfg = config(tmp_path, f"check:\n  require verify = {kind}\n  accept\n")
    res, _, _ = run(cfg, [], where=where)
    assert res.verdict == "defer" and res.error
    assert f"cannot verify {kind} in ACL for {name}" in res.log_message
