#!/usr/bin/env python3
"""Throughput benchmark: pymta against Exim 4.96 with the same configuration.

For every MTA and mode this script makes a fresh temporary spool, writes
bench.conf from bench.conf.in, starts the daemon in the foreground
(``-C conf -bdf -oX port``), drives it with smtpload.py and measures:

accept   queue_only: messages accepted per second (nothing is delivered)
local    end-to-end delivery into a maildir: messages per second from the
         first connection until the last file appears in maildir/new
relay    end-to-end relay to a local asyncio sink (bench/sink.py): messages
         per second until the sink has counted every message
antispam queue_only with a realistic anti-spam RCPT ACL (two DNS block lists,
         a per-recipient ratelimit, verify = recipient): messages accepted per
         second.  The lists are served by a DNS server on 127.0.0.1:53 that the
         benchmark starts; each daemon runs in its own mount namespace in which
         /etc/resolv.conf names it (root and unshare(1) needed; Exim has no option
         for its resolver's address)
relay_dkim
         relay as above with DKIM signing on the smtp transport (one RSA 2048
         signature, relaxed/relaxed, sha256); run with relay in the same run, the
         table then gives the signing cost as the ratio of the two
starttls S5: queue_only, one message per session over STARTTLS (a fresh TLS
         handshake for every message), messages accepted per second; both MTAs
         use the same self-signed RSA 2048 certificate made with openssl(1)

Exim is measured when ``exim4`` is on PATH and we are root (Exim needs to
start as root to switch to exim_user).  Results are written as JSON to
bench/results/ and a Markdown table is printed for docs/PERFORMANCE.md.

    sudo python bench/run.py                      # 20 sessions x 100 messages x 4 KiB
    python bench/run.py --sessions 5 --per-session 20 --modes accept --mta pymta
"""

from __future__ import annotations

import argparse
import datetime
import grp
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
from sink import FastSink  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.support.dns import DnsServer  # noqa: E402

MODES = ("accept", "local", "relay", "relay_dkim", "antispam", "starttls")
RELAY_MODES = ("relay", "relay_dkim")
QUEUE_ONLY_MODES = ("accept", "antispam", "starttls")
#: The block lists of the antispam mode: 127.0.0.2 is listed, the benchmark client
#: (127.0.0.1) is not, so every RCPT costs a lookup in each list (cached or not).
BLOCK_LISTS = ("bl.bench.test", "zen.bench.test")
SINK_HOST = "127.0.0.2"  # not a listening address of the MTA, so no "host is local" check


@dataclass
class RunResult:
    """The outcome of one MTA in one mode."""

    mta: str
    mode: str
    messages: int
    accepted: int = 0
    completed: int = 0
    errors: int = 0
    first_error: Optional[str] = None
    accept_seconds: float = 0.0
    total_seconds: float = 0.0
    accept_rate: float = 0.0
    rate: float = 0.0  # the figure compared between MTAs (see module docstring)
    p50_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    # CPU per message while the load ran: the load generator's own (getrusage), and the
    # rest of the machine's busy time (/proc/stat), which is the MTA and the kernel.
    client_cpu_ms: Optional[float] = None
    server_cpu_ms: Optional[float] = None
    mta_process_cpu_ms: Optional[float] = None
    mta_user_cpu_ms: Optional[float] = None
    #: relay: delivery lines in the MTA's log, and how many of them went down a
    #: connection kept open from an earlier message ("*" after the IP address)
    dns_queries: Optional[int] = None
    relayed_logged: Optional[int] = None
    continued: Optional[int] = None
    note: str = ""
    round: int = 1  # with --rounds: which round of the run this result belongs to


@dataclass
class Settings:
    """Parsed command-line settings shared by all runs."""

    sessions: int
    per_session: int
    size: int
    smtpload: Path
    timeout: float
    keep: bool
    pymta_cmd: list[str]
    exim_cmd: Optional[str]
    run_user: str
    run_group: str
    #: per-MTA (user, group) overriding run_user/run_group (--pymta-user)
    users: dict = field(default_factory=dict)

    def user_for(self, mta: str) -> tuple[str, str]:
        """The exim_user/exim_group (and delivery user) for ``mta``."""
        return self.users.get(mta, (self.run_user, self.run_group))

    @property
    def messages(self) -> int:
        return self.sessions * self.per_session


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the kernel considers free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> bool:
    """Wait until something accepts connections on 127.0.0.1:port (and reads its banner)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def render_config(template: Path, dest: Path, values: dict[str, str]) -> None:
    """Write ``template`` to ``dest`` with every ``@NAME@`` replaced from ``values``."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError(f"unreplaced placeholders {sorted(set(left))} in {template}")
    dest.write_text(text)


def count_files(directory: Path, suffix: str = "") -> int:
    """Number of files (recursively) in ``directory`` whose name ends with ``suffix``."""
    if not directory.is_dir():
        return 0
    n = 0
    for _root, _dirs, files in os.walk(directory):
        n += sum(1 for f in files if f.endswith(suffix))
    return n


def chown_tree(path: Path, user: str, group: str) -> None:
    """Give ``path`` and everything below it to user:group (only when we are root)."""
    if os.geteuid() != 0:
        return
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed RSA certificate and key for the starttls mode (openssl req)."""
    cert, key = directory / "tls.pem", directory / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=bench.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def make_dkim_key(directory: Path) -> Path:
    """An RSA 2048 private key for the relay_dkim mode (openssl genrsa), readable by
    the MTA's user."""
    key = directory / "dkim.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    os.chmod(key, 0o644)
    return key


def machine_busy_seconds() -> Optional[float]:
    """CPU seconds the whole machine has been busy since boot (None off Linux)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)       # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU of this script's finished children (the load generator)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def mta_process_cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU of the daemon ``pid`` and all its processes, the finished ones
    included (they are counted in their parents' children times once reaped).

    Unlike the machine's busy time this leaves out whatever else runs on the machine,
    so it stays meaningful on a shared one; it misses only the kernel's work done
    outside the MTA's processes (softirqs of loopback TCP run on whoever is on the CPU).
    """
    try:
        top = psutil.Process(pid)
        procs = [top] + top.children(recursive=True)
    except psutil.Error:
        return 0.0, 0.0
    user = system = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        user += t.user + t.children_user
        system += t.system + t.children_system
    return user, system


def run_smtpload(s: Settings, port: int, to: str, starttls: bool = False) -> dict:
    """Run the load generator against ``port`` and return its JSON result.

    With ``starttls`` every session sends one message after STARTTLS (benchmark S5)."""
    per_conn = 1 if starttls else s.per_session
    cmd = [sys.executable, str(s.smtpload), "--port", str(port), "-n", str(s.messages),
           "-c", str(s.sessions), "--per-conn", str(per_conn), "--size", str(s.size),
           "--to", to, "--timeout", "60"] + (["--starttls"] if starttls else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=s.timeout + 120)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"smtpload produced no result: {out.stderr.strip()[-500:]}")
    return json.loads(lines[-1])


def daemon_command(mta: str, s: Settings, conf: Path, port: int,
                   resolv_conf: Optional[Path] = None) -> list[str]:
    """The command line that starts ``mta`` as a foreground daemon.

    With ``resolv_conf`` the daemon runs in a private mount namespace where that file is
    bind-mounted over /etc/resolv.conf, so both MTAs ask the benchmark's DNS server."""
    base = s.pymta_cmd if mta == "pymta" else [s.exim_cmd or "exim4"]
    cmd = base + ["-C", str(conf), "-bdf", "-oX", str(port)]
    if resolv_conf is None:
        return cmd
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv_conf)] + cmd


def start_block_list_server() -> DnsServer:
    """The antispam mode's DNS server on 127.0.0.1:53 serving :data:`BLOCK_LISTS`."""
    zones = {zone: "2.0.0.127 IN A 127.0.0.2\n2.0.0.127 IN TXT \"listed for the benchmark\"\n"
             for zone in BLOCK_LISTS}
    return DnsServer(zones, port=53).start()


def stop_daemon(proc: subprocess.Popen) -> None:
    """SIGTERM the daemon's process group, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def run_one(mta: str, mode: str, s: Settings) -> RunResult:
    """Benchmark one MTA in one mode in a fresh temporary directory."""
    result = RunResult(mta=mta, mode=mode, messages=s.messages)
    top = Path(tempfile.mkdtemp(prefix=f"pymta-bench-{mta}-{mode}-"))
    os.chmod(top, 0o755)  # the daemon reads the config after dropping to exim_user
    spool, maildir = top / "spool", top / "maildir"
    (spool / "log").mkdir(parents=True)
    maildir.mkdir()
    port = free_port()
    sink: Optional[FastSink] = None
    if mode in RELAY_MODES:
        sink = FastSink(SINK_HOST, 0).start()
    dns_server = None
    resolv_conf: Optional[Path] = None
    if mode == "antispam":
        dns_server = start_block_list_server()
        resolv_conf = top / "resolv.conf"
        resolv_conf.write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
        os.chmod(resolv_conf, 0o644)
    conf = top / "bench.conf"
    user, group = s.user_for(mta)
    dkim_macro = ""
    if mode == "relay_dkim":
        dkim_macro = f"DKIM_KEY = {make_dkim_key(top)}"
    tls_macro = ""
    if mode == "starttls":
        cert, key = make_certificate(top)
        tls_macro = f"TLS_CERT = {cert}\nTLS_KEY = {key}"
        chown_tree(top, user, group)
    render_config(BENCH_DIR / "bench.conf.in", conf, {
        "SPOOL": str(spool), "MAILDIR": str(maildir / "inbox"), "SMTP_PORT": str(port),
        "SINK_HOST": SINK_HOST, "SINK_PORT": str(sink.port if sink else 25),
        "RUN_USER": user, "RUN_GROUP": group,
        "QUEUE_ONLY_MACRO": "QUEUE_ONLY = yes" if mode in QUEUE_ONLY_MODES else "",
        "ANTISPAM_MACRO": "ANTISPAM = yes" if mode == "antispam" else "",
        "TLS_MACRO": tls_macro,
        "DKIM_MACRO": dkim_macro,
        "DELIVERY_USER_MACRO": "" if user == "root" else f"DELIVERY_USER = {user}",
    })
    chown_tree(spool, user, group)
    chown_tree(maildir, user, group)
    logf = open(top / "daemon.out", "wb")
    cmd = daemon_command(mta, s, conf, port, resolv_conf)
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=str(REPO),
                            start_new_session=True)
    try:
        if not wait_for_port(port, proc):
            logf.flush()
            tail = (top / "daemon.out").read_text(errors="replace")[-800:]
            result.note = f"daemon did not start: {' '.join(cmd)}: {tail.strip()}"
            return result
        to = "u1@relay.test" if mode in RELAY_MODES else "u1@bench.test"
        busy0, client0 = machine_busy_seconds(), children_cpu_seconds()
        mta0 = mta_process_cpu_seconds(proc.pid)
        t0 = time.monotonic()
        load = run_smtpload(s, port, to, starttls=mode == "starttls")
        t_accept = time.monotonic() - t0
        busy1, client1 = machine_busy_seconds(), children_cpu_seconds()
        mta1 = mta_process_cpu_seconds(proc.pid)
        if load.get("ok"):
            result.mta_process_cpu_ms = round((sum(mta1) - sum(mta0)) / load["ok"] * 1000, 2)
            result.mta_user_cpu_ms = round((mta1[0] - mta0[0]) / load["ok"] * 1000, 2)
            client = client1 - client0
            result.client_cpu_ms = round(client / load["ok"] * 1000, 1)
            if busy0 is not None and busy1 is not None:
                result.server_cpu_ms = round((busy1 - busy0 - client) / load["ok"] * 1000, 1)
        result.accepted = load.get("ok", 0)
        result.errors = load.get("errors", 0)
        result.first_error = load.get("first_error")
        result.p50_ms, result.p99_ms = load.get("p50_ms"), load.get("p99_ms")
        result.accept_seconds = load.get("seconds") or t_accept
        result.accept_rate = load.get("msgs_per_s") or 0.0

        def done() -> int:
            if mode in QUEUE_ONLY_MODES:
                return count_files(spool / "input", "-H")
            if mode == "local":
                return count_files(maildir / "inbox" / "new")
            assert sink is not None
            return sink.count

        # Wait for every accepted message to be spooled/delivered, or give up.
        deadline = time.monotonic() + s.timeout
        last, last_change = -1, time.monotonic()
        while True:
            n = done()
            now = time.monotonic()
            if n != last:
                last, last_change = n, now
            if n >= result.accepted or now > deadline:
                break
            time.sleep(0.02)
        result.completed = n
        # Use the sink's own clock for the last relay delivery: it is exact.
        end = sink.last_time if (sink and sink.last_time) else last_change
        result.total_seconds = round(max(end - t0, 1e-6), 3)
        if mode in QUEUE_ONLY_MODES:
            result.rate = result.accept_rate
        else:
            result.rate = round(result.completed / result.total_seconds, 1)
        if mode in RELAY_MODES:
            result.relayed_logged, result.continued = count_continued(spool / "log")
        if dns_server is not None:
            result.dns_queries = len(dns_server.queries)
        problems = []
        if result.errors:
            problems.append(f"{result.errors} sessions failed ({result.first_error})")
        if result.completed < result.accepted:
            problems.append(f"timed out: {result.completed}/{result.accepted} done")
        result.note = "; ".join(problems)
        return result
    finally:
        stop_daemon(proc)
        logf.close()
        if sink is not None:
            sink.stop()
        if dns_server is not None:
            dns_server.stop()
        if s.keep:
            print(f"  kept {top}", file=sys.stderr)
        else:
            shutil.rmtree(top, ignore_errors=True)


def count_continued(log_dir: Path) -> tuple[int, int]:
    """(=> lines, those down a kept-open connection) in the main log."""
    try:
        text = (log_dir / "mainlog").read_text(errors="replace")
    except OSError:
        return 0, 0
    lines = [ln for ln in text.splitlines() if " => " in ln]
    return len(lines), sum("]* " in ln for ln in lines)


def mta_version(mta: str, s: Settings) -> str:
    """The first line of the MTA's version output ('' if it cannot be run)."""
    cmd = (s.pymta_cmd if mta == "pymta" else [s.exim_cmd or "exim4"]) + ["--version"]
    if mta == "exim":
        cmd = [s.exim_cmd or "exim4", "-bV", "-C", "/dev/null"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=str(REPO))
    except (OSError, subprocess.SubprocessError):
        return ""
    return (out.stdout.strip().splitlines() or [""])[0]


def markdown_table(results: list[RunResult], s: Settings) -> str:
    """The results as a Markdown table with pymta/Exim ratios per mode."""
    by = {(r.mta, r.mode): r for r in results}
    mtas = sorted({r.mta for r in results}, key=lambda m: m != "pymta")
    head = "| mode | " + " | ".join(f"{m} msg/s" for m in mtas)
    if "exim" in mtas and "pymta" in mtas:
        head += " | pymta/exim"
    lines = [head + " |", "|" + "---|" * (head.count("|"))]
    for mode in MODES:
        row = [by.get((m, mode)) for m in mtas]
        if not any(row):
            continue
        cells = [f"{r.rate:.1f}" + ("*" if r.note else "") if r else "-" for r in row]
        line = f"| {mode} | " + " | ".join(cells)
        if "exim" in mtas and "pymta" in mtas:
            p, e = by.get(("pymta", mode)), by.get(("exim", mode))
            line += " | " + (f"{p.rate / e.rate:.2f}" if p and e and e.rate else "-")
        lines.append(line + " |")
    lines.append("")
    # What DKIM signing costs each MTA: signed relay against relay, in the same run.
    for m in mtas:
        plain, signed = by.get((m, "relay")), by.get((m, "relay_dkim"))
        if plain and signed and plain.rate:
            lines.append(f"{m}: relay_dkim/relay = {signed.rate / plain.rate:.2f} "
                         f"(signing costs {100 * (1 - signed.rate / plain.rate):.0f}% of "
                         "relay throughput)")
            lines.append("")
    # Where the CPU went while the load ran (the generator is one Python process and,
    # for starttls, usually the bottleneck: its share shows how far apart the rates
    # can be at all).
    cpu = [r for r in results if r.server_cpu_ms is not None]
    if cpu:
        lines.append("| mode | mta | MTA + kernel CPU ms/msg | MTA processes' CPU ms/msg "
                     "(user part) | load generator CPU ms/msg |")
        lines.append("|---|---|---|---|---|")
        for r in sorted(cpu, key=lambda r: (MODES.index(r.mode), r.mta != "pymta", r.round)):
            mta = r.mta if r.round == 1 and len({c.round for c in cpu}) == 1 \
                else f"{r.mta} (round {r.round})"
            lines.append(f"| {r.mode} | {mta} | {r.server_cpu_ms} | {r.mta_process_cpu_ms} "
                         f"({r.mta_user_cpu_ms}) | {r.client_cpu_ms} |")
        lines.append("")
    reuse = [r for r in results if r.relayed_logged]
    if reuse:
        lines.append("| relay | deliveries logged | down a kept-open connection |")
        lines.append("|---|---|---|")
        for r in sorted(reuse, key=lambda r: r.mta != "pymta"):
            lines.append(f"| {r.mta} | {r.relayed_logged} | {r.continued} |")
        lines.append("")
    lines.extend(rounds_table(results))
    lines.append(f"{s.sessions} sessions x {s.per_session} messages x {s.size} bytes; "
                 f"{os.cpu_count()} CPUs; {platform.platform()}; "
                 f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
                 "* = incomplete run, see JSON.")
    return "\n".join(lines)


def rounds_table(results: list[RunResult]) -> list[str]:
    """With more than one round: every round's pymta/exim ratio per mode and their
    median (the tables above show the last round)."""
    rounds = sorted({r.round for r in results})
    if len(rounds) < 2:
        return []
    by = {(r.mta, r.mode, r.round): r for r in results}
    lines = ["| mode | round | pymta msg/s | exim msg/s | pymta/exim |", "|---|---|---|---|---|"]
    medians = []
    for mode in MODES:
        ratios = []
        for n in rounds:
            p, e = by.get(("pymta", mode, n)), by.get(("exim", mode, n))
            if not (p and e and e.rate):
                continue
            ratios.append(p.rate / e.rate)
            lines.append(f"| {mode} | {n} | {p.rate:.1f} | {e.rate:.1f} | {ratios[-1]:.2f} |")
        if ratios:
            medians.append(f"{mode}: median pymta/exim {statistics.median(ratios):.2f} over "
                           f"{len(ratios)} rounds (min {min(ratios):.2f}, max {max(ratios):.2f})")
    return lines + [""] + medians + [""]


def parse_args(argv: Optional[list[str]] = None) -> tuple[argparse.Namespace, Settings]:
    """Parse the command line into the namespace and the shared settings."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=20, help="concurrent SMTP sessions")
    p.add_argument("--per-session", type=int, default=100, help="messages per session")
    p.add_argument("--size", type=int, default=4096, help="message size in bytes")
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma list of accept,local,relay,relay_dkim,antispam,starttls")
    p.add_argument("--mta", default="pymta,exim",
                   help="comma list of pymta,exim (exim is skipped when not installed)")
    p.add_argument("--smtpload", type=Path, default=BENCH_DIR / "smtpload.py",
                   help="load generator (default: bench/smtpload.py, a copy of "
                        "../shared/tools/smtpload.py)")
    p.add_argument("--pymta", default=None,
                   help="command that runs pymta (default: the current Python importing "
                        "pymta.cli.main)")
    p.add_argument("--exim", default=shutil.which("exim4") or shutil.which("exim"),
                   help="path of the exim binary")
    p.add_argument("--user", default=None,
                   help="exim_user/exim_group and delivery user (default as root: "
                        "Debian-exim if it exists, else nobody; otherwise the current user)")
    p.add_argument("--pymta-user", default=None,
                   help="exim_user/delivery user for pymta only (default: the same as "
                        "Exim's)")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for delivery")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every mode this many times, alternating which MTA goes first, "
                        "and report each round's ratio and the median")
    p.add_argument("--receiver-threads", type=int, default=None,
                   help="pymta only: smtp_receiver_threads (sessions per receiver process); "
                        "Exim never sees it (it is passed as the macro RECEIVER_THREADS)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directories")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results",
                   help="directory for the JSON results")
    a = p.parse_args(argv)
    user = a.user
    if user is None:
        user = pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            # pymta started as root refuses exim_user = root: take Exim's user, or nobody
            user = "nobody"
            try:
                pwd.getpwnam("Debian-exim")
                user = "Debian-exim"
            except KeyError:
                pass
    group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    pymta_cmd = a.pymta.split() if a.pymta else [
        sys.executable, "-c", "import sys; from pymta.cli.main import main; sys.exit(main())"]
    if a.receiver_threads:
        pymta_cmd = pymta_cmd + [f"-DRECEIVER_THREADS={a.receiver_threads}"]
    s = Settings(sessions=a.sessions, per_session=a.per_session, size=a.size,
                 smtpload=a.smtpload, timeout=a.timeout, keep=a.keep, pymta_cmd=pymta_cmd,
                 exim_cmd=a.exim, run_user=user, run_group=group)
    if a.pymta_user:
        pu = a.pymta_user
        s.users["pymta"] = (pu, grp.getgrgid(pwd.getpwnam(pu).pw_gid).gr_name)
    return a, s


def main(argv: Optional[list[str]] = None) -> int:
    """Run the requested benchmarks; print a table and write bench/results/*.json."""
    a, s = parse_args(argv)
    modes = [m for m in a.modes.split(",") if m]
    mtas = [m for m in a.mta.split(",") if m]
    for m in modes:
        if m not in MODES:
            sys.exit(f"unknown mode {m!r}")
    if "exim" in mtas and (not s.exim_cmd or os.geteuid() != 0):
        why = "exim4 not installed" if not s.exim_cmd else "not running as root"
        print(f"skipping exim: {why}", file=sys.stderr)
        mtas.remove("exim")
    if not s.smtpload.is_file():
        sys.exit(f"load generator not found: {s.smtpload}")
    results: list[RunResult] = []
    for n in range(1, a.rounds + 1):
        # alternate which MTA goes first, so a drift in the machine's speed during the
        # run does not always favour the same one
        order = mtas if n % 2 else mtas[::-1]
        for mode in modes:
            for mta in order:
                print(f"{mta:6} {mode:7} ...", end=" ", file=sys.stderr, flush=True)
                r = run_one(mta, mode, s)
                r.round = n
                results.append(r)
                print(f"{r.rate:.1f} msg/s ({r.completed}/{r.messages} done, "
                      f"{r.errors} errors)" + (f" [{r.note}]" if r.note else ""),
                      file=sys.stderr, flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = a.out / f"bench-{stamp}.json"
    out.write_text(json.dumps({
        "date": stamp, "host": platform.node(), "platform": platform.platform(),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "versions": {m: mta_version(m, s) for m in mtas},
        "sessions": s.sessions, "per_session": s.per_session, "size": s.size,
        "results": [asdict(r) for r in results]}, indent=2) + "\n")
    print(markdown_table(results, s))
    print(f"\nresults written to {out}", file=sys.stderr)
    return 0 if all(not r.note for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
