"""Generic router (and transport) options through `pymta -odi`: translate_ip_address,
transport_home_directory / transport_current_directory (and the transport's own
home_directory / current_directory), initgroups and disable_logging."""
from __future__ import annotations

import os
import re

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink

USER = "nobody"

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
translated:
  driver = manualroute
  domains = remote.example
  route_list = * 192.0.2.1::SINK_PORT
  translate_ip_address = ${if eq{$host_address}{192.0.2.1}{127.0.0.1}{}}
  self = send
  transport = smtp
dirs:
  driver = accept
  local_parts = dirs
  transport_home_directory = DIR/h
  transport_current_directory = DIR/c
  user = USER
  initgroups
  transport = shell
tdirs:
  driver = accept
  local_parts = tdirs
  transport = shell_own
quiet:
  driver = accept
  local_parts = quiet
  disable_logging
  transport = local
others:
  driver = accept
  local_parts = quiet2 : loud
  transport = ${if eq{$local_part}{quiet2}{quiet_local}{local}}
begin transports
smtp:
  driver = smtp
  allow_localhost
shell:
  driver = pipe
  command = DIR/report.sh DIR/out-dirs
shell_own:
  driver = pipe
  command = DIR/report.sh DIR/out-tdirs
  home_directory = DIR/th
  current_directory = DIR/tc
  user = USER
local:
  driver = appendfile
  file = DIR/mbox
quiet_local:
  driver = appendfile
  file = DIR/mbox
  disable_logging
"""


def _daemon(tmp_path, sink_port: int = 1) -> PymtaDaemon:
    if os.geteuid() != 0:
        pytest.skip("delivering as another user (and initgroups) needs root")
    d = PymtaDaemon(CONFIG.replace("SINK_PORT", str(sink_port)).replace("USER", USER),
                    tmp_path)
    d.prepare()
    for sub in ("h", "c", "th", "tc"):
        (tmp_path / sub).mkdir()
    script = tmp_path / "report.sh"
    script.write_text('#!/bin/sh\npwd > "$1"; echo "$HOME" >> "$1"\n'
                      'grep ^Groups: /proc/self/status >> "$1"\n')
    script.chmod(0o755)
    return d


def _send(d: PymtaDaemon, rcpt: str) -> None:
    proc = d.run("-odi", "-f", "s@test.example", rcpt, input=b"Subject: t\n\nbody\n")
    assert proc.returncode == 0, proc.stderr


def test_translate_ip_address(tmp_path):
    with SmtpSink() as sink:
        d = _daemon(tmp_path, sink.port)
        _send(d, "x@remote.example")
        assert sink.wait_for(1, 10), d.log()
        assert re.search(r"=> x@remote\.example R=translated T=smtp H=192\.0\.2\.1 "
                         r"\[127\.0\.0\.1\]", d.log()), d.log()


def test_transport_directories_and_initgroups(tmp_path):
    d = _daemon(tmp_path)
    _send(d, "dirs@test.example")
    cwd, home, groups = (tmp_path / "out-dirs").read_text().splitlines()
    assert (cwd, home) == (str(tmp_path / "c"), str(tmp_path / "h"))
    # initgroups: the user's groups as initgroups() gives them (nobody: nogroup)
    assert groups.split()[1:] == [str(g) for g in os.getgrouplist(USER, 65534)]
    _send(d, "tdirs@test.example")
    cwd, home, groups = (tmp_path / "out-tdirs").read_text().splitlines()
    assert (cwd, home) == (str(tmp_path / "tc"), str(tmp_path / "th"))
    assert groups.split()[1:] == []             # no initgroups: no supplementary groups


def test_disable_logging(tmp_path):
    d = _daemon(tmp_path)
    for rcpt in ("quiet@test.example", "quiet2@test.example", "loud@test.example"):
        _send(d, rcpt)
    log = d.log()
    assert "=> loud <loud@test.example>" in log
    assert "quiet" not in log.replace("<= s@test.example", "")
    assert (tmp_path / "mbox").read_text().count("Subject: t") == 3
