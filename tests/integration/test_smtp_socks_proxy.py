"""The smtp transport's socks_proxy: deliveries through a real SOCKS5 proxy (Debian's
danted), proxies tried by priority with a failed one logged as Exim logs it, the
delivery line's PRX= field (log_selector +proxy) in Exim 4.96's place, a defer when no
proxy answers, and RFC 1929 user name authentication.

The expected lines were recorded from exim4 4.96 delivering through the same danted
(tests/data/socks/README.md)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.danted import EXTERNAL, LISTEN, Danted
from tests.support.ports import free_port
from tests.support.relayconf import relay_config
from tests.support.sink import SmtpSink

CONFIG = relay_config("  socks_proxy = PROXIES",
                      main="log_selector = +proxy +outgoing_port")


def _deliver(tmp_path, sink: SmtpSink, proxies: str) -> PymtaDaemon:
    d = PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": str(sink.port),
                                              "PROXIES": proxies})
    d.prepare()
    out = d.run("-odi", "-f", "a@test.example", "u@remote.example",
                input=b"Subject: through a proxy\n\nbody\n")
    assert out.returncode == 0, out.stderr
    return d


def test_delivery_goes_through_the_proxy_and_logs_prx(tmp_path):
    with Danted(tmp_path) as proxy, SmtpSink() as sink:
        d = _deliver(tmp_path, sink, f"{LISTEN} port={proxy.port}")
        assert len(sink.messages) == 1
        line = d.wait_for_log(r" => u@remote\.example ")[0]
        # as exim4 wrote it: H=... [ip]:port PRX=[proxy]:port C="..."
        assert re.search(rf" H=127\.0\.0\.1 \[127\.0\.0\.1\]:{sink.port} "
                         rf"PRX=\[{re.escape(LISTEN)}\]:{proxy.port} C=\"250 ", line), line
        # the sink was reached by the proxy, from its external address
        assert re.search(rf"{re.escape(LISTEN)}\.{proxy.port} -> "
                         rf"{re.escape(EXTERNAL)}\.\d+ 127\.0\.0\.1\.{sink.port}",
                         proxy.log()), proxy.log()


def test_higher_priority_proxy_tried_first_and_its_failure_logged(tmp_path):
    dead = free_port()
    with Danted(tmp_path) as proxy, SmtpSink() as sink:
        d = _deliver(tmp_path, sink, f"127.0.0.4 port={dead} tmo=2 pri=5 : "
                                     f"{LISTEN} port={proxy.port}")
        assert len(sink.messages) == 1
        log = d.log()
        assert re.search(r" socks_sock_connect: Connection refused\n", log), log
        assert log.index("socks_sock_connect") < log.index(" => u@remote.example")
        assert f"PRX=[{LISTEN}]:{proxy.port}" in log


def test_no_proxy_answers_defers_as_exim_does(tmp_path):
    with SmtpSink() as sink:
        d = _deliver(tmp_path, sink, f"127.0.0.4 port={free_port()}")
        assert sink.messages == []
        log = d.log()
        assert re.search(r" socks_sock_connect: Connection refused\n", log), log
        assert re.search(r" == u@remote\.example R=remote T=remote_smtp defer \(16\): "
                         r"Device or resource busy", log), log


def test_proxy_that_cannot_reach_the_server_gives_its_error(tmp_path):
    with Danted(tmp_path) as proxy:
        sink_port = free_port()                   # nothing listens there
        d = PymtaDaemon(CONFIG, tmp_path, macros={"SINK_PORT": str(sink_port),
                                                  "PROXIES": f"{LISTEN} port={proxy.port}"})
        d.prepare()
        d.run("-odi", "-f", "a@test.example", "u@remote.example", input=b"\nbody\n")
        assert re.search(r" == u@remote\.example R=remote T=remote_smtp defer \(111\): "
                         r"Connection refused", d.log()), d.log()


def test_bad_socks_proxy_item_defers_with_a_message(tmp_path):
    with SmtpSink() as sink:
        d = _deliver(tmp_path, sink, "proxy.example port=1080")
        assert sink.messages == []
        assert 'socks_proxy: "proxy.example" is not an IP address in remote_smtp ' \
               "transport" in d.log()


USER = "pymta-socks-test"


@pytest.fixture
def socks_user():
    """A system user danted checks RFC 1929 credentials against (root only)."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("creating a system user for the proxy needs root and useradd")
    subprocess.run(["userdel", USER], capture_output=True)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                   check=True, capture_output=True)
    subprocess.run(["chpasswd"], input=f"{USER}:s3cret-pw\n", text=True, check=True)
    yield USER
    subprocess.run(["userdel", USER], capture_output=True)


def test_user_name_authentication(tmp_path, socks_user):
    with Danted(tmp_path, method="username") as proxy, SmtpSink() as sink:
        wrong = _deliver(tmp_path / "wrong", sink,
                         f"{LISTEN} port={proxy.port} auth=name name={socks_user} pass=bad")
        assert sink.messages == []
        assert re.search(r" == u@remote\.example .* defer \(13\): .*SOCKS proxy "
                         r"127\.0\.0\.2 refused the user name and password", wrong.log()), \
            wrong.log()
        _deliver(tmp_path / "right", sink, f"{LISTEN} port={proxy.port} auth=name "
                                           f"name={socks_user} pass=s3cret-pw")
        assert len(sink.messages) == 1


CALLOUT_CONFIG = CONFIG.replace("begin routers", """\
acl_smtp_rcpt = check_rcpt
begin acl
check_rcpt:
  require verify = recipient/callout=10s
  accept
begin routers""")


def test_callouts_go_through_the_transports_proxy(tmp_path):
    with Danted(tmp_path) as proxy, SmtpSink() as sink:
        d = PymtaDaemon(CALLOUT_CONFIG, tmp_path,
                        macros={"SINK_PORT": str(sink.port),
                                "PROXIES": f"{LISTEN} port={proxy.port}"},
                        args=["-odq"]).start()
        try:
            with d.client() as c:
                c.ehlo()
                assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
                assert c.cmd("RCPT TO:<u@remote.example>")[0] == 250
        finally:
            d.stop()
        # the callout's connection is the proxy's, from its external address
        assert re.search(rf"{re.escape(EXTERNAL)}\.\d+ 127\.0\.0\.1\.{sink.port}",
                         proxy.log()), proxy.log()
