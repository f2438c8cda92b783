"""receive_timeout and -or: a message on standard input that does not finish in time is
abandoned with Exim 4.96's error, log line and exit code (recorded in
tests/data/receive_timeout/exim-4.96.txt); nothing is spooled."""
from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.support.daemon import PYMTA, REPO, PymtaDaemon, macro_args, pymta_env

CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
{options}
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/box
"""


def site(tmp_path, options: str) -> PymtaDaemon:
    d = PymtaDaemon(CONFIG.format(options=options), tmp_path)
    (tmp_path / "spool" / "log").mkdir(parents=True)
    d.prepare()
    return d


def stalling_submit(d: PymtaDaemon, *args: str, stall: float = 6.0):
    """Submit a message whose standard input stalls after its header: the sender keeps
    the pipe open for ``stall`` seconds.  (exit code, stderr, seconds taken)."""
    cmd = PYMTA + ["-C", str(d.config_path)] + macro_args(d.macros) + list(args) + \
        ["-odq", "-f", "a@test.example", "bob@test.example"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, env=pymta_env(), cwd=str(REPO))
    assert proc.stdin is not None
    proc.stdin.write(b"Subject: slow\n\nfirst line\n")
    proc.stdin.flush()
    try:
        proc.wait(timeout=stall)
    except subprocess.TimeoutExpired:
        pass
    took = time.monotonic() - started
    proc.stdin.close()
    proc.wait(timeout=30)
    assert proc.stderr is not None
    return proc.returncode, proc.stderr.read().decode(), took


@pytest.mark.parametrize("options,args", [("receive_timeout = 1s", ()),
                                          ("", ("-or", "1s")),
                                          ("receive_timeout = 1h", ("-or1s",))])
def test_stalled_input_is_abandoned(tmp_path, options, args):
    d = site(tmp_path, options)
    rc, err, took = stalling_submit(d, *args)
    assert rc == 1
    assert err == "pymta: timed out while reading - message abandoned\n"
    assert took < 5
    assert re.fullmatch(r"\S+ \S+ [0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2,4} "
                        r"timed out while reading local message\n", d.log()), d.log()
    assert d.queue() == []


def test_no_timeout_waits_for_the_whole_message(tmp_path):
    d = site(tmp_path, "")                       # receive_timeout = 0s: for ever
    rc, err, took = stalling_submit(d, stall=2.5)
    assert rc == 0, err
    assert took >= 2.5
    assert len(d.queue()) == 1
    assert "timed out" not in d.log()
