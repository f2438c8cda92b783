"""A smarthost or content filter on this host (issue 7, item 5).

As in Exim 4.96 (checked with exim4): a host that a router chose with ``self = send`` is
used even when it is the local host, whatever its port; the smtp transport's
``allow_localhost`` only concerns hosts from its own ``hosts``/``fallback_hosts``.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading

from tests.integration.conftest import BASE_CONFIG, wait_for
from tests.integration.test_daemon_e2e import MESSAGE, send
from tests.support.daemon import REPO, PymtaDaemon
from tests.support.ports import free_port
from tests.support.sink import SmtpSink

ETC = REPO / "etc"


def test_manualroute_self_send_without_allow_localhost(pymta_daemon, sink_port):
    config = BASE_CONFIG.replace("  allow_localhost\n", "")
    assert "allow_localhost" not in config
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=config)
        assert send(d, "a@outside.example", ["user@remote.example"], MESSAGE)[0] == 250
        assert sink.wait_for(1, 15), d.diagnostics()
        assert sink.messages[0].recipients == ["user@remote.example"]
        d.wait_for_log(r"=> user@remote\.example R=remote T=remote_smtp "
                       r"H=127\.0\.0\.1 \[127\.0\.0\.1\] ", 10)
        assert wait_for(lambda: not d.queue(), 10), d.diagnostics()


def test_readme_relay_example_with_dev_conf(tmp_path):
    """README: mail for anything@relay.test goes to ``python bench/sink.py --port 2526``
    (here a free port, given to etc/dev.conf with -D RELAY_SINK_PORT)."""
    for name in ("dev-users", "dev-aliases"):
        shutil.copy(ETC / name, tmp_path / name)
    port = free_port()
    sink = subprocess.Popen([sys.executable, "bench/sink.py", "--port", str(port)],
                            cwd=str(REPO), stdout=subprocess.PIPE, text=True)
    d = PymtaDaemon((ETC / "dev.conf").read_text(), tmp_path,
                    macros={"SPOOL": str(tmp_path / "spool"), "RELAY_SINK_PORT": str(port),
                            "EXIM_USER": "nobody"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(sink.stdout), daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: f"listening on 127.0.0.1:{port}\n" in lines, 10)
        d.start()
        assert send(d, "me@localhost", ["anything@relay.test"], MESSAGE)[0] == 250
        d.wait_for_log(r"=> anything@relay\.test R=relay_sink T=remote_smtp", 15)
        assert wait_for(lambda: not d.queue(), 10), d.diagnostics()
        # the sink prints its count every second
        assert wait_for(lambda: "1 messages\n" in lines, 5), lines
    finally:
        d.stop()
        sink.terminate()
        sink.wait(5)
        reader.join(5)
        sink.stdout.close()
