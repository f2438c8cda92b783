"""DKIM signing by the smtp transport (issue 11; Exim spec 58.2).

A real daemon relays to the SMTP sink; keys are made here, their public halves are
served as TXT records by the loopback DNS server, and the bytes the sink received are
checked with dkimpy (in this process, asking that server) and with OpenDKIM
(``opendkim -t``, whose resolver, libunbound, is pointed at that server by its
ResolverConfiguration).  What Exim 4.96 does was checked with exim4: the signatures come
first, one per domain and selector in list order; the h= list and the oversigning
notation; the log lines when signing fails, with and without dkim_strict.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import dkim
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

import pymta.clock  # noqa: F401  (moves time.time by PYMTA_TEST_CLOCK_OFFSET)
from tests.integration.conftest import BASE_CONFIG, wait_for
from tests.integration.test_daemon_e2e import send
from tests.support.daemon import run_pymta
from tests.support.dns import DnsServer
from tests.support.sink import SmtpSink

OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"

MESSAGE = (b"From: sender@test.example\r\nTo: user@remote.example\r\n"
           b"Subject: signed on the way out\r\nMessage-ID: <dkim1@test.example>\r\n"
           b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n"
           b"Hello.  Some   spaces \t here.\r\n..leading dot\r\n\r\n\r\n")


class Keys:
    """An RSA (2048 bit) and an Ed25519 key in files under ``directory``, and the DNS
    zones publishing them for each domain."""

    def __init__(self, directory: Path):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ed = ed25519.Ed25519PrivateKey.generate()
        for name, key in (("rsa", self.rsa), ("ed", self.ed)):
            path = directory / f"{name}.key"
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            os.chmod(path, 0o644)   # the delivery may run as another user

    def zone(self) -> str:
        rsa_pub = base64.b64encode(self.rsa.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
        ed_pub = base64.b64encode(self.ed.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
        return (f"rsa._domainkey IN TXT {_txt('v=DKIM1; k=rsa; p=' + rsa_pub)}\n"
                f"ed._domainkey IN TXT {_txt('v=DKIM1; k=ed25519; p=' + ed_pub)}\n")


def _txt(text: str) -> str:
    """A TXT record's data as quoted strings of at most 255 characters."""
    return " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))


@pytest.fixture
def sink(sink_port):
    with SmtpSink(port=sink_port) as server:
        yield server


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path)


@pytest.fixture
def dns_server(keys):
    zone = keys.zone()
    with DnsServer({"test.example": zone, "other.example": zone}) as server:
        yield server


def signing_config(options: str) -> str:
    """BASE_CONFIG with these dkim_* options on the smtp transport."""
    lines = "".join(f"  {line.strip()}\n" for line in options.strip().splitlines())
    config = BASE_CONFIG.replace("  allow_localhost\n", "  allow_localhost\n" + lines)
    assert lines in config
    return config


def relay(pymta_daemon, sink, options: str, message: bytes = MESSAGE):
    """Start a daemon signing with ``options``, send ``message``; the daemon, and the
    message as the sink got it (LF line ends) or None when nothing came."""
    d = pymta_daemon(config=signing_config(options))
    assert send(d, "sender@test.example", ["user@remote.example"], message)[0] == 250
    d.wait_for_log(r"(=>|==) user@remote\.example", 15)
    got = sink.messages[0].data.replace(b"\r\n", b"\n") if sink.wait_for(1, 2) else None
    return d, got


def signature_fields(message: bytes) -> list[dict[bytes, bytes]]:
    """The tags of each DKIM-Signature, top first (folding white space removed)."""
    d = dkim.DKIM(message)
    return [{k: re.sub(rb"\s+", b"", v) for k, v in dkim.util.parse_tag_value(v).items()}
            for n, v in d.headers if n.lower() == b"dkim-signature"]


def dkimpy_verifies(message: bytes, dns_server: DnsServer, idx: int = 0) -> bool:
    """dkimpy's verdict on signature ``idx``, its key looked up in the test DNS."""
    # dkimpy judges t= and x= by time.time(), which pymta.clock (imported above) has
    # moved by PYMTA_TEST_CLOCK_OFFSET in this process, as in the daemon that signed
    with dns_server.as_default_resolver():
        d = dkim.DKIM(message.replace(b"\n", b"\r\n"))
        try:
            return bool(d.verify(idx=idx, dnsfunc=_get_txt))
        except dkim.DKIMException:
            return False


def _get_txt(name: bytes, timeout: float = 5) -> bytes | None:
    try:
        answer = dns.resolver.resolve(name.decode(), "TXT", lifetime=timeout)
    except dns.exception.DNSException:
        return None
    return b"".join(b"".join(r.strings) for r in answer)


def opendkim_says(message: bytes, dns_server: DnsServer, directory: Path) -> str:
    """OpenDKIM's verdict line (``opendkim -t``) on the first signature it checks."""
    if not os.path.exists(OPENDKIM):
        pytest.skip("opendkim is not installed (apt-get install opendkim)")
    unbound = directory / "unbound.conf"
    unbound.write_text("server:\n  do-not-query-localhost: no\n"
                       f'forward-zone:\n  name: "."\n  forward-addr: 127.0.0.1@{dns_server.port}\n')
    conf = directory / "opendkim.conf"
    # pymta signs t= with its clock, which a test run may move (PYMTA_TEST_CLOCK_OFFSET);
    # OpenDKIM judges "t= in the future" by the real one, allowing ClockDrift seconds.
    drift = 300 + abs(int(float(os.environ.get("PYMTA_TEST_CLOCK_OFFSET", "0") or 0)))
    conf.write_text(f"ResolverConfiguration {unbound}\nSyslog no\nClockDrift {drift}\n")
    path = directory / "check.eml"
    path.write_bytes(message.replace(b"\n", b"\r\n"))
    r = subprocess.run([OPENDKIM, "-x", str(conf), "-t", str(path)], capture_output=True,
                       text=True, timeout=30)
    return (r.stdout + r.stderr).strip()


def _tamper_body(message: bytes) -> bytes:
    assert b"Some   spaces" in message
    return message.replace(b"Some   spaces", b"Some   places")


def test_rsa_and_ed25519_signatures_go_first_and_verify(pymta_daemon, sink, keys,
                                                       dns_server, tmp_path):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = rsa : ed
        dkim_private_key = {tmp_path}/$dkim_selector.key
        """)
    assert got is not None, d.diagnostics()
    # Both signatures come before everything, Received: included, in selector order.
    assert got.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; q=dns/txt; "
                          b"c=relaxed/relaxed;\n")
    heads = [line.split(b":")[0] for line in got.split(b"\n\n")[0].split(b"\n")
             if not line.startswith((b" ", b"\t"))]
    assert heads[:3] == [b"DKIM-Signature", b"DKIM-Signature", b"Received"]
    sigs = signature_fields(got)
    assert [(s[b"d"], s[b"s"], s[b"a"]) for s in sigs] == [
        (b"test.example", b"rsa", b"rsa-sha256"), (b"test.example", b"ed", b"ed25519-sha256")]
    # Exim's default list: the present headers from the bottom up, then the absent ones.
    assert sigs[0][b"h"].startswith(
        b"Date:Message-ID:Subject:To:From:Sender:Reply-To:Cc:MIME-Version:")
    assert b"t" not in sigs[0] and b"i" not in sigs[0]
    assert dkimpy_verifies(got, dns_server, 0)
    assert dkimpy_verifies(got, dns_server, 1)
    assert not dkimpy_verifies(_tamper_body(got), dns_server, 0)
    assert not dkimpy_verifies(_tamper_body(got), dns_server, 1)
    assert not dkimpy_verifies(got.replace(b"Subject: signed", b"Subject: Signed"),
                               dns_server, 1)
    # Signing leaves no line in the log, as with Exim.
    assert "DKIM" not in d.log()


@pytest.mark.parametrize("selector", ["rsa", "ed"])
@pytest.mark.parametrize("canon", ["relaxed", "simple"])
def test_opendkim_verifies(pymta_daemon, sink, keys, dns_server, tmp_path, selector,
                           canon):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = {selector}
        dkim_private_key = {tmp_path}/{selector}.key
        dkim_canon = {canon}
        dkim_timestamps = 3600
        dkim_identity = postmaster@test.example
        """)
    assert got is not None, d.diagnostics()
    verdict = opendkim_says(got, dns_server, tmp_path)
    assert re.search(rf"verification \(s={selector}, d=test\.example, \d+-bit key\) "
                     r"succeeded", verdict), verdict
    verdict = opendkim_says(_tamper_body(got), dns_server, tmp_path)
    assert "verification" in verdict and "failed" in verdict, verdict
    assert dkimpy_verifies(got, dns_server)
    sig = signature_fields(got)[0]
    assert sig[b"c"] == f"{canon}/{canon}".encode()
    assert sig[b"i"] == b"postmaster@test.example"
    assert int(sig[b"x"]) - int(sig[b"t"]) == 3600


def test_several_domains_and_selectors(pymta_daemon, sink, keys, dns_server, tmp_path):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = Test.Example : other.example
        dkim_selector = rsa : ed
        dkim_private_key = {tmp_path}/$dkim_selector.key
        dkim_identity = @$dkim_domain
        """)
    assert got is not None, d.diagnostics()
    sigs = signature_fields(got)
    # Each domain in turn (lowercased), each selector in turn, as exim4 writes them.
    assert [(s[b"d"], s[b"s"], s[b"i"]) for s in sigs] == [
        (b"test.example", b"rsa", b"@test.example"), (b"test.example", b"ed", b"@test.example"),
        (b"other.example", b"rsa", b"@other.example"),
        (b"other.example", b"ed", b"@other.example")]
    for i in range(4):
        assert dkimpy_verifies(got, dns_server, i), i
        assert not dkimpy_verifies(_tamper_body(got), dns_server, i), i


def test_oversigned_headers(pymta_daemon, sink, keys, dns_server, tmp_path):
    message = MESSAGE.replace(b"\r\n\r\n", b"\r\nX-Tag: one\r\nX-Tag: two\r\n\r\n", 1)
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = rsa
        dkim_private_key = {tmp_path}/rsa.key
        dkim_sign_headers = From : +Subject : =X-Tag : =Reply-To : To : To
        """, message)
    assert got is not None, d.diagnostics()
    h = signature_fields(got)[0][b"h"]
    # "=" signs each present instance (none for a missing Reply-To), "+" one more, a
    # plain name that is listed twice one instance and one absent.
    assert h == b"X-Tag:X-Tag:Subject:To:From:Subject:To"
    assert dkimpy_verifies(got, dns_server)
    # Verifiers take instances from the bottom up, and headers are added at the top.
    # A second Subject or To breaks it (signed as absent); another X-Tag does not (only
    # present ones were signed), nor a header that is not listed.
    assert not dkimpy_verifies(b"Subject: another\n" + got, dns_server)
    assert not dkimpy_verifies(b"To: another@example.net\n" + got, dns_server)
    assert dkimpy_verifies(b"X-Tag: three\n" + got, dns_server)
    assert dkimpy_verifies(b"Reply-To: added@example.net\n" + got, dns_server)
    assert dkimpy_verifies(b"X-Other: added\n" + got, dns_server)
    assert not dkimpy_verifies(got.replace(b"X-Tag: one", b"X-Tag: 1"), dns_server)


def test_oversign_macro(pymta_daemon, sink, keys, dns_server, tmp_path):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = ed
        dkim_private_key = {tmp_path}/ed.key
        dkim_sign_headers = _DKIM_OVERSIGN_HEADERS
        """)
    assert got is not None, d.diagnostics()
    h = signature_fields(got)[0][b"h"].split(b":")
    # the five present fields, then each of the 28 names once more
    assert h[:5] == [b"Date", b"Message-ID", b"Subject", b"To", b"From"]
    assert h[5:7] == [b"From", b"Sender"] and len(h) == 33
    assert dkimpy_verifies(got, dns_server)
    assert not dkimpy_verifies(b"From: another@example.net\n" + got, dns_server)
    assert not dkimpy_verifies(b"Reply-To: another@example.net\n" + got, dns_server)


def test_hash_choices(pymta_daemon, sink, keys, dns_server, tmp_path):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = rsa
        dkim_private_key = {tmp_path}/rsa.key
        dkim_hash = ${{if eq{{$dkim_selector}}{{rsa}}{{sha1}}{{sha256}}}}
        """)
    assert got is not None, d.diagnostics()
    assert signature_fields(got)[0][b"a"] == b"rsa-sha1"
    assert dkimpy_verifies(got, dns_server)


def test_inline_key_and_no_signing_values(pymta_daemon, sink, keys, dns_server, tmp_path):
    # The key itself as the option's value (here from a file read by the expansion).
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = ed
        dkim_private_key = ${{readfile{{{tmp_path}/ed.key}}}}
        """)
    assert got is not None, d.diagnostics()
    assert dkimpy_verifies(got, dns_server)


@pytest.mark.parametrize("value", ["0", "false", "${if eq{1}{2}{x}}"])
def test_private_key_saying_no(pymta_daemon, sink, tmp_path, value):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = rsa
        dkim_private_key = {value}
        dkim_strict = true
        """)
    assert got is not None, d.diagnostics()
    assert b"DKIM-Signature" not in got
    assert "DKIM" not in d.log()


def test_empty_domain_or_selector_is_no_signing(pymta_daemon, sink, keys, tmp_path):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = ${{if eq{{$sender_address_domain}}{{elsewhere}}{{test.example}}}}
        dkim_selector = rsa
        dkim_private_key = {tmp_path}/rsa.key
        dkim_strict = true
        """)
    assert got is not None and b"DKIM-Signature" not in got, d.diagnostics()


@pytest.fixture
def garbage_key(tmp_path) -> Path:
    path = tmp_path / "garbage.key"
    path.write_text("this is not a key\n")
    os.chmod(path, 0o644)
    return path


def test_garbage_key_sends_unsigned_and_logs(pymta_daemon, sink, garbage_key):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = rsa
        dkim_private_key = {garbage_key}
        """)
    assert got is not None and b"DKIM-Signature" not in got, d.diagnostics()
    d.wait_for_log(r"DKIM: signing failed: d=test\.example s=rsa: private key not usable", 5)
    d.wait_for_log(r"=> user@remote\.example", 5)


def test_garbage_key_with_dkim_strict_defers(pymta_daemon, sink, garbage_key):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = rsa
        dkim_private_key = {garbage_key}
        dkim_strict = ${{if eq{{$dkim_selector}}{{rsa}}{{true}}{{false}}}}
        """)
    assert got is None
    d.wait_for_log(r"DKIM: message could not be signed, and dkim_strict is set\. "
                   r"Deferring message delivery\.", 5)
    d.wait_for_log(r"== user@remote\.example R=remote T=remote_smtp defer \(-1\): DKIM: "
                   r"message could not be signed, and dkim_strict is set: d=test\.example "
                   r"s=rsa: private key not usable", 5)
    assert wait_for(lambda: len(d.queue()) == 1, 5), d.diagnostics()


def test_missing_key_file_with_dkim_strict_defers(pymta_daemon, sink, tmp_path):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = rsa
        dkim_private_key = {tmp_path}/nonexistent.key
        dkim_strict = 1
        """)
    assert got is None
    d.wait_for_log(rf"DKIM: signing failed: d=test\.example s=rsa: unable to open file for "
                   rf"reading: {re.escape(str(tmp_path))}/nonexistent\.key: No such file", 5)


@pytest.mark.parametrize("selector", ["bad;selector", "-bad", "bad..sel"])
def test_bad_selector(pymta_daemon, sink, keys, tmp_path, selector):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = {selector}
        dkim_private_key = {tmp_path}/rsa.key
        """)
    assert got is not None and b"DKIM-Signature" not in got, d.diagnostics()
    d.wait_for_log(rf"DKIM: signing failed: d=test\.example s={re.escape(selector)}: "
                   r"bad selector", 5)


def test_bad_hash_or_canon(pymta_daemon, sink, keys, tmp_path):
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = test.example
        dkim_selector = rsa
        dkim_private_key = {tmp_path}/rsa.key
        dkim_hash = md5
        """)
    assert got is not None and b"DKIM-Signature" not in got, d.diagnostics()
    d.wait_for_log(r'DKIM: signing failed: d=test\.example s=rsa: unknown hash "md5"', 5)


@pytest.mark.parametrize("driver", ["appendfile\n  file = /tmp/x", "lmtp\n  socket = /tmp/s",
                                    "pipe\n  command = /bin/cat",
                                    "autoreply\n  to = x@y.example"])
def test_only_the_smtp_transport_signs(tmp_path, driver):
    # exim4 4.96 refuses dkim_* options on every other transport.
    conf = tmp_path / "other.conf"
    conf.write_text(f"spool_directory = {tmp_path}/spool\nbegin transports\n"
                    f"t:\n  driver = {driver}\n  dkim_domain = test.example\n")
    r = run_pymta(["-bV"], conf)
    assert r.returncode != 0
    assert 'line 6: option "dkim_domain" unknown' in r.stderr
    conf.write_text(f"spool_directory = {tmp_path}/spool\nbegin transports\n"
                    f"t:\n  driver = smtp\n  dkim_domain = test.example\n")
    assert run_pymta(["-bV"], conf).returncode == 0


def test_signed_message_over_bdat_with_headers_add(pymta_daemon, sink_port, keys,
                                                   dns_server, tmp_path):
    """The signature covers what goes out: headers_add lines included, and the sizes
    BDAT announces count the signature."""
    with SmtpSink(port=sink_port, chunking=True) as sink:
        d, got = relay(pymta_daemon, sink, f"""
            dkim_domain = test.example
            dkim_selector = rsa
            dkim_private_key = {tmp_path}/rsa.key
            dkim_sign_headers = From : X-Added
            headers_add = X-Added: by the transport
            """)
        assert got is not None, d.diagnostics()
        assert sink.messages[0].bdat_chunks, "not sent with BDAT"
    assert b"\nX-Added: by the transport\n" in got
    assert signature_fields(got)[0][b"h"] == b"X-Added:From"
    assert dkimpy_verifies(got, dns_server)
    assert not dkimpy_verifies(got.replace(b"by the transport", b"by someone else"),
                               dns_server)


def test_key_file_named_from_message_data_is_refused(pymta_daemon, sink, keys, dns_server,
                                                     tmp_path):
    (tmp_path / "keys").mkdir()
    shutil.copy(tmp_path / "rsa.key", tmp_path / "keys" / "test.example")
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = ${{domain:$h_from:}}
        dkim_selector = rsa
        dkim_private_key = {tmp_path}/keys/$dkim_domain
        """)
    assert got is not None and b"DKIM-Signature" not in got, d.diagnostics()
    d.wait_for_log(r"DKIM: signing failed: d=test\.example s=rsa: Tainted filename "
                   rf"'{re.escape(str(tmp_path))}/keys/test\.example' for dkim_private_key "
                   r"not permitted", 5)


def test_key_file_found_with_dsearch(pymta_daemon, sink, keys, dns_server, tmp_path):
    (tmp_path / "keys").mkdir()
    shutil.copy(tmp_path / "rsa.key", tmp_path / "keys" / "test.example")
    d, got = relay(pymta_daemon, sink, f"""
        dkim_domain = ${{lookup{{${{domain:$h_from:}}}}dsearch{{{tmp_path}/keys}}}}
        dkim_selector = rsa
        dkim_private_key = {tmp_path}/keys/$dkim_domain
        """)
    assert got is not None, d.diagnostics()
    assert signature_fields(got)[0][b"d"] == b"test.example"
    assert dkimpy_verifies(got, dns_server)


def test_no_cutthrough_for_a_signing_transport(pymta_daemon, sink, keys, dns_server,
                                               tmp_path):
    # As in Exim: the signature needs the whole message before the header goes out.
    config = signing_config(f"""
        dkim_domain = test.example
        dkim_selector = rsa
        dkim_private_key = {tmp_path}/rsa.key
        """)
    config = config.replace("  accept  domains = remote.example\n",
                            "  accept  domains = remote.example\n"
                            "          control = cutthrough_delivery\n")
    assert "cutthrough_delivery" in config
    d = pymta_daemon(config=config)
    assert send(d, "sender@test.example", ["user@remote.example"], MESSAGE)[0] == 250
    d.wait_for_log(r"=> user@remote\.example R=remote T=remote_smtp", 15)
    assert ">>" not in d.log()
    assert sink.wait_for(1, 5)
    assert dkimpy_verifies(sink.messages[0].data.replace(b"\r\n", b"\n"), dns_server)
