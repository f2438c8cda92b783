"""smtp transport host handling: hosts_max_try and hosts_max_try_hardlimit, serialize_hosts,
retry_include_ip_address, delay_after_cutoff, and the generic max_parallel (whose log
line, "defer (-57): concurrency limit reached for transport", is the one Exim 4.96
writes)."""
from __future__ import annotations

import re
import subprocess
import time

from tests.support.daemon import PYMTA, PymtaDaemon, macro_args, pymta_env
from tests.support.ports import free_port
from tests.support.sink import SmtpSink

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
relay:
  driver = manualroute
  domains = remote.example
  route_list = * HOSTS
  self = send
  transport = out
slowpipe:
  driver = accept
  local_parts = p1 : p2
  transport = sleeper
begin transports
out:
  driver = smtp
  allow_localhost
  OPTIONS
sleeper:
  driver = pipe
  command = /bin/sleep 3
  max_parallel = 1
  USER
begin retry
* * F,1h,10m
"""


def _daemon(tmp_path, hosts: str, options: str = "") -> PymtaDaemon:
    import os
    text = CONFIG.replace("HOSTS", hosts).replace("OPTIONS", options).replace(
        "USER", "user = nobody" if os.geteuid() == 0 else "")
    d = PymtaDaemon(text, tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    return d


def _give_spool(d: PymtaDaemon) -> None:
    """Hints written by the test (as root) must be usable by the daemon's user."""
    import os
    import pwd
    if os.geteuid() != 0 or not d.exim_user:
        return
    pw = pwd.getpwnam(d.exim_user)
    for root, dirs, files in os.walk(d.spool):
        for name in dirs + files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def _closed_ports(n: int) -> list[int]:
    return [free_port() for _ in range(n)]


def _feed_and_wait(procs: list[subprocess.Popen]) -> None:
    """Give every submission its message first, so that the deliveries overlap."""
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"Subject: t\n\nbody\n")
        p.stdin.close()
    for p in procs:
        p.wait(timeout=60)


def _send(d: PymtaDaemon, rcpt: str = "x@remote.example") -> None:
    d.run("-odi", "-f", "s@test.example", rcpt, input=b"Subject: t\n\nbody\n")


def test_hosts_max_try(tmp_path):
    ports = _closed_ports(4)
    hosts = ":".join(f"127.0.0.1::{p}" for p in ports)
    d = _daemon(tmp_path / "a", hosts, "hosts_max_try = 2")
    _send(d)
    assert len(re.findall(r"H=127\.0\.0\.1 \[127\.0\.0\.1\] Connection refused",
                          d.log())) == 2
    d = _daemon(tmp_path / "b", hosts, "hosts_max_try = 5\n  hosts_max_try_hardlimit = 3")
    _send(d)
    assert len(re.findall(r"H=127\.0\.0\.1 \[127\.0\.0\.1\] Connection refused",
                          d.log())) == 3


def test_retry_include_ip_address(tmp_path):
    from pymta.hints.retry import RetryDB
    port = _closed_ports(1)[0]
    for include, expected in ((True, f"T:127.0.0.1:127.0.0.1:{port}"),
                              (False, f"T:127.0.0.1:{port}")):
        d = _daemon(tmp_path / str(include), f"127.0.0.1::{port}",
                    "" if include else "retry_include_ip_address = false")
        _send(d)
        db = RetryDB(str(d.spool))
        assert [k for k, _rec in db.items()] == [expected]
        db.close()


def test_delay_after_cutoff_false_tries_hosts_again(tmp_path):
    from pymta.hints.retry import RetryDB, RetryRecord
    port = _closed_ports(1)[0]
    for setting, tried in (("", False), ("delay_after_cutoff = false", True)):
        d = _daemon(tmp_path / str(tried), f"127.0.0.1::{port}", setting)
        db = RetryDB(str(d.spool))
        now = int(time.time())
        # the host failed long ago, is past its cutoff and not due again yet
        db.put(f"T:127.0.0.1:127.0.0.1:{port}",
               RetryRecord(now - 7200, now - 3600, now + 3600, expired=True))
        db.close()
        _give_spool(d)
        _send(d)
        log = d.log()
        assert ("Connection refused" in log) is tried, log
        if not tried:
            assert "** x@remote.example" in log


def test_serialize_hosts(tmp_path):
    def slow(_rcpt: str):
        time.sleep(3)
        return None
    with SmtpSink(rcpt_handler=slow) as sink:
        d = _daemon(tmp_path, f"127.0.0.1::{sink.port}", "serialize_hosts = 127.0.0.1")
        cmd = PYMTA + ["-C", str(d.config_path)] + macro_args(d.macros)
        procs = [subprocess.Popen(cmd + ["-odi", "-f", "s@test.example",
                                         f"r{i}@remote.example"],
                                  stdin=subprocess.PIPE, env=pymta_env())
                 for i in range(2)]
        _feed_and_wait(procs)
        log = d.log()
        assert len(re.findall(r" => r\d@remote\.example ", log)) == 1, log
        assert re.search(r"== r\d@remote\.example R=relay T=out defer \(-1\): host "
                         r"127\.0\.0\.1 \[127\.0\.0\.1\] is in use by another delivery "
                         r"\(serialize_hosts\)", log), log
        assert sink.connections == 1
        _send_queue = d.run("-qf")
        assert _send_queue.returncode == 0
        assert len(re.findall(r" => r\d@remote\.example ", d.log())) == 2


def test_max_parallel(tmp_path):
    d = _daemon(tmp_path, "127.0.0.1")
    cmd = PYMTA + ["-C", str(d.config_path)] + macro_args(d.macros)
    procs = [subprocess.Popen(cmd + ["-odi", "-f", "s@test.example", f"p{i}@test.example"],
                              stdin=subprocess.PIPE, env=pymta_env()) for i in (1, 2)]
    _feed_and_wait(procs)
    log = d.log()
    assert len(re.findall(r" => p\d <p\d@test\.example> R=slowpipe T=sleeper", log)) == 1
    assert re.search(r"== p\d@test\.example R=slowpipe T=sleeper defer \(-57\): "
                     r"concurrency limit reached for transport", log), log


def test_waiting_messages_follow_down_the_same_connection(tmp_path):
    """wait-<transport>: messages deferred for a host are delivered, down the open
    connection, after the next successful delivery to it."""
    port = free_port()
    d = _daemon(tmp_path, f"127.0.0.1::{port}")
    for rcpt in ("w1@remote.example", "w2@remote.example"):
        _send(d, rcpt)                      # refused: both wait for the host
    assert d.log().count("== w") == 2
    d.run("-odq", "-f", "s@test.example", "w3@remote.example",
          input=b"Subject: t\n\nbody\n")
    (w3,) = set(d.queue()) - set(re.findall(r"(\w{6}-\w{6}-\w{2}) == w", d.log()))
    with SmtpSink(port=port) as sink:
        d.run("-M", w3)         # forced past the host's retry time; the others follow
        assert sink.wait_for(3, 15), d.log()
        assert sink.connections == 1
    lines = re.findall(r"=> (w\d)@remote\.example R=relay T=out H=127\.0\.0\.1 "
                       r"\[127\.0\.0\.1\](\*?) ", d.log())
    assert lines[0] == ("w3", "") and sorted(lines[1:]) == [("w1", "*"), ("w2", "*")]
    assert d.queue() == []
