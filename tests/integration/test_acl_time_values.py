"""Times written without a unit in ACL arguments: a temporary rejection whose logged
reason is Exim 4.96's (tests/data/acl_times/README.md), not an accepted guess."""
from __future__ import annotations

import pytest

from tests.support.daemon import run_pymta

CONF = """\
spool_directory = SPOOL
tls_advertise_hosts =
acl_smtp_rcpt = r
begin acl
r:
  warn delay = DELAY
  accept verify = recipient/callout=CALLOUT
begin routers
x:
  driver = manualroute
  route_list = * 127.0.0.1
  transport = t
begin transports
t:
  driver = smtp
"""

SESSION = "HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@c.example>\r\nQUIT\r\n"
PREFIX = "LOG: H=(x) [192.0.2.1] F=<a@b.example> temporarily rejected RCPT <u@c.example>: "


@pytest.mark.parametrize("delay, callout, reason", [
    ("1", "30s", 'syntax error in argument for "delay" modifier: "1" is not a time value'),
    ("1s", "30", 'bad time value in ACL condition "verify recipient/callout=30"'),
])
def test_time_without_unit_is_a_451_with_exims_reason(tmp_path, delay, callout, reason):
    (tmp_path / "spool").mkdir()
    conf = tmp_path / "conf"
    conf.write_text(CONF.replace("SPOOL", str(tmp_path / "spool"))
                    .replace("DELAY", delay).replace("CALLOUT", callout))
    out = run_pymta(["-bh", "192.0.2.1"], conf, input=SESSION)
    text = out.stdout + out.stderr
    assert "451 Temporary local problem - please try later" in text, text
    logged = [line for line in text.splitlines() if line.startswith("LOG:")]
    assert logged == [PREFIX + reason], logged
