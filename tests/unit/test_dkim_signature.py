"""DKIM-Signature computation (pymta.dkim.sign): body hashes fed in pieces agree with
dkimpy's whole-body canonicalisation, the h= list is Exim's, and signatures verify with
dkimpy (keys from a dictionary here; the daemon tests use a real DNS server)."""
from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess

import dkim
import dkim.crypto
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import Relaxed, Simple
from hypothesis import given
from hypothesis import strategies as st

from pymta.dkim.sign import (
    DEFAULT_SIGN_HEADERS,
    BodyHasher,
    DkimSignError,
    SignatureRequest,
    load_private_key,
    parse_sign_headers,
    signature_field,
    signed_header_names,
)

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
        fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def dns_records() -> dict[bytes, bytes]:
    rsa_pub = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ed_pub = ED_KEY.public_key().public_bytes(serialization.Encoding.Raw,
                                              serialization.PublicFormat.Raw)
    return {b"rsa._domainkey.test.example.":
            b"v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_pub),
            b"ed._domainkey.test.example.":
            b"v=DKIM1; k=ed25519; p=" + base64.b64encode(ed_pub)}


def verify(message: bytes, idx: int = 0) -> bool:
    records = dns_records()
    d = dkim.DKIM(message.replace(b"\n", b"\r\n"), minkey=1024)
    try:
        return bool(d.verify(idx=idx, dnsfunc=lambda name, timeout=5: records.get(name)))
    except dkim.DKIMException:
        return False


HEADER = (b"From: a@test.example\nTo: b@remote.example\nSubject: hi  there\n  folded\n"
          b"To: c@remote.example\nCc: x@y.example\nX-Foo: 1\nX-Foo: 2\n\n")
BODY = b"line one  \n\t two \t\n\n\n"


def sign(header: bytes = HEADER, body: bytes = BODY, **kw: object) -> bytes:
    canon = str(kw.pop("canon", "relaxed"))
    hash_name = str(kw.pop("hash_name", "sha256"))
    hasher = BodyHasher(canon, hash_name)
    hasher.update(body)
    params: dict = {"domain": "test.example", "selector": "rsa",
                    "key": load_private_key(pem(RSA_KEY)), "canon": canon,
                    "hash_name": hash_name,
                    "sign_headers": tuple(parse_sign_headers(DEFAULT_SIGN_HEADERS))}
    params.update(kw)
    return signature_field(header, hasher.digest(), SignatureRequest(**params)) + header + body


# -- body hash ------------------------------------------------------------------------
def _whole_body_hash(canon: str, body: bytes) -> bytes:
    # The transport ends a last line that has no newline (before the dot).
    if body and not body.endswith(b"\n"):
        body += b"\n"
    algo = Relaxed if canon == "relaxed" else Simple
    return hashlib.sha256(algo.canonicalize_body(body.replace(b"\n", b"\r\n"))).digest()


@given(st.lists(st.sampled_from([b"a", b"b c", b" ", b"\t", b"\n", b"\n\n", b"  x\t\n",
                                 b"\r", b".", b""]), max_size=30),
       st.lists(st.integers(min_value=0, max_value=40), max_size=6),
       st.sampled_from(["simple", "relaxed"]))
def test_body_hash_in_pieces_matches_dkimpy(parts, cuts, canon):
    body = b"".join(parts)
    hasher = BodyHasher(canon, "sha256")
    pos = 0
    for cut in sorted(cuts):
        hasher.update(body[pos:cut])
        pos = max(pos, cut)
    hasher.update(body[pos:])
    assert hasher.digest() == _whole_body_hash(canon, body)


def test_empty_body_hashes():
    # RFC 6376 3.4.3/3.4.4: "simple" hashes an empty body as one CRLF, "relaxed" as nothing.
    assert BodyHasher("simple", "sha256").digest() == hashlib.sha256(b"\r\n").digest()
    assert BodyHasher("relaxed", "sha256").digest() == hashlib.sha256(b"").digest()


def test_unknown_canon_and_hash_are_refused():
    with pytest.raises(DkimSignError, match="canonicalization"):
        BodyHasher("nofws", "sha256")
    with pytest.raises(DkimSignError, match="hash"):
        BodyHasher("relaxed", "md5")


# -- the h= list ----------------------------------------------------------------------------
def _headers(block: bytes) -> list[tuple[bytes, bytes]]:
    return [(h[0], h[1]) for h in dkim.rfc822_parse(block)[0]]


def test_default_list_as_exim_writes_it():
    # exim4 4.96 signed From, To, Subject, Message-Id, Date with the default list as
    # "Date:Message-Id:Subject:To:From:Sender:Reply-To:Cc:MIME-Version:..."
    block = (b"Received: x\nFrom: a@test.example\nTo: b@remote.example\nSubject: hi\n"
             b"Message-Id: <1@x>\nDate: today\n\n")
    names = signed_header_names(_headers(block), parse_sign_headers(DEFAULT_SIGN_HEADERS))
    assert names[:8] == ["Date", "Message-Id", "Subject", "To", "From", "Sender",
                         "Reply-To", "Cc"]
    assert names[-1] == "List-Archive" and len(names) == 28


def test_oversign_notation_as_exim_writes_it():
    # exim4 4.96, dkim_sign_headers = To : =X-Foo : +Cc : Subject : Subject : +Reply-To :
    # =Sender : From, gave h=X-Foo:X-Foo:Cc:To:Subject:From:Cc:Subject:Reply-To
    sign_list = parse_sign_headers(
        "To : =X-Foo : +Cc : Subject : Subject : +Reply-To : =Sender : From")
    names = signed_header_names(_headers(HEADER), sign_list)
    assert names == ["X-Foo", "X-Foo", "Cc", "To", "Subject", "From", "Cc", "Subject",
                     "Reply-To"]


def test_bad_header_name_in_list():
    with pytest.raises(DkimSignError, match="bad header name"):
        parse_sign_headers("From : +")
    with pytest.raises(DkimSignError, match="bad header name"):
        parse_sign_headers("From : Sub ject")


# -- signatures ------------------------------------------------------------------------
@pytest.mark.parametrize("canon", ["simple", "relaxed"])
@pytest.mark.parametrize("selector,key", [("rsa", RSA_KEY), ("ed", ED_KEY)])
def test_signature_verifies_and_tampering_breaks_it(canon, selector, key):
    message = sign(canon=canon, selector=selector, key=load_private_key(pem(key)))
    assert message.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa" if key is RSA_KEY
                                                             else b"ed25519") + b"-sha256;")
    assert verify(message)
    assert not verify(message.replace(b"two", b"tw0"))
    assert not verify(message.replace(b"Subject: hi", b"Subject: ho"))


def test_pkcs1_rsa_key_and_identity_and_timestamps():
    key = load_private_key(pem(RSA_KEY, serialization.PrivateFormat.TraditionalOpenSSL))
    message = sign(key=key, identity="joe@sub.test.example", timestamps=(1000, 2000),
                   canon="simple")
    field = message.split(b"\nFrom:")[0].replace(b"\n\t", b" ")
    assert b" i=joe@sub.test.example;" in field
    assert b" t=1000; x=2000;" in field
    tags = dkim.util.parse_tag_value(field.split(b":", 1)[1])
    assert tags[b"c"] == b"simple/simple" and tags[b"d"] == b"test.example"


def test_sha1_and_sha512(monkeypatch):
    assert verify(sign(hash_name="sha1"))
    # dkimpy has no rsa-sha512 (Exim signs with it on request): teach this copy to check it.
    monkeypatch.setitem(dkim.crypto.HASH_ALGORITHMS, b"rsa-sha512", hashlib.sha512)
    monkeypatch.setitem(dkim.crypto.HASH_ID_MAP, "sha512",
                        b"\x60\x86\x48\x01\x65\x03\x04\x02\x03")
    message = sign(hash_name="sha512")
    assert b"a=rsa-sha512;" in message
    assert verify(message)
    assert not verify(message.replace(b"two", b"tw0"))


def test_ed25519_only_with_sha256():
    with pytest.raises(DkimSignError, match="Ed25519"):
        sign(selector="ed", key=load_private_key(pem(ED_KEY)), hash_name="sha512")


def test_key_too_short_for_the_digest():
    # cryptography makes no RSA key under 1024 bits; openssl still does.
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    short = subprocess.run(["openssl", "genrsa", "512"], capture_output=True,
                           check=True).stdout
    with pytest.raises(DkimSignError, match="cannot sign"):
        sign(key=load_private_key(short), hash_name="sha512")


def test_garbage_key():
    with pytest.raises(DkimSignError, match="private key not usable"):
        load_private_key(b"garbage\n")
    with pytest.raises(DkimSignError, match="private key not usable"):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
