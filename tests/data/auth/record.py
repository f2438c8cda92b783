#!/usr/bin/env python3
"""Record Exim 4.96's replies to AUTH dialogues (run as root where exim4 is installed).

Each scenario is one ``exim4 -C exim.conf -bh 127.0.0.1`` session, driven line by line so
that a CRAM-MD5 response can be computed from the challenge Exim sends.  The transcript
(client lines prefixed ``C: ``, server replies ``S: ``, log lines ``L: ``) goes to
``<scenario>.txt`` next to this script.  The banner's date and the CRAM-MD5 challenge
(pid and time) vary from run to run; the 220 line is written as ``220 <banner>``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def cram(user: str, secret: str):
    def respond(challenge_b64: str) -> str:
        challenge = base64.b64decode(challenge_b64)
        digest = hmac.new(secret.encode(), challenge, hashlib.md5).hexdigest()
        return b64(f"{user} {digest}".encode())
    return respond


EHLO = "EHLO client.example"
SCENARIOS: dict[str, list] = {
    "plain_ok": [EHLO, "AUTH PLAIN " + b64(b"\0alice\0secret")],
    "plain_authzid_ok": [EHLO, "AUTH PLAIN " + b64(b"boss\0alice\0secret")],
    "plain_bad_password": [EHLO, "AUTH PLAIN " + b64(b"\0alice\0wrong")],
    "plain_prompted": [EHLO, "AUTH PLAIN", b64(b"\0alice\0secret")],
    "plain_empty_response": [EHLO, "AUTH PLAIN", ""],
    "plain_initial_equals": [EHLO, "AUTH PLAIN =", b64(b"\0alice\0secret")],
    "plain_bad_base64": [EHLO, "AUTH PLAIN !!!!"],
    "plain_bad_base64_response": [EHLO, "AUTH PLAIN", "@@@@"],
    "plain_cancel": [EHLO, "AUTH PLAIN", "*"],
    "login_ok": [EHLO, "AUTH LOGIN", b64(b"alice"), b64(b"secret")],
    "login_bad": [EHLO, "AUTH LOGIN", b64(b"alice"), b64(b"nope")],
    "login_cancel": [EHLO, "AUTH LOGIN", "*"],
    "login_cancel_second": [EHLO, "AUTH LOGIN", b64(b"alice"), "*"],
    "login_initial_response": [EHLO, "AUTH LOGIN " + b64(b"alice"), b64(b"secret")],
    "cram_ok": [EHLO, "AUTH CRAM-MD5", cram("alice", "secret")],
    "cram_bad_digest": [EHLO, "AUTH CRAM-MD5", cram("alice", "wrong")],
    "cram_unknown_user": [EHLO, "AUTH CRAM-MD5", cram("bob", "secret")],
    "cram_no_space": [EHLO, "AUTH CRAM-MD5", lambda _c: b64(b"alice")],
    "cram_initial_response": [EHLO, "AUTH CRAM-MD5 " + b64(b"alice x")],
    "cram_cancel": [EHLO, "AUTH CRAM-MD5", "*"],
    "auth_before_ehlo": ["AUTH PLAIN " + b64(b"\0alice\0secret")],
    "auth_after_helo": ["HELO client.example", "AUTH PLAIN " + b64(b"\0alice\0secret")],
    "auth_twice": [EHLO, "AUTH PLAIN " + b64(b"\0alice\0secret"),
                   "AUTH PLAIN " + b64(b"\0alice\0secret")],
    "auth_no_mechanism": [EHLO, "AUTH"],
    "auth_unknown_mechanism": [EHLO, "AUTH FOO"],
    "auth_lowercase_mechanism": [EHLO, "auth plain " + b64(b"\0alice\0secret")],
    "condition_other_string": [EHLO, "AUTH X-WEIRD " + b64(b"\0alice\0secret")],
    "condition_expansion_error": [EHLO, "AUTH X-BROKEN " + b64(b"\0alice\0secret")],
    "overlong_response": [EHLO, "AUTH PLAIN", "A" * 20000],
    "auth_in_transaction": [EHLO, "MAIL FROM:<a@b.example>",
                            "AUTH PLAIN " + b64(b"\0alice\0secret")],
    "auth_bad_mechanism_name": [EHLO, "AUTH PL@IN xx"],
    "auth_extra_data": [EHLO, "AUTH PLAIN " + b64(b"\0alice\0secret") + " extra"],
    "auth_two_spaces": [EHLO, "AUTH  PLAIN " + b64(b"\0alice\0secret")],
    "ehlo_after_auth": [EHLO, "AUTH PLAIN " + b64(b"\0alice\0secret"), EHLO,
                        "AUTH PLAIN " + b64(b"\0alice\0secret")],
    "failures_then_ok": [EHLO] + ["AUTH PLAIN " + b64(b"\0alice\0x")] * 4
                        + ["AUTH PLAIN " + b64(b"\0alice\0secret")],
    "mail_auth_unauthenticated": [EHLO, "MAIL FROM:<a@b.example> AUTH=<x@y.example>",
                                  "RCPT TO:<r@mx.example.test>"],
    "mail_auth_authenticated": [EHLO, "AUTH PLAIN " + b64(b"\0alice\0secret"),
                                "MAIL FROM:<a@b.example> AUTH=x+2By@y.example",
                                "RCPT TO:<r@mx.example.test>"],
    "mail_auth_empty": [EHLO, "AUTH PLAIN " + b64(b"\0alice\0secret"),
                        "MAIL FROM:<a@b.example> AUTH=<>"],
    "mail_auth_bad_xtext": [EHLO, "AUTH PLAIN " + b64(b"\0alice\0secret"),
                            "MAIL FROM:<a@b.example> AUTH=x+zz"],
    "mail_auth_after_helo": ["HELO client.example", "MAIL FROM:<a@b.example> AUTH=<>"],
}


def run(name: str, steps: list, conf: str) -> str:
    proc = subprocess.Popen(["exim4", "-C", conf, "-bh", "127.0.0.1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    out: list[str] = []

    def read_reply() -> list[str]:
        lines = []
        while True:
            line = proc.stdout.readline()
            if not line:
                return lines
            line = line.rstrip("\r\n")
            if line.startswith((">>>", "****")) or not line.strip() and not lines:
                continue
            if line.startswith("LOG: "):
                out.append("L: " + line[5:])
                continue
            if line.startswith("220 "):
                line = "220 <banner>"
            lines.append(line)
            out.append("S: " + line)
            if len(line) >= 4 and line[3] == " ":
                return lines

    last = read_reply()
    for step in steps:
        if callable(step):
            text = step(last[-1][4:])
        else:
            text = step
        out.append("C: " + (text if len(text) < 100 or text != text[0] * len(text)
                            else f"<{len(text)} x {text[0]}>"))
        proc.stdin.write(text + "\r\n")
        proc.stdin.flush()
        last = read_reply()
    proc.stdin.write("QUIT\r\n")
    proc.stdin.close()
    for line in proc.stdout:
        line = line.rstrip("\r\n")
        if line.startswith("LOG: "):
            out.append("L: " + line[5:])
        elif line[:3].isdigit():
            # Replies still due (a response line that Exim read as two), then QUIT's.
            out.append("S: " + line)
    proc.wait()
    return "\n".join(out) + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as spool:
        os.makedirs(os.path.join(spool, "log"))
        with open(os.path.join(HERE, "exim.conf")) as f:
            conf_text = f.read().replace("SPOOL", spool)
        conf = os.path.join(spool, "exim.conf")
        with open(conf, "w") as f:
            f.write(conf_text)
        names = sys.argv[1:] or list(SCENARIOS)
        for name in names:
            with open(os.path.join(HERE, name + ".txt"), "w") as f:
                f.write(run(name, SCENARIOS[name], conf))


if __name__ == "__main__":
    main()
