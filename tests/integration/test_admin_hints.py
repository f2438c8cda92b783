"""The hints database tools (pymta-dumpdb, pymta-tidydb, pymta-fixdb, pymta-next) on
hints that a real daemon wrote: a delivery deferred by a closed port (retry and
wait-<transport> records), a ratelimit and a seen ACL condition.  Each tool runs as the
installed console script in a subprocess, and its output is checked against the records
read through pymta.hints and against Exim's formats.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pymta.admin.common import print_time
from pymta.hints.callout import CacheExpiry, CalloutCache, DomainRecord
from pymta.hints.callout import decode_record as callout_fields
from pymta.hints.db import HintsDB
from pymta.hints.misc import MiscDB
from pymta.hints.pipe_connect import EhloCache
from pymta.hints.ratelimit import RatelimitDB
from pymta.hints.retry import RetryDB
from pymta.hints.seen import SeenDB
from pymta.hints.wait import WaitDB
from pymta.spool import files
from pymta.tls.mtasts import CachedPolicy, Policy, PolicyCache
from tests.integration.conftest import BASE_CONFIG, wait_for
from tests.integration.test_acl_callouts import CONFIG as CALLOUT_CONFIG
from tests.support.daemon import PymtaDaemon, pymta_env
from tests.support.sink import SmtpSink
from tests.support.smtp import SmtpTestClient

BIN = Path(sys.executable).parent

ACL = """\
acl_check_rcpt:
  warn    ratelimit = 100 / 1h / per_rcpt / $sender_host_address
  warn    ratelimit = 100 / 1h / per_rcpt / unique=$local_part / u-$sender_host_address
  warn    seen = -1h / key=seen-$local_part
"""

CONFIG = BASE_CONFIG.replace("acl_check_rcpt:\n", ACL)


def tool(name: str, *args: str, input: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run an installed admin command (falling back to its module when the checkout is
    not installed, e.g. a bare PYTHONPATH run)."""
    script = BIN / name
    module = "pymta.admin." + name.removeprefix("pymta-")
    cmd = [str(script)] if script.exists() else \
        [sys.executable, "-c", f"import {module} as m; m.main()"]
    return subprocess.run(cmd + list(args), input=input, capture_output=True, text=True,
                          timeout=60, env=pymta_env(env))


def later(days: int) -> dict[str, str]:
    """Environment that moves a tool's clock ``days`` on (on top of the test run's own
    offset, if any)."""
    base = os.environ.get("PYMTA_TEST_CLOCK_OFFSET", "0")
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)([smhd]?)", base.strip())
    assert m, base
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return {"PYMTA_TEST_CLOCK_OFFSET": str(int(seconds + days * 86400))}


@pytest.fixture(scope="module")
def traffic(tmp_path_factory, request):
    """A daemon that delivered one message locally, deferred one to a closed port and
    refused a relay attempt."""
    from tests.support.ports import free_port
    directory = tmp_path_factory.mktemp("admin")
    (directory / "users").write_text("alice: alice\nbob: bob\n")
    closed = free_port()
    d = PymtaDaemon(CONFIG, directory, macros={"SINK_PORT": str(closed)}).start()
    request.addfinalizer(d.stop)
    with SmtpTestClient(d.port) as c:
        c.send_message("sender@client.example", "alice@test.example",
                       b"Subject: local\r\n\r\nhello\r\n")
        c.send_message("sender@client.example", "x@remote.example",
                       b"Subject: remote\r\n\r\nhello\r\n")
        assert c.cmd("MAIL FROM:<sender@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<y@elsewhere.example>")[0] == 550
        c.quit()
    d.wait_for_log(r" == x@remote\.example .*Connection refused")
    d.wait_for_log(r" => alice <alice@test\.example> ")
    # the worker may write its hints just after the log line
    key = f"127.0.0.1:127.0.0.1:{closed}"
    assert wait_for(lambda: RetryDB(str(d.spool)).get(retry_key(closed)) is not None
                    and HintsDB(str(d.spool), "wait-remote_smtp").get(key) is not None)
    return d, closed


@pytest.fixture
def hints(traffic, tmp_path):
    """A private copy of the daemon's spool (hints and queue), so tests that change
    hints do not see each other's changes."""
    d, closed = traffic
    spool = tmp_path / "spool"
    shutil.copytree(d.spool, spool, ignore=shutil.ignore_patterns("*-lock", "log"))
    return d, closed, spool


def deferred_id(d: PymtaDaemon) -> str:
    line = d.wait_for_log(r" == x@remote\.example ")[0]
    return line.split()[2]


def retry_key(closed: int) -> str:
    return f"T:127.0.0.1:127.0.0.1:{closed}"


STAMP = r"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d"


def test_dumpdb_retry_in_exim_format(hints):
    d, closed, spool = hints
    proc = tool("pymta-dumpdb", str(spool), "retry")
    assert proc.returncode == 0, proc.stderr
    rec = RetryDB(str(spool)).get(retry_key(closed))
    assert rec is not None and rec.basic_errno == 111
    # exim_dumpdb: key and errors, then first failed, last try, next try (two spaces
    # between them, a space and "*" or nothing at the end)
    assert proc.stdout == (
        f"  {retry_key(closed)} 111 {rec.more_errno} Connection refused\n"
        f"{print_time(rec.first_failed)}  {print_time(rec.last_try)}  "
        f"{print_time(rec.next_try)} \n")
    assert re.fullmatch(rf"  T:\S+ 111 \d+ Connection refused\n{STAMP}  {STAMP}  {STAMP} \n",
                        proc.stdout)
    keys = tool("pymta-dumpdb", "-k", str(spool), "retry")
    assert keys.stdout == f"  {retry_key(closed)}\n"


def test_dumpdb_times_local_or_utc(hints):
    _d, closed, spool = hints
    rec = RetryDB(str(spool)).get(retry_key(closed))
    assert rec is not None
    # five hours east of UTC: the local time is not the UTC time
    east = tool("pymta-dumpdb", str(spool), "retry", env={"TZ": "XXX-5"})
    utc = tool("pymta-dumpdb", "-z", str(spool), "retry", env={"TZ": "XXX-5"})
    as_utc = time.strftime("%d-%b-%Y %H:%M:%S", time.gmtime(rec.first_failed))
    as_east = time.strftime("%d-%b-%Y %H:%M:%S", time.gmtime(rec.first_failed + 5 * 3600))
    assert utc.stdout.splitlines()[1].startswith(as_utc + "  ")
    assert east.stdout.splitlines()[1].startswith(as_east + "  ")


def test_dumpdb_wait_ratelimit_seen(hints):
    d, closed, spool = hints
    msgid = deferred_id(d)
    wait = tool("pymta-dumpdb", str(spool), "wait-remote_smtp")
    assert wait.stdout == f"127.0.0.1:127.0.0.1:{closed} {msgid} \n"

    rates = dict(RatelimitDB(str(spool)).items())
    plain, unique = rates["1h/per_rcpt/127.0.0.1"], rates["1h/per_rcpt/unique/u-127.0.0.1"]
    out = tool("pymta-dumpdb", str(spool), "ratelimit").stdout.splitlines()
    assert len(out) == 2
    m = re.fullmatch(rf"({STAMP})\.(\d{{6}}) rate: +([\d.]+) key: 1h/per_rcpt/127\.0\.0\.1",
                     out[0])
    assert m, out
    assert m.group(1) == print_time(int(plain.time))
    assert m.group(3) == f"{plain.rate:.3f}"
    assert out[0].split("rate: ")[1].startswith(f"{plain.rate:10.3f} key")   # %10.3f
    # a unique= record also shows the start of its set and the set's size
    assert re.fullmatch(rf"{STAMP}\.\d{{6}} rate: +{unique.rate:.3f} epoch: "
                        rf"{re.escape(print_time(unique.epoch))} size: {8 * len(unique.events)} "
                        r"key: 1h/per_rcpt/unique/u-127\.0\.0\.1", out[1]), out
    assert len(unique.events) == 3         # alice, x and y

    seen_db = SeenDB(str(spool))
    seen = tool("pymta-dumpdb", str(spool), "seen").stdout
    assert seen == "".join(f"seen-{lp}\t{print_time(seen_db.get(f'seen-{lp}') or 0)}\n"
                           for lp in ("alice", "x", "y"))


def test_dumpdb_usage_and_missing_database(hints):
    _d, _closed, spool = hints
    bad = tool("pymta-dumpdb", str(spool), "nonsense")
    assert bad.returncode == 1
    assert bad.stdout.startswith("Usage: pymta-dumpdb [-z] [-k]  <spool-directory> "
                                 "<database-name>\n  <database-name> = retry | misc | ")
    assert tool("pymta-dumpdb", str(spool)).returncode == 1
    assert tool("pymta-dumpdb", "-x", str(spool), "retry").returncode == 1
    missing = tool("pymta-dumpdb", str(spool), "callout")
    assert missing.returncode == 1
    assert missing.stdout == (f"** Failed to open DBM file {spool}/db/callout for reading:\n"
                              "   No such file or directory\n")
    assert not (spool / "db" / "callout").exists()      # looking does not create it


def test_tidydb_keeps_recent_and_removes_old(hints):
    _d, closed, spool = hints
    head = f"Tidying Exim hints database {spool}/db/retry\n"
    now = tool("pymta-tidydb", str(spool), "retry")
    assert (now.returncode, now.stdout) == (0, head + "Tidying complete\n")
    # a week later the default 30 days still keep it; -t 7d (or 40 days later) do not
    week = tool("pymta-tidydb", str(spool), "retry", env=later(8))
    assert week.stdout == head + "Tidying complete\n"
    short = tool("pymta-tidydb", "-t", "7d", "-f", str(spool), "retry", env=later(8))
    assert short.stdout == head + f"deleted {retry_key(closed)} (too old)\nTidying complete\n"
    assert RetryDB(str(spool)).items() == []


def test_tidydb_wait_records_follow_the_queue(hints):
    d, closed, spool = hints
    msgid = deferred_id(d)
    key = f"127.0.0.1:127.0.0.1:{closed}"
    gone = msgid[:-2] + ("zz" if not msgid.endswith("zz") else "yy")   # never queued
    WaitDB(str(spool), "remote_smtp").add(key, gone)
    head = f"Tidying Exim hints database {spool}/db/wait-remote_smtp\n"
    first = tool("pymta-tidydb", str(spool), "wait-remote_smtp")
    assert first.stdout == head + f"updated {key}\nTidying complete\n"
    assert tool("pymta-dumpdb", str(spool), "wait-remote_smtp").stdout == f"{key} {msgid} \n"
    # the message leaves the queue: the record is left empty and goes
    os.unlink(files.data_path(str(spool), msgid))
    os.unlink(files.header_path(str(spool), msgid))
    second = tool("pymta-tidydb", str(spool), "wait-remote_smtp")
    assert second.stdout == head + f"deleted {key} (empty)\nTidying complete\n"
    assert tool("pymta-tidydb", "-t", "xyz", str(spool), "retry").returncode == 1


def test_fixdb_shows_changes_and_deletes_a_retry_record(hints):
    _d, closed, spool = hints
    key = retry_key(closed)
    before = RetryDB(str(spool)).get(key)
    assert before is not None
    script = f"no-such-key\n{key}\n4 301231:2359\n2 bad\n5 yes\nd\n{key}\n"
    proc = tool("pymta-fixdb", str(spool), "retry", input=script)
    assert proc.returncode == 0, proc.stderr
    target = int(time.mktime((2030, 12, 31, 23, 59, 0, 0, 0, -1)))

    def shown(next_try: int, expired: str) -> str:
        return (f"{print_time(before.last_try)}\n"
                f"0 error number: 111 Connection refused\n"
                f"1 extra data:   {before.more_errno}\n"
                f"2 first failed: {print_time(before.first_failed)}\n"
                f"3 last try:     {print_time(before.last_try)}\n"
                f"4 next try:     {print_time(next_try)}\n"
                f"5 expired:      {expired}\n")
    assert proc.stdout == (
        f"Modifying Exim hints database {spool}/db/retry\n"
        "> record no-such-key not found\n"
        "> " + shown(before.next_try, "no")
        + "> " + shown(target, "no")
        + "> bad time value\n" + shown(target, "no")
        + "> " + shown(target, "yes")
        + "> deleted\n"
        f"> record {key} not found\n"
        "> \n")
    assert RetryDB(str(spool)).get(key) is None


def test_fixdb_wait_record_show_and_delete(hints):
    d, closed, spool = hints
    key = f"127.0.0.1:127.0.0.1:{closed}"
    proc = tool("pymta-fixdb", str(spool), "wait-remote_smtp", input=f"{key}\nd\n")
    assert f"Sequence: 0\n{deferred_id(d)} \n> deleted\n" in proc.stdout
    assert tool("pymta-dumpdb", str(spool), "wait-remote_smtp").stdout == ""


def _conf_args(d: PymtaDaemon) -> list[str]:
    return ["-C", str(d.config_path)] + [f"-D{k}={v}" for k, v in d.macros.items()]


def test_next_reports_the_hosts_retry_times(traffic):
    d, closed = traffic
    rec = RetryDB(str(d.spool)).get(retry_key(closed))
    assert rec is not None
    proc = tool("pymta-next", *_conf_args(d), "x@remote.example")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"Transport: 127.0.0.1 [127.0.0.1]:{closed} error 111: Connection refused\n"
        f"  first failed: {print_time(rec.first_failed)}\n"
        f"  last tried:   {print_time(rec.last_try)}\n"
        f"  next try at:  {print_time(rec.next_try)}\n")
    # the domain alone finds the same host
    assert tool("pymta-next", *_conf_args(d), "remote.example").stdout == proc.stdout
    local = tool("pymta-next", *_conf_args(d), "alice@test.example")
    assert local.stdout == ("No remote hosts found for alice@test.example\n"
                            "No retry data found for alice@test.example\n")


def test_checkaccess_accepts_and_rejects(traffic):
    d, _closed = traffic
    ok = tool("pymta-checkaccess", "127.0.0.1", "alice@test.example", *_conf_args(d))
    assert ok.stdout == "Accepted\n", ok.stderr
    relay = tool("pymta-checkaccess", "192.0.2.7", "y@elsewhere.example", *_conf_args(d),
                 "-f", "someone@client.example")
    assert relay.stdout == "Rejected:\n  550 relay not permitted\n"
    bad = tool("pymta-checkaccess", "300.1.1.1", "alice@test.example")
    assert bad.returncode == 1
    assert bad.stdout.startswith('** Invalid IP address "300.1.1.1"\nUsage: ')


def test_dumpdb_and_tidydb_callout_misc_tls_mtasts(tmp_path):
    """The databases the daemon above does not fill, written through the same pymta.hints
    and pymta.tls code the daemon uses."""
    spool = str(tmp_path)
    now = int(time.time())
    cache = CalloutCache(HintsDB(spool, "callout"), CacheExpiry())
    cache.put_domain("mx.example", DomainRecord(now, "accept", "reject", now - 60))
    cache.put_address(cache.address_key("u@mx.example", "s@client.example"), "accept", now)
    out = tool("pymta-dumpdb", spool, "callout").stdout
    assert out == (f"{print_time(now)} A:u@mx.example/<s@client.example> callout=accept\n"
                   f"{print_time(now)} D:mx.example callout=accept postmaster=reject "
                   f"({print_time(now - 60)}) random=unknown\n")

    assert MiscDB(spool).acquire("serialize-host:192.0.2.1", 1)
    EhloCache(spool).put("192.0.2.1", 25, "me.example", ["250-hi", "250 PIPECONNECT"])
    misc = tool("pymta-dumpdb", spool, "misc").stdout.splitlines()
    assert [ln.split(" ", 2)[2] for ln in misc] == [
        "pipe-connect:192.0.2.1:25:me.example", f"serialize-host:192.0.2.1:{os.getpid()}"]
    assert all(re.fullmatch(rf"{STAMP} \S+", ln) for ln in misc)

    HintsDB(spool, "tls").put("t:[192.0.2.1]:25:mx.example", b"SESSION")
    assert tool("pymta-dumpdb", spool, "tls").stdout == \
        "  t:[192.0.2.1]:25:mx.example SESSION\n"

    PolicyCache(spool).put("mx.example", CachedPolicy(
        Policy("enforce", ("mx.example",), 86400, "id1"), now, now + 86400))
    assert tool("pymta-dumpdb", spool, "mtasts").stdout == \
        f"{print_time(now)} mx.example mode=enforce max_age=86400 id=id1 mx=mx.example\n"

    # 40 days on, everything dated is too old; the TLS session has no date and stays
    for name, keys in (("callout", ["A:u@mx.example/<s@client.example>", "D:mx.example"]),
                       ("mtasts", ["mx.example"])):
        proc = tool("pymta-tidydb", spool, name, env=later(40))
        assert proc.stdout.splitlines()[1:] == \
            [f"deleted {k} (too old)" for k in keys] + ["Tidying complete"]
    assert tool("pymta-tidydb", spool, "tls", env=later(40)).stdout.count("deleted") == 0


def test_tools_leave_a_foreign_file_alone(tmp_path):
    """An Exim (Berkeley DB) hints file where pymta keeps its own is reported, never
    replaced: opening it as LMDB would throw it away as damaged."""
    (tmp_path / "db").mkdir()
    foreign = tmp_path / "db" / "retry"
    content = b"\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00a\x15\x06\x00" * 256
    foreign.write_bytes(content)
    for name, mode in (("pymta-dumpdb", "reading"), ("pymta-tidydb", "writing"),
                       ("pymta-fixdb", "writing")):
        proc = tool(name, str(tmp_path), "retry", input="")
        assert proc.returncode == 1
        assert proc.stdout == (f"** Failed to open DBM file {foreign} for {mode}:\n"
                               "   not an LMDB file (not a pymta hints database)\n")
    assert foreign.read_bytes() == content
    assert not (tmp_path / "db" / "retry-lock").exists()


def test_next_and_checkaccess_report_a_broken_configuration(tmp_path):
    missing = str(tmp_path / "missing.conf")
    for proc in (tool("pymta-next", "-C", missing, "x@remote.example"),
                 tool("pymta-checkaccess", "127.0.0.1", "x@remote.example", "-C", missing)):
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert f"error in configuration file {missing}" in proc.stderr


def test_dumpdb_callout_records_a_daemon_made(tmp_path):
    """Callouts to the test sink fill the callout cache; pymta-dumpdb shows the domain
    record (with the postmaster check) and one record per address."""
    acl = "  require verify = recipient/callout=postmaster\n  accept"
    with SmtpSink(rcpt_replies={"bad@remote.example": (550, "no such user")}) as sink:
        with PymtaDaemon(CALLOUT_CONFIG.format(acl=acl), tmp_path,
                         macros={"SINK_PORT": str(sink.port)}) as d:
            with SmtpTestClient(d.port) as c:
                c.ehlo()
                assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
                assert c.cmd("RCPT TO:<good@remote.example>")[0] == 250
                assert c.cmd("RCPT TO:<bad@remote.example>")[0] == 550
                c.quit()
            spool = str(d.spool)
    records = dict(HintsDB(spool, "callout").items())
    assert sorted(records) == ["A:bad@remote.example", "A:good@remote.example",
                               "D:remote.example"]
    fields = {k: callout_fields(v) for k, v in records.items()}
    out = tool("pymta-dumpdb", spool, "callout").stdout

    def t(key: str, field: str = "time_stamp") -> str:
        return print_time(float(fields[key][field]))
    assert out == (
        f"{t('A:bad@remote.example')} A:bad@remote.example callout=reject\n"
        f"{t('A:good@remote.example')} A:good@remote.example callout=accept\n"
        f"{t('D:remote.example')} D:remote.example callout=accept postmaster=accept "
        f"({t('D:remote.example', 'postmaster_stamp')}) random=unknown\n")
