#!/usr/bin/env python3
"""Measure how long Exim 4.96 (exim4 -bh) takes to answer MAIL and RCPT under
smtp_ratelimit_mail = 1,1s,2,10s and smtp_ratelimit_rcpt = 1,0.5s,3,10s; writes
ratelimit.exim.out ("<command> <seconds, rounded to 0.5> <reply>" per line).

    python3 tests/data/smtp_limits/record_ratelimit.py"""
from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from record import CONFIG

HERE = Path(__file__).resolve().parent
OPTIONS = ("smtp_ratelimit_hosts = *\nsmtp_ratelimit_mail = 1,1s,2,10s\n"
           "smtp_ratelimit_rcpt = 1,0.5s,3,10s")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "spool").mkdir()
        for d in (Path(tmp), Path(tmp, "spool")):
            d.chmod(0o777)
        conf = Path(tmp, "exim.conf")
        conf.write_text(CONFIG.format(tmp=tmp, options=OPTIONS))
        p = subprocess.Popen(["exim4", "-C", str(conf), "-bh", "1.2.3.4"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        assert p.stdin is not None and p.stdout is not None
        out = []

        def send(line: str) -> None:
            start = time.monotonic()
            p.stdin.write(line.encode() + b"\r\n")
            p.stdin.flush()
            while True:
                reply = p.stdout.readline().decode().rstrip()
                if reply[:3].isdigit() and reply[3:4] == " ":
                    break
            took = round((time.monotonic() - start) * 2) / 2
            out.append(f"{line.split(':')[0]} {took} {reply}")

        while not p.stdout.readline().startswith(b"220"):
            pass
        send("EHLO client.test")
        for i in range(3):
            send("MAIL FROM:<a@b.c>")
            if i == 0:
                for n in range(3):
                    send(f"RCPT TO:<r{n}@b.c>")
            send("RSET")
        send("QUIT")
        p.wait()
    (HERE / "ratelimit.exim.out").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
