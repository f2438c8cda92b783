"""What the spam and malware conditions make of their configuration and of the
scanners' answers: spamd_address and av_scanner parsing, the choice among spamd
servers, spamd's and clamd's answers, and the $spam_* values (checked against what
Exim 4.96 logged for the same scores)."""
from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from pymta.acl.avscan import _clamd_verdict
from pymta.acl.scanconfig import (
    ClamdSpec,
    CmdlineSpec,
    Endpoint,
    ScanConfigError,
    SockSpec,
    parse_av_scanner,
    parse_spamd_address,
)
from pymta.acl.scanconn import ScanDefer
from pymta.acl.spamd import (
    SpamdAnswer,
    _connect,
    parse_answer,
    server_order,
    spam_variables,
)
from pymta.config.show import version_text
from tests.support.ports import free_port


def test_spamd_address_servers_and_options():
    servers = parse_spamd_address(
        "127.0.0.1 783 : /run/spamd.sock pri=3 weight=5 tmo=10s retry=2s : "
        "localhost 10200-10202 time=8.30-17 variant=spamassassin")
    assert [s.endpoint for s in servers] == [
        Endpoint(host="127.0.0.1", ports=(783,)), Endpoint(path="/run/spamd.sock"),
        Endpoint(host="localhost", ports=(10200, 10201, 10202))]
    assert (servers[0].pri, servers[0].weight, servers[0].tmo) == (1, 1, 120.0)
    assert (servers[1].pri, servers[1].weight, servers[1].tmo, servers[1].retry) == \
        (3, 5, 10.0, 2.0)
    assert servers[2].window == (8 * 3600 + 30 * 60, 17 * 3600)
    # the separator can be changed, for IPv6 addresses
    assert parse_spamd_address("<; ::1 783 ; 127.0.0.1 784")[0].endpoint.host == "::1"


@pytest.mark.parametrize("text,message", [
    ("127.0.0.1 783 variant=rspamd", "variant=rspamd is not supported"),
    ("127.0.0.1", "no port"),
    ("127.0.0.1 http", 'bad port "http"'),
    ("127.0.0.1 783 nosuch=1", 'bad option "nosuch=1"'),
    ("127.0.0.1 783 time=8", 'bad time value "8"'),
    ("", "no servers"),
])
def test_spamd_address_errors(text, message):
    with pytest.raises(ScanConfigError, match=message):
        parse_spamd_address(text)


def test_server_order_priority_weight_and_time():
    servers = parse_spamd_address("a 1 pri=1 : b 2 pri=5 weight=1 : c 3 pri=5 weight=9 : "
                                  "d 4 pri=9 time=0-1 : e 5 weight=0")
    firsts = {}
    rng = random.Random(7)
    for _ in range(400):
        order = [s.endpoint.host for s in server_order(servers, 12 * 3600, rng)]
        assert order[-1] == "a" and sorted(order) == ["a", "b", "c"]   # d out of hours
        firsts[order[0]] = firsts.get(order[0], 0) + 1
    assert firsts["c"] > 5 * firsts["b"] > 0          # weighted 9:1
    # within its time window d (highest priority) comes first
    assert next(server_order(servers, 0, rng)).endpoint.host == "d"


def test_spamd_answers():
    body = "Spam detection software\r\n\r\n pts rule\r\n1000 GTUBE   \r\n\r\n"
    new = parse_answer(("SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1005.2 / 5.0\r\n\r\n"
                        + body).encode())
    assert new == SpamdAnswer(1005.2, 5.0, "Spam detection software\n \n  pts rule\n "
                                           "1000 GTUBE")
    old = parse_answer(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 20\r\n\r\n-1.5/5.0\r\nreport")
    assert old == SpamdAnswer(-1.5, 5.0, "report")
    for bad in (b"", b"UNKNOWN COMMAND\n", b"SPAMD/1.0 76 Bad header line: x\r\n\r\n",
                b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; lots / 5\r\n\r\n",
                b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1.0 / 5.0\r\n"):
        assert parse_answer(bad) is None


@pytest.mark.parametrize("score,threshold,expected", [
    # as Exim 4.96 set them (its log for a score of 1011.0 had a bar of 51 "+")
    (1011.0, 5.0, ("1011.0", "10110", "+" * 51, "reject")),
    (4.4, 5.0, ("4.4", "44", "++++", "no action")),
    (5.0, 5.0, ("5.0", "50", "+++++", "reject")),
    (0.57, 5.0, ("0.6", "5", "/", "no action")),
    (-2.9, 5.0, ("-2.9", "-29", "--", "no action")),
    (0.0, 5.0, ("0.0", "0", "/", "no action")),
])
def test_spam_variables(score, threshold, expected):
    v = spam_variables(SpamdAnswer(score, threshold, "r"))
    assert (v["spam_score"], v["spam_score_int"], v["spam_bar"], v["spam_action"]) == \
        expected


def test_av_scanner_types():
    spec = parse_av_scanner("clamd:192.0.2.3 1234 retry=10s : 192.0.2.4 1235")
    assert isinstance(spec, ClamdSpec) and not spec.local
    assert [(s.endpoint.host, s.endpoint.ports, s.retry) for s in spec.servers] == \
        [("192.0.2.3", (1234,), 10.0), ("192.0.2.4", (1235,), 0.0)]
    assert parse_av_scanner("clamd:127.0.0.1 3310:local").local
    assert parse_av_scanner("clamd").servers[0].endpoint.path == "/tmp/clamd"
    cmd = parse_av_scanner("cmdline:/usr/bin/sweep -ss %s:found in file:'(.+)'")
    assert isinstance(cmd, CmdlineSpec) and cmd.command == "/usr/bin/sweep -ss %s"
    assert cmd.name.search("Virus 'W32/Magistr-B' found in file").group(1) == "W32/Magistr-B"
    sock = parse_av_scanner("sock:127.0.0.1 6001: :(SPAM|VIRUS):(.*)$")
    assert isinstance(sock, SockSpec) and sock.request == "%s\n"


@pytest.mark.parametrize("text,message", [
    ("sophie:/var/run/sophie", 'scanner type "sophie" is not supported'),
    ("drweb:/var/run/drwebd.sock", 'scanner type "drweb" is not supported'),
    ("nosuch:x", "unknown scanner type 'nosuch'"),
    ("clamd:/a : 127.0.0.1 3310", "a Unix socket cannot be one of several servers"),
    ("clamd:127.0.0.1 3310 nosuch", 'bad option "nosuch"'),
    ("cmdline:/bin/scan %s", "missing trigger specification"),
    ("cmdline:/bin/scan %s:found:(unclosed", "bad regular expression"),
    ("sock:127.0.0.1 6001:%s:x", "missing trigger or name regex"),
])
def test_av_scanner_errors(text, message):
    with pytest.raises(ScanConfigError, match=message):
        parse_av_scanner(text)


def test_clamd_answers():
    assert _clamd_verdict("stream: OK", "a") is None
    assert _clamd_verdict("/x.eml: Eicar-Test-Signature FOUND\n", "a") == \
        "Eicar-Test-Signature"
    with pytest.raises(ScanDefer, match=r"malformed result \(missing colon\): garbage"):
        _clamd_verdict("garbage", "a")
    with pytest.raises(ScanDefer, match="ClamAV returned: /x: Access denied. ERROR"):
        _clamd_verdict("/x: Access denied. ERROR", "a")
    with pytest.raises(ScanDefer, match="unparseable response from ClamAV"):
        _clamd_verdict("stream: maybe", "a")


def test_bV_lists_the_scanner_types():
    lines = version_text(None).splitlines()
    assert "Malware: clamd cmdline sock" in lines
    assert ("Malware not supported in this version: avast aveserver drweb f-prot6d "
            "f-protd fsecure kavdaemon mksd sophie") in lines


def _listen_later(delay: float) -> tuple[int, threading.Thread, list[socket.socket]]:
    """A port nothing listens on yet; a thread starts listening there after ``delay``."""
    port = free_port()
    held: list[socket.socket] = []

    def serve() -> None:
        time.sleep(delay)
        server = socket.create_server(("127.0.0.1", port))
        held.append(server)
        conn, _ = server.accept()
        held.append(conn)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread, held


def test_spamd_retry_connects_once_more_after_the_delay():
    port, thread, held = _listen_later(0.5)
    [server] = parse_spamd_address(f"127.0.0.1 {port} retry=2s")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)
    sock, address = _connect(server, time.monotonic() + 10, sleep)
    thread.join(5)
    sock.close()
    for s in held:
        s.close()
    assert sleeps == [2.0] and address == f"[127.0.0.1]:{port}"
    # without retry= the first refusal is final
    port, thread, held = _listen_later(0.5)
    [server] = parse_spamd_address(f"127.0.0.1 {port}")
    with pytest.raises(ScanDefer, match="Connection refused"):
        _connect(server, time.monotonic() + 10, sleep)
    end = time.monotonic() + 5
    while not held and time.monotonic() < end:  # it listens now: let it finish
        time.sleep(0.05)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    thread.join(5)
    for s in held:
        s.close()
