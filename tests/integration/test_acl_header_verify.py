"""The header checks of the DATA ACL (verify = header_syntax, header_names_ascii,
not_blind, not_blind/case_insensitive, header_sender) in the running daemon, compared
with Exim 4.96 running the same configuration and SMTP session (recorded in
tests/data/verify_headers/, see the README there)."""
from __future__ import annotations

import re
from pathlib import Path

from tests.support.daemon import PymtaDaemon

DATA = Path(__file__).resolve().parents[1] / "data" / "verify_headers"
_ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}"


def _exim() -> tuple[list[str], list[str]]:
    replies, logs = [], []
    for line in (DATA / "exim-4.96-bh.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("LOG: "):
            if " rejected " in line:
                logs.append(re.sub(rf"^{_ID} ", "", line[5:]).replace("[192.0.2.1]",
                                                                      "[127.0.0.1]"))
        elif not line.startswith("250 HELP"):
            replies.append(re.sub(rf"id={_ID}$", "id=ID", line))
    return replies, logs


def test_header_checks_match_exim(tmp_path):
    # queue_only: the accepted messages stay queued (Exim -bh delivers nothing either).
    config = ("spool_directory = SPOOL\nlog_file_path = SPOOL/log/%slog\nqueue_only\n"
              + (DATA / "configure").read_text())
    session = (DATA / "session").read_text(encoding="utf-8").split("\n")
    with PymtaDaemon(config, tmp_path) as d:
        c = d.client()
        c.banner()
        got: list[str] = []
        i = 0
        while i < len(session):
            line = session[i]
            i += 1
            if not line:
                continue
            if line.startswith("EHLO"):
                c.cmd(line)
                continue
            if line == "DATA":
                code, text = c.cmd(line)
                got.append(f"{code} {text}")
                body = []
                while session[i] != ".":
                    body.append(session[i])
                    i += 1
                i += 1
                c.send_raw(("\r\n".join(body) + "\r\n.\r\n").encode("utf-8"))
                code, text = c.read_reply()
            else:
                code, text = c.cmd(line)
            got.append(re.sub(rf"id={_ID}$", "id=ID", f"{code} {text}"))
        c.close()
        replies, logs = _exim()
        assert got == replies
        lines = [re.sub(rf"^\S+ \S+ (?:{_ID} )?", "", x)
                 for x in d.log("main").splitlines() if " rejected " in x]
        assert lines == logs
