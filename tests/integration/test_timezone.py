"""The ``timezone`` main option: log lines, Received: and Date: headers are written in
that zone (Exim sets TZ at start); message ids do not depend on it.

"PYM-05:30" is a POSIX TZ string (UTC+05:30, no daylight saving), so the expected
offset holds on any date and needs no tz database; the test process runs in another zone
(TZ=UTC) so that the option, not the inherited environment, must make the difference.
"""
from __future__ import annotations

import re

from tests.support.daemon import PymtaDaemon

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
log_selector = +received_recipients
log_timezone = true
daemon_smtp_ports = SMTP_PORT
acl_smtp_rcpt = accept
TZLINE
begin routers
r:
  driver = redirect
  data = :blackhole:
"""


def _daemon(tmp_path, tzline: str) -> PymtaDaemon:
    return PymtaDaemon(CONFIG.replace("TZLINE", tzline), tmp_path, args=["-odq"],
                       env={"TZ": "UTC"})


def _header(d: PymtaDaemon, msgid: str) -> str:
    [path] = list(d.spool.glob(f"input/**/{msgid}-H"))
    return path.read_text()


def test_command_line_submission_uses_the_timezone(tmp_path):
    d = _daemon(tmp_path, "timezone = PYM-05:30")
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    proc = d.run("-odq", "-t", input="To: alice@test.example\nSubject: tz\n\nbody\n")
    assert proc.returncode == 0, proc.stderr
    [msgid] = d.queue()
    header = _header(d, msgid)
    assert re.search(r"Received: from root by mx\.test\.example [^;]*;\s+"
                     r"\w\w\w, \d+ \w\w\w \d{4} \d\d:\d\d:\d\d \+0530\n", header), header
    assert re.search(r"Date: \w\w\w, \d+ \w\w\w \d{4} \d\d:\d\d:\d\d \+0530\n", header)
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0530 " + msgid + " <= ",
                     d.log(), re.M), d.log()


def test_without_the_option_the_inherited_zone_applies(tmp_path):
    d = _daemon(tmp_path, "")
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    proc = d.run("-odq", "-t", input="To: alice@test.example\nSubject: tz\n\nbody\n")
    assert proc.returncode == 0, proc.stderr
    [msgid] = d.queue()
    assert re.search(r"Date: .* \+0000\n", _header(d, msgid))
    assert re.search(r" \+0000 " + msgid + " <= ", d.log())


def test_daemon_received_header_and_log_use_the_timezone(tmp_path):
    d = _daemon(tmp_path, "timezone = PYM-05:30").start()
    with d.client() as c:
        c.banner()
        c.ehlo("client.test.example")
        assert c.cmd("MAIL FROM:<bob@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        code, _ = c.data(b"Subject: tz\r\n\r\nbody\r\n")
        assert code == 250
        c.quit()
    [msgid] = d.queue()
    header = _header(d, msgid)
    received = header[header.index("Received: "):]
    assert re.search(r"\d\d:\d\d:\d\d \+0530\n", received), header
    assert re.search(r"\+0530 " + msgid + " <= bob@test.example ", d.log()), d.log()
