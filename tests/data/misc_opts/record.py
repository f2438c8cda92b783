#!/usr/bin/env python3
"""Record Exim 4.96's replies and log lines for the scenarios of test_misc_opts.py
(run as root where exim4 is installed: ``python3 tests/data/misc_opts/record.py``).

Each scenario is one ``exim4 -C <conf> -bh 127.0.0.1`` session driven line by line; the
transcript (``C: `` client line, ``S: `` reply, ``L: `` log line, which -bh prints on
stderr as ``LOG: ``) goes to ``<scenario>.txt``.  The 220 banner carries a date and is
written as ``220 <banner>``.
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EHLO = "EHLO client.example"
AUTH = "AUTH PLAIN " + base64.b64encode(b"\0alice\0secret").decode()

# scenario name -> (configuration file, client lines)
SCENARIOS: dict[str, tuple[str, list[str]]] = {
    "mailauth_unauthenticated": ("mailauth.conf", [
        EHLO,
        "MAIL FROM:<a@b.example> AUTH=good@b.example", "RSET",
        "MAIL FROM:<a@b.example> AUTH=other@b.example", "RSET",
        "MAIL FROM:<a@b.example> SIZE=10 AUTH=later@b.example",
        "MAIL FROM:<a@b.example> AUTH=<>", "RSET",
        "MAIL FROM:<a@b.example> AUTH=discard@b.example BODY=8BITMIME",
        "MAIL FROM:<a@b.example> AUTH=drop@b.example"]),
    "mailauth_authenticated": ("mailauth.conf", [
        EHLO, AUTH,
        "MAIL FROM:<a@b.example> AUTH=good@b.example", "RSET",
        "MAIL FROM:<a@b.example> AUTH=cond@b.example", "RSET",
        "MAIL FROM:<a@b.example> AUTH=other@b.example"]),
}


def run(conf: str, steps: list[str]) -> str:
    proc = subprocess.Popen(["exim4", "-C", conf, "-bh", "127.0.0.1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdin is not None and proc.stdout is not None
    out: list[str] = []

    def read_reply() -> None:
        started = False
        while True:
            line = proc.stdout.readline()
            if not line:
                return
            line = line.rstrip("\r\n")
            if line.startswith((">>>", "****")) or not line.strip() and not started:
                continue
            if line.startswith("LOG: "):
                out.append("L: " + line[5:])
                continue
            started = True
            out.append("S: " + ("220 <banner>" if line.startswith("220 ") else line))
            if len(line) >= 4 and line[3] == " ":
                return

    read_reply()
    for step in steps:
        out.append("C: " + step)
        proc.stdin.write(step + "\r\n")
        proc.stdin.flush()
        read_reply()
    proc.stdin.write("QUIT\r\n")
    proc.stdin.close()
    for line in proc.stdout:
        line = line.rstrip("\r\n")
        if line.startswith("LOG: "):
            out.append("L: " + line[5:])
        elif line[:3].isdigit():
            out.append("S: " + line)
    proc.wait()
    return "\n".join(out) + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as spool:
        os.makedirs(os.path.join(spool, "log"))
        os.chmod(spool, 0o777)
        names = sys.argv[1:] or list(SCENARIOS)
        for name in names:
            conf_name, steps = SCENARIOS[name]
            with open(os.path.join(HERE, conf_name)) as f:
                text = f.read().replace("SPOOL", spool)
            conf = os.path.join(spool, conf_name)
            with open(conf, "w") as f:
                f.write("keep_environment =\nexim_user = Debian-exim\n" + text)
            with open(os.path.join(HERE, name + ".txt"), "w") as f:
                f.write(run(conf, steps))


if __name__ == "__main__":
    main()
