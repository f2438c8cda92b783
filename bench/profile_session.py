#!/usr/bin/env python3
"""Profile the receive path of one SMTP session, in process (benchmark S5's session).

The server side runs pymta's real session code (``run_session``) under cProfile in this
process, one session after another, on a loopback listener; the client is a separate
process (stdlib ``ssl`` and a plain socket), so its work is not in the profile.  The
configuration is bench.conf.in in its ``starttls`` (default) or ``accept`` mode.

Unlike bench/run.py this measures no rate: it reports the server's CPU per session
(process time, so other load on the machine changes it little) and where it goes.

    python bench/profile_session.py --sessions 300 [--plain] [--top 40] [--sort tottime]
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

import pymta.smtp.session as smtp_session  # noqa: E402
from bench.run import make_certificate, render_config  # noqa: E402
from pymta.config import load_config  # noqa: E402
from pymta.log import Logger  # noqa: E402

MESSAGE = (b"From: a@bench.test\r\nTo: u1@bench.test\r\nSubject: profile\r\n\r\n"
           + b"x" * 70 + b"\r\n") * 1 + b"body\r\n" * 50


def client(port: int, sessions: int, starttls: bool, messages: int = 1) -> None:
    """The client process: ``sessions`` sessions of ``messages`` messages each."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def reply(f) -> bytes:
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return line
    for _ in range(sessions):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        reply(f)
        s.sendall(b"EHLO client.bench.test\r\n")
        reply(f)
        if starttls:
            s.sendall(b"STARTTLS\r\n")
            reply(f)
            f.close()
            s = ctx.wrap_socket(s, server_hostname="bench.test")
            f = s.makefile("rb")
            s.sendall(b"EHLO client.bench.test\r\n")
            reply(f)
        for _ in range(messages):
            for cmd in (b"MAIL FROM:<a@bench.test>\r\n", b"RCPT TO:<u1@bench.test>\r\n",
                        b"DATA\r\n"):
                s.sendall(cmd)
                reply(f)
            s.sendall(MESSAGE + b".\r\n")
            reply(f)
        s.sendall(b"QUIT\r\n")
        reply(f)
        f.close()
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=300)
    ap.add_argument("--plain", action="store_true", help="no STARTTLS (accept mode)")
    ap.add_argument("--messages", type=int, default=1,
                    help="messages per session (the accept benchmark sends 100)")
    ap.add_argument("--antispam", action="store_true",
                    help="the anti-spam RCPT ACL of the antispam mode")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--no-profile", action="store_true",
                    help="only the CPU per session, without cProfile's overhead")
    ap.add_argument("--dump", help="write the pstats data to this file")
    args = ap.parse_args()
    top = Path(tempfile.mkdtemp(prefix="pymta-profile-"))
    spool = top / "spool"
    (spool / "log").mkdir(parents=True)
    tls_macro = ""
    if not args.plain:
        cert, key = make_certificate(top)
        tls_macro = f"TLS_CERT = {cert}\nTLS_KEY = {key}"
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    conf = top / "bench.conf"
    user = os.environ.get("USER", "root")
    render_config(BENCH_DIR / "bench.conf.in", conf, {
        "SPOOL": str(spool), "MAILDIR": str(top / "maildir"), "SMTP_PORT": str(port),
        "SINK_HOST": "127.0.0.1", "SINK_PORT": "25", "RUN_USER": user, "RUN_GROUP": user,
        "QUEUE_ONLY_MACRO": "QUEUE_ONLY = yes",
        "ANTISPAM_MACRO": "ANTISPAM = yes" if args.antispam else "", "DKIM_MACRO": "",
        "TLS_MACRO": tls_macro, "DELIVERY_USER_MACRO": ""})
    config = load_config(str(conf))
    log = Logger(config)
    warm = 20
    pid = os.fork()
    if pid == 0:
        lsock.close()
        try:
            client(port, args.sessions + warm, not args.plain, args.messages)
        finally:
            os._exit(0)

    def serve(n: int) -> None:
        for _ in range(n):
            conn, peer = lsock.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # as receivers do
            # looked up at each call, so a timing wrapper can be put in its place
            smtp_session.run_session(conn, config, port, log, peer=peer)
            conn.close()
    serve(warm)                 # caches, quickening: a receiver's steady state
    gc_time = [0.0, 0, 0.0]

    def gc_timer(phase: str, info: dict) -> None:
        if phase == "start":
            gc_time[2] = time.process_time()
        else:
            gc_time[0] += time.process_time() - gc_time[2]
            gc_time[1] += 1
    gc.callbacks.append(gc_timer)
    prof = None if args.no_profile else cProfile.Profile(time.process_time)
    t0 = os.times()
    cpu0, wall0 = time.process_time(), time.monotonic()
    if prof:
        prof.enable()
    serve(args.sessions)
    if prof:
        prof.disable()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    t1 = os.times()
    user = (t1.user - t0.user) / args.sessions * 1000
    os.waitpid(pid, 0)
    gc.callbacks.remove(gc_timer)
    print(f"garbage collector: {gc_time[1]} runs, {gc_time[0] / args.sessions * 1000:.3f}"
          " ms/session")
    print(f"{args.sessions} sessions: server CPU {cpu / args.sessions * 1000:.3f} ms/session"
          f" (user {user:.3f}; {'with' if prof else 'without'} cProfile), wall {wall:.1f} s")
    if prof:
        stats = pstats.Stats(prof)
        calls = stats.total_calls      # type: ignore[attr-defined]
        print(f"function calls per session: {calls / args.sessions:.0f}")
        if args.dump:
            stats.dump_stats(args.dump)
        stats.sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
