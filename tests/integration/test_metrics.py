"""The daemon's Prometheus endpoint (metrics_listen, a pymta extension): real daemon,
real SMTP, a real scrape over HTTP, and Debian's promtool checking the text."""
from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.support.certs import make_ca, make_cert
from tests.support.daemon import PymtaDaemon
from tests.support.ports import free_port
from tests.support.sink import SmtpSink
from tests.support.wait import wait_until

CONFIG = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
metrics_listen = 127.0.0.1:METRICS_PORT
acl_smtp_rcpt = check_rcpt

begin acl
check_rcpt:
  deny    local_parts = rejectme
          message = not wanted here
  accept

begin routers
sink:
  driver = manualroute
  domains = sink.example
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = remote_smtp
closed:
  driver = manualroute
  domains = closed.example
  route_list = * 127.0.0.1::CLOSED_PORT
  self = send
  transport = remote_smtp

begin transports
remote_smtp:
  driver = smtp

begin retry
*  *  F,1d,1h
"""

MESSAGE = b"From: a@client.example\r\nSubject: metrics\r\n\r\nhello\r\n"


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        return r.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}`` (labels in any order), or None."""
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if found == labels:
            return float(m.group(3))
    return None


def smtp(d: PymtaDaemon, rcpt: str) -> int:
    c = d.client()
    c.banner()
    c.ehlo("client.example")
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    code = c.cmd(f"RCPT TO:<{rcpt}>")[0]
    if code == 250:
        assert c.cmd("DATA")[0] == 354
        c.send_raw(MESSAGE + b".\r\n")
        assert c.read_reply()[0] == 250
    c.cmd("QUIT")
    return code


def test_metrics_count_receptions_deliveries_rejections_and_the_queue(tmp_path):
    metrics_port, sink_port, closed_port = free_port(), free_port(), free_port()
    with SmtpSink(port=sink_port) as sink, PymtaDaemon(
            CONFIG, tmp_path, macros={"METRICS_PORT": str(metrics_port),
                                      "SINK_PORT": str(sink_port),
                                      "CLOSED_PORT": str(closed_port)}) as d:
        before = scrape(metrics_port)
        assert sample(before, "pymta_queue_messages") == 0
        assert sample(before, "pymta_processes", kind="receiver") >= 1
        assert sample(before, "pymta_processes", kind="worker") >= 1
        # every child starts the series it may touch at zero
        assert sample(before, "pymta_deliveries_total", transport="remote_smtp",
                      result="failed") == 0
        assert sample(before, "pymta_smtp_connections_total", result="refused") == 0

        assert smtp(d, "user@sink.example") == 250
        assert sink.wait_for(1, 20), d.diagnostics()
        assert smtp(d, "rejectme@sink.example") == 550
        assert smtp(d, "user@closed.example") == 250
        d.wait_for_log(r" == user@closed\.example .*T=remote_smtp", 20)

        def counted() -> bool:
            t = scrape(metrics_port)
            return sample(t, "pymta_deliveries_total", transport="remote_smtp",
                          result="deferred") == 1 and \
                sample(t, "pymta_deliveries_total", transport="remote_smtp",
                       result="delivered") == 1
        wait_until(counted, 10, 0.2)
        time.sleep(0.2)
        text = scrape(metrics_port)
        assert sample(text, "pymta_messages_received_total", protocol="esmtp") == 2
        assert sample(text, "pymta_acl_rejections_total", acl="acl_smtp_rcpt",
                      reply="5xx") == 1
        # (the harness's own banner checks came before the first scrape)
        assert sample(text, "pymta_smtp_connections_total", result="accepted") == \
            sample(before, "pymta_smtp_connections_total", result="accepted") + 3
        assert sample(text, "pymta_delivery_latency_seconds_count",
                      transport="remote_smtp") == 1
        assert sample(text, "pymta_delivery_latency_seconds_bucket",
                      transport="remote_smtp", le="+Inf") == 1
        # the deferred one (the queue is read at most every 5 seconds)
        text = wait_until(lambda: (lambda t: t if sample(t, "pymta_queue_messages") == 1
                                   else None)(scrape(metrics_port)), 10, 0.5)
        age = sample(text, "pymta_queue_oldest_message_age_seconds")
        assert age is not None and 0 <= age < 120

        # Counts survive the process that made them: retire the receivers (a reload
        # replaces every child) and the totals stay.
        d.signal(signal.SIGHUP)
        d.wait_for_log(r"SIGHUP received", 10)
        time.sleep(1.5)
        again = scrape(metrics_port)
        assert sample(again, "pymta_messages_received_total", protocol="esmtp") == 2
        assert sample(again, "pymta_deliveries_total", transport="remote_smtp",
                      result="delivered") == 1
        assert sample(again, "pymta_acl_rejections_total", acl="acl_smtp_rcpt",
                      reply="5xx") == 1
        # the ended children's files were folded into the master's
        files = os.listdir(d.spool / "metrics" / str(d.proc.pid))
        assert "counter_folded.db" in files and "histogram_folded.db" in files

        # Anything but GET /metrics
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/", timeout=10)
        assert e.value.code == 404

        promtool = shutil.which("promtool")
        if promtool is None:
            print("promtool not installed (Debian package prometheus): format not checked")
            pytest.skip("promtool (Debian package prometheus) is not installed")
        proc = subprocess.run([promtool, "check", "metrics"], input=again.encode(),
                              capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_metrics_listen_must_be_loopback(tmp_path):
    d = PymtaDaemon(CONFIG.replace("127.0.0.1:METRICS_PORT", "192.0.2.1:9325"), tmp_path,
                    macros={"SINK_PORT": "1", "CLOSED_PORT": "2"}, start_timeout=5)
    with pytest.raises(RuntimeError) as e:
        d.start()
    assert "metrics_listen: 192.0.2.1 is not a loopback address" in str(e.value)
    # and -bV (systemd's ExecStartPre) refuses the configuration already
    out = d.run("-bV")
    assert out.returncode == 1
    assert out.stderr == (f"pymta: error in configuration file {d.config_path}: "
                          "metrics_listen: 192.0.2.1 is not a loopback address\n")


TLS_CONFIG = CONFIG.replace("acl_smtp_rcpt = check_rcpt\n", """acl_smtp_rcpt = check_rcpt
tls_certificate = DIR/mx.test.example.pem
tls_privatekey = DIR/mx.test.example.key
smtp_accept_max_per_host = 1
""")


def test_metrics_count_tls_versions_and_refused_connections(tmp_path):
    certs = make_cert(tmp_path, "mx.test.example", make_ca(tmp_path))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs.cert, certs.key)
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2      # a version of its own
    metrics_port, sink_port = free_port(), free_port()
    with SmtpSink(port=sink_port, tls_context=server_ctx) as sink, PymtaDaemon(
            TLS_CONFIG, tmp_path, macros={"METRICS_PORT": str(metrics_port),
                                          "SINK_PORT": str(sink_port),
                                          "CLOSED_PORT": "1"}) as d:
        # the harness's banner probe may still hold the one connection allowed
        c = wait_until(lambda: _admitted(d), 10, 0.2)
        before = scrape(metrics_port)
        c.ehlo("client.example")
        assert c.starttls()[0] == 220
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<user@sink.example>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send_raw(MESSAGE + b".\r\n")
        assert c.read_reply()[0] == 250
        # a second connection from the same address while this one is open: refused
        second = d.client()
        assert second.banner()[0] == 421
        c.cmd("QUIT")
        assert sink.wait_for(1, 20), d.diagnostics()

        def counted() -> str | None:
            t = scrape(metrics_port)
            return t if sample(t, "pymta_tls_sessions_total", direction="outbound",
                               version="TLS1.2") == 1 else None
        text = wait_until(counted, 10, 0.2)
        assert sample(text, "pymta_tls_sessions_total", direction="inbound",
                      version="TLS1.3") == 1
        assert sample(text, "pymta_messages_received_total", protocol="esmtps") == 1
        assert sample(text, "pymta_smtp_connections_total", result="refused") == \
            sample(before, "pymta_smtp_connections_total", result="refused") + 1


def _admitted(d: PymtaDaemon):
    c = d.client()
    if c.banner()[0] == 220:
        return c
    c.close()
    return None


def test_reload_moves_the_endpoint_and_keeps_the_counts(tmp_path):
    first, second, sink_port = free_port(), free_port(), free_port()
    with SmtpSink(port=sink_port) as sink, PymtaDaemon(
            CONFIG, tmp_path, macros={"METRICS_PORT": str(first),
                                      "SINK_PORT": str(sink_port),
                                      "CLOSED_PORT": "1"}) as d:
        assert smtp(d, "user@sink.example") == 250
        assert sink.wait_for(1, 20), d.diagnostics()
        d.config_path.write_text(CONFIG.replace("METRICS_PORT", str(second)))
        d.signal(signal.SIGHUP)
        text = wait_until(lambda: _try_scrape(second), 10, 0.2)
        assert sample(text, "pymta_messages_received_total", protocol="esmtp") == 1
        with pytest.raises(OSError):
            scrape(first)
        # metrics_listen emptied: no endpoint any more
        d.config_path.write_text(CONFIG.replace("127.0.0.1:METRICS_PORT", ""))
        d.signal(signal.SIGHUP)
        wait_until(lambda: _try_scrape(second) is None, 10, 0.2)


def _try_scrape(port: int) -> str | None:
    try:
        return scrape(port)
    except OSError:             # refused, or reset while the socket was being closed
        return None


def test_reload_cannot_start_counting_and_says_so(tmp_path):
    port = free_port()
    off = CONFIG.replace("127.0.0.1:METRICS_PORT", "")
    with PymtaDaemon(off, tmp_path, macros={"SINK_PORT": "1", "CLOSED_PORT": "2"}) as d:
        assert not (d.spool / "metrics").exists()        # nothing counted, no files
        d.config_path.write_text(CONFIG.replace("METRICS_PORT", str(port)))
        d.signal(signal.SIGHUP)
        d.wait_for_log(r"metrics_listen is set: the metrics endpoint starts at the next "
                       r"daemon restart", 10)
        assert _try_scrape(port) is None
