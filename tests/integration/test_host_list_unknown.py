"""Host lists with names or addresses that cannot be found (spec 10.15 and 10.17):
the whole list fails by default, +ignore_unknown skips the item, +include_unknown
matches; the log lines (+unknown_in_list) and replies against exim4 4.96's for the same
-bh sessions (tests/data/host_unknown), and temporary DNS failures with +ignore_defer
and +include_defer against the loopback DNS server."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.daemon import run_pymta
from tests.support.dns import DnsServer

RECORDED = json.loads((Path(__file__).resolve().parent.parent / "data" / "host_unknown"
                       / "exim4_bh.json").read_text())
SESSION = "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@mx.test>\r\nQUIT\r\n"


def _conf(tmp_path: Path, hosts: str) -> Path:
    text = RECORDED["config"].replace("  accept hosts = some.host.invalid",
                                      f"  accept hosts = {hosts}")
    lines = [line for line in text.splitlines()
             if not line.startswith(("exim_user", "spool_directory", "log_file_path"))]
    conf = tmp_path / "configure"
    conf.write_text(f"spool_directory = {tmp_path}/spool\n" + "\n".join(lines) + "\n")
    return conf


def _relevant(out) -> list[str]:
    # (pymta's note that -bh could not make a self-signed certificate is no concern here)
    return [line for line in (out.stdout + out.stderr).splitlines()
            if line.startswith(("LOG", "550", "250 Acc", "451"))
            and "TLS unavailable" not in line]


@pytest.mark.parametrize("hosts", sorted(RECORDED["results"]))
def test_unknown_names_and_addresses_as_exim(tmp_path, hosts):
    with DnsServer({"invalid": "", "2.0.192.in-addr.arpa": ""}) as dns:
        out = run_pymta(["-bh", "192.0.2.1"], _conf(tmp_path, hosts), input=SESSION,
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns.port}"})
    assert _relevant(out) == RECORDED["results"][hosts]


@pytest.mark.parametrize("hosts, reply", [
    ("slow.test.example", "451"),                          # a DNS deferral defers
    ("+ignore_defer : slow.test.example : 192.0.2.1", "250"),
    ("+include_defer : slow.test.example", "250"),
    ("+ignore_defer : slow.test.example", "550"),
])
def test_temporary_dns_failures(tmp_path, hosts, reply):
    with DnsServer({"test.example": "host IN A 192.0.2.9\n"},
                   servfail=["slow.test.example"]) as dns:
        out = run_pymta(["-bh", "192.0.2.1"], _conf(tmp_path, hosts), input=SESSION,
                        env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns.port}"})
    replies = [line[:3] for line in out.stdout.splitlines() if line[:3] in ("250", "451", "550")]
    assert replies[-1] == reply, out.stdout + out.stderr
