#!/usr/bin/env python3
"""Memory footprint of an SMTP receiver process: pymta against Exim 4.96.

Each MTA is started as in ``run.py``'s ``accept`` mode (same configuration, fresh
temporary spool).  Then:

idle   ``--idle`` connections are opened and greeted (banner and EHLO) and left open;
       the PSS (proportional set size: private pages plus each shared page divided by
       the processes sharing it) of every process serving one of them is read with
       psutil;
load   the load generator runs (``--sessions`` x ``--per-session`` messages) while
       the PSS of the processes serving connections is sampled every 0.2 s.

PSS is the fair measure for pre-forked children: pages they share with the master
(the interpreter, imported modules) count once in total, not once per process.
Reports median and maximum per phase, and the master's own PSS.

    sudo python bench/footprint.py                       # pymta and Exim
    python bench/footprint.py --mta pymta --idle 10
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def serving_processes(daemon_pid: int, port: int) -> list[psutil.Process]:
    """Descendants of the daemon that hold an established connection on ``port``."""
    try:
        children = psutil.Process(daemon_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in children:
        try:
            conns = p.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
               for c in conns):
            out.append(p)
    return out


def pss_mb(p: psutil.Process) -> Optional[float]:
    try:
        return p.memory_full_info().pss / 1e6
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def open_idle(port: int, n: int) -> list:
    """``n`` greeted SMTP sessions left open."""
    import socket
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(f"EHLO idle{i}.test\r\n".encode())
        while True:
            line = f.readline()
            if not line or line[3:4] == b" ":
                break
        socks.append((s, f))
    return socks


def measure(mta: str, s: bench.Settings, idle: int) -> dict:
    """Start ``mta`` in accept mode and measure its receivers' PSS."""
    top = Path(tempfile.mkdtemp(prefix=f"pymta-footprint-{mta}-"))
    os.chmod(top, 0o755)
    spool, maildir = top / "spool", top / "maildir"
    (spool / "log").mkdir(parents=True)
    maildir.mkdir()
    port = bench.free_port()
    user, group = s.user_for(mta)
    conf = top / "bench.conf"
    bench.render_config(bench.BENCH_DIR / "bench.conf.in", conf, {
        "SPOOL": str(spool), "MAILDIR": str(maildir / "inbox"), "SMTP_PORT": str(port),
        "SINK_HOST": bench.SINK_HOST, "SINK_PORT": "25", "RUN_USER": user,
        "RUN_GROUP": group, "QUEUE_ONLY_MACRO": "QUEUE_ONLY = yes", "ANTISPAM_MACRO": "",
        "TLS_MACRO": "", "DKIM_MACRO": "",
        "DELIVERY_USER_MACRO": "" if user == "root" else f"DELIVERY_USER = {user}",
    })
    bench.chown_tree(spool, user, group)
    bench.chown_tree(maildir, user, group)
    logf = open(top / "daemon.out", "wb")
    proc = subprocess.Popen(bench.daemon_command(mta, s, conf, port), stdout=logf,
                            stderr=subprocess.STDOUT, cwd=str(bench.REPO),
                            start_new_session=True)
    result: dict = {"mta": mta}
    try:
        if not bench.wait_for_port(port, proc):
            result["note"] = "daemon did not start"
            return result
        time.sleep(1.0)
        socks = open_idle(port, idle)
        time.sleep(1.0)
        idle_pss = [v for v in (pss_mb(p) for p in serving_processes(proc.pid, port))
                    if v is not None]
        result["master_pss_mb"] = round(pss_mb(psutil.Process(proc.pid)) or 0, 2)
        for sock, f in socks:
            f.close()
            sock.close()
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for p in serving_processes(proc.pid, port):
                    v = pss_mb(p)
                    if v is not None:
                        samples.append(v)
                stop.wait(0.2)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        load = bench.run_smtpload(s, port, "u1@bench.test")
        stop.set()
        t.join()
        result.update({
            "idle_processes": len(idle_pss),
            "idle_pss_median_mb": round(statistics.median(idle_pss), 2) if idle_pss else None,
            "idle_pss_max_mb": round(max(idle_pss), 2) if idle_pss else None,
            "load_samples": len(samples),
            "load_pss_median_mb": round(statistics.median(samples), 2) if samples else None,
            "load_pss_max_mb": round(max(samples), 2) if samples else None,
            "load_messages_ok": load.get("ok"),
        })
        return result
    finally:
        bench.stop_daemon(proc)
        logf.close()
        if not s.keep:
            import shutil
            shutil.rmtree(top, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    idle = 10
    if "--idle" in argv:
        i = argv.index("--idle")
        idle = int(argv[i + 1])
        del argv[i:i + 2]
    a, s = bench.parse_args(argv)
    mtas = [m for m in a.mta.split(",") if m]
    if "exim" in mtas and (not s.exim_cmd or os.geteuid() != 0):
        print("skipping exim: needs exim4 and root", file=sys.stderr)
        mtas.remove("exim")
    results = [measure(m, s, idle) for m in mtas]
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
