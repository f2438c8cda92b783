"""pymta's queue tools pymta-qgrep, pymta-qsumm and pymta-what (Exim's exiqgrep,
exiqsumm and exiwhat), run as installed commands on a real spool and a real daemon, and
the -bp family of listing options.  Formats as Exim 4.96's tools print them."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import pymta
from tests.support.daemon import PymtaDaemon, pymta_env
from tests.support.sink import SmtpSink
from tests.support.wait import wait_until

BIN = Path(sys.executable).parent

CONFIG = """
primary_hostname = test.ex
domainlist local_domains = test.ex
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
queue_only
begin routers
alias:
  driver = redirect
  local_parts = alias
  domains = test.ex
  data = kid1@test.ex, kid2@test.ex
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/mbox
"""


def tool(name: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run an installed console script of this checkout."""
    path = BIN / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}"
    proc = subprocess.run([str(path), *args], input=input, capture_output=True, timeout=60,
                          env=pymta_env())
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode(), proc.stderr.decode())


def submit(d: PymtaDaemon, sender: str, *rcpts: str, body: bytes = b"body\n") -> str:
    before = set(d.queue())
    proc = d.run("-odq", "-f", sender, *rcpts, input=b"Subject: x\n\n" + body)
    assert proc.returncode == 0, proc.stderr
    [msgid] = set(d.queue()) - before
    time.sleep(0.002)            # distinct, ordered ids even within one second
    return msgid


def literal(config: str, directory: Path) -> str:
    """The configuration with its paths written out: the tools take -C but no -D."""
    return config.replace("SPOOL", str(directory / "spool")).replace("DIR", str(directory))


@pytest.fixture
def spool(tmp_path):
    """Four queued messages: a plain one, a big one to two domains, a bounce (frozen),
    one with a delivered recipient."""
    d = PymtaDaemon(literal(CONFIG, tmp_path), tmp_path)
    d.prepare()
    ids = {
        "plain": submit(d, "alice@a.example", "bob@b.example"),
        "big": submit(d, "carol@a.example", "x@c.example", "y@b.example",
                      body=b"z" * 5000 + b"\n"),
        "bounce": submit(d, "", "postmaster@b.example"),
        "partial": submit(d, "dave@d.example", "done@b.example", "todo@c.example"),
    }
    assert d.run("-Mf", ids["bounce"]).returncode == 0
    assert d.run("-Mmd", ids["partial"], "done@b.example").returncode == 0
    return d, ids


def test_qgrep_selects_and_lists_like_exiqgrep(spool):
    d, ids = spool
    conf = str(d.config_path)

    out = tool("pymta-qgrep", "-C", conf, "-f", "A\\.EXAMPLE")        # ignores case
    assert out.returncode == 0, out.stderr
    plain, big = out.stdout.split("\n\n")[:2]
    assert re.fullmatch(rf" 0m +\d+ {ids['plain']} <alice@a\.example>\n\t  bob@b\.example",
                        plain)
    assert re.fullmatch(rf" 0m  5\.\dK {ids['big']} <carol@a\.example>\n"
                        r"\t  x@c\.example\n\t  y@b\.example", big)
    assert out.stdout.endswith("\n\n") and out.stdout.count("\n\n") == 2

    # -i ids, oldest first; -R newest first
    assert tool("pymta-qgrep", "-C", conf, "-r", "b.example", "-i").stdout.split() == \
        [ids["plain"], ids["big"], ids["bounce"]]       # "done@b" is delivered
    assert tool("pymta-qgrep", "-C", conf, "-r", "b.example", "-i", "-R").stdout.split() == \
        [ids["bounce"], ids["big"], ids["plain"]]
    # -a: delivered recipients too, as "D address"
    out = tool("pymta-qgrep", "-C", conf, "-a", "-r", "^D done@").stdout
    assert out.split("\n")[1:3] == ["\t  D done@b.example", "\t  todo@c.example"]
    # frozen / not frozen, with the -bp marker
    out = tool("pymta-qgrep", "-C", conf, "-z").stdout
    assert re.match(rf" 0m +\d+ {ids['bounce']} <> \*\*\* frozen \*\*\*\n", out)
    assert tool("pymta-qgrep", "-C", conf, "-x", "-c").stdout == \
        "3 matches out of 4 messages\n"
    # size column as -bp shows it; ages from the message id
    assert tool("pymta-qgrep", "-C", conf, "-s", "K$", "-i").stdout.split() == [ids["big"]]
    assert tool("pymta-qgrep", "-C", conf, "-y", "3600", "-c").stdout == \
        "4 matches out of 4 messages\n"
    assert tool("pymta-qgrep", "-C", conf, "-o", "3600", "-c").stdout == \
        "0 matches out of 4 messages\n"
    # -b: one line per message; criteria combine
    assert tool("pymta-qgrep", "-C", conf, "-b", "-f", "dave", "-x").stdout == \
        f"{ids['partial']} From: <dave@d.example> To: todo@c.example\n"
    assert tool("pymta-qgrep", "-C", conf, "-b", "-a", "-f", "dave").stdout == \
        f"{ids['partial']} From: <dave@d.example> To: D done@b.example;todo@c.example\n"
    # no criterion: the help, exit 1 (as exiqgrep)
    out = tool("pymta-qgrep", "-C", conf, "-i")
    assert out.returncode == 1 and "-f REGEX" in out.stdout


def test_qsumm_matches_exiqsumm(spool):
    d, ids = spool
    listing = d.run("-bp").stdout.encode()
    out = tool("pymta-qsumm", input=listing)
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    assert rows[:4] == ["", "Count  Volume  Oldest  Newest  Domain",
                        "-----  ------  ------  ------  ------", ""]
    # b.example: bob, y, postmaster (done@ is delivered); c.example: x, todo
    assert re.fullmatch(r"    3 +\d+      0m      0m  b\.example", rows[4])
    assert re.fullmatch(r"    2 +\d+      0m      0m  c\.example", rows[5])
    assert rows[-2].startswith("    5 ") and rows[-2].endswith("TOTAL") and rows[-1] == ""
    exiqsumm = shutil.which("exiqsumm") or "/usr/sbin/exiqsumm"
    if not Path(exiqsumm).exists():
        pytest.skip("exiqsumm (Debian's exim4-base) is not installed: no comparison")
    for flags in ([], ["-s"], ["-b", "-f"], ["-s", "-b", "-f"]):
        assert tool("pymta-qsumm", *flags, input=listing).stdout == \
            _run(exiqsumm, flags, listing), flags
    # -a, -c: exiqsumm puts ties in hash order; the rows agree as sets
    for flag in ("-a", "-c"):
        ours = tool("pymta-qsumm", flag, input=listing).stdout
        assert sorted(ours.splitlines()) == sorted(_run(exiqsumm, [flag], listing).splitlines())
    assert tool("pymta-qsumm", "-c", input=listing).stdout.splitlines()[4].endswith(
        "b.example")                                            # 3 before 2


# A listing as -bp writes it, with ages and sizes a fresh spool cannot have.
LISTING = b"""\
25m   250 1xZVAA-000001-AA <alice@A.example>
          bob@B.example
        D carol@c.example
          x@c.example
       +D z@b.example

 2h  2.9K 1xZVAA-000002-AA <> *** frozen ***
          postmaster@b.example
          user@[192.0.2.7]

 3d   12M 1xZVAA-000003-AA <dave@mail.d.example>
          y@b.example

90m  512K 1xZVAA-000004-AA <eve@a.example> *** frozen ***
          w@c.example

"""


def _run(command: str, flags: list[str], listing: bytes) -> str:
    return subprocess.run([command, *flags], input=listing, capture_output=True,
                          timeout=30).stdout.decode()


@pytest.mark.parametrize("flags", [[], ["-a"], ["-c"], ["-s"], ["-b", "-f"],
                                   ["-s", "-b", "-f"]])
def test_qsumm_matches_exiqsumm_on_ages_and_sizes(flags):
    ours = tool("pymta-qsumm", *flags, input=LISTING)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines()[-2] == "    7    13MB      3d     25m  TOTAL"
    exiqsumm = shutil.which("exiqsumm") or "/usr/sbin/exiqsumm"
    if not Path(exiqsumm).exists():
        pytest.skip("exiqsumm (Debian's exim4-base) is not installed: no comparison")
    assert ours.stdout == _run(exiqsumm, flags, LISTING)


def test_bp_variants(spool):
    d, ids = spool
    order = [ids["plain"], ids["big"], ids["bounce"], ids["partial"]]
    assert d.run("-bpi").stdout.split() == order
    assert d.run("-bpi", ids["big"], "1aaaaa-aaaaaa-aa").stdout == ids["big"] + "\n"
    assert d.run("-bpc").stdout == "4\n"
    bp = d.run("-bp").stdout
    assert "        D done@b.example\n          todo@c.example\n" in bp
    bpu = d.run("-bpu").stdout
    assert "done@b.example" not in bpu and "          todo@c.example\n" in bpu
    assert d.run("-bpru").stdout.count("\n\n") == 4
    assert sorted(d.run("-bpr").stdout.split("\n\n")) == sorted(bp.split("\n\n"))
    assert d.run("-bpa").stdout == bp          # nothing generated by routing yet
    # several -bp variants: the last listing wins; -bpc does not turn a listing into a count
    # (as exim -bp -bpc); so mailq takes them too
    assert d.run("-bpu", "-bp").stdout == bp
    assert d.run("-bp", "-bpc").stdout == bp
    assert d.run("-bpc", "-bpu").stdout == bpu
    assert tool("mailq", "-C", str(d.config_path), "-bpu").stdout == bpu
    assert tool("mailq", "-C", str(d.config_path), "-bpi").stdout.split() == order


def test_bpa_shows_generated_deliveries(tmp_path):
    """An alias expanded into two addresses, one delivered: -bpa lists it with +D."""
    conf = CONFIG.replace("queue_only\n", "").replace(
        "r:\n  driver = accept\n", "later:\n  driver = redirect\n  local_parts = kid2\n"
        "  allow_defer\n  data = :defer: later\nr:\n  driver = accept\n", 1)
    conf += "begin retry\n* * F,1h,10m\n"
    d = PymtaDaemon(conf, tmp_path)
    d.prepare()
    proc = d.run("-odi", "-f", "s@test.ex", "alias@test.ex", input=b"Subject: x\n\nb\n")
    assert proc.returncode == 0, proc.stderr
    [msgid] = d.queue()
    assert d.run("-bpa").stdout.endswith("          alias@test.ex\n"
                                         "       +D kid1@test.ex\n\n")
    assert "+D" not in d.run("-bp").stdout


WHAT_CONFIG = CONFIG.replace("begin routers", """acl_smtp_rcpt = accept
begin routers""")


def test_what_lists_the_daemon_and_a_receiver_mid_transaction(tmp_path):
    with PymtaDaemon(WHAT_CONFIG, tmp_path) as d:
        assert d.proc is not None
        master = d.proc.pid
        with d.client() as c:
            c.banner()
            c.ehlo("mid.client.test")
            assert c.cmd("MAIL FROM:<a@b.example>")[0] == 250
            assert c.cmd("RCPT TO:<x@test.ex>")[0] == 250
            want = "handling incoming connection from (mid.client.test) [127.0.0.1]"

            def receiver_line() -> list[str]:
                return [line for line in tool("pymta-what").stdout.splitlines()
                        if line.endswith(want)]
            wait_until(lambda: receiver_line(), 10, 0.1)
            out = tool("pymta-what").stdout
            [rline] = receiver_line()
            rpid = int(rline.split()[0])
            assert psutil.Process(rpid).ppid() == master
            assert rline == f"{rpid:5d} {want}"
            # -oX <port>: every address (IPv6 too when the machine has it)
            daemon_line = re.compile(
                rf"{master:5d} daemon\({re.escape(pymta.__version__)}\): no queue runs, "
                rf"listening for SMTP on (\[::0\]:{d.port} )?\[0\.0\.0\.0\]:{d.port}")
            assert any(daemon_line.fullmatch(line) for line in out.splitlines()), out
            # (other daemons on the machine may be listed too: only ours count)
            children = {p.pid for p in psutil.Process(master).children()}
            workers = [line for line in out.splitlines()
                       if line.endswith("delivery worker: waiting for a message")
                       and int(line.split()[0]) in children]
            assert workers
            # the message is received: the title says so, the session goes on
            assert c.data(b"Subject: x\n\nbody\n")[0] == 250
            [msgid] = d.queue()
            wait_until(lambda: any(line.endswith(f"{want}: received {msgid}")
                                   for line in tool("pymta-what").stdout.splitlines()), 10, 0.1)
            c.quit()
        # back in the pool, idle
        wait_until(lambda: f"{rpid:5d} receiver: waiting for an SMTP connection"
                   in tool("pymta-what").stdout.splitlines(), 10, 0.1)


@pytest.mark.parametrize("command, usage, options", [
    ("pymta", "usage: pymta [options] [recipients...]",
     ["-bd", "-q[q][i][f[f]][l][<time>]", "-bp", "-bpc", "-bpi", "-bpu", "-M id...",
      "-Mrm id...", "-Mf", "-bt", "-bh", "-be", "-bP", "-bV", "-t", "-f addr", "-od[bifq]",
      "-C file"]),
    ("sendmail", "usage: sendmail [options] [recipients...]",
     ["-t", "-i", "-f addr", "-F name", "-od[bifq]", "-bs", "-C file", "pymta --help"]),
    ("mailq", "usage: mailq [options] [message-ids]", ["-C file", "-qG<name>", "-bpc"]),
    ("pymta-qgrep", "Usage: pymta-qgrep", ["-f REGEX", "-r REGEX", "-z", "-x", "-c", "-i",
                                           "-b", "-R", "-a", "-G QUEUE", "-C FILE"]),
    ("pymta-qsumm", "Usage: pymta-qsumm", ["-a", "-c", "-s", "-b", "-f"]),
    ("pymta-what", "Usage: pymta-what", ["--help"]),
])
def test_help_summaries(command, usage, options, tmp_path):
    # no configuration is read for --help (none exists here)
    out = tool(command, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(usage)
    for option in options:
        assert re.search(rf"(^|\s){re.escape(option)}(\s|$|,|;|\))", out.stdout, re.M), option


RELAY_CONFIG = """
primary_hostname = test.ex
acl_smtp_rcpt = accept
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
remote:
  driver = manualroute
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = smtp
begin transports
smtp:
  driver = smtp
  allow_localhost
"""


def test_what_shows_a_worker_delivering_to_a_host(tmp_path):
    with SmtpSink(banner_delay=4) as sink:
        with PymtaDaemon(RELAY_CONFIG.replace("SINK_PORT", str(sink.port)), tmp_path) as d:
            assert d.proc is not None
            with d.client() as c:
                c.banner()
                c.ehlo()
                assert c.send_message("a@test.ex", "b@remote.example",
                                      b"Subject: x\n\nb\n")[0] == 250
                c.quit()
            [msgid] = d.queue()
            want = f"delivering {msgid} to 127.0.0.1 [127.0.0.1]"

            def worker() -> list[str]:
                return [line for line in tool("pymta-what").stdout.splitlines()
                        if line.endswith(want)]
            wait_until(lambda: worker(), 10, 0.1)
            wpid = int(worker()[0].split()[0])
            assert psutil.Process(wpid).ppid() == d.proc.pid
            assert sink.wait_for(1, 20)
            wait_until(lambda: f"{wpid:5d} delivery worker: waiting for a message"
                       in tool("pymta-what").stdout.splitlines(), 10, 0.1)


def test_what_shows_bs_and_bh_sessions(tmp_path):
    d = PymtaDaemon(literal(WHAT_CONFIG, tmp_path), tmp_path)
    d.prepare()
    procs = []
    try:
        for args in (["-bs"], ["-bh", "192.0.2.9"]):
            p = subprocess.Popen([str(BIN / "pymta"), "-C", str(d.config_path), *args],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, env=pymta_env())
            procs.append(p)
            assert p.stdout is not None
            # -bh writes a few comment lines before the banner
            for _ in range(10):
                if p.stdout.readline().startswith(b"220"):
                    break
            else:
                raise AssertionError(f"no banner from pymta {args}")
        lines = tool("pymta-what").stdout.splitlines()
        user = psutil.Process().username()
        assert f"{procs[0].pid:5d} handling local SMTP from {user}" in lines
        assert f"{procs[1].pid:5d} testing SMTP from host 192.0.2.9 (-bh)" in lines
    finally:
        for p in procs:
            p.kill()
            p.wait()


SLOW_CONFIG = """
primary_hostname = test.ex
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
queue_only
begin routers
r:
  driver = accept
  transport = slow
begin transports
slow:
  driver = pipe
  command = /bin/sleep 3
  USER
"""


def test_what_shows_a_queue_run(tmp_path):
    # as root the pipe needs a user to run as; otherwise it runs as the caller
    conf = SLOW_CONFIG.replace("USER", "user = nobody" if os.geteuid() == 0 else "")
    d = PymtaDaemon(literal(conf, tmp_path), tmp_path)
    d.prepare()
    msgid = submit(d, "a@test.ex", "b@test.ex")
    run = subprocess.Popen([str(BIN / "pymta"), "-C", str(d.config_path), "-q"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=pymta_env())
    try:
        line = f"{run.pid:5d} running queue: delivering {msgid}"
        wait_until(lambda: line in tool("pymta-what").stdout.splitlines(), 10, 0.1)
        assert run.wait(30) == 0
    finally:
        run.kill()
        run.wait()
    assert d.queue() == []


def test_qgrep_reports_an_unreadable_message(spool):
    d, ids = spool
    bad = "1xZVAA-000009-AA"
    (d.spool / "input" / f"{bad}-H").write_text("not a spool file\n")
    (d.spool / "input" / f"{bad}-D").write_text(f"{bad}-D\nbody\n")
    assert "*** spool read error ***" in d.run("-bp").stdout
    out = tool("pymta-qgrep", "-C", str(d.config_path), "-c")
    assert out.stdout == "4 matches out of 4 messages\n"
    assert f"pymta-qgrep: {bad}: spool read error" in out.stderr


def test_qgrep_in_a_named_queue(spool):
    d, ids = spool
    assert d.run("-MG", "slow", ids["big"]).returncode == 0
    conf = str(d.config_path)
    assert tool("pymta-qgrep", "-C", conf, "-G", "slow", "-r", "@", "-i").stdout == \
        ids["big"] + "\n"
    assert tool("pymta-qgrep", "-C", conf, "-c").stdout == "3 matches out of 3 messages\n"
    missing = tool("pymta-qgrep", "-C", str(d.dir / "nonexistent.conf"), "-c")
    assert missing.returncode == 1 and "nonexistent.conf" in missing.stderr
