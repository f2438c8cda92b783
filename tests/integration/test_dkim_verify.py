"""DKIM verification on input, end to end: a pymta daemon receives messages signed by
dkimpy, by OpenDKIM (the opendkim filter, over the milter protocol) and by a real Exim
4.96 (dkim_sign in its smtp transport), with the public keys (generated here) in TXT
records of the loopback DNS server.  The DKIM ACL, the $dkim_* variables, the log
lines and the refusals are Exim's (the texts were recorded from an exim4 daemon
verifying the same kinds of signature)."""
from __future__ import annotations

import base64
import os
import re
import smtplib
import subprocess

import dkim
import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.exim import EximDaemon, exim_or_skip
from tests.support.milter import OPENDKIM, OpenDkimSigner
from tests.support.wait import wait_until

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
log_selector = +dkim_verbose
queue_only
acl_smtp_rcpt = acl_rcpt
acl_smtp_dkim = acl_dkim
acl_smtp_data = acl_data
dkim_verify_signers = $dkim_signers : required.example

begin acl

acl_rcpt:
  accept  local_parts = nodkim
          control = dkim_disable_verify
  accept

acl_dkim:
  warn    logwrite = DKIMACL cur=$dkim_cur_signer status=$dkim_verify_status \\
                     reason=$dkim_verify_reason d=$dkim_domain i=$dkim_identity \\
                     s=$dkim_selector a=$dkim_algo c=$dkim_canon_headers/$dkim_canon_body \\
                     l=$dkim_bodylength x=$dkim_expires h=$dkim_headernames \\
                     kt=$dkim_key_testing ks=$dkim_key_srvtype kn=$dkim_key_notes \\
                     klen=$dkim_key_length
  warn    sender_domains = override.example
          dkim_status = pass
          set dkim_verify_status = fail
          set dkim_verify_reason = policy says no
  deny    sender_domains = strict.example
          dkim_signers = example.org
          dkim_status = fail : invalid
          message = DKIM says no ($dkim_verify_reason)
  accept

acl_data:
  warn    logwrite = DATAACL status=$dkim_verify_status signers=$dkim_signers
  accept
"""

MSG = (b"From: Alice <alice@example.org>\r\nTo: bob@test.example\r\nSubject: hello\r\n"
       b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\n"
       b"Hello world\r\n\r\n  line two  \r\n\r\n")


def _txt(text: str) -> str:
    return " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))


class Keys:
    """Keys made for this test run: RSA 2048, RSA 512 (openssl) and Ed25519."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(65537, 2048)
        self.rsa_pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL,
                                         ser.NoEncryption())
        self.rsa_pub = _spki(key.public_key())
        small = subprocess.run(["openssl", "genrsa", "-traditional", "512"],
                               capture_output=True, check=False).stdout
        self.small_pem = small or None
        self.small_pub = _spki(ser.load_pem_private_key(small, None).public_key()) \
            if small else ""
        ed = ed25519.Ed25519PrivateKey.generate()
        self.ed_pem = ed.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                       ser.NoEncryption())
        self.ed_seed = base64.b64encode(ed.private_bytes(
            ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption()))
        self.ed_pub = base64.b64encode(ed.public_key().public_bytes(
            ser.Encoding.Raw, ser.PublicFormat.Raw)).decode()

    def zone(self) -> str:
        return f"""
            rsa._domainkey     IN TXT {_txt('v=DKIM1; k=rsa; t=y; n=test key; p=' + self.rsa_pub)}
            small._domainkey   IN TXT {_txt('v=DKIM1; p=' + self.small_pub)}
            ed._domainkey      IN TXT {_txt('v=DKIM1; k=ed25519; p=' + self.ed_pub)}
            garbage._domainkey IN TXT "v=DKIM1; p=AAAAgarbageAAAA"
            broken._domainkey  IN TXT "v=DKIM2; x y z"
            revoked._domainkey IN TXT "v=DKIM1; p="
        """


def _spki(public_key) -> str:
    return base64.b64encode(public_key.public_bytes(
        ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)).decode()


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture
def world(tmp_path, keys):
    with DnsServer({"example.org": keys.zone()}, servfail=["sf._domainkey.example.org"],
                   drop=["slow._domainkey.example.org"]) as dns_server:
        with PymtaDaemon(CONFIG, tmp_path / "pymta",
                         env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"}) as d:
            yield d, dns_server


def _sign(keys: Keys, selector: str, message: bytes = MSG, **kw) -> bytes:
    kw.setdefault("canonicalize", (b"relaxed", b"relaxed"))
    if selector == "ed":
        key = keys.ed_seed
        kw.setdefault("signature_algorithm", b"ed25519-sha256")
    elif selector == "small":
        key = keys.small_pem
        return dkim.DKIM(message, minkey=512).sign(b"small", b"example.org", key, **kw) \
            + message
    else:
        key = keys.rsa_pem
    return dkim.sign(message, selector.encode(), b"example.org", key, **kw) + message


def _send(d: PymtaDaemon, message: bytes, sender: str = "a@example.org",
          rcpt: str = "bob@test.example") -> tuple[int, str]:
    c = d.client()
    c.banner()
    try:
        return c.send_message(sender, rcpt, message)
    finally:
        c.quit()


def _lines(d: PymtaDaemon, msgid: str) -> list[str]:
    """The main-log lines of one message, without date and id."""
    return [line.split(f" {msgid} ", 1)[1] for line in d.log().splitlines()
            if f" {msgid} " in line]


def _accepted(d: PymtaDaemon, reply: tuple[int, str]) -> list[str]:
    assert reply[0] == 250, reply
    msgid = reply[1].split("id=")[1]
    d.wait_for_log(rf" {msgid} <= ")
    return _lines(d, msgid)


def test_dkimpy_rsa_signature_passes_with_exims_variables_and_lines(world, keys):
    d, _ = world
    lines = _accepted(d, _send(d, _sign(keys, "rsa", identity=b"alice@example.org")))
    acl = [x for x in lines if x.startswith("DKIMACL")]
    assert acl[0] == ("DKIMACL cur=example.org status=pass reason= d=example.org "
                      "i=alice@example.org s=rsa a=rsa-sha256 c=relaxed/relaxed "
                      "l=9999999999999 x=9999999999999 "
                      "h=from:to:subject:date:message-id:from kt=1 ks=* kn=test key "
                      "klen=2048")
    assert acl[1].startswith("DKIMACL cur=alice@example.org status=pass ")
    # the signer dkim_verify_signers adds: the ACL runs without a signature
    assert acl[2] == ("DKIMACL cur=required.example status=none reason= d= i= s= a= c=/ "
                      "l=9999999999999 x=9999999999999 h= kt=0 ks=* kn= klen=0")
    verbose = [x for x in lines if x.startswith("DKIM: ")]
    assert len(verbose) == 2
    assert re.fullmatch(r"DKIM: d=example\.org s=rsa c=relaxed/relaxed a=rsa-sha256 b=2048 "
                        r"i=alice@example\.org t=\d+ \[verification succeeded\]", verbose[0])
    assert "DATAACL status=pass:pass:none signers=example.org:alice@example.org" in lines
    arrival = [x for x in lines if x.startswith("<= ")][0]
    assert re.search(r" S=\d+ DKIM=example\.org id=m1@example\.org$", arrival), arrival


def test_ed25519_and_simple_canonicalization_with_length_pass(world, keys):
    d, _ = world
    lines = _accepted(d, _send(d, _sign(keys, "ed")))
    assert any(re.fullmatch(r"DKIM: d=example\.org s=ed c=relaxed/relaxed a=ed25519-sha256 "
                            r"b=512 i=@example\.org t=\d+ \[verification succeeded\]", x)
               for x in lines), lines
    assert any(" DKIM=example.org " in x for x in lines if x.startswith("<= "))
    lines = _accepted(d, _send(d, _sign(keys, "rsa", canonicalize=(b"simple", b"simple"),
                                        length=True)))
    assert any(re.search(r" c=simple/simple a=rsa-sha256 b=2048 i=@example\.org t=\d+ "
                         r"l=29 \[verification succeeded\]$", x) for x in lines), lines


def test_tampered_body_and_header_fail(world, keys):
    d, _ = world
    signed = _sign(keys, "rsa")
    lines = _accepted(d, _send(d, signed.replace(b"Hello world", b"Hello World")))
    assert any(x.startswith("DKIMACL cur=example.org status=fail reason=bodyhash_mismatch ")
               for x in lines), lines
    assert any(x.endswith("[verification failed - body hash mismatch (body probably "
                          "modified in transit)]") for x in lines)
    assert not any(" DKIM=" in x for x in lines if x.startswith("<= "))
    lines = _accepted(d, _send(d, signed.replace(b"Subject: hello", b"Subject: hellO")))
    assert any(x.startswith("DKIMACL cur=example.org status=fail reason=signature_incorrect ")
               for x in lines), lines
    assert any(x.endswith("[verification failed - signature did not verify (headers "
                          "probably modified in transit)]") for x in lines)


def test_rsa_sha1_and_rsa_512_are_refused_by_default(world, keys):
    d, _ = world
    # RFC 8301: rsa-sha1 is not in dkim_verify_hashes, so the signature is ignored
    lines = _accepted(d, _send(d, _sign(keys, "rsa", signature_algorithm=b"rsa-sha1")))
    assert not any(x.startswith(("DKIM:", "DKIMACL cur=example.org")) for x in lines)
    assert "DATAACL status=none signers=" in lines
    if keys.small_pem is None:
        pytest.skip("openssl cannot make a 512-bit RSA key here")
    lines = _accepted(d, _send(d, _sign(keys, "small")))
    assert any(x.startswith("DKIMACL cur=example.org status=fail reason=pubkey_too_short ")
               and x.endswith(" klen=512") for x in lines), lines
    assert any(x.endswith("[verification failed - signature invalid (key too short)]")
               for x in lines)


@pytest.mark.parametrize("selector,status,reason,text", [
    ("missing", "invalid", "pubkey_unavailable", "public key record (currently?) unavailable"),
    ("sf", "invalid", "pubkey_unavailable", "public key record (currently?) unavailable"),
    ("slow", "invalid", "pubkey_unavailable", "public key record (currently?) unavailable"),
    ("garbage", "invalid", "pubkey_dns_syntax", "syntax error in public key record"),
    ("broken", "invalid", "pubkey_dns_syntax", "syntax error in public key record"),
    ("revoked", "invalid", "pubkey_der_syntax", "syntax error in public key record"),
])
def test_key_faults_give_exims_status_and_keep_the_message(world, keys, selector, status,
                                                           reason, text):
    d, dns_server = world
    lines = _accepted(d, _send(d, _sign(keys, selector)))
    assert f"DKIM: d=example.org s={selector} [failed key import]" in lines
    assert any(x.startswith(f"DKIMACL cur=example.org status={status} reason={reason} ")
               for x in lines), lines
    assert any(x.endswith(f"[{status} - {text}]") for x in lines)
    assert (f"{selector}._domainkey.example.org", "TXT") in dns_server.queries


def test_malformed_signatures_are_invalid_not_errors(world, keys):
    d, _ = world
    signed = _sign(keys, "rsa")
    no_b = re.sub(rb"b=[A-Za-z0-9+/=\s]+\r\nFrom:", b"\r\nFrom:", signed, count=1)
    lines = _accepted(d, _send(d, no_b))
    assert any(re.search(r" b=0 i=@example\.org t=\d+ \[invalid - signature tag missing or "
                         r"invalid\]$", x) for x in lines), lines
    lines = _accepted(d, _send(d, signed.replace(b"v=1;", b"v=2;", 1)))
    assert any(x.endswith("[invalid - unsupported DKIM version]") for x in lines), lines
    garbage = b"DKIM-Signature: \xff\x00;;==; d=\r\n" + MSG
    lines = _accepted(d, _send(d, garbage))
    assert "DATAACL status=none signers=" in lines


def test_dkim_acl_refuses_and_disable_verify_skips(world, keys):
    d, dns_server = world
    bad = _sign(keys, "rsa").replace(b"Hello world", b"Hello World")
    reply = _send(d, bad, sender="a@strict.example")
    assert reply == (550, "DKIM says no (bodyhash_mismatch)")
    line = d.wait_for_log(r" rejected DKIM : ")[0]
    assert line.endswith("H=(client.test) [127.0.0.1] rejected DKIM : "
                         "DKIM says no (bodyhash_mismatch)"), line
    assert d.queue() == []
    asked = len(dns_server.queries)
    lines = _accepted(d, _send(d, _sign(keys, "rsa"), rcpt="nodkim@test.example"))
    assert not any(x.startswith(("DKIM", "DKIMACL")) for x in lines), lines
    assert "DATAACL status= signers=" in lines
    assert len(dns_server.queries) == asked


def test_dkim_acl_may_overrule_the_verdict(world, keys):
    d, _ = world
    lines = _accepted(d, _send(d, _sign(keys, "ed"), sender="a@override.example"))
    assert any(re.fullmatch(r"DKIM: d=example\.org s=ed c=relaxed/relaxed a=ed25519-sha256 "
                            r"b=512 i=@example\.org t=\d+ \[fail - policy says no\]", x)
               for x in lines), lines
    assert "DATAACL status=fail:fail:none signers=example.org:@example.org" in lines
    assert not any(" DKIM=" in x for x in lines if x.startswith("<= "))


def test_command_line_submissions_are_not_verified(world, keys):
    """As in Exim, only SMTP input is verified: no key lookup, no DKIM ACL, no DKIM=."""
    d, dns_server = world
    asked = len(dns_server.queries)
    done = d.run("-odq", "-f", "a@example.org", "bob@test.example",
                 input=_sign(keys, "rsa").replace(b"\r\n", b"\n"))
    assert done.returncode == 0, done.stderr
    line = d.wait_for_log(r" <= a@example\.org U=")[0]
    lines = _lines(d, line.split()[2])
    assert not any(x.startswith(("DKIM", "DKIMACL")) for x in lines), lines
    assert " DKIM=" not in line and len(dns_server.queries) == asked


def test_opendkim_signature_passes(world, keys, tmp_path):
    d, _ = world
    if not os.path.exists(OPENDKIM):
        pytest.skip("opendkim is not installed (Debian package opendkim)")
    with OpenDkimSigner(tmp_path / "opendkim", "example.org", "rsa", keys.rsa_pem) as f:
        signed = f.sign(MSG, "alice@example.org", "bob@test.example")
    assert signed.startswith(b"DKIM-Signature:"), signed
    lines = _accepted(d, _send(d, signed))
    assert any(re.fullmatch(r"DKIM: d=example\.org s=rsa c=relaxed/relaxed a=rsa-sha256 "
                            r"b=2048 t=\d+ \[verification succeeded\]", x)
               for x in lines), lines
    lines = _accepted(d, _send(d, signed.replace(b"Subject: hello", b"Subject: Hello")))
    assert any(x.startswith("DKIMACL cur=example.org status=fail reason=signature_incorrect")
               for x in lines), lines
    lines = _accepted(d, _send(d, signed.replace(b"line two", b"line 2")))
    assert any(x.startswith("DKIMACL cur=example.org status=fail reason=bodyhash_mismatch")
               for x in lines), lines


EXIM_SIGNER = """\
primary_hostname = exim.example.org
spool_directory = @SPOOL@
log_file_path = @SPOOL@/log/%slog
acl_smtp_rcpt = accept_all

begin acl
accept_all:
  accept

begin routers
to_pymta:
  driver = manualroute
  route_list = * 127.0.0.1::{port}
  self = send
  transport = signing

begin transports
signing:
  driver = smtp
  allow_localhost
  hosts_avoid_tls = *
  dkim_domain = example.org
  dkim_selector = rsa : ed
  dkim_private_key = @DIR@/$dkim_selector.pem
  dkim_canon = relaxed

begin retry
*  *  F,1h,10m
"""


def test_exim_signatures_rsa_and_ed25519_pass(world, keys, tmp_path):
    exim_or_skip()
    d, _ = world
    directory = tmp_path / "exim"
    directory.mkdir()
    (directory / "rsa.pem").write_bytes(keys.rsa_pem)
    (directory / "ed.pem").write_bytes(keys.ed_pem)
    for name in ("rsa.pem", "ed.pem"):
        os.chmod(directory / name, 0o600)
    with EximDaemon(EXIM_SIGNER.format(port=d.port), directory) as exim:
        with smtplib.SMTP("127.0.0.1", exim.port, timeout=20) as s:
            s.sendmail("alice@example.org", ["bob@test.example"], MSG)
        try:
            wait_until(lambda: " => bob@test.example" in exim.log(), 30, 0.1)
        except TimeoutError:
            pytest.fail(f"exim did not deliver:\n{exim.diagnostics()}")
    line = d.wait_for_log(r" <= alice@example\.org ")[0]
    msgid = line.split()[2]
    lines = _lines(d, msgid)
    verbose = [x for x in lines if x.startswith("DKIM: ")]
    assert len(verbose) == 2, lines
    assert any(re.fullmatch(r"DKIM: d=example\.org s=ed c=relaxed/relaxed a=ed25519-sha256 "
                            r"b=512 \[verification succeeded\]", x) for x in verbose), verbose
    assert any(re.fullmatch(r"DKIM: d=example\.org s=rsa c=relaxed/relaxed a=rsa-sha256 "
                            r"b=2048 \[verification succeeded\]", x) for x in verbose), verbose
    assert " DKIM=example.org " in line
    assert " K S=" in line          # it came by BDAT: the body was verified from its file
