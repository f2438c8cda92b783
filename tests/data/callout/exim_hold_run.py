"""Record what Exim 4.96 does with ``verify = recipient/callout=use_sender,hold``: an
Exim daemon (exim4 -bdf) in a temporary directory, the test SMTP sink as the callout and
delivery destination, one SMTP session per scenario.  Prints, per scenario, the replies,
the commands the sink received (in order, over all its connections), the number of
connections and Exim's main log.  Run as root: ``python tests/data/callout/exim_hold_run.py``
(exim-4.96-hold.txt is its output).  Not a test: the facts for implementing ``hold``.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.support.ports import free_port  # noqa: E402
from tests.support.sink import SmtpSink  # noqa: E402
from tests.support.smtp import SmtpTestClient  # noqa: E402

CONF = """keep_environment =
exim_user = Debian-exim
exim_group = Debian-exim
primary_hostname = test.example
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
local_interfaces = 127.0.0.1
acl_smtp_rcpt = rcpt
{queue_only}
begin acl
rcpt:
  require verify = recipient/callout=use_sender,hold,no_cache
  accept
begin routers
r1:
  driver = manualroute
  domains = remote.example : other.example
  route_list = * 127.0.0.1
  self = send
  transport = t
begin transports
t:
  driver = smtp
  port = {sink_port}
  allow_localhost
"""

BODY = b"Subject: t\r\n\r\nhello\r\n"


def scenario(name: str, queue_only: bool, steps: list[str]) -> None:
    sink = SmtpSink(rcpt_replies={"bad@remote.example": (550, "no such user")}).start()
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        for sub in ("spool", "log"):
            Path(d, sub).mkdir()
            Path(d, sub).chmod(0o777)
        Path(d).chmod(0o755)
        conf = Path(d, "conf")
        conf.write_text(CONF.format(d=d, sink_port=sink.port,
                                    queue_only="queue_only" if queue_only else ""))
        daemon = subprocess.Popen(["exim4", "-C", str(conf), "-bdf", "-oX", str(port)])
        try:
            time.sleep(1.5)
            print(f"=== {name}")
            c = SmtpTestClient(port)
            c.banner()
            c.ehlo()
            for step in steps:
                if step == "DATA":
                    reply = c.data(BODY)
                elif step == "SINK?":
                    time.sleep(0.5)
                    print(f"  sink so far: {sink.commands} connections {sink.connections}")
                    continue
                else:
                    reply = c.cmd(step)
                print(f"  {step} -> {reply}")
            c.quit()
            c.close()
            time.sleep(2)
            print(f"  sink connections: {sink.connections}")
            for line in sink.commands:
                print(f"  SINK {line}")
            for line in Path(d, "log", "mainlog").read_text().splitlines():
                if "daemon started" not in line and "certificate" not in line \
                        and "Suggested" not in line and "lost privilege" not in line:
                    print(f"  LOG {line[20:]}")
        finally:
            daemon.terminate()
            daemon.wait()
            sink.stop()


MAIL = "MAIL FROM:<s@sender.example>"
scenario("two recipients, immediate delivery", False,
         [MAIL, "RCPT TO:<a@remote.example>", "RCPT TO:<b@remote.example>", "SINK?", "DATA",
          "SINK?"])
scenario("two domains on the same host, immediate delivery", False,
         [MAIL, "RCPT TO:<a@remote.example>", "RCPT TO:<b@other.example>", "DATA"])
scenario("queue_only: the held connection after the message", True,
         [MAIL, "RCPT TO:<a@remote.example>", "RCPT TO:<b@remote.example>", "DATA", "SINK?"])
scenario("queue_only, a second message in the session", True,
         [MAIL, "RCPT TO:<a@remote.example>", "DATA", "SINK?", "MAIL FROM:<s2@sender.example>",
          "RCPT TO:<c@remote.example>", "DATA"])
scenario("RSET", False, [MAIL, "RCPT TO:<a@remote.example>", "RSET", "SINK?"])
scenario("a refused recipient between two accepted ones", False,
         [MAIL, "RCPT TO:<a@remote.example>", "RCPT TO:<bad@remote.example>",
          "RCPT TO:<b@remote.example>", "DATA"])
scenario("a refused first recipient", False,
         [MAIL, "RCPT TO:<bad@remote.example>", "RCPT TO:<a@remote.example>", "DATA"])
