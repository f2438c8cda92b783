"""DKIM verification (pymta.dkim.verify*): signatures made by dkimpy with keys generated
here, keys served by a lookup function; every outcome is Exim 4.96's (status, reason and
log text as its daemon writes them)."""
from __future__ import annotations

import base64
import hashlib
import re

import dkim
import nacl.signing
import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import rsa
from dkim.canonicalization import Relaxed, Simple
from hypothesis import given
from hypothesis import strategies as st

from pymta.dkim.verify import Detail, VerifyOptions, verify_message
from pymta.dkim.verify_body import BodyHasher
from pymta.dkim.verify_key import TemporaryDnsError
from pymta.dkim.verify_report import reason, signature_line, signature_variables, signers

MSG = (b"From: Alice <alice@example.org>\r\nTo: bob@test.example\r\nSubject: hello\r\n"
       b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\n"
       b"Hello world\r\n\r\n  line two  \r\n\r\n")


def _rsa(bits: int = 1024) -> tuple[bytes, str]:
    key = rsa.generate_private_key(65537, bits)
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL,
                            ser.NoEncryption())
    der = key.public_key().public_bytes(ser.Encoding.DER,
                                        ser.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def keys():
    pem, pub = _rsa(1024)
    ed = nacl.signing.SigningKey.generate()
    return {"pem": pem, "pub": pub, "ed": base64.b64encode(bytes(ed)),
            "edpub": base64.b64encode(bytes(ed.verify_key)).decode()}


def _records(keys) -> dict[str, bytes | None | Exception]:
    return {
        "good": f"v=DKIM1; t=y:s; n=some notes; p={keys['pub']}".encode(),
        "ed": f"v=DKIM1; k=ed25519; p={keys['edpub']}".encode(),
        "garbage": b"v=DKIM1; p=AAAAgarbageAAAA",
        "broken": b"v=DKIM2; x y z",
        "revoked": b"v=DKIM1; p=",
        "der": b"v=DKIM1; p=" + base64.b64encode(b"\x30\x03\x02\x01\x05"),
        "sha1only": f"v=DKIM1; h=sha1; p={keys['pub']}".encode(),
        "srv": f"v=DKIM1; s=tlsrpt; p={keys['pub']}".encode(),
        "huge": b"v=DKIM1; p=" + b"A" * 17000,
        "missing": None,
        "sf": TemporaryDnsError("SERVFAIL"),
    }


def _verify(keys, message: bytes, options: VerifyOptions = VerifyOptions()):
    records = _records(keys)
    asked: list[str] = []
    failed: list[str] = []

    def lookup(name: str) -> bytes | None:
        asked.append(name)
        value = records[name.split(".")[0]]
        if isinstance(value, Exception):
            raise value
        return value
    head, _, body = message.replace(b"\r\n", b"\n").partition(b"\n\n")
    sigs = verify_message(head + b"\n\n", [body[:7], body[7:]], options, lookup,
                          lambda s: failed.append(s.selector))
    return sigs, asked, failed


def _sign(keys, selector: str, message: bytes = MSG, **kw) -> bytes:
    kw.setdefault("canonicalize", (b"relaxed", b"relaxed"))
    key = keys["ed"] if selector == "ed" else keys["pem"]
    if selector == "ed":
        kw.setdefault("signature_algorithm", b"ed25519-sha256")
    return dkim.sign(message, selector.encode(), b"example.org", key, **kw) + message


def test_good_signature_passes_with_every_variable(keys):
    sigs, asked, _ = _verify(keys, _sign(keys, "good", identity=b"alice@example.org"))
    assert asked == ["good._domainkey.example.org."]
    [sig] = sigs
    assert (sig.status, reason(sig)) == ("pass", "")
    v = signature_variables(sig)
    assert v["dkim_domain"] == "example.org" and v["dkim_identity"] == "alice@example.org"
    assert v["dkim_algo"] == "rsa-sha256" and v["dkim_key_length"] == "1024"
    assert (v["dkim_key_testing"], v["dkim_key_nosubdomains"], v["dkim_key_notes"]) == \
        ("1", "1", "some notes")
    assert v["dkim_headernames"] == "from:to:subject:date:message-id:from"
    assert v["dkim_bodylength"] == v["dkim_expires"] == "9999999999999"
    assert signers(sigs) == ["example.org", "alice@example.org"]
    assert re.fullmatch(r"DKIM: d=example\.org s=good c=relaxed/relaxed a=rsa-sha256 "
                        r"b=1024 i=alice@example\.org t=\d+ \[verification succeeded\]",
                        signature_line(sig))


@pytest.mark.parametrize("canon", [(b"simple", b"simple"), (b"relaxed", b"simple"),
                                   (b"simple", b"relaxed")])
def test_canonicalizations_and_body_length(keys, canon):
    sigs, _, _ = _verify(keys, _sign(keys, "good", canonicalize=canon, length=True))
    assert sigs[0].status == "pass"
    assert signature_line(sigs[0]).endswith(f" l={sigs[0].bodylength} "
                                            "[verification succeeded]")


def test_ed25519_passes(keys):
    [sig], _, _ = _verify(keys, _sign(keys, "ed"))
    assert (sig.status, sig.algo, sig.key_bits) == ("pass", "ed25519-sha256", 256)
    assert " b=512 " in signature_line(sig)


def test_tampered_body_and_header_fail(keys):
    signed = _sign(keys, "good")
    [sig], asked, _ = _verify(keys, signed.replace(b"Hello world", b"Hello World"))
    assert (sig.status, reason(sig), asked) == ("fail", "bodyhash_mismatch", [])
    assert signature_line(sig).endswith("[verification failed - body hash mismatch "
                                        "(body probably modified in transit)]")
    assert signature_variables(sig)["dkim_key_length"] == "0"
    [sig], _, _ = _verify(keys, signed.replace(b"Subject: hello", b"Subject: hellO"))
    assert (sig.status, reason(sig)) == ("fail", "signature_incorrect")
    assert signature_line(sig).endswith("[verification failed - signature did not verify "
                                        "(headers probably modified in transit)]")


def test_sha1_is_ignored_unless_allowed(keys):
    signed = _sign(keys, "good", signature_algorithm=b"rsa-sha1")
    assert _verify(keys, signed)[0] == []
    [sig], _, _ = _verify(keys, signed, VerifyOptions(hashes=("sha1", "sha256")))
    assert sig.status == "pass"


def test_short_rsa_key_fails_with_pubkey_too_short(keys):
    signed = _sign(keys, "good")
    [sig], _, _ = _verify(keys, signed, VerifyOptions(min_keysizes=(("rsa", 2048),)))
    assert (sig.status, reason(sig), sig.key_bits) == ("fail", "pubkey_too_short", 1024)
    assert signature_line(sig).endswith("[verification failed - signature invalid "
                                        "(key too short)]")


@pytest.mark.parametrize("selector,status,why,text", [
    ("missing", "invalid", "pubkey_unavailable", "public key record (currently?) unavailable"),
    ("sf", "invalid", "pubkey_unavailable", "public key record (currently?) unavailable"),
    ("garbage", "invalid", "pubkey_dns_syntax", "syntax error in public key record"),
    ("broken", "invalid", "pubkey_dns_syntax", "syntax error in public key record"),
    ("srv", "invalid", "pubkey_dns_syntax", "syntax error in public key record"),
    ("revoked", "invalid", "pubkey_der_syntax", "syntax error in public key record"),
    ("der", "invalid", "pubkey_der_syntax", "syntax error in public key record"),
    ("huge", "invalid", "", "overlong public key record"),
])
def test_key_problems(keys, selector, status, why, text):
    [sig], _, failed = _verify(keys, _sign(keys, selector))
    assert (sig.status, reason(sig)) == (status, why)
    assert signature_line(sig).endswith(f"[invalid - {text}]")
    assert failed == [selector]


def test_key_hash_restriction_fails_unspecified(keys):
    [sig], _, _ = _verify(keys, _sign(keys, "sha1only"))
    assert (sig.status, reason(sig)) == ("fail", "")
    assert signature_line(sig).endswith("[verification failed - unspecified reason]")


def test_malformed_signatures(keys):
    signed = _sign(keys, "good")
    no_b = re.sub(rb"b=[A-Za-z0-9+/=\s]+\r\nFrom:", b"\r\nFrom:", signed, count=1)
    [sig], asked, _ = _verify(keys, no_b)
    assert (sig.status, reason(sig), asked) == ("invalid", "", [])
    assert " b=0 " in signature_line(sig)
    assert signature_line(sig).endswith("[invalid - signature tag missing or invalid]")
    [sig], _, _ = _verify(keys, signed.replace(b"v=1;", b"v=2;", 1))
    assert signature_line(sig).endswith("[invalid - unsupported DKIM version]")
    # no domain: listed by its identity, invalid, "<UNSET>" in the log (as Exim)
    [sig], asked, _ = _verify(keys, signed.replace(b"d=example.org;", b"", 1))
    assert (sig.status, signers([sig]), asked) == ("invalid", ["@example.org"], [])
    assert signature_line(sig).startswith("DKIM: d=<UNSET> s=good ")
    # an i= outside d= is verified all the same (Exim does not refuse it)
    outside = _sign(keys, "good", identity=b"x@example.org").replace(
        b"i=x@example.org", b"i=x@other.net", 1)
    [sig], _, _ = _verify(keys, outside)
    assert (sig.status, reason(sig), signers([sig])) == \
        ("fail", "signature_incorrect", ["example.org", "x@other.net"])
    # an unknown algorithm, or junk instead of a tag list: not a signature at all
    assert _verify(keys, signed.replace(b"a=rsa-sha256", b"a=rsa-md5", 1))[0] == []
    assert _verify(keys, b"DKIM-Signature: \x00\xff;;==\r\n" + MSG)[0] == []


def test_order_and_minimal(keys):
    both = dkim.sign(_sign(keys, "ed"), b"good", b"example.org", keys["pem"]) + _sign(keys, "ed")
    sigs, _, _ = _verify(keys, both)
    assert [s.selector for s in sigs] == ["ed", "good"]    # ed25519 first, as Exim
    assert [s.status for s in sigs] == ["pass", "pass"]
    sigs, asked, _ = _verify(keys, both, VerifyOptions(minimal=True))
    assert [s.status for s in sigs] == ["pass", "none"] and len(asked) == 1
    assert signature_line(sigs[1]).endswith("[not verified]")


@given(st.lists(st.sampled_from([b"a", b" ", b"\t", b"\n", b"\r\n", b"x  y", b""]),
                max_size=30), st.integers(1, 7))
def test_body_hasher_matches_dkimpy(pieces, split):
    # an SMTP body always ends with a line end (or is empty)
    body = b"".join(pieces).replace(b"\r\n", b"\n")
    body = body + b"\n" if body and not body.endswith(b"\n") else body
    crlf = body.replace(b"\n", b"\r\n")
    for name, canon in (("simple", Simple), ("relaxed", Relaxed)):
        h = BodyHasher(name, "sha256")
        for i in range(0, len(body), split):
            h.feed(body[i:i + split])
        assert h.digest() == hashlib.sha256(canon.canonicalize_body(crlf)).digest(), name


_TAG = st.sampled_from([b"v", b"a", b"b", b"bh", b"c", b"d", b"h", b"i", b"l", b"q", b"s",
                        b"t", b"x", b"z", b"\xff", b""])
_VALUE = st.one_of(st.sampled_from([b"1", b"rsa-sha256", b"ed25519-sha256", b"rsa-sha1",
                                    b"relaxed/simple", b"example.org", b"from:to",
                                    b"AAAA", b"==", b"99999999999999999999", b"-1",
                                    b"good", b"ed", b"sf", b"huge", b"@", b""]),
                   st.binary(max_size=12))


@given(st.lists(st.tuples(_TAG, _VALUE), max_size=12))
def test_any_signature_header_gives_a_status_never_an_exception(keys, tags):
    header = b"; ".join(t + b"=" + v for t, v in tags).replace(b"\r", b"").replace(b"\n", b"")
    sigs, _, _ = _verify(keys, b"DKIM-Signature: " + header + b"\r\n" + MSG)
    for sig in sigs:
        assert sig.status in ("pass", "fail", "invalid", "none")
        assert signature_line(sig).startswith("DKIM: d=")
        signature_variables(sig)


def test_detail_key_import_flags():
    assert Detail.PUBKEY_UNAVAILABLE.key_import and not Detail.BODY.key_import
