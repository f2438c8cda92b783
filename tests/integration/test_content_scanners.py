"""The spam and malware ACL conditions against the real scanners: SpamAssassin's spamd
(GTUBE) and ClamAV's clamd (EICAR, with a signature database the test writes), each over
TCP and over a Unix socket; the cmdline and sock scanner types; a scanner that is down,
one that never answers and one that answers nonsense (the other daemon's protocol);
per-message caching; the spam variables at delivery time.

Each scanner is started once for this module on an ephemeral port and a private Unix
socket (tests/support/scanners.py); a scanner that cannot start makes its tests skip.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pymta.clock import SYSTEM
from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import run_pymta
from tests.support.exim import EXIM, exim_or_skip
from tests.support.ports import free_port
from tests.support.scanners import (
    EICAR,
    EICAR_NAME,
    GTUBE,
    SilentScanner,
    start_clamd,
    start_spamd,
)


@pytest.fixture(scope="module")
def spamd():
    scanner = start_spamd()
    yield scanner
    scanner.stop()


@pytest.fixture(scope="module")
def clamd():
    scanner = start_clamd()
    yield scanner
    scanner.stop()


@pytest.fixture
def silent():
    with SilentScanner() as scanner:
        yield scanner


def _config(main: str, data_acl: str, transport_extra: str = "") -> str:
    conf = BASE_CONFIG.replace(
        "acl_smtp_rcpt = acl_check_rcpt\n",
        "acl_smtp_rcpt = acl_check_rcpt\nacl_smtp_data = acl_data\n" + main + "\n")
    conf = conf.replace("begin acl\n", "begin acl\n\nacl_data:\n" + data_acl + "\n")
    if transport_extra:
        conf = conf.replace("  maildir_format\n", "  maildir_format\n" + transport_extra)
    return conf


def _message(body: bytes, subject: str = "test") -> bytes:
    return (f"From: a@remote.example\r\nTo: alice@test.example\r\nSubject: {subject}\r\n"
            f"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@remote>\r\n"
            "\r\n").encode() + body + b"\r\n"


def _attachment(content: bytes) -> bytes:
    return (b"From: a@remote.example\r\nTo: alice@test.example\r\nSubject: files\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
            b"--XX\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            b"--XX\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=\"t.com\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(content) + b"\r\n--XX--\r\n")


def _send(d, data: bytes) -> tuple[int, str]:
    with d.client(timeout=30) as c:
        reply = c.send_message("a@remote.example", "alice@test.example", data)
        c.quit()
    return reply


def _count(path: Path, pattern: str) -> int:
    return len(re.findall(pattern, path.read_text(errors="replace")))


# ------------------------------------------------------------------------------ spam
SPAM_ACL = """\
  warn    spam = nobody:true
          add_header = X-Spam-Score: $spam_score ($spam_bar) $spam_score_int $spam_action
  deny    spam = nobody
          message = spam: $spam_score points
          log_message = spam $spam_score_int via $callout_address
  accept
"""


def test_spam_over_tcp_gtube_and_clean(pymta_daemon, tmp_path, spamd):
    """GTUBE is refused with spamd's score; a clean message is delivered with the
    score header; the two spam conditions of one message scan once (spamd's log); the
    spooled $spam_score is there at delivery time."""
    d = pymta_daemon(config=_config(
        f"spamd_address = 127.0.0.1 {spamd.port}", SPAM_ACL,
        "  headers_add = X-Delivery-Spam: $spam_score $spam_score_int $spam_bar\n"))
    spamd_log = Path(spamd.directory, "spamd.log")
    before = _count(spamd_log, r"spamd: (identified spam|clean message)")
    code, text = _send(d, _message(GTUBE, "gtube"))
    assert code == 550 and re.fullmatch(r"spam: 10\d\d\.\d points", text), (code, text)
    d.wait_for_log(rf"rejected after DATA: spam 10\d\d\d via \[127\.0\.0\.1\]:{spamd.port}",
                   name="reject")
    assert wait_for(lambda: _count(spamd_log, r"spamd: identified spam") > 0)
    assert _send(d, _message(b"Hello Alice, the minutes of today's meeting follow.",
                             "minutes"))[0] == 250
    msgs = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    assert len(msgs) == 1
    head = msgs[0].split(b"\n\n", 1)[0].decode()
    m = re.search(r"X-Spam-Score: (-?\d+\.\d) \((\S+)\) (-?\d+) (.*)", head)
    assert m, head
    score = float(m.group(1))
    assert score < 5 and m.group(4) == "no action"
    assert m.group(2) == ("/" if abs(int(score)) == 0 else
                          ("+" if score > 0 else "-") * abs(int(score)))
    # what was spooled with the message is what the transport sees
    assert f"X-Delivery-Spam: {m.group(1)} {m.group(3)} {m.group(2)}" in head
    # two messages, two conditions each: spamd was asked twice
    wait_for(lambda: _count(spamd_log, r"spamd: (identified spam|clean message)")
             >= before + 2)
    time.sleep(0.5)
    assert _count(spamd_log, r"spamd: (identified spam|clean message)") == before + 2


def test_spam_over_unix_socket_after_a_dead_server(pymta_daemon, spamd):
    """Servers are tried by priority: the dead one first (logged), then the Unix
    socket; $spam_bar is at most 51 characters, $spam_action "reject"."""
    dead = free_port()
    acl = """\
  warn    spam = nobody:true
          logwrite = S=$spam_score I=$spam_score_int B=$spam_bar A=$spam_action C=$callout_address
  accept
"""
    d = pymta_daemon(config=_config(
        f"spamd_address = 127.0.0.1 {dead} pri=9 : {spamd.path}", acl))
    assert _send(d, _message(GTUBE, "gtube"))[0] == 250
    d.wait_for_log(r"spam acl condition: spamd: failed to connect to any address for "
                   r"127\.0\.0\.1: Connection refused")
    line = d.wait_for_log(r"S=\d+\.\d I=\d+ B=\S+ A=reject C=" + re.escape(spamd.path))
    text = line if isinstance(line, str) else "\n".join(line)
    bar = re.search(r"B=(\S+)", text).group(1)
    assert bar == "+" * 51


def test_spam_scanner_down_defers_unless_defer_ok(pymta_daemon, tmp_path):
    dead = free_port()
    acl = """\
  deny    spam = nobody/defer_ok
          message = spam
  deny    condition = ${if eq{$h_subject:}{strict}}
          spam = nobody
  accept
"""
    d = pymta_daemon(config=_config(f"spamd_address = 127.0.0.1 {dead}", acl))
    assert _send(d, _message(GTUBE, "lenient"))[0] == 250
    assert _send(d, _message(GTUBE, "strict")) == (
        451, "Temporary local problem - please try later")
    d.wait_for_log(r"spam acl condition: all spamd servers failed")
    d.wait_for_log(r"F=<a@remote\.example> temporarily rejected after DATA$")
    assert len(wait_for(lambda: maildir_messages(tmp_path, "alice"))) == 1


def test_spam_timeout_and_malformed_answer(pymta_daemon, silent, clamd):
    """A spamd that never answers: the condition defers after tmo; one that answers
    in another protocol (clamd's port): a clear log line and a defer."""
    acl = "  deny spam = nobody\n  accept\n"
    d = pymta_daemon(config=_config(f"spamd_address = 127.0.0.1 {silent.port} tmo=2s",
                                    acl))
    start = time.monotonic()
    assert _send(d, _message(b"hello"))[0] == 451
    assert 1.5 < time.monotonic() - start < 20
    d.wait_for_log(rf"spam acl condition: error reading from spamd \[127\.0\.0\.1\]:"
                   rf"{silent.port}, socket: Connection timed out")
    d.stop()
    d = pymta_daemon(config=_config(f"spamd_address = 127.0.0.1 {clamd.port}", acl))
    assert _send(d, _message(b"hello"))[0] == 451
    d.wait_for_log(rf"spam acl condition: cannot parse spamd \[127\.0\.0\.1\]:"
                   rf"{clamd.port} output")


def test_spam_rspamd_variant_refused(pymta_daemon, tmp_path, spamd):
    """Written in the configuration, variant=rspamd stops it from loading; from an
    expansion, it makes the condition defer."""
    acl = "  deny spam = nobody\n  accept\n"
    conf = tmp_path / "rspamd.conf"
    conf.write_text(_config(f"spamd_address = 127.0.0.1 {spamd.port} variant=rspamd", acl)
                    .replace("SPOOL", str(tmp_path / "spool")).replace("DIR", str(tmp_path)))
    out = run_pymta(["-bV"], conf)
    assert out.returncode == 1 and re.search(
        r'line \d+: "variant=rspamd" in spamd_address is not supported', out.stderr), out
    d = pymta_daemon(config=_config(
        "spamd_address = ${if eq{a}{a}{127.0.0.1 " + str(spamd.port) + " variant=rspamd}}",
        acl))
    assert _send(d, _message(b"hello"))[0] == 451
    d.wait_for_log(r"spam acl condition: spamd_address: variant=rspamd is not supported")


# --------------------------------------------------------------------------- malware
MALWARE_ACL = """\
  warn    malware = *
          logwrite = first check: $malware_name
  deny    malware = *
          message = malware found: $malware_name
  accept
"""


@pytest.mark.parametrize("mode", ["tcp", "unix"])
def test_malware_clamd(pymta_daemon, tmp_path, clamd, mode):
    """EICAR in an attachment is found (zINSTREAM over TCP, SCAN over the Unix
    socket), once per message (clamd's log); a clean message passes."""
    where = f"127.0.0.1 {clamd.port}" if mode == "tcp" else clamd.path
    d = pymta_daemon(config=_config(f"av_scanner = clamd:{where}", MALWARE_ACL))
    clamd_log = Path(clamd.directory, "clamd.log")
    before = _count(clamd_log, "FOUND")
    assert _send(d, _attachment(EICAR)) == (550, f"malware found: {EICAR_NAME}")
    d.wait_for_log(rf"first check: {re.escape(EICAR_NAME)}")
    assert wait_for(lambda: _count(clamd_log, "FOUND") > before)
    time.sleep(0.5)
    assert _count(clamd_log, "FOUND") == before + 1       # asked once for both checks
    if mode == "unix":
        assert re.search(r"/scan/[^/]+/[^/]+\.eml: Pymta-Test-EICAR", clamd_log.read_text())
    assert _send(d, _attachment(b"just a harmless file\n"))[0] == 250
    assert len(wait_for(lambda: maildir_messages(tmp_path, "alice"))) == 1
    assert not list((tmp_path / "spool" / "scan").glob("*/*.eml"))   # removed afterwards


def test_malware_regex_and_false(pymta_daemon, tmp_path, clamd):
    """"false" never scans; an expression must match the name found."""
    acl = """\
  deny    malware = false
          message = never
  deny    malware = \\N^Other\\N
          message = other
  warn    malware = \\N^Pymta-Test\\N
          add_header = X-Malware: $malware_name
  accept
"""
    d = pymta_daemon(config=_config(f"av_scanner = clamd:127.0.0.1 {clamd.port}", acl))
    assert _send(d, _attachment(EICAR))[0] == 250
    msgs = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    assert f"X-Malware: {EICAR_NAME}\n".encode() in msgs[0]


def test_malware_down_timeout_and_malformed(pymta_daemon, tmp_path, silent, spamd):
    dead = free_port()
    acl = """\
  deny    condition = ${if eq{$h_subject:}{lenient}}
          malware = */defer_ok/tmo=2s
          message = lenient
  deny    condition = ${if eq{$h_subject:}{strict}}
          malware = */tmo=2s
  accept
"""
    d = pymta_daemon(config=_config(f"av_scanner = clamd:127.0.0.1 {dead}", acl))
    assert _send(d, _message(EICAR, "lenient"))[0] == 250
    assert _send(d, _message(EICAR, "strict"))[0] == 451
    d.wait_for_log(rf"malware acl condition: clamd \[127\.0\.0\.1\]:{dead} : failed to "
                   r"connect to any address for 127\.0\.0\.1: Connection refused")
    d.wait_for_log(r"malware acl condition: clamd  : all servers failed")
    d.stop()
    d = pymta_daemon(config=_config(f"av_scanner = clamd:{silent.path}", acl))
    start = time.monotonic()
    assert _send(d, _message(EICAR, "strict"))[0] == 451
    assert 1.5 < time.monotonic() - start < 20
    start = time.monotonic()
    assert _send(d, _message(EICAR, "lenient"))[0] == 250
    assert 1.5 < time.monotonic() - start < 20
    d.wait_for_log(rf"malware acl condition: clamd {re.escape(silent.path)} : unable to "
                   r"read from socket \(Connection timed out\)")
    d.stop()
    # spamd's port answers clamd's request in its own protocol
    d = pymta_daemon(config=_config(f"av_scanner = clamd:127.0.0.1 {spamd.port}", acl))
    assert _send(d, _message(EICAR, "strict"))[0] == 451
    d.wait_for_log(r"malware acl condition: clamd \[127\.0\.0\.1\]:\d+ : unparseable "
                   r"response from ClamAV: \{SPAMD/1\.\d 76 Bad header line")


def test_malware_cmdline_and_sock(pymta_daemon, clamd):
    """cmdline runs clamscan on the scan directory (with the MIME ACL's decoded parts
    in it); sock sends clamd a SCAN line of our own."""
    if not shutil.which("clamscan"):
        pytest.skip("clamscan is not installed (Debian package clamav)")
    db = Path(clamd.directory, "db")
    acl = "  deny malware = *\n       message = found $malware_name\n  accept\n"
    main = (f"av_scanner = cmdline:clamscan --no-summary -d {db} -r %s:FOUND:"
            r"(Pymta-\S+) FOUND" "\n"
            "acl_smtp_mime = acl_mime\n")
    conf = _config(main, acl).replace(
        "begin acl\n", "begin acl\n\nacl_mime:\n  accept decode = default\n")
    d = pymta_daemon(config=conf)
    assert _send(d, _attachment(EICAR)) == (550, f"found {EICAR_NAME}")
    assert _send(d, _attachment(b"harmless\n"))[0] == 250
    d.stop()
    # the decoded part is in the directory the command is given
    d = pymta_daemon(config=conf.replace(
        f"clamscan --no-summary -d {db} -r %s:FOUND:(Pymta-\\S+) FOUND",
        r"ls %s:-0000\d:(\S+-0000\d)"))
    code, text = _send(d, _attachment(b"harmless\n"))
    assert code == 550 and re.fullmatch(r"found \S+-0000\d", text), (code, text)
    d.stop()
    sock = ("av_scanner = ${if eq{a}{a}{sock:" + clamd.path
            + ":SCAN %s\\n:FOUND:([^ ]+) FOUND}}")
    d = pymta_daemon(config=_config(sock, acl))
    assert _send(d, _attachment(EICAR)) == (550, f"found {EICAR_NAME}")
    assert _send(d, _attachment(b"harmless\n"))[0] == 250


def test_scanners_refused_where_exim_refuses_them(pymta_daemon, tmp_path, clamd):
    """Not in the MIME ACL (Exim 4.96 refuses them there too); sophie is refused."""
    conf = _config(f"av_scanner = clamd:{clamd.path}\nacl_smtp_mime = acl_mime",
                   "  accept\n").replace(
        "begin acl\n", "begin acl\n\nacl_mime:\n  deny malware = *\n  accept\n")
    d = pymta_daemon(config=conf)
    assert _send(d, _attachment(EICAR))[0] == 451
    d.wait_for_log(r"temporarily rejected during MIME ACL checks: cannot test malware "
                   r"condition in MIME ACL")
    d.stop()
    d.stop()
    # sophie: refused when the configuration is read, or when an expansion names it
    conf = tmp_path / "sophie.conf"
    conf.write_text(_config("av_scanner = sophie:/var/run/sophie",
                            "  deny malware = *\n  accept\n")
                    .replace("SPOOL", str(tmp_path / "spool")).replace("DIR", str(tmp_path)))
    out = run_pymta(["-bV"], conf)
    assert out.returncode == 1 and re.search(
        r'line \d+: av_scanner type "sophie" is not supported', out.stderr), out
    d = pymta_daemon(config=_config("av_scanner = ${if eq{a}{a}{sophie:/var/run/sophie}}",
                                    "  deny malware = *\n  accept\n"))
    assert _send(d, _attachment(EICAR))[0] == 451
    d.wait_for_log(r'malware acl condition: scanner type "sophie" is not supported')
    # the default av_scanner is sophie too
    d.stop()
    d = pymta_daemon(config=_config("", "  deny malware = *\n  accept\n"))
    assert _send(d, _attachment(EICAR))[0] == 451
    d.wait_for_log(r'malware acl condition: scanner type "sophie" is not supported')


# ------------------------------------------------------------------ Exim as the oracle
ORACLE_ACL = """\
acl_smtp_rcpt = accept
acl_smtp_data = dacl
begin acl
dacl:
  warn  spam = nobody:true
        logwrite = S=[$spam_score] I=[$spam_score_int] B=[$spam_bar] A=[$spam_action]
        logwrite = R=[${escape:$spam_report}]
  accept
"""


def test_spam_variables_match_exim(spamd):
    """The same message through `-bh` of Exim 4.96 and of pymta, scored by the same
    spamd: the same $spam_score, $spam_score_int, $spam_bar, $spam_action and
    $spam_report (the report's rule lines compared as a set: spamd does not keep
    their order)."""
    exim_or_skip()
    session = ("HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
               "From: a@b.example\r\nSubject: hi\r\nMessage-ID: <x@b.example>\r\n\r\n"
               + GTUBE.decode() + "\r\n.\r\nQUIT\r\n").encode()
    results = []
    base = Path(tempfile.mkdtemp(prefix="pymta-oracle-"))    # reachable for Debian-exim
    os.chmod(base, 0o755)
    for name in ("exim", "pymta"):
        spool = base / name
        spool.mkdir()
        os.chmod(spool, 0o777)
        conf = base / f"{name}.conf"
        head = (f"spool_directory = {spool}\nprimary_hostname = test.example\n"
                f"spamd_address = 127.0.0.1 {spamd.port}\n")
        if name == "exim":
            head = "keep_environment =\nexim_user = Debian-exim\n" + head
        conf.write_text(head + ORACLE_ACL)
        if name == "exim":
            proc = subprocess.run([EXIM, "-C", str(conf), "-bh", "1.2.3.4"], input=session,
                                  capture_output=True, timeout=120)
        else:
            proc = run_pymta(["-bh", "1.2.3.4"], conf, input=session)
        err = proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr
        lines = [re.sub(r"^LOG: \S+ ", "", ln) for ln in err.splitlines()
                 if re.match(r"LOG: \S+ [SR]=\[", ln)]
        assert len(lines) == 2, err
        summary, report = lines
        body = report[3:-1].split("\\n")
        results.append((summary, body[:12], sorted(body[12:])))
    shutil.rmtree(base, ignore_errors=True)
    assert results[0] == results[1]
    assert results[0][0].startswith("S=[10") and results[0][0].endswith("A=[reject]")


def test_malware_and_spam_in_the_non_smtp_acl(pymta_daemon, clamd, spamd):
    """Messages from the command line are scanned by acl_not_smtp."""
    conf = _config(f"av_scanner = clamd:{clamd.path}\nspamd_address = {spamd.path}\n"
                   "acl_not_smtp = acl_ns", "  accept\n").replace(
        "begin acl\n", "begin acl\n\nacl_ns:\n"
        "  deny malware = *\n       message = malware $malware_name\n"
        "  deny spam = nobody\n       message = spam $spam_score\n  accept\n")
    # (spam = nobody:true for a clean message: its score is spooled)
    conf = conf.replace("  deny spam = nobody\n",
                        "  warn spam = nobody:true\n  deny spam = nobody\n")
    d = pymta_daemon(config=conf)
    bad = d.run("-odq", "alice@test.example", input=_attachment(EICAR).replace(b"\r\n", b"\n"))
    assert bad.returncode != 0 and f"malware {EICAR_NAME}" in bad.stderr, bad.stderr
    spam = d.run("-odq", "alice@test.example", input=_message(GTUBE).replace(b"\r\n", b"\n"))
    assert spam.returncode != 0 and re.search(r"spam 10\d\d\.\d", spam.stderr), spam.stderr
    good = d.run("-odq", "alice@test.example",
                 input=_message(b"Hello Alice, the minutes follow.").replace(b"\r\n", b"\n"))
    assert good.returncode == 0, good.stderr
    [msgid] = d.queue()
    header = (d.spool / "input" / f"{msgid}-H").read_text()
    assert re.search(r"^-spam_score -?\d+\.\d$", header, re.M), header
    assert re.search(r"^-spam_score_int -?\d+$", header, re.M)
    assert not list((d.spool / "scan").glob("*"))


def test_spam_cache_with_expanded_spamd_address(pymta_daemon, spamd):
    """An expanded spamd_address that gives the same servers keeps the cache (Exim
    4.96 asked spamd once for this ACL too); another user is a new scan."""
    acl = """\
  warn  spam = nobody:true
  warn  spam = nobody:true
        logwrite = second: $spam_score
  warn  spam = other:true
  accept
"""
    d = pymta_daemon(config=_config(
        "spamd_address = ${if eq{a}{a}{127.0.0.1 " + str(spamd.port) + "}}", acl))
    spamd_log = Path(spamd.directory, "spamd.log")
    pattern = r"spamd: (identified spam|clean message) .* for (nobody|other):"
    before = _count(spamd_log, pattern)
    assert _send(d, _message(GTUBE, "gtube"))[0] == 250
    d.wait_for_log(r"second: 10\d\d\.\d")
    wait_for(lambda: _count(spamd_log, pattern) >= before + 2)
    time.sleep(0.5)
    text = spamd_log.read_text(errors="replace")
    assert _count(spamd_log, pattern) == before + 2, text[-3000:]
    assert "for other:" in text


def test_tainted_scanner_settings_are_refused(pymta_daemon, tmp_path):
    """A scanner named by the message (here its Subject:) is never run or asked."""
    marker = tmp_path / "ran"
    d = pymta_daemon(config=_config(
        "av_scanner = ${if eq{a}{a}{cmdline:$h_subject::x:(x)}}\n"
        "spamd_address = ${if eq{a}{a}{$h_x-spamd:}}",
        "  deny malware = *\n  accept\n").replace(
        "  deny malware = *\n", "  deny malware = *\n  deny spam = nobody\n"))
    assert _send(d, _message(b"hello", f"touch {marker}")) == (
        451, "Temporary local problem - please try later")
    d.wait_for_log(r'malware acl condition: av_scanner: tainted value refused: '
                   rf'"cmdline:touch {re.escape(str(marker))}:x:\(x\)"')
    assert not marker.exists()


def test_a_big_bdat_message_is_scanned_from_its_file(pymta_daemon, tmp_path, clamd, spamd):
    """A message sent with BDAT waits in a file; the scanners' .eml is copied from it
    (kept here with no_mbox_unspool to look at): 6 MB of text and the EICAR
    attachment, streamed to clamd over TCP."""
    acl = """\
  warn    control = no_mbox_unspool
  deny    malware = *
          message = found $malware_name
  accept
"""
    d = pymta_daemon(config=_config(f"av_scanner = clamd:127.0.0.1 {clamd.port}", acl))
    filler = (b"x" * 76 + b"\r\n") * 80000
    msg = _attachment(EICAR).replace(b"see attached\r\n", b"see attached\r\n" + filler)
    with d.client(timeout=60) as c:
        c.banner()
        assert c.ehlo()[0] == 250
        c.send_raw(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@test.example>\r\n"
                   + b"BDAT %d LAST\r\n" % len(msg) + msg)
        replies = [c.read_reply() for _ in range(3)]
    assert replies[2] == (550, f"found {EICAR_NAME}"), replies
    [eml] = list((tmp_path / "spool" / "scan").glob("*/*.eml"))
    data = eml.read_bytes()
    assert data.startswith(b"From MAILER-DAEMON ")
    assert b"\nX-Envelope-From: <a@remote.example>\nX-Envelope-To: alice@test.example\n" \
        in data
    assert data.endswith(msg.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"))


def _bh_logs(base: Path, name: str, config: str, session: bytes) -> list[str]:
    """The LOG: lines of `-bh 1.2.3.4` of Exim ("exim") or pymta, message ids cut."""
    spool = base / name
    spool.mkdir()
    os.chmod(spool, 0o777)
    conf = base / f"{name}.conf"
    head = f"spool_directory = {spool}\nprimary_hostname = test.example\n"
    if name == "exim":
        head = "keep_environment =\nexim_user = Debian-exim\n" + head
    conf.write_text(head + config)
    if name == "exim":
        proc = subprocess.run([EXIM, "-C", str(conf), "-bh", "1.2.3.4"], input=session,
                              capture_output=True, timeout=120)
        err = proc.stderr.decode()
    else:
        err = run_pymta(["-bh", "1.2.3.4"], conf, input=session).stderr
    return [re.sub(r"^LOG: \S{6}-\S{6}-\S{2} ", "LOG: ", ln) for ln in err.splitlines()
            if ln.startswith("LOG:") and " <= " not in ln]


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_scanner_failures_log_as_exim(where):
    """Both scanners down, in warn and deny statements: the same log lines and the
    same 451 as Exim 4.96."""
    exim_or_skip()
    if where == "tcp":
        scanners = (f"spamd_address = 127.0.0.1 {free_port()}\n"
                    f"av_scanner = clamd:127.0.0.1 {free_port()}\n")
    else:
        scanners = ("spamd_address = /nonexistent/spamd.sock\n"
                    "av_scanner = sock:/nonexistent/av.sock:%s:x:(x)\n")
    config = (scanners +
              "acl_smtp_rcpt = accept\nacl_smtp_data = dacl\nbegin acl\ndacl:\n"
              "  warn spam = nobody\n  warn malware = *\n  deny spam = nobody\n  accept\n")
    session = (b"HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
               b"Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n")
    base = Path(tempfile.mkdtemp(prefix="pymta-oracle-"))
    os.chmod(base, 0o755)
    try:
        exim, pymta = (_bh_logs(base, name, config, session) for name in ("exim", "pymta"))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert len(exim) >= 8 and exim[-1].endswith("temporarily rejected after DATA")
    assert pymta == exim


def test_spam_per_recipient_in_the_prdr_acl(pymta_daemon, spamd):
    """With PRDR, acl_smtp_data_prdr can scan for each recipient as the spamd user;
    each user is a scan of its own."""
    prdr = """\
acl_prdr:
  deny    spam = $local_part
          message = spam for $local_part ($spam_score)
  accept
"""
    conf = ("prdr_enable = true\nacl_smtp_data_prdr = acl_prdr\n"
            + _config(f"spamd_address = {spamd.path}", "  accept\n")
            .replace("begin acl\n", "begin acl\n\n" + prdr))
    d = pymta_daemon(config=conf)
    spamd_log = Path(spamd.directory, "spamd.log")
    with d.client(timeout=30) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@remote.example> PRDR")[0] == 250
        for r in ("alice@test.example", "bob@test.example"):
            assert c.cmd(f"RCPT TO:<{r}>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send_raw(_message(GTUBE) + b".\r\n")
        replies = [c.read_reply() for _ in range(4)]
    assert replies[0] == (353, "PRDR content analysis beginning")
    assert [code for code, _ in replies[1:3]] == [550, 550]
    assert re.fullmatch(r"spam for alice \(10\d\d\.\d\)", replies[1][1]), replies
    assert re.fullmatch(r"spam for bob \(10\d\d\.\d\)", replies[2][1]), replies
    assert replies[3][0] == 550
    assert wait_for(lambda: re.search(r"identified spam .* for bob:",
                                      spamd_log.read_text(errors="replace")))
    assert re.search(r"identified spam .* for alice:", spamd_log.read_text(errors="replace"))


def test_cmdline_scanner_timeout(pymta_daemon):
    """A scanner command that does not finish in time is killed and the condition
    defers."""
    d = pymta_daemon(config=_config("av_scanner = cmdline:sleep 30; echo %s:FOUND:(x)",
                                    "  deny malware = */tmo=2s\n  accept\n"))
    start = time.monotonic()
    assert _send(d, _message(b"hello"))[0] == 451
    assert 1.5 < time.monotonic() - start < 20
    d.wait_for_log(r"malware acl condition: cmdline : scanner timed out")


def test_spamd_server_outside_its_time_window_is_not_used(pymta_daemon, spamd):
    """A server whose time= window is closed (a second twelve hours from now) is not
    tried, whatever its priority."""
    local = time.localtime(SYSTEM.time() + 12 * 3600)      # pymta's clock, maybe moved
    at = f"{local.tm_hour}.{local.tm_min}.{local.tm_sec}"
    dead = free_port()
    acl = "  warn spam = nobody:true\n       logwrite = used $callout_address\n  accept\n"
    d = pymta_daemon(config=_config(
        f"spamd_address = 127.0.0.1 {dead} pri=9 time={at}-{at} : {spamd.path}", acl))
    assert _send(d, _message(b"hello"))[0] == 250
    d.wait_for_log(rf"used {re.escape(spamd.path)}")
    assert "failed to connect" not in d.log()
