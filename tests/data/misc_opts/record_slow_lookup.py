#!/usr/bin/env python3
"""Record what Exim 4.96 logs for slow_lookup_log (run as root where exim4 is installed:
``.venv/bin/python tests/data/misc_opts/record_slow_lookup.py``; writes slow_lookup_log.txt).

Exim asks the resolver of /etc/resolv.conf, which cannot name a port: so this runs the
test DNS server (tests/support/dns.py) on 127.0.0.1:53 and, in a private mount
namespace (``unshare -m``), puts a resolv.conf naming it over /etc/resolv.conf.  The
answers for sleepy.slow.example come 0.3 s late.  ``exim4 -bt`` prints its log lines on
stderr as "LOG: MAIN" followed by the line.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, REPO)

from tests.support.dns import DnsServer  # noqa: E402

ZONES = {"slow.example": """
fast   IN A 192.0.2.1
sleepy IN MX 10 fast
"""}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)
        os.makedirs(os.path.join(tmp, "spool", "log"))
        with open(os.path.join(HERE, "slow_lookup_log.conf")) as f:
            text = f.read().replace("SPOOL", os.path.join(tmp, "spool"))
        conf = os.path.join(tmp, "exim.conf")
        with open(conf, "w") as f:
            f.write("keep_environment =\nexim_user = Debian-exim\n" + text)
        resolv = os.path.join(tmp, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        with DnsServer(ZONES, port=53, slow={"sleepy.slow.example": 0.3}):
            out = subprocess.run(
                ["unshare", "-m", "sh", "-c", f"mount --bind {resolv} /etc/resolv.conf && "
                 f"exim4 -C {conf} -bt user@sleepy.slow.example"],
                capture_output=True, text=True, check=True)
    lines = [line.strip() for line in (out.stdout + out.stderr).splitlines()
             if line.strip() and line.strip() != "LOG: MAIN"]
    with open(os.path.join(HERE, "slow_lookup_log.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
