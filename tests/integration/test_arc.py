"""ARC (issue 11; Exim 4.96's experimental ARC support): ``verify = arc`` in the DATA ACL
of a running daemon, and the smtp transport's ``arc_sign``.

Keys are made here; their public halves are TXT records of the loopback DNS server.
Chains to verify are made with dkimpy's ``arc_sign`` in this process; the ARC sets
pymta's transport adds are checked with dkimpy's ``arc_verify``.  Debian's exim4 is
built without ARC, so the expectations come from Exim's documentation.
"""
from __future__ import annotations

import base64
import os
import re

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pymta.arc.verify import evaluate
from tests.integration.conftest import BASE_CONFIG
from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.ports import free_port
from tests.support.sink import SmtpSink

MESSAGE = (b"From: sender@origin.example\r\nTo: user@test.example\r\n"
           b"Subject: a forwarded message\r\nMessage-ID: <arc1@origin.example>\r\n"
           b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n"
           b"Hello.  Some   spaces \t here.\r\n..leading dot\r\n\r\n")

VERIFY_CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data
begin acl
acl_rcpt:
  accept
acl_data:
{acl}
  accept
"""

ARC_VARS = ("ARC state=[$arc_state] reason=[$arc_state_reason] domains=[$arc_domains] "
            "oldest=[$arc_oldest_pass]")
LOG_ARC = "  warn logwrite = " + ARC_VARS


def deny_unless(states: str) -> str:
    """A DATA ACL that refuses a message whose ARC state is not in ``states`` ("":
    verify = arc's default) and logs the $arc_* variables either way."""
    cond = f"arc/{states}" if states else "arc"
    return (f"  deny !verify = {cond}\n       logwrite = {ARC_VARS}\n"
            f"       message = ARC $arc_state\n{LOG_ARC}")


def _txt(text: str) -> str:
    return " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def pem(rsa_key) -> bytes:
    return rsa_key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())


@pytest.fixture(scope="module")
def dns_server(rsa_key):
    pub = base64.b64encode(rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    zone = f"sel._domainkey IN TXT {_txt('v=DKIM1; k=rsa; p=' + pub)}\n"
    zones = {"forwarder.example": zone, "list.example": zone, "relay.example": zone}
    with DnsServer(zones, servfail=["sel._domainkey.broken.example"]) as server:
        yield server


def _dns_txt(server: DnsServer):
    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = server.resolver().resolve(name.decode(), "TXT")
        except Exception:  # noqa: BLE001 - no record
            return None
        return b"".join(b"".join(r.strings) for r in answer)
    return lookup


def add_arc_set(message: bytes, pem: bytes, domain: str, results: str) -> bytes:
    """``message`` with an Authentication-Results field for ``domain`` and the next ARC
    set dkimpy makes for it in front."""
    message = f"Authentication-Results: {domain}; {results}\r\n".encode() + message
    fields = dkim.arc_sign(message, b"sel", domain.encode(), pem, domain.encode())
    assert fields, "dkimpy made no ARC set"
    return b"".join(fields) + message


def _verify_daemon(tmp_path, dns_server, acl: str) -> PymtaDaemon:
    return PymtaDaemon(VERIFY_CONFIG.format(acl=acl), tmp_path, args=["-odq"],
                       env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})


def _send(d: PymtaDaemon, message: bytes) -> tuple[int, str]:
    c = d.client()
    c.banner()
    reply = c.send_message("sender@origin.example", "user@test.example", message)
    c.quit()
    return reply


def _arc_log(d: PymtaDaemon) -> str:
    return d.wait_for_log(r"ARC state=")[-1].split("ARC ", 1)[1]


DENY_FAIL = deny_unless("")


def test_verify_arc_pass(tmp_path, dns_server, pem):
    one = add_arc_set(MESSAGE, pem, "forwarder.example", "spf=pass smtp.mailfrom=origin.example")
    two = add_arc_set(one, pem, "list.example", "arc=pass")
    # dkimpy agrees the chain is good before pymta sees it
    assert dkim.arc_verify(two, dnsfunc=_dns_txt(dns_server))[0] == dkim.CV_Pass
    acl = ("  warn logwrite = before verify [$arc_state]\n"
           "  warn !verify = arc/pass\n       logwrite = not pass\n" + LOG_ARC)
    with _verify_daemon(tmp_path, dns_server, acl) as d:
        c = d.client()
        c.banner()
        assert c.send_message("sender@origin.example", "user@test.example", one)[0] == 250
        assert _arc_log(d) == ("state=[pass] reason=[] domains=[forwarder.example] "
                               "oldest=[1]")
        # The next message of the session starts without an ARC state.
        assert c.send_message("sender@origin.example", "user@test.example", two)[0] == 250
        c.quit()
        d.wait_for_log(r"ARC state=.*list", name="main")
        assert _arc_log(d) == ("state=[pass] reason=[] "
                               "domains=[forwarder.example:list.example] oldest=[1]")
        assert d.log().count("before verify []") == 2
        assert "not pass" not in d.log()
        assert len(d.queue()) == 2


def test_verify_arc_none(tmp_path, dns_server):
    # Without a chain the state is "none": the default list (none:pass) accepts it,
    # "arc/pass" does not.
    with _verify_daemon(tmp_path, dns_server, deny_unless("pass")) as d:
        assert _send(d, MESSAGE) == (550, "ARC none")
        assert _arc_log(d) == "state=[none] reason=[] domains=[] oldest=[0]"
    with _verify_daemon(tmp_path / "default", dns_server, DENY_FAIL) as d:
        assert _send(d, MESSAGE)[0] == 250
        assert _arc_log(d) == "state=[none] reason=[] domains=[] oldest=[0]"


@pytest.mark.parametrize("change,reason,oldest", [
    # the body changed after the last signer
    (lambda m: m.replace(b"Some   spaces", b"Some   places"), "AMS body hash miscompare", 0),
    # a signed header changed
    (lambda m: m.replace(b"Subject: a forwarded", b"Subject: A forwarded"),
     "AMS sig nonverify", 0),
    # the newest seal is gone
    (lambda m: re.sub(rb"^ARC-Seal: i=2;.*?\r\n(?=\S)", b"", m, count=1,
                      flags=re.S | re.M), "i=2 (missing header)", 0),
    # the first set is gone: instances do not start at 1
    (lambda m: re.sub(rb"^ARC-[A-Za-z-]+: i=1;.*?\r\n(?=\S)", b"", m,
                      flags=re.S | re.M), "(sequence; expected i=1)", 0),
])
def test_verify_arc_fail(tmp_path, dns_server, pem, change, reason, oldest):
    one = add_arc_set(MESSAGE, pem, "forwarder.example", "spf=pass smtp.mailfrom=origin.example")
    two = add_arc_set(one, pem, "list.example", "arc=pass")
    bad = change(two)
    assert bad != two
    with _verify_daemon(tmp_path, dns_server, DENY_FAIL) as d:
        assert _send(d, bad) == (550, "ARC fail")
        got = _arc_log(d)
        assert got.startswith(f"state=[fail] reason=[{reason}] "), got
        assert got.endswith(f"oldest=[{oldest}]"), got
        assert d.queue() == []


def test_verify_arc_dns_failure_and_broken_seal(tmp_path, dns_server, pem):
    broken = add_arc_set(MESSAGE, pem, "broken.example", "spf=pass")
    one = add_arc_set(MESSAGE, pem, "forwarder.example", "spf=pass")
    # the seal's signature no longer matches (a tag was added), the AMS still does
    reseal = one.replace(b"ARC-Seal: i=1;", b"ARC-Seal: i=1; n=1;", 1)
    assert reseal != one
    with _verify_daemon(tmp_path, dns_server, DENY_FAIL) as d:
        assert _send(d, broken) == (550, "ARC fail")
        assert _arc_log(d) == ("state=[fail] reason=[pubkey problem] "
                               "domains=[broken.example] oldest=[0]")
        assert _send(d, reseal) == (550, "ARC fail")
        d.wait_for_log(r"ARC state=.*seal")
        assert _arc_log(d) == ("state=[fail] reason=[seal sigverify error] "
                               "domains=[forwarder.example] oldest=[1]")


# ---------------------------------------------------------------- arc_sign
def _sign_config(transport_options: str) -> str:
    """BASE_CONFIG relaying to the sink, with a DATA ACL that evaluates the chain and
    adds the Authentication-Results field of ADMD relay.example (as Exim's
    documentation shows, with ${authresults}), and these options
    on the smtp transport."""
    config = BASE_CONFIG.replace("log_file_path = SPOOL/log/%slog\n",
                                 "log_file_path = SPOOL/log/%slog\n"
                                 "acl_smtp_data = acl_check_data\n")
    config = config.replace("begin acl\n", "begin acl\n\nacl_check_data:\n"
                            "  warn  verify = arc/none:pass:fail\n"
                            "  warn  add_header = :at_start:${authresults{relay.example}}\n"
                            "  accept\n")
    lines = "".join(f"  {line.strip()}\n" for line in transport_options.strip().splitlines())
    config = config.replace("  allow_localhost\n", "  allow_localhost\n" + lines, 1)
    assert lines in config and "acl_check_data:" in config
    return config


@pytest.fixture
def key_file(tmp_path, pem):
    path = tmp_path / "arc.key"
    path.write_bytes(pem)
    os.chmod(path, 0o644)   # the delivery may run as another user
    return path


def _relay(tmp_path, dns_server, options: str, message: bytes) -> tuple[PymtaDaemon, bytes | None]:
    """Relay ``message`` through a daemon signing with ``options``; the daemon and what
    the sink got (CRLF line ends), or None."""
    port = free_port()
    with SmtpSink(port=port) as sink:
        d = PymtaDaemon(_sign_config(options), tmp_path, macros={"SINK_PORT": str(port)},
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"})
        with d:
            c = d.client()
            c.banner()
            assert c.send_message("sender@origin.example", "user@remote.example",
                                  message)[0] == 250
            c.quit()
            d.wait_for_log(r"(=>|==|\*\*) user@remote\.example", 15)
            got = sink.messages[0].data if sink.wait_for(1, 2) else None
    return d, got


def _heads(message: bytes) -> list[bytes]:
    head = message.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":")[0] for line in head.split(b"\r\n")
            if not line.startswith((b" ", b"\t"))]


def _tags(message: bytes, name: bytes) -> dict[bytes, bytes]:
    d = dkim.DKIM(message)
    value = [v for n, v in d.headers if n.lower() == name.lower()][0]
    return {k: re.sub(rb"\s+", b"", v) for k, v in dkim.util.parse_tag_value(value).items()}


def test_arc_sign_instance_1_with_dkim(tmp_path, dns_server, key_file):
    d, got = _relay(tmp_path, dns_server, f"""
        arc_sign = relay.example : sel : {key_file} : timestamps,expire=+3600
        dkim_domain = relay.example
        dkim_selector = sel
        dkim_private_key = {key_file}
        """, MESSAGE)
    assert got is not None, d.diagnostics()
    # The ARC set first, then the DKIM signature (which the AMS covers), then the
    # header as received (the ACL put its Authentication-Results at the start).
    assert _heads(got)[:6] == [b"ARC-Seal", b"ARC-Message-Signature",
                               b"ARC-Authentication-Results", b"DKIM-Signature",
                               b"Authentication-Results", b"Received"]
    cv, results, reason = dkim.arc_verify(got, dnsfunc=_dns_txt(dns_server))
    assert (cv, reason) == (dkim.CV_Pass, "success"), results
    assert dkim.verify(got, dnsfunc=_dns_txt(dns_server))
    seal, ams = _tags(got, b"ARC-Seal"), _tags(got, b"ARC-Message-Signature")
    assert (seal[b"i"], seal[b"cv"], seal[b"d"], seal[b"s"]) == (
        b"1", b"none", b"relay.example", b"sel")
    assert b"t" in seal and b"x" not in seal
    assert int(ams[b"x"]) == int(ams[b"t"]) + 3600
    assert ams[b"h"].split(b":")[-1] == b"DKIM-Signature"    # bottom-up: it is on top
    aar = re.search(rb"ARC-Authentication-Results: (.*?)\r\n(?=\S)", got, re.S).group(1)
    assert re.sub(rb"\s+", b" ", aar) == b"i=1; relay.example; arc=none"
    # A changed body no longer verifies.
    bad = got.replace(b"Some   spaces", b"Some   places")
    assert dkim.arc_verify(bad, dnsfunc=_dns_txt(dns_server))[0] == dkim.CV_Fail
    assert "ARC" not in d.log()


def test_arc_sign_instance_2(tmp_path, dns_server, pem, key_file):
    one = add_arc_set(MESSAGE, pem, "forwarder.example", "spf=pass smtp.mailfrom=origin.example")
    d, got = _relay(tmp_path, dns_server, f"arc_sign = relay.example : sel : {key_file}", one)
    assert got is not None, d.diagnostics()
    cv, results, reason = dkim.arc_verify(got, dnsfunc=_dns_txt(dns_server))
    assert (cv, reason) == (dkim.CV_Pass, "success"), results
    assert [r["instance"] for r in results] == [2, 1]
    seal = _tags(got, b"ARC-Seal")
    assert (seal[b"i"], seal[b"cv"], seal[b"d"]) == (b"2", b"pass", b"relay.example")
    assert b"t" not in seal and b"x" not in _tags(got, b"ARC-Message-Signature")
    # The ARC result of "verify = arc" came through ${authresults} into the AAR.
    aar = re.search(rb"ARC-Authentication-Results: i=2;(.*?)\r\n(?=\S)", got, re.S).group(1)
    assert re.sub(rb"\s+", b" ", aar) == (b" relay.example; arc=pass (i=1) header.s=sel "
                                          b"arc.oldest-pass=1 smtp.remote-ip=127.0.0.1")
    # pymta's own verify agrees
    assert evaluate(got, _dns_txt(dns_server)).state == "pass"


@pytest.mark.parametrize("spec,log", [
    # no Authentication-Results for this ADMD: logged, sent without ARC
    ("other.example : sel : KEY", "ARC: no Authentication-Results header for signing"),
    ("relay.example : : KEY", "ARC: bad signing-specification (selector)"),
    ("relay.example : sel : /nonexistent/key", "ARC: unable to open file for reading"),
    # empty expansion and forced failure: not signing, nothing logged
    ("${if eq{1}{2}{x}}", None),
    ("${if eq{1}{2}{x}fail}", None),
])
def test_arc_sign_not_signed(tmp_path, dns_server, key_file, spec, log):
    d, got = _relay(tmp_path, dns_server, "arc_sign = " + spec.replace("KEY", str(key_file)),
                    MESSAGE)
    assert got is not None, d.diagnostics()
    assert b"ARC-" not in got
    if log is None:
        assert "ARC" not in d.log()
    else:
        assert log in d.log()


def test_arc_sign_expansion_failure_defers(tmp_path, dns_server):
    d, got = _relay(tmp_path, dns_server,
                    "arc_sign = ${lookup{x}lsearch{/nonexistent/arc}}", MESSAGE)
    assert got is None
    line = d.wait_for_log(r"== user@remote\.example")[0]
    assert "failed to expand arc_sign" in line, line


def test_arc_sign_transport_is_not_used_for_cutthrough(pymta_daemon, sink_port):
    # Any arc_sign value, even one that expands to nothing, turns cutthrough off (as
    # in Exim): the message is queued, nothing reaches the sink before the 250.
    config = BASE_CONFIG.replace(
        "acl_check_rcpt:\n", "acl_check_rcpt:\n  accept  domains = remote.example\n"
        "          control = cutthrough_delivery\n")
    config = config.replace("  allow_localhost\n",
                            "  allow_localhost\n  arc_sign = ${if eq{1}{2}{x}}\n", 1)
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config="queue_only\n" + config)
        c = d.client()
        c.banner()
        assert c.send_message("a@outside.example", "user@remote.example", MESSAGE)[0] == 250
        c.quit()
        assert sink.messages == []
        assert len(d.queue()) == 1
        assert ">>" not in d.log()
