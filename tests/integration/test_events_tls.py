"""The TLS events of event_action (issue 12): tls:cert on both sides, a refusal of
verification by the event, and the server's tls:fail:connect.

Facts from Exim 4.96 (checked with exim4, which Debian builds with GnuTLS): tls:cert
has the chain depth in $event_data and the certificate in $tls_out_peercert (client) or
$tls_in_peercert (server); a non-empty result ends the handshake with "SSL verify
denied by event-action: depth=N: <result>" in the main log, and a client not in
hosts_require_tls then raises msg:host:defer with the TLS error and delivers in clear
on a new connection; tls:fail:connect's $event_data is the error as the "TLS error on
connection" line shows it, raised before that line.  pymta is built on OpenSSL, whose
verification visits every element of the chain, the locally trusted CA included (the
specification says so of Exim's OpenSSL build), so tls:cert comes for depth 1 and then
depth 0 where the GnuTLS build only reports the certificates the peer sent.
"""
from __future__ import annotations

import re
import ssl
import time

from tests.integration.conftest import wait_for
from tests.integration.test_daemon_e2e import send
from tests.integration.test_events import CONFIG, parse_events
from tests.support.certs import make_ca, make_cert, server_context
from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink

TLS_OUT = """\
  tls_verify_certificates = DIR/ca.pem
  tls_try_verify_hosts = *
  tls_verify_cert_hostnames =
  event_action = ${acl{ev}}${if eq{$event_name}{tls:cert}\
    {${acl{cert}{${certextract{subject}{$tls_out_peercert}}}}}}TRANSPORT_EXTRA
"""

CERT_ACL = """\
cert:
  warn logwrite = CERT $acl_arg1
  accept

acl_check_rcpt:"""


def _client_config(extra: str) -> str:
    config = CONFIG.replace("acl_check_rcpt:", CERT_ACL, 1)
    config = config.replace("  event_action = ${acl{ev}}TRANSPORT_EXTRA\n", TLS_OUT, 1)
    assert TLS_OUT in config
    return config.replace("TRANSPORT_EXTRA", extra)


def _deliver_over_tls(tmp_path, pymta_daemon, sink_port, extra: str):
    ca = make_ca(tmp_path)
    files = make_cert(tmp_path, "sink.test", ca)
    sink = SmtpSink(port=sink_port, tls_context=server_context(files)).start()
    try:
        d = pymta_daemon(config=_client_config(extra))
        code, text = send(d, "sender@remote.example", ["good@remote.example"],
                          b"Subject: events\r\n\r\nbody\r\n")
        assert code == 250, text
        msgid = re.search(r"id=(\S+)", text).group(1)
        assert wait_for(lambda: any(e[0] == "msg:complete"
                                    for e in parse_events(d.log(), msgid)), 20), d.diagnostics()
        assert sink.wait_for(1, 10)
    finally:
        sink.stop()
    return d, msgid


def test_client_tls_cert_events_per_chain_element(tmp_path, pymta_daemon, sink_port):
    d, msgid = _deliver_over_tls(tmp_path, pymta_daemon, sink_port, "")
    events = parse_events(d.log(), msgid)
    assert [(e[0], e[1]) for e in events if e[0] != "smtp:ehlo"] == [
        ("tcp:connect", ""), ("smtp:connect", "220 sink.test ESMTP test sink"),
        ("tls:cert", "1"), ("tls:cert", "0"),
        ("tcp:close", ""), ("msg:delivery", "250 OK id=sink"), ("msg:complete", "")]
    # smtp:ehlo before STARTTLS and again after it (no STARTTLS offered any more)
    ehlos = [e[1] for e in events if e[0] == "smtp:ehlo"]
    assert len(ehlos) == 2 and "250-STARTTLS" in ehlos[0] and "STARTTLS" not in ehlos[1]
    # $tls_out_peercert is the certificate at that depth
    certs = re.findall(rf"{msgid} CERT (.*)$", d.log(), re.M)
    assert certs == ["CN=pymta test CA", "CN=sink.test"]
    d.wait_for_log(rf"{msgid} => good@remote\.example .* X=\S+ CV=yes ")


def test_client_tls_cert_refused_by_the_event(tmp_path, pymta_daemon, sink_port):
    d, msgid = _deliver_over_tls(
        tmp_path, pymta_daemon, sink_port,
        "${if and{{eq{$event_name}{tls:cert}}{eq{$event_data}{0}}}{not trusted}}")
    events = parse_events(d.log(), msgid)
    names = [e[0] for e in events if e[0] != "smtp:ehlo"]
    assert names == ["tcp:connect", "smtp:connect", "tls:cert", "tls:cert", "tcp:close",
                     "msg:host:defer", "tcp:connect", "smtp:connect", "tcp:close",
                     "msg:delivery", "msg:complete"]
    host_defer = [e for e in events if e[0] == "msg:host:defer"][0]
    assert host_defer[1].startswith("TLS session: (SSL_connect): ")
    assert host_defer[2] == "-37"
    log = d.log()
    assert f"{msgid} SSL verify denied by event-action: depth=0: not trusted" in log
    assert re.search(rf"{msgid} TLS session: \(SSL_connect\): .*: delivering unencrypted "
                     r"to H=127\.0\.0\.1 \[127\.0\.0\.1\] \(not in hosts_require_tls\)", log)
    line = d.wait_for_log(rf"{msgid} => good@remote\.example ")[0]
    assert " X=" not in line


SERVER = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
queue_only
smtp_receive_timeout = 3s
tls_certificate = DIR/mx.test.example.pem
tls_privatekey = DIR/mx.test.example.key
tls_verify_certificates = DIR/ca.pem
tls_try_verify_hosts = *
event_action = ${acl{ev}}EVENT_EXTRA

begin acl

ev:
  warn logwrite = EV name=$event_name data=[$event_data] \\
     host=[$sender_host_address] cert=[${if def:tls_in_peercert\\
     {${certextract{subject}{$tls_in_peercert}}}}]
  accept
"""


def _server(tmp_path, extra: str = "") -> PymtaDaemon:
    ca = make_ca(tmp_path)
    make_cert(tmp_path, "mx.test.example", ca)
    make_cert(tmp_path, "client.test", ca, client=True)
    return PymtaDaemon(SERVER.replace("EVENT_EXTRA", extra), tmp_path)


def _client_context(tmp_path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(str(tmp_path / "client.test.pem"), str(tmp_path / "client.test.key"))
    return ctx


def test_server_tls_cert_events_see_the_client_certificate(tmp_path):
    with _server(tmp_path) as d:
        with d.client() as c:
            c.ehlo()
            assert c.starttls(_client_context(tmp_path))[0] == 220
            assert c.ehlo()[0] == 250
        lines = d.wait_for_log(r" EV name=tls:cert ", count=2)
    assert [re.search(r"EV (.*)", ln).group(1) for ln in lines] == [
        "name=tls:cert data=[1] host=[127.0.0.1] cert=[CN=pymta test CA]",
        "name=tls:cert data=[0] host=[127.0.0.1] cert=[CN=client.test]"]


def test_server_tls_cert_refused_ends_the_handshake(tmp_path):
    refuse = "${if eq{$event_name}{tls:cert}{go away}}"
    with _server(tmp_path, refuse) as d:
        with d.client() as c:
            c.ehlo()
            try:
                c.starttls(_client_context(tmp_path))
                c.ehlo()
            except (ssl.SSLError, OSError):
                pass
        d.wait_for_log(r"SSL verify denied by event-action: depth=1: go away")
        d.wait_for_log(r" EV name=tls:fail:connect ")
    assert " EV name=tls:cert data=[0]" not in d.log()


def test_server_tls_fail_connect_before_the_error_line(tmp_path):
    with _server(tmp_path) as d:
        with d.client() as c:
            c.ehlo()
            assert c.cmd("STARTTLS")[0] == 220
            c.send_raw(b"EHLO not tls\r\n")
            c.sock.settimeout(20)
            assert c.sock.recv(100) == b""
        error = d.wait_for_log(r"TLS error on connection from")[0]
        time.sleep(0.2)
        lines = d.log().splitlines()
    event = [ln for ln in lines if " EV name=tls:fail:connect " in ln]
    assert len(event) == 1
    assert lines.index(event[0]) < lines.index(error)
    detail = error.split("[127.0.0.1] ", 1)[1]
    assert detail.startswith("(SSL_accept): ")
    assert f"data=[{detail}] host=[127.0.0.1] cert=[]" in event[0]
