"""The daemon logs to syslog (log_file_path = syslog : path): a Unix datagram socket in the
test stands in for /dev/log and receives the receivers' lines with Exim's priorities, the
configured facility and tag, and the sending process's pid."""
from __future__ import annotations

import os
import re
import socket
import time

from tests.support.daemon import PymtaDaemon

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = syslog : SPOOL/log/%slog
log_selector = +pid
syslog_facility = local5
syslog_processname = pymta
domainlist local_domains = test.example
acl_smtp_rcpt = check_rcpt
queue_only

begin acl
check_rcpt:
  accept  domains = +local_domains
  deny    message = relay not permitted
"""

HEADER = re.compile(r"<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d pymta\[(\d+)\]: (.*)", re.S)


def _collect(sock: socket.socket, until: str, timeout: float = 10.0) -> list[str]:
    """Datagrams received until one contains ``until`` (and those right after it)."""
    out: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        seen = any(until in g for g in out)
        sock.settimeout(0.3 if seen else max(0.05, end - time.monotonic()))
        try:
            out.append(sock.recv(8192).decode())
        except socket.timeout:
            break
    return out


def test_daemon_lines_reach_syslog(tmp_path):
    path = str(tmp_path / "devlog")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o666)               # the receivers run as exim_user
    try:
        with PymtaDaemon(CONFIG, tmp_path, env={"PYMTA_TEST_SYSLOG_SOCKET": path}) as d:
            with d.client() as c:
                c.banner()
                c.ehlo()
                assert c.cmd("MAIL FROM:<a@elsewhere.example>")[0] == 250
                assert c.cmd("RCPT TO:<x@relay.example>")[0] == 550
                assert c.cmd("RCPT TO:<bob@test.example>")[0] == 250
                assert c.data(b"Subject: hi\r\n\r\nbody\r\n")[0] == 250
                c.quit()
            d.wait_for_log(r" <= a@elsewhere\.example ")
            grams = _collect(sock, " <= a@elsewhere.example ")
    finally:
        sock.close()
    parsed = []
    for g in grams:
        m = HEADER.fullmatch(g)
        assert m, g
        parsed.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    local5 = 21 * 8
    rejects = [p for p in parsed if "relay not permitted" in p[2]]
    # the rejection goes to mainlog (LOG_INFO) and rejectlog (LOG_NOTICE)
    assert sorted(pri for pri, _, _ in rejects) == [local5 + 5, local5 + 6]
    [arrival] = [p for p in parsed if " <= a@elsewhere.example " in p[2]]
    assert arrival[0] == local5 + 6
    # syslog's pid is the receiver's, the same as the +pid field of the line itself
    assert re.match(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \[{arrival[1]}\] \S+ <= ", arrival[2])
    assert arrival[1] != os.getpid()
    # and the files get the same lines
    assert arrival[2] + "\n" in d.log("main")
