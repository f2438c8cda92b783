"""Record Exim 4.96's callout behaviour: run ``exim4 -bhc`` against the test SMTP sink.

    python tests/data/callout/exim_run.py tests/data/callout/scenarios1.json

For each scenario prints the replies (no banner/EHLO lines), the LOG: lines Exim writes
to stderr under -bh, and the commands the sink received.  Needs Exim 4.96 as exim4 and a
writable /tmp/pymta-exim-callout (the spool, reset for every scenario).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from tests.support.sink import SmtpSink  # noqa: E402

WORK = Path("/tmp/pymta-exim-callout")
SINK_REPLIES = {"bad@remote.example": (550, "5.1.1 no such user"),
                "tmp@remote.example": (451, "try later")}
CONFIG = """keep_environment =
exim_user = Debian-exim
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = {work}/spool
callout_random_local_part = random-local-part
acl_smtp_rcpt = r
acl_smtp_data = d
begin acl
r:
{acl}
d:
  require verify = header_sender/callout=mailfrom=hs@test.example
  accept
begin routers
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.1
  self = send
  transport = t
begin transports
t:
  driver = smtp
  port = {port}
  allow_localhost
"""
_SKIP = ("250-", "220 ", "**** ")


def run(scenario: dict) -> tuple[list[str], list[str], list[str]]:
    WORK.mkdir(mode=0o777, exist_ok=True)
    WORK.chmod(0o777)
    shutil.rmtree(WORK / "spool", ignore_errors=True)
    kw: dict = {"rcpt_replies": dict(SINK_REPLIES)}
    for k, v in (scenario.get("sink") or {}).items():
        kw[k] = {a: tuple(r) for a, r in v.items()} if k == "rcpt_replies" \
            else tuple(v) if isinstance(v, list) else v
    with SmtpSink(**kw) as sink:
        conf = WORK / "conf"
        conf.write_text(CONFIG.format(work=WORK, acl=scenario["acl"],
                                      port=scenario.get("port") or sink.port))
        out = subprocess.run(["exim4", "-C", str(conf), "-bhc", "192.0.2.1"],
                             input=scenario["session"].replace("\n", "\r\n").encode(),
                             capture_output=True, timeout=60)
        replies = [line for line in out.stdout.decode().splitlines()
                   if line.strip() and not line.startswith(_SKIP)]
        logs = [line for line in out.stderr.decode().splitlines() if line.startswith("LOG:")]
        return replies, logs, list(sink.commands)


def main() -> None:
    for name, scenario in json.loads(Path(sys.argv[1]).read_text()).items():
        replies, logs, commands = run(scenario)
        print("=== " + name)
        print("\n".join(replies))
        print("\n".join(logs))
        print("SINK", commands)


if __name__ == "__main__":
    main()
