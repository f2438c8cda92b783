"""``pymta-next [-C file] [-D NAME=value] <address|domain|local-part|message-id>``:
the retry hints for an address, in exinext's format.

As exinext does, it asks ``pymta -v -bt`` which hosts the address routes to and
``pymta -bP`` where the spool is, then prints every retry record whose key or error
text names one of those hosts (``host:ip``), the address itself, or, for a bare local
part, the local part at the qualify domain.
"""
from __future__ import annotations

import re
import subprocess
import sys

import click

from pymta.admin.common import print_time, pymta_command
from pymta.hints import inventory
from pymta.hints.retry import RetryRecord

_HOST_LINE = re.compile(r"^\s*host (\S+)\s+\[(.+?)\]")
_MSGID = re.compile(r"^\w{6}-\w{6}-\w{2}$")
_TEXT_HOST = re.compile(r"host\s(\S+)\s\[([^]]+)\]")


def _pymta(conf_args: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(pymta_command() + conf_args + list(args), capture_output=True,
                          text=True, errors="replace")


def _option(conf_args: list[str], name: str) -> str:
    proc = _pymta(conf_args, "-bP", name)
    if proc.returncode != 0:
        # the configuration cannot be read: nothing else can be done
        sys.stderr.write(proc.stderr or proc.stdout)
        raise SystemExit(1)
    text = proc.stdout
    return text.split("=", 1)[1].strip() if "=" in text else ""


def describe(key: str, rec: RetryRecord) -> str:
    """The first line exinext prints for a record (``Transport: host [ip] error ...``)."""
    if re.match(r"^T:[^:\s]*:", key):
        rest = key[2:]
        port = msgid = None
        if len(rest.split(":")) <= 4:       # host:ip[:port[:msgid]] with an IPv4 address
            parts = rest.split(":")
            host, ip = parts[0], parts[1]
            port = parts[2] if len(parts) > 2 else None
            msgid = parts[3] if len(parts) > 3 else None
        else:                               # an IPv6 address: take both from the text
            m = _TEXT_HOST.search(rec.text)
            if m and rest.startswith(f"{m.group(1)}:{m.group(2)}"):
                host, ip = m.group(1), m.group(2)
                tail = rest[len(host) + len(ip) + 2:].split(":", 1) if \
                    len(rest) > len(host) + len(ip) + 1 else []
                port = tail[0] if tail else None
                msgid = tail[1] if len(tail) > 1 else None
            else:
                host, ip = rest.split(":", 1)
        line = f"Transport: {host} [{ip}]"
        if port is not None:
            line += f":{port}"
        if msgid is not None:
            line += f" {msgid}"
        return line + f" error {rec.basic_errno}: {rec.text}"
    kind, _, what = key.partition(":")
    prefix = {"R": "Route: ", "T": "Transport: "}.get(kind, "")
    return f"{prefix}{what} error {rec.basic_errno}: {rec.text}"


def report(spool: str, targets: list[str]) -> list[str]:
    """The lines for every retry record that names one of ``targets``."""
    out: list[str] = []
    for key, value in inventory.records(spool, "retry"):
        rec = RetryRecord.decode(value)
        if rec is None:
            continue
        line = f"{key} {rec.basic_errno} {rec.more_errno} {rec.text}"
        for target in targets:
            if target in line:
                out.append(describe(key, rec))
                out.append(f"  first failed: {print_time(rec.first_failed)}")
                out.append(f"  last tried:   {print_time(rec.last_try)}")
                out.append(f"  next try at:  {print_time(rec.next_try)}")
                if rec.expired:
                    out.append("  past final cutoff time")
    return out


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-C", "config", default=None, help="configuration file")
@click.option("-D", "macros", multiple=True, help="macro definition NAME=value")
@click.argument("subject", required=False)
def command(config: str | None, macros: tuple[str, ...], subject: str | None) -> None:
    """Show the retry times for an address, domain, local part or message id."""
    if not subject:
        print("Usage: pymta-next <address>|<domain>|<local-part>")
        raise SystemExit(1)
    conf_args = (["-C", config] if config else []) + [f"-D{m}" for m in macros]
    spool = _option(conf_args, "spool_directory")
    qualify = _option(conf_args, "qualify_domain")
    m = re.match(r"^([^@]*)@([^@]*)$", subject)
    address = f"{m.group(1)}@{m.group(2).lower()}" if m else f"User@{subject.lower()}"
    targets: list[str] = []
    for line in _pymta(conf_args, "-v", "-bt", address).stdout.splitlines():
        hm = _HOST_LINE.match(line)
        if hm:
            targets.append(f"{hm.group(1)}:{hm.group(2)}")
        elif "cannot be resolved" in line:
            print(line)
    if not targets:
        if _MSGID.match(subject):
            targets.append(subject)
        if "@" not in subject and "." not in subject:
            targets.append(f"{subject}@{qualify}")
        else:
            print(f"No remote hosts found for {subject}")
    targets.append(subject)
    lines = report(spool, targets)
    for line in lines:
        print(line)
    if not lines:
        print(f"No retry data found for {subject}")


def main() -> None:
    """Console entry point."""
    try:
        command.main(standalone_mode=False)
    except click.UsageError as exc:
        sys.stderr.write(f"pymta-next: {exc.format_message()}\n")
        print("Usage: pymta-next <address>|<domain>|<local-part>")
        raise SystemExit(1) from None
