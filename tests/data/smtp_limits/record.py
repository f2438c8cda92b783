#!/usr/bin/env python3
"""Record what Exim 4.96 answers (exim4 -bh) in the scenarios of
tests/integration/test_smtp_limits_daemon.py and test_smtp_attacks.py.

    python3 tests/data/smtp_limits/record.py      # needs exim4; writes <name>.exim.out
                                                  # and smuggling.exim-spool.txt

Each scenario is <name>.in (the client's bytes) with the main options in
CASES; the output keeps Exim's replies and LOG: lines (its debug lines and the date of
the banner are left out)."""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CONFIG = """keep_environment =
exim_user = Debian-exim
primary_hostname = mx.test.example
spool_directory = {tmp}/spool
log_file_path = {tmp}/%slog
acl_smtp_rcpt = acl_rcpt
{options}
begin acl
acl_rcpt:
  accept
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
"""

CASES = {
    "host_reject_connection": "host_reject_connection = 1.2.3.4",
    "max_per_connection": "smtp_accept_max_per_connection = 2",
    "max_per_connection_counts": "smtp_accept_max_per_connection = 2",
    "header_maxsize": "header_maxsize = 100",
    "header_line_maxsize": "header_line_maxsize = 50",
    "max_synprot_errors": "smtp_max_synprot_errors = 2",
    "max_unknown_commands": "smtp_max_unknown_commands = 2",
    "max_nonmail": "smtp_accept_max_nonmail = 2",
    "recipients_max_reject": "recipients_max = 2\nrecipients_max_reject = true",
    "helo_allow_chars": "helo_allow_chars = _",
    "smuggling": "",
    "long_line": "",
}


def record(name: str, options: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "spool").mkdir()
        Path(tmp).chmod(0o777)
        Path(tmp, "spool").chmod(0o777)
        conf = Path(tmp, "exim.conf")
        conf.write_text(CONFIG.format(tmp=tmp, options=options))
        run = subprocess.run(["exim4", "-C", str(conf), "-bh", "1.2.3.4"],
                             input=(HERE / f"{name}.in").read_bytes(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = run.stdout.decode("utf-8", "replace")
    keep = [ln for ln in out.splitlines()
            if ln and not ln.startswith((">>>", "****"))]
    text = "\n".join(keep) + "\n"
    text = re.sub(r"Exim 4\.96 .*", "Exim 4.96 DATE", text)
    return re.sub(r"\b\w{6}-\w{6}-\w{2}\b", "MSGID", text)


def record_spooled(name: str) -> str:
    """The message bodies Exim spools (-D files, after their first line) for a
    conversation given on standard input (exim4 -bs -odq), one Python bytes literal
    per message, in the order received."""
    with tempfile.TemporaryDirectory() as tmp:
        spool = Path(tmp, "spool")
        spool.mkdir()
        for p in (Path(tmp), spool):
            p.chmod(0o777)
        conf = Path(tmp, "exim.conf")
        conf.write_text(CONFIG.format(tmp=tmp, options="queue_only"))
        subprocess.run(["exim4", "-C", str(conf), "-odq", "-bs"],
                       input=(HERE / f"{name}.in").read_bytes(), capture_output=True)
        files = sorted(spool.rglob("*-D"), key=lambda f: f.name)
        return "".join(repr(f.read_bytes().split(b"\n", 1)[1]) + "\n" for f in files)


if __name__ == "__main__":
    for case, opts in CASES.items():
        (HERE / f"{case}.exim.out").write_text(record(case, opts))
    (HERE / "smuggling.exim-spool.txt").write_text(record_spooled("smuggling"))
