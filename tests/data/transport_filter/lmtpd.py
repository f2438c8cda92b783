#!/usr/bin/python3
"""A minimal LMTP server on stdin/stdout: the message data goes to the file argv[1]."""
import sys

out, inp = sys.stdout, sys.stdin.buffer


def say(line):
    out.write(line + "\r\n")
    out.flush()


say("220 lmtpd ready")
rcpts = 0
while True:
    line = inp.readline()
    if not line:
        break
    cmd = line.decode().strip().upper()
    if cmd.startswith("LHLO"):
        say("250-lmtpd")
        say("250 PIPELINING")
    elif cmd.startswith("MAIL"):
        say("250 OK")
    elif cmd.startswith("RCPT"):
        rcpts += 1
        say("250 OK")
    elif cmd == "DATA":
        say("354 go ahead")
        data = b""
        while True:
            d = inp.readline()
            if not d:
                sys.exit(0)     # no end of data: the message is discarded
            if d == b".\r\n":
                break
            data += d[1:] if d.startswith(b".") else d
        with open(sys.argv[1], "ab") as f:
            f.write(data)
        for _ in range(rcpts):
            say("250 delivered")
    elif cmd == "QUIT":
        say("221 bye")
        break
    else:
        say("500 what")
