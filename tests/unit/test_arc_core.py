"""pymta.arc: arc_sign's specification, and ARC evaluation of malformed chains
(never an exception: a state and a reason)."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pymta.arc.sign import (
    DEFAULT_EXPIRE_DELTA,
    ArcSignError,
    arc_set,
    chain_status,
    expiry,
    find_ar,
    parse_spec,
)
from pymta.arc.verify import ArcResult, accepted, authres, evaluate, set_variables
from pymta.dkim.sign import SigningKey
from pymta.expand.extra_items import AUTHRES_ARC


def test_parse_spec():
    assert parse_spec("") is None and parse_spec("  ") is None
    s = parse_spec("example.org : sel-1 : /k.pem")
    assert (s.identity, s.selector, s.key, s.timestamps, s.expire) == (
        "example.org", "sel-1", "/k.pem", False, "")
    s = parse_spec("example.org:sel:/k.pem:timestamps,expire=+60")
    assert s.timestamps and s.expire == "+60"
    assert parse_spec("a:b:c:expire").expire == "default"


@pytest.mark.parametrize("text,what", [
    ("example.org", "selector"), ("example.org : : /k", "selector"),
    ("example.org : sel", "privkey"), (" : sel : /k", "identity"),
    ("exa mple.org : sel : /k", "identity"), ("example.org : s_1 : /k", "selector"),
])
def test_parse_spec_refuses(text, what):
    with pytest.raises(ArcSignError, match=rf"bad signing-specification \({what}"):
        parse_spec(text)


def test_expiry():
    now = 1_000_000
    assert expiry(parse_spec("a:b:c"), now) is None
    assert expiry(parse_spec("a:b:c:expire"), now) == now + DEFAULT_EXPIRE_DELTA
    assert expiry(parse_spec("a:b:c:expire=+60"), now) == now + 60
    assert expiry(parse_spec("a:b:c:expire=+0"), now) == now + DEFAULT_EXPIRE_DELTA
    assert expiry(parse_spec("a:b:c:expire=12345"), now) == 12345
    with pytest.raises(ArcSignError):
        expiry(parse_spec("a:b:c:expire=soon"), now)


def test_find_ar_takes_the_first_for_the_identity():
    headers = [(b"Authentication-Results", b" other.example; spf=fail\r\n"),
               (b"Authentication-Results", b" example.org.uk; spf=none\r\n"),
               (b"Authentication-Results", b" example.org;\r\n\tarc=pass; spf=pass\r\n"),
               (b"Authentication-Results", b" example.org; spf=fail\r\n")]
    got = find_ar(headers, "example.org")
    assert got == b"arc=pass; spf=pass\r\n"
    assert chain_status(got) == "pass"
    assert chain_status(b"spf=pass smtp.mailfrom=x") == "none"
    assert find_ar(headers, "missing.example") is None


@pytest.mark.parametrize("message,reason", [
    (b"ARC-Seal: cv=none; d=x\r\nFrom: a\r\n\r\nbody\r\n",
     "collecting headers: ARC header without instance"),
    (b"ARC-Seal: i=1; cv=none; d=x; s=s; a=rsa-sha256; b=AA\r\nFrom: a\r\n\r\nb\r\n",
     "i=1 (missing header)"),
    (b"ARC-Seal: i=2; cv=fail; d=x; s=s; a=rsa-sha256; b=AA\r\n"
     b"ARC-Message-Signature: i=2; d=x\r\nARC-Authentication-Results: i=2; x\r\n"
     b"From: a\r\n\r\nb\r\n", "i=2 (cv)"),
    (b"ARC-Seal: i=1; garbage\r\nARC-Seal: i=1; more\r\n"
     b"ARC-Message-Signature: i=1; d=x\r\nARC-Authentication-Results: i=1; x\r\n"
     b"From: a\r\n\r\nb\r\n", "i=1 (duplicate header)"),
    (b"ARC-Seal: i=1; cv=none; a=rsa-sha256\r\n"
     b"ARC-Message-Signature: i=1; nonsense\r\nARC-Authentication-Results: i=1; x\r\n"
     b"From: a\r\n\r\nb\r\n", None),
    (b"\xff\xfe not a header\r\n\r\n", None),
    # a forged instance number far beyond the limit costs nothing
    (b"ARC-Seal: i=999999999; cv=pass; d=x\r\nFrom: a\r\n\r\nb\r\n",
     "i=999999999 (more than 50 sets)"),
])
def test_malformed_chains_fail_without_exceptions(message, reason):
    def no_dns(name, timeout=5):
        raise AssertionError("no key should be looked up")
    result = evaluate(message, no_dns)
    if reason is None:
        assert result.state in ("fail", "none") and (result.state == "none" or result.reason)
    else:
        assert (result.state, result.reason) == ("fail", reason)


def test_variables_and_accepted():
    v: dict[str, str] = {}
    set_variables(v, ArcResult("fail", "seal cv state", ["a.example", "", "b.example"], 1))
    del v[AUTHRES_ARC]
    assert v == {"arc_state": "fail", "arc_state_reason": "seal cv state",
                 "arc_domains": "a.example::b.example", "arc_oldest_pass": "1"}
    assert accepted(ArcResult("none"), None) and accepted(ArcResult("pass"), None)
    assert not accepted(ArcResult("fail"), None)
    assert accepted(ArcResult("fail"), "fail") and not accepted(ArcResult("none"), "pass")


def test_authres_part():
    # Exim's form: a chain whose form was good names its newest instance and AMS
    # selector; a failure's reason follows in a comment.
    good = ArcResult("pass", "", ["a.example"], 1, 1, "sel")
    assert authres(good, "192.0.2.1") == (";\n\tarc=pass (i=1) header.s=sel "
                                           "arc.oldest-pass=1 smtp.remote-ip=192.0.2.1")
    bad = ArcResult("fail", "AMS sig nonverify", ["a.example", "b.example"], 0, 2, "s2")
    assert authres(bad, "") == (";\n\tarc=fail (i=2)(AMS sig nonverify) header.s=s2 "
                                 "arc.oldest-pass=0")
    assert authres(ArcResult("fail", "i=1 (cv)"), "") == ";\n\tarc=fail (i=1 (cv))"
    assert authres(ArcResult("none"), "192.0.2.1") == ";\n\tarc=none"
    v = {"sender_host_address": "192.0.2.1"}
    set_variables(v, good)
    assert v[AUTHRES_ARC] == authres(good, "192.0.2.1")


def test_arc_set_refuses_past_the_limit_and_without_results():
    key = SigningKey("rsa", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    spec = parse_spec("example.org : sel : /k")
    head = (b"ARC-Seal: i=50; cv=pass; d=x\nAuthentication-Results: example.org; arc=pass\n"
            b"From: a@b.example\n\n")
    with pytest.raises(ArcSignError, match="already has 50 sets"):
        arc_set(head, b"\0" * 32, spec, key, 0)
    with pytest.raises(ArcSignError, match="no Authentication-Results header"):
        arc_set(b"From: a@b.example\n\n", b"\0" * 32, spec, key, 0)
    out = arc_set(head.replace(b"i=50", b"i=3"), b"\0" * 32, spec, key, 0)
    assert out.startswith(b"ARC-Seal: i=4; cv=pass; a=rsa-sha256; d=example.org; s=sel;")
