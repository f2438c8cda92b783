"""Fixtures for end-to-end tests: a real pymta daemon in a temporary directory.

``pymta_daemon(extra_args=..., macros=...)`` starts ``pymta -C conf -bdf -oX PORT`` (see
tests/support/daemon.py) with :data:`BASE_CONFIG`; it is stopped (SIGTERM, then SIGKILL of
its process group) at teardown, and on a failing test the daemon output, mainlog and
paniclog are printed.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.ports import free_port

# Local users alice and bob in test.example get maildirs under DIR/maildir/<user>;
# remote.example is routed by manualroute to a test SMTP sink on SINK_PORT; anything else
# is relay and denied at RCPT.
BASE_CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist local_domains = test.example
acl_smtp_rcpt = acl_check_rcpt
received_header_text = Received: from $sender_helo_name by $primary_hostname id $message_exim_id
.ifdef EXTRA_MAIN
EXTRA_MAIN
.endif

begin acl

acl_check_rcpt:
  accept  domains = +local_domains
          verify = recipient
  accept  domains = remote.example
  deny    message = relay not permitted

begin routers

remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = remote_smtp

local_users:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;DIR/users
  transport = local_maildir

begin transports

remote_smtp:
  driver = smtp
  allow_localhost

local_maildir:
  driver = appendfile
  directory = DIR/maildir/${local_part_data}
  maildir_format
  create_directory

begin retry

*  *  F,1h,1s
"""


def _write_users(directory: Path) -> None:
    (directory / "users").write_text("alice: alice\nbob: bob\n")


@pytest.fixture
def sink_port() -> int:
    return free_port()


@pytest.fixture
def pymta_daemon(tmp_path, sink_port, request):
    """Factory: start a daemon; all are stopped at teardown."""
    started: list[PymtaDaemon] = []

    def start(args=(), macros=None, config=BASE_CONFIG) -> PymtaDaemon:
        _write_users(tmp_path)
        m = {"SINK_PORT": str(sink_port)}
        m.update(macros or {})
        d = PymtaDaemon(config, tmp_path, macros=m, args=list(args))
        started.append(d)
        return d.start()

    yield start
    failed = getattr(request.node, "rep_call", None)
    for d in started:
        d.stop()
        if failed is not None and failed.failed:
            print(d.diagnostics())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def maildir_messages(directory: Path, user: str) -> list[bytes]:
    """Contents of every message in DIR/maildir/<user>/new, oldest first."""
    new = directory / "maildir" / user / "new"
    if not new.is_dir():
        return []
    files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime)
    return [p.read_bytes() for p in files]


def wait_for(pred, timeout: float = 15.0, step: float = 0.05):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def strip_received(msg: bytes) -> bytes:
    """The message without its leading Received: header (and its continuation lines)."""
    lines = msg.split(b"\n")
    out, skipping = [], False
    for i, line in enumerate(lines):
        if line.lower().startswith(b"received:") and not out:
            skipping = True
            continue
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = False
        out.append(line)
    return b"\n".join(out)
