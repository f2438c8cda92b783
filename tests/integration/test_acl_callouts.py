"""Verification callouts (verify = sender|recipient|header_sender with /callout) in the
running daemon, against the test SMTP sink on loopback, compared with what Exim 4.96 does
in the same scenarios (recorded in tests/data/callout/, see the README there).

Each scenario gets a fresh daemon and spool (so a fresh callout cache); the replies, the
main/reject log lines and the commands the sink received must be Exim's, with the client
address 127.0.0.1 instead of -bh's 192.0.2.1.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.daemon import PymtaDaemon, run_pymta
from tests.support.sink import SmtpSink
from tests.support.smtp import SmtpTestClient, SmtpTestError

DATA = Path(__file__).resolve().parents[1] / "data" / "callout"

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
callout_random_local_part = random-local-part
acl_smtp_rcpt = r
acl_smtp_data = d
begin acl
r:
{acl}
d:
  require verify = header_sender/callout=mailfrom=hs@test.example
  accept
begin routers
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.1
  self = send
  transport = t
begin transports
t:
  driver = smtp
  port = SINK_PORT
  allow_localhost
"""

SINK_REPLIES = {"bad@remote.example": (550, "5.1.1 no such user"),
                "tmp@remote.example": (451, "try later")}


def _scenarios() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in ("scenarios1.json", "scenarios2.json"):
        out.update(json.loads((DATA / name).read_text()))
    return out


def _exim_results() -> dict[str, tuple[list[str], list[str], list[str]]]:
    """scenario -> (reply lines, LOG: lines, sink commands) from Exim's transcript."""
    results: dict[str, tuple[list[str], list[str], list[str]]] = {}
    name = ""
    for line in (DATA / "exim-4.96-bhc.txt").read_text().splitlines():
        if line.startswith("=== "):
            name = line[4:]
            results[name] = ([], [], [])
        elif line.startswith("LOG: "):
            results[name][1].append(line[5:].replace("[192.0.2.1]", "[127.0.0.1]"))
        elif line.startswith("SINK "):
            results[name][2].extend(eval(line[5:]))  # noqa: S307 - our own recorded list
        elif line.strip():
            results[name][0].append(line)
    return results


SCENARIOS = _scenarios()
EXIM = _exim_results()


def _converse(port: int, session: str) -> list[str]:
    """Run the session; the replies as Exim -bh prints them (without EHLO's)."""
    out: list[str] = []
    c = SmtpTestClient(port)
    c.banner()
    lines = session.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if line == "DATA":
            code, text = c.cmd("DATA")
            out += _format(code, text)
            body = []
            while lines[i] != ".":
                body.append(lines[i])
                i += 1
            i += 1
            c.send_raw(("\r\n".join(body) + "\r\n.\r\n").encode())
            code, text = c.read_reply()
        else:
            try:
                code, text = c.cmd(line)
            except SmtpTestError:
                break
        if line.startswith("EHLO"):
            out.append("250 HELP")          # Exim's last EHLO line; extensions differ
            continue
        out += _format(code, text)
    c.close()
    return out


def _format(code: int, text: str) -> list[str]:
    parts = text.split("\n")
    return [f"{code}-{p}" for p in parts[:-1]] + [f"{code} {parts[-1]}"]


_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:\[\d+\] )?")


def _log_lines(d: PymtaDaemon) -> list[str]:
    lines = []
    for raw in d.log("main").splitlines():
        text = _STAMP.sub("", raw)
        if " verify " in text or "rejected" in text:
            lines.append(re.sub(r"^[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4} ",
                                "", text))
    return lines


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_callout_scenario_matches_exim(tmp_path, name):
    s = SCENARIOS[name]
    replies, logs, commands = EXIM[name]
    sink_kw = {"rcpt_replies": dict(SINK_REPLIES)}
    for k, v in (s.get("sink") or {}).items():
        sink_kw[k] = {a: tuple(r) for a, r in v.items()} if k == "rcpt_replies" \
            else tuple(v) if isinstance(v, list) else v
    with SmtpSink(**sink_kw) as sink:
        port = s.get("port") or sink.port
        with PymtaDaemon(CONFIG.format(acl=s["acl"]), tmp_path,
                         macros={"SINK_PORT": str(port)}) as d:
            got = _converse(d.port, s["session"])
            got_logs = _log_lines(d)
        expect = [r for r in replies if not r.startswith("250 HELP")
                  and r not in EXPECTED_REPLY_DIFFERENCES.get(name, ())]
        got = [r for r in got if not r.startswith("250 HELP")]
        # The message id in Exim's DATA log line differs; the rest must not.
        assert got == expect
        expect_logs = [re.sub(r"^[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4} ", "", x)
                       for x in logs]
        assert got_logs == expect_logs
        expect_cmds = EXPECTED_SINK_DIFFERENCES.get(name, commands)
        assert sink.commands == expect_cmds


#: Reply lines of Exim's that pymta leaves out: after a 5xx greeting Exim reports the
#: command it was about to send (QUIT) as the one that failed.
EXPECTED_REPLY_DIFFERENCES = {"banner_5xx": ("550-Sent:     QUIT",)}

#: Where pymta's conversation differs from Exim's on purpose: pymta does not pipeline
#: MAIL and RCPT, so after a rejected MAIL it sends no RCPT.
EXPECTED_SINK_DIFFERENCES = {
    "mail_550": ["EHLO mx.test.example", "MAIL FROM:<>", "QUIT"],
    "mail_550_rcpt": ["EHLO mx.test.example", "MAIL FROM:<>", "QUIT"],
}


def test_bh_skips_callouts_and_bhc_makes_them(tmp_path):
    """As Exim: -bh omits callouts (verification stops after routing); -bhc calls."""
    conf = tmp_path / "pymta.conf"
    conf.write_text(CONFIG.format(acl="  require verify = recipient/callout\n  accept"))
    (tmp_path / "spool").mkdir()
    session = b"EHLO c.test\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bad@remote.example>\r\n" \
              b"QUIT\r\n"
    with SmtpSink(rcpt_replies=dict(SINK_REPLIES)) as sink:
        macros = {"SINK_PORT": str(sink.port), "SPOOL": str(tmp_path / "spool")}
        proc = run_pymta(["-bh", "192.0.2.1"], conf, macros=macros, input=session)
        assert "250 Accepted" in proc.stdout.splitlines()
        assert sink.connections == 0
        proc = run_pymta(["-bhc", "192.0.2.1"], conf, macros=macros, input=session)
        assert "550-Callout verification failed:" in proc.stdout.splitlines()
        assert "550 550 5.1.1 no such user" in proc.stdout.splitlines()
        assert sink.commands[-2:] == ["RCPT TO:<bad@remote.example>", "QUIT"]
