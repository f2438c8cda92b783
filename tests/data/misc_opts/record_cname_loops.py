#!/usr/bin/env python3
"""Record how Exim 4.96 follows CNAME chains a resolver leaves unfollowed
(dns_cname_loops), as root where exim4 is installed, with the project's venv:
``.venv/bin/python tests/data/misc_opts/record_cname_loops.py``; writes
cname_loops_<n>.txt for dns_cname_loops unset (default), 0 and 2.

As record_slow_lookup.py: the test DNS server (tests/support/dns.py, here with
follow_cname=False: an answer holds the first CNAME only) on 127.0.0.1:53, and a private
mount namespace giving Exim a resolv.conf that names it.  ``exim4 -bt`` routes
user@one.cname.example (one CNAME to the domain with the MX) and user@two.cname.example
(two CNAMEs); its log lines come on stderr after "LOG: MAIN".
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

ZONES = {"cname.example": """
one      IN CNAME target
two      IN CNAME one
target   IN MX 10 mailhost
mailhost IN A 192.0.2.1
"""}


def record(loops: int | None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)
        os.makedirs(os.path.join(tmp, "spool", "log"))
        with open(os.path.join(HERE, "cname_loops.conf")) as f:
            text = f.read().replace("SPOOL", os.path.join(tmp, "spool"))
        if loops is not None:
            text = f"dns_cname_loops = {loops}\n" + text
        conf = os.path.join(tmp, "exim.conf")
        with open(conf, "w") as f:
            f.write("keep_environment =\nexim_user = Debian-exim\n" + text)
        resolv = os.path.join(tmp, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        with DnsServer(ZONES, port=53, follow_cname=False):
            out = subprocess.run(
                ["unshare", "-m", "sh", "-c", f"mount --bind {resolv} /etc/resolv.conf && "
                 f"exim4 -C {conf} -bt user@one.cname.example user@two.cname.example"],
                capture_output=True, text=True)
    return "\n".join(line.strip() for line in (out.stdout + out.stderr).splitlines()
                     if line.strip() and line.strip() != "LOG: MAIN") + "\n"


def main() -> None:
    for loops in (None, 0, 2):
        name = "default" if loops is None else str(loops)
        with open(os.path.join(HERE, f"cname_loops_{name}.txt"), "w") as f:
            f.write(record(loops))


if __name__ == "__main__":
    main()
