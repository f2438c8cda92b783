"""Record the events Exim 4.96 raises in the scenarios of
tests/integration/test_events.py, as the expected order (exim_4.96.json).

Run as root on a machine with Debian's exim4:  python3 tests/data/events/record_exim.py
It runs ``exim4 -C <config> -odf`` once per scenario against tests/support/sink.py and
keeps, for the first message, each event's name, $event_data, $event_defer_errno,
$local_part and $router_name as written by the event ACL's logwrite.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tests.integration.test_events import SCENARIOS, parse_events  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

CONFIG = """\
keep_environment =
exim_user = Debian-exim
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = DIR/spool
log_file_path = DIR/log/%slog
event_action = ${acl{ev}}
begin acl
ev:
  warn logwrite = EVENT_LINE
  accept
begin routers
nowhere:
  driver = redirect
  domains = nowhere.example
  allow_fail
  data = :fail: no such place
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = remote_smtp
local_users:
  driver = accept
  domains = test.example
  local_parts = alice
  transport = local_file
begin transports
remote_smtp:
  driver = smtp
  allow_localhost
  event_action = ${acl{ev}}TRANSPORT_EXTRA
local_file:
  driver = appendfile
  file = DIR/mbox
  user = Debian-exim
  event_action = ${acl{ev}}
begin retry
*  *  F,1h,1s
"""


def record(name: str, scenario: dict) -> list[list[str]]:
    from tests.integration.test_events import EVENT_LINE
    d = Path(tempfile.mkdtemp(prefix="evx-"))
    os.chmod(d, 0o777)
    for sub in ("spool", "log"):
        (d / sub).mkdir()
        os.chmod(d / sub, 0o777)
    (d / "mbox").touch()
    shutil.chown(d / "mbox", "Debian-exim")
    port = free_port()
    conf = (CONFIG.replace("EVENT_LINE", EVENT_LINE).replace("DIR", str(d))
            .replace("SINK_PORT", str(port))
            .replace("TRANSPORT_EXTRA", scenario.get("transport_extra", "")))
    (d / "exim.conf").write_text(conf)
    sink = scenario["sink"](port) if scenario.get("sink") else None
    try:
        if sink is not None:
            sink.start()
        subprocess.run(["exim4", "-C", str(d / "exim.conf"), "-odf", "-f",
                        scenario["sender"], *scenario["recipients"]],
                       input=b"Subject: events\n\nbody\n", check=True)
        time.sleep(0.5)
    finally:
        if sink is not None:
            sink.stop()
    log = (d / "log" / "mainlog").read_text()
    first = re.search(r" (\S+) <= ", log).group(1)
    shutil.rmtree(d)
    return parse_events(log, first)


def main() -> None:
    out = {name: record(name, sc) for name, sc in SCENARIOS.items()}
    target = Path(__file__).with_name("exim_4.96.json")
    lines = []
    for name, events in out.items():
        lines.append(f" {json.dumps(name)}: [\n" + ",\n".join(
            "  " + json.dumps(e) for e in events) + "\n ]")
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    target.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
