"""``pymta-checkaccess <ip> <address> [pymta options]``: would a RCPT for the address
be accepted from a host with that IP address?  As exim_checkaccess does, it runs a
``pymta -bh <ip>`` session (HELO, ``MAIL FROM:<>`` or the ``-f`` sender, RCPT, QUIT)
and prints ``Accepted``, or ``Rejected:`` and the reply to RCPT.  Other options (``-C``,
``-D``...) are passed on to pymta."""
from __future__ import annotations

import ipaddress
import re
import subprocess
import sys

from pymta.admin.common import pymta_command

USAGE = "Usage: pymta-checkaccess <IP address> <email address> [pymta options]\n"


def rcpt_reply(output: str) -> str | None:
    """The reply to RCPT (the fourth reply: banner, HELO, MAIL, RCPT) in -bh output."""
    count, reply = 0, ""
    for line in output.splitlines(keepends=True):
        if not re.match(r"^\d\d\d", line):
            continue
        reply += line
        if re.match(r"^\d\d\d-", line):
            continue
        count += 1
        if count == 4:
            return reply
        reply = ""
    return None


def verdict(reply: str | None) -> str:
    """``Accepted`` or ``Rejected:`` with the reply lines indented."""
    if reply is not None and reply.startswith("2"):
        return "Accepted\n"
    text = reply or "(no reply to RCPT)\n"
    return "Rejected:\n  " + re.sub(r"\n(.)", r"\n  \1", text)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--help"] or len(args) < 2:
        sys.stdout.write(USAGE)
        raise SystemExit(1)
    host, recipient, rest = args[0], args[1], list(args[2:])
    try:
        ipaddress.ip_address(host)
    except ValueError:
        sys.stdout.write(f'** Invalid IP address "{host}"\n' + USAGE)
        raise SystemExit(1) from None
    sender = ""
    if "-f" in rest:
        i = rest.index("-f")
        if i + 1 < len(rest):
            sender = rest[i + 1].strip('"')
            del rest[i:i + 2]
    dialogue = (f"HELO [{host}]\r\nMAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\n"
                "QUIT\r\n")
    proc = subprocess.run(pymta_command() + ["-bh", host] + rest, input=dialogue,
                          capture_output=True, text=True, errors="replace")
    reply = rcpt_reply(proc.stdout)
    if reply is None and proc.returncode != 0:
        # pymta could not run the session (a configuration error, say): say why
        sys.stderr.write(proc.stderr)
        raise SystemExit(1)
    sys.stdout.write(verdict(reply))
