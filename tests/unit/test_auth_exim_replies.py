"""pymta.auth answers every recorded AUTH dialogue with Exim 4.96's exact replies and log
lines (recordings: tests/data/auth/, see its README)."""
from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from pymta.auth import results
from pymta.auth.cram_md5 import CramMd5Authenticator, CramMd5ServerExchange
from pymta.auth.expand_adapter import ContextExpander
from pymta.auth.plaintext import PlaintextAuthenticator
from pymta.auth.results import AuthResult, Challenge, failure_log_line
from pymta.expand import ExpandContext

DATA = Path(__file__).resolve().parents[1] / "data" / "auth"
HOST = "(client.example) [127.0.0.1]"
DRIVERS = {"plaintext": PlaintextAuthenticator, "cram_md5": CramMd5Authenticator}


def exim_authenticators() -> dict[str, object]:
    """The authenticators of exim.conf, by upper-case public name (a small reader, so that
    this test exercises the library alone)."""
    text = (DATA / "exim.conf").read_text()
    section = text.split("begin authenticators", 1)[1]
    instances: dict[str, dict[str, str]] = {}
    name = ""
    for line in section.splitlines():
        if re.match(r"^\w+:$", line):
            name = line[:-1]
            instances[name] = {}
        elif line.strip():
            key, _, value = line.strip().partition(" = ")
            instances[name][key] = value
    out = {}
    for name, opts in instances.items():
        cls = DRIVERS[opts.pop("driver")]
        auth = cls(name, opts)
        out[auth.public_name] = auth
    return out


#: Recordings of checks only the SMTP session makes (mail transactions, mechanism name
#: syntax, AUTH= on MAIL): replayed through the session in test_smtp_auth_session.py.
SESSION_ONLY = {"auth_in_transaction", "auth_bad_mechanism_name", "ehlo_after_auth",
                "mail_auth_unauthenticated", "mail_auth_authenticated", "mail_auth_empty",
                "mail_auth_bad_xtext", "mail_auth_after_helo", "auth_two_spaces"}


def transcripts() -> list[Path]:
    return sorted(p for p in DATA.glob("*.txt") if p.stem not in SESSION_ONLY)


def expander() -> ContextExpander:
    return ContextExpander(ExpandContext(variables={"primary_hostname": "mx.example.test"}))


def test_recordings_present() -> None:
    assert len(transcripts()) >= 25


def _replay(lines: list[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """Run the AUTH exchanges of a transcript; return (expected replies, our replies,
    expected log lines, our log lines)."""
    auths = exim_authenticators()
    expected, got, exp_log, got_log = [], [], [], []
    exchange = None
    auth = None
    ehlo = authenticated = False
    for i, line in enumerate(lines):
        if line.startswith("L: "):
            exp_log.append(line[3:])
        if not line.startswith("C: "):
            continue
        sent = line[3:]
        long_line = re.fullmatch(r"<(\d+) x (.)>", sent)
        if long_line:
            sent = long_line.group(2) * int(long_line.group(1))
        reply = next(x[3:] for x in lines[i + 1:] if x.startswith("S: "))
        if exchange is None:
            # The checks the SMTP session makes before an exchange starts.
            words = sent.split(" ", 2)
            verb = words[0].upper()
            if verb == "EHLO":
                ehlo = True
            if verb != "AUTH":
                continue
            expected.append(reply)
            mech = words[1].upper() if len(words) > 1 else ""
            if not ehlo:
                got.append(results.REPLY_NOT_ADVERTISED)
                continue
            if authenticated:
                got.append(results.REPLY_ALREADY_AUTHENTICATED)
                continue
            if mech not in auths:
                got.append(results.reply_unsupported_mechanism(mech))
                continue
            expected.pop()
            auth = auths[words[1].upper()]
            if isinstance(auth, CramMd5Authenticator) and reply.startswith("334 "):
                challenge = reply[4:]
                pid, now = re.fullmatch(r"<(\d+)\.(\d+)@.*>",
                                        base64.b64decode(challenge).decode()).groups()
                exchange = CramMd5ServerExchange(auth, expander(), {},
                                                 now=lambda now=now: float(now), pid=int(pid))
            else:
                exchange = auth.server_exchange(expander())
            step = exchange.start(words[2] if len(words) > 2 else None)
        else:
            step = exchange.respond(sent)
        expected.append(reply)
        got.append(step.reply)
        if isinstance(step, AuthResult):
            authenticated = step.ok
            if not step.ok:
                got_log.append(failure_log_line(auth.name, HOST, step))
            exchange = None
    return expected, got, exp_log, got_log


@pytest.mark.parametrize("path", transcripts(), ids=lambda p: p.stem)
def test_replies_match_exim(path: Path) -> None:
    lines = path.read_text().splitlines()
    expected, got, exp_log, got_log = _replay(lines)
    if path.stem.startswith(("plain", "login", "cram", "condition", "overlong")):
        assert expected, "the transcript has an exchange"
    assert got == expected
    # Exim logs only authenticator failures here (plus nothing else in these sessions).
    assert got_log == [x for x in exp_log if "authenticator failed" in x]


def test_overlong_response_is_invalid_base64() -> None:
    """A response line Exim's buffer cannot hold is answered as invalid base64, even when
    the data would be valid; one character less still decodes."""
    auth = exim_authenticators()["PLAIN"]
    ok_len = results.MAX_RESPONSE_LENGTH - results.MAX_RESPONSE_LENGTH % 4
    data = base64.b64encode(b"\0alice\0secret" + b"x" * (ok_len * 3 // 4 - 13))
    assert len(data) == ok_len
    ex = auth.server_exchange(expander())
    assert isinstance(ex.start(None), Challenge)
    assert ex.respond(data.decode()).reply == "535 Incorrect authentication data"
    longer = base64.b64encode(b"\0alice\0secret" + b"x" * ((ok_len + 4) * 3 // 4 - 13))
    ex = auth.server_exchange(expander())
    ex.start(None)
    assert ex.respond(longer.decode()).reply == "501 Invalid base64 data"


def _reply_after(name: str, command: str) -> str:
    lines = (DATA / f"{name}.txt").read_text().splitlines()
    i = lines.index("C: " + command)
    return lines[i + 1][3:]


def test_auth_command_replies_match_exim() -> None:
    """The replies the SMTP session gives before any exchange starts."""
    plain = "AUTH PLAIN " + base64.b64encode(b"\0alice\0secret").decode()
    assert _reply_after("auth_before_ehlo", plain) == results.REPLY_NOT_ADVERTISED
    assert _reply_after("auth_after_helo", plain) == results.REPLY_NOT_ADVERTISED
    lines = (DATA / "auth_twice.txt").read_text().splitlines()
    assert lines[-2][3:] == results.REPLY_ALREADY_AUTHENTICATED
    assert _reply_after("auth_unknown_mechanism", "AUTH FOO") == \
        results.reply_unsupported_mechanism("FOO")
    assert _reply_after("auth_no_mechanism", "AUTH") == results.reply_unsupported_mechanism("")
