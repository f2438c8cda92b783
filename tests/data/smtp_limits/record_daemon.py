#!/usr/bin/env python3
"""Record what an Exim 4.96 daemon (exim4 -bdf) answers when connection limits apply:
the replies to connections from several loopback addresses, held open together, and
its main log.  Run as root with exim4 installed:

    python3 tests/data/smtp_limits/record_daemon.py     # writes daemon_<name>.exim.out

The load-average cases need a machine whose load is above 0.01."""
from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from record import CONFIG

HERE = Path(__file__).resolve().parent
PORT = 25999

CASES = {
    "max_per_host": ("smtp_accept_max_per_host = 1", ["127.0.0.1", "127.0.0.1"]),
    "reserve": ("smtp_accept_max = 3\nsmtp_accept_reserve = 2\n"
                "smtp_reserve_hosts = 127.0.0.3", ["127.0.0.2", "127.0.0.1", "127.0.0.3"]),
    "load": ("smtp_load_reserve = 0.01", ["127.0.0.1"]),
    "load_reserve_hosts": ("smtp_load_reserve = 0.01\nsmtp_reserve_hosts = 127.0.0.2",
                           ["127.0.0.1", "127.0.0.2"]),
}


def record(options: str, sources: list[str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "spool").mkdir()
        for p in (Path(tmp), Path(tmp, "spool")):
            p.chmod(0o777)
        conf = Path(tmp, "exim.conf")
        conf.write_text(CONFIG.format(tmp=tmp, options=options))
        proc = subprocess.Popen(["exim4", "-C", str(conf), "-bdf", "-oX", str(PORT)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        out = []
        held = []
        try:
            time.sleep(1.5)
            for src in sources:
                s = socket.create_connection(("127.0.0.1", PORT), timeout=5,
                                             source_address=(src, 0))
                held.append(s)
                out.append(f"{src}: {s.recv(1000).decode().rstrip()}")
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait()
            for s in held:
                s.close()
        log = Path(tmp, "mainlog").read_text()
    out += ["LOG: " + line[20:] for line in log.splitlines()
            if "refused" in line]
    text = "\n".join(out) + "\n"
    return re.sub(r"Exim 4\.96 .*", "Exim 4.96 DATE", text)


if __name__ == "__main__":
    for name, (opts, sources) in CASES.items():
        (HERE / f"daemon_{name}.exim.out").write_text(record(opts, sources))
