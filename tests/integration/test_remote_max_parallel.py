"""remote_max_parallel: one message for N domains, each routed to its own slow sink
(the banner comes only after DELAY seconds).  With remote_max_parallel >= N the N
deliveries run at once and the whole delivery takes about one delay; with 1 they run
one after another and it takes about N delays; with 2 (Exim's default) two delays.
The span is measured at the sinks, from the first RCPT to the last, so the start-up
time of the pymta process does not count."""
from __future__ import annotations

import contextlib
import time

from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink

CONFIG = """\
acl_smtp_rcpt = accept
primary_hostname = test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
PARALLEL
begin routers
remote:
  driver = manualroute
  route_list = ROUTES
  self = send
  transport = remote_smtp
begin transports
remote_smtp:
  driver = smtp
  allow_localhost
"""

N = 3
DELAY = 2.0


def _rcpt_span(tmp_path, parallel: str, daemon: bool = False) -> float:
    with contextlib.ExitStack() as stack:
        seen: list[float] = []

        def at_rcpt(_address: str) -> None:   # the default reply, noting the time
            seen.append(time.monotonic())
            return None
        sinks = [stack.enter_context(SmtpSink(banner_delay=DELAY, rcpt_handler=at_rcpt))
                 for _ in range(N)]
        routes = " ; ".join(f"d{i}.example 127.0.0.1::{s.port}" for i, s in enumerate(sinks))
        d = PymtaDaemon(CONFIG, tmp_path, macros={"ROUTES": routes, "PARALLEL": parallel})
        d.prepare()
        rcpts = [f"u@d{i}.example" for i in range(N)]
        if daemon:
            # the delivery a daemon's worker starts for a message received over SMTP
            d.start()
            with d.client() as c:
                c.send_message("s@test.example", rcpts, b"Subject: p\r\n\r\nbody\r\n")
            d.wait_for_log("Completed", timeout=N * DELAY + 20)
            d.stop()
        else:
            r = d.run("-odi", "-f", "s@test.example", *rcpts,
                      input=b"Subject: p\n\nbody\n")
            assert r.returncode == 0, r.stderr
        assert sorted(m.recipients[0] for s in sinks for m in s.messages) == rcpts, \
            d.diagnostics()
        assert d.queue() == []
        log = d.log()
        assert all(f"=> {a} R=remote T=remote_smtp" in log for a in rcpts), log
        assert len(seen) == N
        return max(seen) - min(seen)


def test_parallel_deliveries_take_one_delay(tmp_path):
    elapsed = _rcpt_span(tmp_path, f"remote_max_parallel = {N}")
    assert elapsed < DELAY / 2, elapsed


def test_one_at_a_time_takes_n_delays(tmp_path):
    elapsed = _rcpt_span(tmp_path, "remote_max_parallel = 1")
    assert elapsed >= (N - 1) * DELAY, elapsed


def test_default_two_at_a_time(tmp_path):
    elapsed = _rcpt_span(tmp_path, "")
    assert DELAY <= elapsed < (N - 1) * DELAY, elapsed


def test_parallel_in_the_daemon(tmp_path):
    elapsed = _rcpt_span(tmp_path, f"remote_max_parallel = {N}", daemon=True)
    assert elapsed < DELAY / 2, elapsed
